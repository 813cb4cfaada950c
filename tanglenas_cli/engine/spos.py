"""SPOS second stage: pick an architecture by evaluating random sub-networks of the trained supernet."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader

from tanglenas_cli.engine.evaluation import evaluate, fitness
from tanglenas_cli.nas import Choice, Sampler
from tanglenas_cli.spaces.base import SearchSpace


class PickedChoice:
    """A stand-in for a Choice whose derived candidate is fixed (what ``space.derive`` reads)."""

    def __init__(self, candidate: Any) -> None:
        self.candidate = candidate

    def derive(self) -> Any:
        return self.candidate


def spos_random_search(
    model: torch.nn.Module,
    space: SearchSpace,
    choices: Mapping[str, Choice],
    sampler: Sampler,
    loader: DataLoader,
    device: torch.device,
    samples: int = 100,
    batches: int = 4,
) -> dict[str, Any]:
    """Return the best of ``samples`` uniformly drawn architectures by supernet accuracy on ``batches``.

    Language models are ranked by their loss instead.
    """
    best_arch, best_accuracy = None, -float("inf")
    for _ in range(samples):
        sampler.sample(choices.values())
        picked = {name: PickedChoice(c.candidates[c.mixing().index]) for name, c in choices.items()}
        accuracy = fitness(evaluate(model, loader, device, max_batches=batches))
        if accuracy > best_accuracy:
            best_arch, best_accuracy = space.derive(picked), accuracy  # type: ignore[arg-type]
    assert best_arch is not None
    return best_arch
