"""Data loaders whose order depends only on (seed, epoch), so interrupted runs resume exactly.

With several data-parallel processes every process draws the same permutation and the same global
batches of ``batch_size * world`` samples; process ``rank`` takes every ``world``-th sample of each.
"""

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


class ShardedBatches(Sampler[list[int]]):
    """Global batches of ``batch_size * world`` indices from ``order``; yields this rank's share of each.

    A rank's share is every ``world``-th index of the global batch, starting at ``rank``. A last global
    batch smaller than ``world`` is dropped when ``world > 1`` (some rank would get nothing).
    """

    def __init__(self, order: Sampler[int] | range, batch_size: int, rank: int = 0, world: int = 1) -> None:
        self.order, self.batch_size, self.rank, self.world = order, batch_size, rank, world

    def _global_batches(self) -> Iterator[list[int]]:
        size = self.batch_size * self.world
        batch: list[int] = []
        for index in self.order:
            batch.append(index)
            if len(batch) == size:
                yield batch
                batch = []
        if batch and len(batch) >= self.world:
            yield batch

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self._global_batches():
            yield batch[self.rank :: self.world]

    def __len__(self) -> int:
        total, size = len(self.order), self.batch_size * self.world
        full, rest = divmod(total, size)
        return full + (1 if rest and rest >= self.world else 0)


def epoch_loader(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    shuffle: bool = True,
    num_workers: int = 0,
    start: int = 0,
    rank: int = 0,
    world: int = 1,
) -> DataLoader:
    """Return a loader over ``dataset`` whose order is fixed by ``seed`` (skipping ``start`` samples).

    ``batch_size`` is per process: with ``world`` processes a step covers ``batch_size * world`` samples.
    """
    order = SeededPermutation(len(dataset), seed, start) if shuffle else range(start, len(dataset))
    return DataLoader(
        dataset,
        batch_sampler=ShardedBatches(order, batch_size, rank, world),
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
    )


class CyclingLoader:
    """An endless, resumable stream of batches: a new seeded permutation each pass over the data.

    Used for the arch split, which is drawn from once per weight step across epoch boundaries.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        seed: int,
        num_workers: int = 0,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        if len(dataset) < world:
            raise ValueError("cannot cycle over a dataset with fewer samples than processes")
        self.dataset, self.batch_size, self.seed, self.num_workers = dataset, batch_size, seed, num_workers
        self.rank, self.world = rank, world
        self.cycle, self.consumed = 0, 0  # passes completed, batches taken in the current pass
        self._iterator: Iterator[Any] | None = None

    def _open(self) -> None:
        loader = epoch_loader(
            self.dataset,
            self.batch_size,
            seed=self.seed * 100_003 + self.cycle,
            num_workers=self.num_workers,
            start=self.consumed * self.batch_size * self.world,
            rank=self.rank,
            world=self.world,
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
