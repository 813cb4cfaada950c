"""Where datasets live on disk, and the command that puts them there."""

from __future__ import annotations

from pathlib import Path

from tanglenas_cli.paths import default_data_root


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
