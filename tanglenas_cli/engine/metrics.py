"""Evaluation of a network on a data loader: loss and top-k accuracy (per token for language models)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tanglenas_cli.engine.task import perplexity


def flatten_tokens(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Return language-model logits ``(B, T, V)`` and targets ``(B, T)`` as ``(B*T, V)`` and ``(B*T,)``.

    Classification logits ``(B, C)`` and targets ``(B,)`` are returned unchanged.
    """
    if logits.dim() == 3:
        return logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    return logits, targets


def correct_top_k(logits: Tensor, targets: Tensor, k: int = 1) -> int:
    """Return how many rows of ``logits`` have their target among the ``k`` largest entries."""
    k = min(k, logits.shape[-1])
    top = logits.topk(k, dim=-1).indices
    return int((top == targets[:, None]).any(dim=-1).sum())


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[Any],
    device: torch.device,
    before_forward: Callable[[], None] | None = None,
    max_batches: int | None = None,
    reduce: Callable[[Tensor], Tensor] | None = None,
) -> dict[str, float]:
    """Return mean loss, top-1 and top-5 accuracy (%) of ``model`` over ``batches`` (eval mode).

    For language models the means are over tokens and ``perplexity`` = exp(loss) is added.
    ``reduce`` (e.g. a sum over data-parallel processes) is applied to the totals before averaging.
    """
    was_training = model.training
    model.eval()
    loss_sum, top1, top5, count = 0.0, 0, 0, 0
    tokens = False
    for number, (inputs, targets) in enumerate(batches):
        if max_batches is not None and number >= max_batches:
            break
        inputs, targets = inputs.to(device), targets.to(device)
        if before_forward is not None:
            before_forward()
        logits = model(inputs).float()
        tokens = tokens or logits.dim() == 3
        logits, targets = flatten_tokens(logits, targets)
        loss_sum += float(F.cross_entropy(logits, targets, reduction="sum"))
        top1 += correct_top_k(logits, targets, 1)
        top5 += correct_top_k(logits, targets, 5)
        count += len(targets)
    model.train(was_training)
    if reduce is not None:
        totals = reduce(torch.tensor([loss_sum, top1, top5, count], dtype=torch.float64, device=device))
        loss_sum, top1, top5, count = (float(v) for v in totals.tolist())
    if count == 0:
        return {"loss": float("nan"), "top1": float("nan"), "top5": float("nan")}
    metrics = {"loss": loss_sum / count, "top1": 100.0 * top1 / count, "top5": 100.0 * top5 / count}
    if tokens:
        metrics["perplexity"] = perplexity(metrics["loss"])
    return metrics


def count_parameters(model: nn.Module) -> int:
    """Return the number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process so far, in MiB: allocated tensors on a GPU, resident set on a CPU."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux
