"""Where data lives by default (kept free of heavy imports: the CLI reads it at start-up)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_ENV = "TANGLENAS_DATA_ROOT"


def default_data_root() -> Path:
    """Return $TANGLENAS_DATA_ROOT if set, else ~/.cache/tanglenas/data."""
    from_env = os.environ.get(DATA_ROOT_ENV, "").strip()
    return Path(from_env).expanduser() if from_env else Path.home() / ".cache" / "tanglenas" / "data"
