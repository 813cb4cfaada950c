"""Where a run's time goes: seconds summed per named part (data, arch steps, weight steps, ...).

On a GPU, work is queued and the host waits only where it reads a result, so each part's seconds are
the host's time in it: the total is exact, the split between parts only as exact as those waits.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

Item = TypeVar("Item")


class StopWatch:
    """Seconds summed per part; :meth:`part` times a block, :meth:`items` the fetching of each item."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def add(self, part: str, seconds: float) -> None:
        """Add ``seconds`` to ``part``."""
        self.totals[part] = self.totals.get(part, 0.0) + seconds

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        """Time the block as part ``name``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def items(self, iterable: Iterable[Item], name: str) -> Iterator[Item]:
        """Yield the items of ``iterable``, timing each fetch (e.g. loading a batch) as part ``name``."""
        iterator = iter(iterable)
        while True:
            started = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                self.add(name, time.perf_counter() - started)
                return
            self.add(name, time.perf_counter() - started)
            yield item

    def since(self, earlier: dict[str, float]) -> dict[str, float]:
        """Return the seconds added to each part since the snapshot ``earlier`` (a copy of ``totals``)."""
        return {name: total - earlier.get(name, 0.0) for name, total in self.totals.items()}
