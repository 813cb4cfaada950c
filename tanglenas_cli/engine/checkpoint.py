"""Checkpoints: written atomically (temp file + rename), loaded with ``weights_only=True``.

Only tensors and plain containers are stored, so loading never runs pickled code.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tanglenas_cli.errors import UserError

FORMAT = "tanglenas-checkpoint-v1"


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` so that a crash at any moment leaves the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a process killed mid-write
        stale.unlink(missing_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as handle:
            torch.save({"format": FORMAT, **state}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


REQUIRED_KEYS = {
    "search": (
        "epoch",
        "config",
        "data_shape",
        "model",
        "weight_optimizer",
        "arch_optimizer",
        "sampler",
        "rng",
    ),
    "train": ("epoch", "config", "model", "optimizer", "weight_stream", "step_guard", "rng", "metrics_size"),
    "trained": ("space", "architecture", "config", "data_shape", "model"),
}


def load_checkpoint(path: Path, kind: str | None = None) -> dict[str, Any]:
    """Return a checkpoint written by :func:`save_checkpoint`; UserError if missing, corrupt or foreign."""
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any failure to unpickle means a corrupt or foreign file
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"cannot load checkpoint {path}: {reason[:200]}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path} is not a tanglenas checkpoint")
    if kind is not None and state.get("kind") != kind:
        raise UserError(f"{path} is a {state.get('kind')} checkpoint, not a {kind} checkpoint")
    missing = [key for key in REQUIRED_KEYS.get(str(state.get("kind")), ()) if key not in state]
    if missing:
        raise UserError(f"checkpoint {path} is incomplete (missing {', '.join(missing)})")
    return state


def rng_state() -> dict[str, Any]:
    """Return the Python, NumPy and torch RNG states as tensors and plain containers."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py_version, torch.tensor(py_state, dtype=torch.int64), py_gauss],
        "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), np_pos, np_has_gauss, np_cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore RNG states returned by :func:`rng_state`."""
    py_version, py_state, py_gauss = state["python"]
    random.setstate((py_version, tuple(int(v) for v in py_state.tolist()), py_gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_cached = state["numpy"]
    np.random.set_state((np_name, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
