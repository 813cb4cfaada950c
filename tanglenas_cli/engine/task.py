"""What a space's networks learn, one object per kind: example batches, the fitness that selects an
architecture, and how metrics are named and shown.

A space says which task it has (``SearchSpace.task``); :func:`task_of` returns the object. Every
command that shows, records or compares metrics asks the task instead of testing for language models.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor

from tanglenas_cli.spaces.base import DataShape, SearchSpace


class Task:
    """Classification: images in, class logits out; selected and shown by top-1 accuracy."""

    sequence: ClassVar[bool] = False  # inputs are token ids (B, T) and logits (B, T, V)
    metric_name: ClassVar[str] = "top-1"  # what selects an architecture
    score_name: ClassVar[str] = "top-1 (%)"  # the same, as a plot's axis

    def example_batch(
        self, data: DataShape, size: int, device: torch.device | str = "cpu"
    ) -> tuple[Tensor, Tensor]:
        """Return random inputs and targets of ``size`` examples of ``data`` (profiling, counting FLOPs)."""
        inputs = torch.randn(size, *data.input_shape, device=device)
        return inputs, torch.randint(0, data.num_classes, (size,), device=device)

    def fitness(self, metrics: dict[str, float]) -> float:
        """Return the score to maximise: top-1 accuracy."""
        return metrics["top1"]

    def score_text(self, score: float) -> str:
        """Return a fitness as shown in a one-line summary."""
        return f"top-1 {score:.2f}%"

    def named(self, prefix: str, metrics: dict[str, float]) -> dict[str, float]:
        """Return ``metrics`` as record fields: ``{prefix}_loss``, ``{prefix}_acc`` (and the task's own)."""
        return {f"{prefix}_loss": metrics["loss"], f"{prefix}_acc": metrics["top1"]}

    def status(self, prefix: str, metrics: dict[str, float]) -> str:
        """Return the end-of-epoch line of ``metrics`` (e.g. ``valid acc 91.20%``)."""
        return f"{prefix} acc {metrics['top1']:.2f}%"

    def report(self, metrics: dict[str, float], samples: int, data: DataShape) -> dict[str, Any]:
        """Return the metrics ``eval`` prints, rounded."""
        return {"top1": round(metrics["top1"], 3), "top5": round(metrics["top5"], 3),
                "loss": round(metrics["loss"], 5)}  # fmt: skip


class LanguageModelTask(Task):
    """Language modelling: token ids in, next-token logits out; selected by minus the loss per token."""

    sequence = True
    metric_name = "loss"
    score_name = "minus loss"

    def example_batch(
        self, data: DataShape, size: int, device: torch.device | str = "cpu"
    ) -> tuple[Tensor, Tensor]:
        tokens = torch.randint(0, data.num_classes, (size, data.input_shape[0] + 1), device=device)
        return tokens[:, :-1], tokens[:, 1:]

    def fitness(self, metrics: dict[str, float]) -> float:
        """Return the score to maximise: minus the loss per token."""
        return -metrics["loss"]

    def score_text(self, score: float) -> str:
        return f"loss {-score:.4f}"

    def named(self, prefix: str, metrics: dict[str, float]) -> dict[str, float]:
        return {**super().named(prefix, metrics), f"{prefix}_perplexity": perplexity(metrics["loss"])}

    def status(self, prefix: str, metrics: dict[str, float]) -> str:
        return f"{prefix} loss {metrics['loss']:.3f} (perplexity {perplexity(metrics['loss']):.1f})"

    def report(self, metrics: dict[str, float], samples: int, data: DataShape) -> dict[str, Any]:
        """Per-token loss, perplexity and next-token accuracy, over ``samples`` blocks of tokens."""
        return {"tokens": samples * int(data.input_shape[0]), "loss": round(metrics["loss"], 5),
                "perplexity": round(perplexity(metrics["loss"]), 3), "token_top1": round(metrics["top1"], 3),
                "token_top5": round(metrics["top5"], 3)}  # fmt: skip


def perplexity(loss: float) -> float:
    """Return exp(loss), capped so that a diverged loss gives a large number, not an overflow."""
    return math.exp(min(loss, 700.0))


_TASKS: dict[str, Task] = {"classification": Task(), "language_model": LanguageModelTask()}


def task_of(space: SearchSpace | type[SearchSpace]) -> Task:
    """Return the task of ``space`` (an instance or its class)."""
    return _TASKS[space.task]
