"""Data loaders whose order depends only on (seed, epoch), so interrupted runs resume exactly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class SeededPermutation(Sampler[int]):
    """A random permutation drawn from ``seed``, optionally starting ``start`` positions in."""

    def __init__(self, size: int, seed: int, start: int = 0) -> None:
        self.size, self.seed, self.start = size, seed, start

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed))
        return iter(order[self.start :].tolist())

    def __len__(self) -> int:
        return max(self.size - self.start, 0)


def epoch_loader(
    dataset: Dataset, batch_size: int, seed: int, shuffle: bool = True, num_workers: int = 0, start: int = 0
) -> DataLoader:
    """Return a loader over ``dataset`` whose order is fixed by ``seed`` (skipping ``start`` samples)."""
    sampler = SeededPermutation(len(dataset), seed, start) if shuffle else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
    )


class CyclingLoader:
    """An endless, resumable stream of batches: a new seeded permutation each pass over the data.

    Used for the arch split, which is drawn from once per weight step across epoch boundaries.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, num_workers: int = 0) -> None:
        if len(dataset) == 0:
            raise ValueError("cannot cycle over an empty dataset")
        self.dataset, self.batch_size, self.seed, self.num_workers = dataset, batch_size, seed, num_workers
        self.cycle, self.consumed = 0, 0  # passes completed, batches taken in the current pass
        self._iterator: Iterator[Any] | None = None

    def _open(self) -> None:
        loader = epoch_loader(
            self.dataset,
            self.batch_size,
            seed=self.seed * 100_003 + self.cycle,
            num_workers=self.num_workers,
            start=self.consumed * self.batch_size,
        )
        self._iterator = iter(loader)

    def __next__(self) -> Any:
        if self._iterator is None:
            self._open()
        try:
            batch = next(self._iterator)  # type: ignore[arg-type]
        except StopIteration:
            self.cycle, self.consumed = self.cycle + 1, 0
            self._open()
            batch = next(self._iterator)  # type: ignore[arg-type]
        self.consumed += 1
        return batch

    def __iter__(self) -> CyclingLoader:
        return self

    def state_dict(self) -> dict[str, int]:
        """Return the position in the stream."""
        return {"cycle": self.cycle, "consumed": self.consumed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a position returned by :meth:`state_dict`."""
        self.cycle, self.consumed = int(state["cycle"]), int(state["consumed"])
        self._iterator = None
