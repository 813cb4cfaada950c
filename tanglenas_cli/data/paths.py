"""Where datasets live on disk, and the command that puts them there."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_ENV = "TANGLENAS_DATA_ROOT"


def default_data_root() -> Path:
    """Return $TANGLENAS_DATA_ROOT if set, else ~/.cache/tanglenas/data."""
    from_env = os.environ.get(DATA_ROOT_ENV, "").strip()
    return Path(from_env).expanduser() if from_env else Path.home() / ".cache" / "tanglenas" / "data"


def dataset_dir(data_root: Path, name: str) -> Path:
    """Return the folder of dataset `name` under `data_root` (e.g. DATA_ROOT/cifar10)."""
    return Path(data_root).expanduser() / name


def prepare_command(name: str, data_root: Path, source: str | None = None) -> str:
    """Return the `tanglenas prepare-data` command line that fills `data_root` with dataset `name`."""
    command = f"tanglenas prepare-data {name}"
    if source is not None:
        command += f" --from {source}"
    if Path(data_root).expanduser() != default_data_root():
        command += f" --data-root {data_root}"
    return command
