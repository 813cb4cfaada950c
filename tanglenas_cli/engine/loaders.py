"""Data loaders whose order depends only on (seed, epoch), so interrupted runs resume exactly.

With several data-parallel processes every process draws the same permutation and the same global
batches of ``batch_size * world`` samples; process ``rank`` takes every ``world``-th sample of each.
A dataset with a per-batch transform (ImageNet's per-batch resolution) gets it in the loader's collate
step, keyed by (loader seed, global batch number), so resumed loaders draw the same resolutions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from tanglenas_cli.data.imagenet import BatchResolutions, batch_transform_of
from tanglenas_cli.data.tokens import TokenWindows
from tanglenas_cli.nas.architect import MicroBatches


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


class _NumberedSamples(Dataset):
    """``dataset`` indexed by ``(index, batch number)``: item ``(i, n)`` is ``(*dataset[i], n)``."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __getitem__(self, key: tuple[int, int]) -> tuple[Any, ...]:
        index, number = key
        return (*self.dataset[index], number)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]


class _NumberedBatches(Sampler[list[tuple[int, int]]]):
    """The batches of ``batches`` with each index paired with its global batch number (from ``first``)."""

    def __init__(self, batches: ShardedBatches, first: int) -> None:
        self.batches, self.first = batches, first

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for number, batch in enumerate(self.batches, start=self.first):
            yield [(index, number) for index in batch]

    def __len__(self) -> int:
        return len(self.batches)


class ResizingCollate:
    """Collate samples ``(input, target, batch number)`` and resize the inputs to the batch's resolution.

    Runs in the loader's workers; the resolution depends only on the loader's ``seed`` and the number.
    """

    def __init__(self, transform: BatchResolutions, seed: int) -> None:
        self.transform, self.seed = transform, seed

    def __call__(self, samples: list[tuple[Any, ...]]) -> list[Any]:
        number = samples[0][-1]
        inputs, *rest = default_collate([sample[:-1] for sample in samples])
        return [self.transform(inputs, self.transform.size_for(self.seed, number)), *rest]


def epoch_loader(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    shuffle: bool = True,
    num_workers: int = 0,
    start: int = 0,
    rank: int = 0,
    world: int = 1,
    pin_memory: bool = False,
) -> DataLoader:
    """Return a loader over ``dataset`` whose order is fixed by ``seed`` (skipping ``start`` samples).

    ``batch_size`` is per process: with ``world`` processes a step covers ``batch_size * world`` samples.
    A per-batch transform of the dataset (see :func:`batch_transform_of`) resizes batch ``n`` of the
    pass (counted from the first, also when ``start`` skips some) to the resolution of ``(seed, n)``.
    """
    order = SeededPermutation(len(dataset), seed, start) if shuffle else range(start, len(dataset))
    batches = ShardedBatches(order, batch_size, rank, world)
    transform = batch_transform_of(dataset)
    if transform is None:
        return DataLoader(
            dataset,
            batch_sampler=batches,
            num_workers=num_workers,
            generator=torch.Generator().manual_seed(seed),
            persistent_workers=False,
            pin_memory=pin_memory,
        )
    return DataLoader(
        _NumberedSamples(dataset),
        batch_sampler=_NumberedBatches(batches, first=start // (batch_size * world)),
        num_workers=num_workers,
        collate_fn=ResizingCollate(transform, seed),
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
        pin_memory=pin_memory,
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
        pin_memory: bool = False,
    ) -> None:
        if len(dataset) < world:
            raise ValueError("cannot cycle over a dataset with fewer samples than processes")
        self.dataset, self.batch_size, self.seed, self.num_workers = dataset, batch_size, seed, num_workers
        self.rank, self.world, self.pin_memory = rank, world, pin_memory
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
            pin_memory=self.pin_memory,
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


class WindowStream:
    """An endless, resumable stream of batches of random token windows (sampled with replacement).

    Batch ``n`` is drawn from a generator seeded by ``(seed, n)``: the stream needs no permutation of
    the (possibly billions of) start offsets, and resuming only needs ``n``. Every process draws the same
    global batch of ``batch_size * world`` offsets and takes every ``world``-th one from ``rank``.
    """

    def __init__(self, dataset: TokenWindows, batch_size: int, seed: int, rank: int = 0, world: int = 1,
                 pin_memory: bool = False) -> None:  # fmt: skip
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.rank, self.world, self.pin_memory = rank, world, pin_memory
        self.consumed = 0

    def __next__(self) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.consumed)
        starts = torch.randint(len(self.dataset), (self.batch_size * self.world,), generator=generator)
        self.consumed += 1
        items = [self.dataset[int(i)] for i in starts[self.rank :: self.world]]
        batch = [torch.stack(column) for column in zip(*items, strict=True)]
        if self.pin_memory and torch.cuda.is_available():
            batch = [tensor.pin_memory() for tensor in batch]
        return batch

    def __iter__(self) -> WindowStream:
        return self

    def state_dict(self) -> dict[str, int]:
        """Return the position in the stream."""
        return {"consumed": self.consumed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a position returned by :meth:`state_dict`."""
        self.consumed = int(state["consumed"])


def batch_stream(
    dataset: Dataset, batch_size: int, seed: int, **options: Any
) -> CyclingLoader | WindowStream:
    """Return an endless stream over ``dataset``: random windows of a token corpus, else seeded passes.

    ``options``: those of :class:`CyclingLoader` (a token corpus ignores ``num_workers``).
    """
    if isinstance(dataset, TokenWindows):
        options.pop("num_workers", None)
        return WindowStream(dataset, batch_size, seed, **options)
    return CyclingLoader(dataset, batch_size, seed, **options)


class WeightBatches:
    """The weight steps of each epoch, each a list of ``grad_accum`` micro-batches.

    An epoch is one seeded pass over the data, or, with ``steps_per_epoch`` (always for token corpora),
    that many steps taken from an endless stream whose position is part of the checkpoint.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, *, grad_accum: int = 1,
                 steps_per_epoch: int | None = None, num_workers: int = 0, rank: int = 0,
                 world: int = 1, pin_memory: bool = False) -> None:  # fmt: skip
        self.dataset, self.batch_size, self.seed, self.accum = dataset, batch_size, seed, grad_accum
        self.num_workers, self.rank, self.world, self.pin_memory = num_workers, rank, world, pin_memory
        self.stream: CyclingLoader | WindowStream | None = None
        if steps_per_epoch is not None or isinstance(dataset, TokenWindows):
            # its own seed: the arch split's stream is seeded by the run's seed too
            self.stream = batch_stream(dataset, batch_size, seed + 7_919, num_workers=num_workers, rank=rank,
                                       world=world, pin_memory=pin_memory)  # fmt: skip
            tokens_pass = getattr(dataset, "blocks_per_pass", 0) // (batch_size * world * grad_accum)
            self.steps = steps_per_epoch or max(1, tokens_pass)
        else:
            batches = len(ShardedBatches(range(len(dataset)), batch_size, rank, world))  # type: ignore[arg-type]
            self.steps = -(-batches // grad_accum)

    def epoch(self, epoch: int) -> Iterator[MicroBatches]:
        """Yield the steps of ``epoch`` (counted from 0)."""
        if self.stream is not None:
            for _ in range(self.steps):
                yield MicroBatches(next(self.stream) for _ in range(self.accum))
            return
        loader = epoch_loader(self.dataset, self.batch_size, seed=self.seed * 1_000 + epoch,
                              num_workers=self.num_workers, rank=self.rank, world=self.world,
                              pin_memory=self.pin_memory)  # fmt: skip
        group = MicroBatches()
        for batch in loader:
            group.append(batch)
            if len(group) == self.accum:
                yield group
                group = MicroBatches()
        if group:
            yield group

    def state_dict(self) -> dict[str, int] | None:
        """Return the stream position (None when epochs are seeded passes)."""
        return self.stream.state_dict() if self.stream is not None else None

    def load_state_dict(self, state: dict[str, int] | None) -> None:
        """Continue from :meth:`state_dict`."""
        if self.stream is not None and state:
            self.stream.load_state_dict(state)
