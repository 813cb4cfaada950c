"""A training step's forward, loss, tally and backward: the part ``search``, ``train`` and ``profile`` share.

The optimizer step itself (clipping, skipping non-finite steps, the loss scaler) stays with the caller's
:class:`~tanglenas_cli.engine.precision.StepGuard`: a search steps weights and logits in several ways.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from tanglenas_cli.engine.factory import WeightLoss
from tanglenas_cli.engine.metrics import flatten_tokens


@dataclass
class Tally:
    """Running training loss and accuracy over predictions (tokens, for language models).

    The loss and the correct count stay on the model's device, so counting a batch never waits for it;
    :meth:`mean_loss` and :meth:`accuracy` read them (one wait each).
    """

    loss: Tensor | float = 0.0  # summed over predictions
    correct: Tensor | int = 0
    count: int = 0  # predictions
    samples: int = 0  # examples (sequences, for language models)

    def add(self, logits: Tensor, targets: Tensor, loss: Tensor) -> None:
        """Count one batch: its mean ``loss`` and the argmax predictions of ``logits``."""
        flat_logits, flat_targets = flatten_tokens(logits.detach(), targets)
        self.correct = self.correct + (flat_logits.argmax(-1) == flat_targets).sum()
        self.count += flat_targets.numel()
        self.loss = self.loss + loss.detach().float() * flat_targets.numel()
        self.samples += len(targets)

    def copy(self) -> Tally:
        return Tally(self.loss, self.correct, self.count, self.samples)  # tensors are never changed in place

    def mean_loss(self) -> float:
        return float(self.loss) / max(self.count, 1)

    def accuracy(self) -> float:
        return 100.0 * int(self.correct) / max(self.count, 1)

    def status(self) -> str:
        """The progress bar's text: running loss and accuracy."""
        return f"loss {self.mean_loss():.3f} acc {self.accuracy():.1f}%"


def forward_backward(
    model: nn.Module,
    micro: Iterable[tuple[Tensor, Tensor]],
    device: torch.device,
    weight_loss: WeightLoss,
    backward: Callable[[Tensor], None],
    tally: Tally | None = None,
    *,
    autocast: Callable[[], Any] = contextlib.nullcontext,
    before_forward: Callable[[], None] | None = None,
    extra_loss: Callable[[], Tensor | None] | None = None,
    non_blocking: bool = False,
) -> Tensor:
    """Forward and backward every micro-batch of one optimizer step; return their mean loss.

    Each micro-batch is moved to ``device``, mixed (Mixup / CutMix when configured), run under
    ``autocast`` after ``before_forward`` (a supernet draws its mixing weights there), scored by
    ``weight_loss`` and back-propagated by ``backward`` divided by the number of micro-batches. A network
    that returns ``(logits, auxiliary logits)`` adds ``model.auxiliary_weight`` times the auxiliary loss;
    ``extra_loss`` (e.g. a sampler's regulariser) is added to every micro-batch's objective.
    """
    micro = list(micro)
    step_loss = torch.zeros((), device=device)
    for inputs, targets in micro:
        inputs = inputs.to(device, non_blocking=non_blocking)
        targets = targets.to(device, non_blocking=non_blocking)
        if before_forward is not None:
            before_forward()
        mixed, soft = weight_loss.mix(inputs, targets)
        with autocast():
            output = model(mixed)
        logits, auxiliary = output if isinstance(output, tuple) else (output, None)
        loss = weight_loss.loss(logits.float(), targets, soft)
        objective = loss
        if auxiliary is not None:
            objective = objective + model.auxiliary_weight * weight_loss.loss(
                auxiliary.float(), targets, soft
            )
        extra = extra_loss() if extra_loss is not None else None
        if extra is not None:
            objective = objective + extra
        backward(objective / len(micro))
        step_loss += loss.detach() / len(micro)
        if tally is not None:
            tally.add(logits.float(), targets, loss)
    return step_loss
