"""Metric records: always to metrics.jsonl, optionally to Weights & Biases (never required)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tanglenas_cli.engine.run_dir import append_jsonl
from tanglenas_cli.errors import UserError


def require_wandb() -> Any:
    """Return the wandb module, or raise UserError saying how to install it."""
    try:
        return importlib.import_module("wandb")
    except ImportError:
        raise UserError("--wandb needs the wandb package: pip install 'tanglenas[wandb]'") from None


class Tracker:
    """Appends metric records to a JSON-lines file and mirrors them to wandb when enabled."""

    def __init__(
        self,
        path: Path,
        use_wandb: bool = False,
        project: str = "tanglenas",
        run_name: str = "",
        config: Mapping[str, Any] | None = None,
        run_dir: Path | None = None,
        enabled: bool = True,
    ) -> None:
        self.path = path
        self.enabled = enabled  # False on every data-parallel process but the first
        self._wandb_run = None
        if use_wandb:
            wandb = require_wandb()
            # WANDB_MODE=offline / disabled in the environment is respected by wandb.init itself.
            self._wandb_run = wandb.init(
                project=project,
                name=run_name,
                config=dict(config or {}),
                dir=str(run_dir or path.parent),
                resume="allow",
            )

    def log(self, record: Mapping[str, Any]) -> None:
        """Write one record."""
        if not self.enabled:
            return
        append_jsonl(self.path, record)
        if self._wandb_run is not None:
            numbers = {
                k: v for k, v in record.items() if isinstance(v, int | float) and not isinstance(v, bool)
            }
            self._wandb_run.log(numbers)

    def close(self) -> None:
        """Finish the wandb run, if any."""
        if self._wandb_run is not None:
            self._wandb_run.finish()
            self._wandb_run = None
