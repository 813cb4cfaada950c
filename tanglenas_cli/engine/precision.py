"""Mixed precision and the non-finite-step guard of the training loops.

Autocast comes from Accelerate (``mixed_precision`` = no / bf16 / fp16, or None for Accelerate's own
setting: a launcher flag or its config file). fp16 needs loss scaling and a GPU; bf16 runs on CPU too. A
step whose loss or gradients are NaN/inf is skipped (the weights and the optimizer state stay as they
were); too many in a row stop the run with a clear message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import parse_choice_from_env
from torch import Tensor

from tanglenas_cli.errors import NonFiniteError, UserError


def make_accelerator(mixed_precision: str | None = None) -> Accelerator:
    """Return the run's Accelerator (CPU unless CUDA is available); fp16 without a GPU is refused.

    ``mixed_precision`` None takes Accelerate's own setting (what ``accelerate launch`` passes on), else "no";
    ``accelerator.mixed_precision`` is the precision in effect.
    """
    cuda = torch.cuda.is_available()
    if mixed_precision is None:
        mixed_precision = parse_choice_from_env("ACCELERATE_MIXED_PRECISION", "no")
    if mixed_precision == "fp16" and not cuda:
        raise UserError("mixed_precision=fp16 needs a GPU; use bf16 on a CPU")
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision", mixed_precision) != mixed_precision:
        # a second run in the same Python process (tests, notebooks) may use another precision; the
        # process group (PartialState) is kept
        AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(cpu=not cuda, mixed_precision=mixed_precision)


class StepGuard:
    """Backward with loss scaling (fp16), and optimizer steps that skip non-finite losses and gradients."""

    def __init__(self, max_in_a_row: int, mixed_precision: str, device: torch.device) -> None:
        self.max_in_a_row = max_in_a_row
        self.in_a_row = 0
        self.skipped_total = 0
        self.scaler = torch.amp.GradScaler(device.type) if mixed_precision == "fp16" else None
        self._loss_finite: Tensor | None = None  # all losses since the last step finite (on device)

    def state_dict(self) -> dict[str, Any]:
        """Return what a checkpoint keeps: the skipped-step count and the fp16 loss scale (its scaler)."""
        return {
            "skipped_total": self.skipped_total,
            "scaler": self.scaler.state_dict() if self.scaler else None,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state returned by :meth:`state_dict` (a run resumes at its loss scale)."""
        self.skipped_total = int(state.get("skipped_total", 0))
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])

    def backward(self, loss: Tensor, params: Sequence[Tensor]) -> None:
        """Back-propagate ``loss`` into ``params`` (scaled under fp16); accumulates until :meth:`step`."""
        finite = torch.isfinite(loss.detach()).all()
        self._loss_finite = finite if self._loss_finite is None else self._loss_finite & finite
        scaled = self.scaler.scale(loss) if self.scaler is not None else loss
        scaled.backward(inputs=list(params))

    def step(self, optimizer: torch.optim.Optimizer, params: Sequence[Tensor], clip: float | None,
             where: str) -> bool:  # fmt: skip
        """Clip and take the optimizer step; return False (and count it) when the step was skipped."""
        return self.step_all([(optimizer, params, clip)], where)

    def step_all(
        self, steps: Sequence[tuple[torch.optim.Optimizer, Sequence[Tensor], float | None]], where: str
    ) -> bool:
        """Clip and step several optimizers whose gradients came from the same backward passes.

        Each ``(optimizer, params, clip)`` is clipped on its own; if the loss or any gradient is
        NaN/inf, none of them steps (counted as one skipped step). Return whether they stepped.
        """
        checks = [] if self._loss_finite is None else [self._loss_finite]
        self._loss_finite = None
        for optimizer, params, clip in steps:
            if self.scaler is not None:
                self.scaler.unscale_(optimizer)
            # with clip=None the norm is only measured (max_norm=inf leaves the gradients unchanged)
            norm = torch.nn.utils.clip_grad_norm_(params, clip if clip is not None else math.inf)
            checks.append(torch.isfinite(norm))
        finite = bool(torch.stack(checks).all())  # the step's one wait for the device
        if self.scaler is not None:
            for optimizer, _, _ in steps:
                if finite or len(steps) == 1:
                    self.scaler.step(optimizer)  # skips by itself on inf/NaN gradients
            self.scaler.update()
        elif finite:
            for optimizer, _, _ in steps:
                optimizer.step()
        for optimizer, _, _ in steps:
            optimizer.zero_grad(set_to_none=True)
        if finite:
            self.in_a_row = 0
            return True
        self.in_a_row += 1
        self.skipped_total += 1
        if self.in_a_row >= self.max_in_a_row:
            raise NonFiniteError(
                f"the loss or the gradients were NaN/inf for {self.in_a_row} steps in a row (last at "
                f"{where}); lower the learning rate or raise grad_clip (max_nonfinite_steps sets the limit)"
            )
        return False


def check_finite(state: Mapping[str, Tensor], what: str) -> None:
    """Refuse to go on (and so to checkpoint) when any floating tensor of ``state`` holds NaN/inf."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise NonFiniteError(f"{what} hold NaN/inf ({name}); the last good checkpoint is kept")
