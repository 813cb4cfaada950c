"""One process at a time per run directory: an exclusive OS file lock on ``RUN_DIR/.lock``.

The lock is the kernel's (``filelock``: ``flock`` on POSIX), so a killed process leaves nothing stuck:
it goes with the process. Under a launcher only the first process (``RANK`` 0) takes it.
"""

from __future__ import annotations

import os
from pathlib import Path

import filelock

from tanglenas_cli.errors import UserError

LOCK = ".lock"


class RunLock:
    """The lock of one run directory: :meth:`acquire` (idempotent) takes it, :meth:`release` gives it back."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock: filelock.BaseFileLock | None = None

    def acquire(self) -> None:
        """Take the lock (creating the folder); UserError when another process holds it."""
        if self._lock is not None or os.environ.get("RANK", "0") != "0":
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(self.folder / LOCK, timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise UserError(
                f"{self.folder} is in use by another tanglenas process; wait for it or pass another --out"
            ) from None
        self._lock = lock

    def release(self) -> None:
        """Give the lock back (no-op when not held)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None
