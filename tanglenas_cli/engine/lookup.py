"""Benchmark look-up, one service for ``search``, ``bench-query`` and ``correlate``: which space a table
belongs to, loading it for a space, and querying it by architecture key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tanglenas_cli.benchmarks import (
    NB201Benchmark,
    TabularBenchmark,
    benchmark_of_key,
    default_benchmark_path,
    load_benchmark,
)
from tanglenas_cli.config import RunConfig, resolve_data_root
from tanglenas_cli.errors import UserError
from tanglenas_cli.spaces import list_spaces, space_class
from tanglenas_cli.spaces.base import SearchSpace


def benchmark_spaces() -> list[str]:
    """Return the spaces that have a tabular benchmark."""
    return [name for name in list_spaces() if space_class(name).benchmark is not None]


def space_of_table(table: TabularBenchmark) -> str | None:
    """Return the space whose benchmark ``table`` is (by its name), or None for a table of no known space."""
    return next((name for name in benchmark_spaces() if space_class(name).benchmark == table.name), None)


def guess_space_of_key(key: str) -> str | None:
    """Return the space whose benchmark keys look like ``key``, else None."""
    benchmark = benchmark_of_key(key)
    return next((name for name in benchmark_spaces() if space_class(name).benchmark == benchmark), None)


def load_space_benchmark(path: Path, space: str | None) -> TabularBenchmark:
    """Load the benchmark in ``path``; UserError when it is the benchmark of a space other than ``space``."""
    table = load_benchmark(path)
    owner = space_of_table(table)
    if space is not None and owner is not None and owner != space:
        raise UserError(f"{path} is the benchmark of space {owner!r}, not {space!r}")
    return table


class BenchmarkLookup:
    """Queries one tabular benchmark by architecture key; unknown keys give None instead of failing.

    For NB201 / NATS size tables, ``dataset`` picks the columns reported as ``test_acc`` / ``train_acc`` and
    ranked (the run's dataset when the table has it, else cifar10); every other column is reported as well.
    """

    def __init__(self, benchmark: TabularBenchmark, dataset: str | None = None) -> None:
        self.benchmark = benchmark
        self.dataset = dataset

    @classmethod
    def for_config(cls, cfg: RunConfig, space: SearchSpace) -> BenchmarkLookup | None:
        """Return a lookup for ``cfg.benchmark`` (or the space's prepared default), or None."""
        path = cfg.benchmark
        if path is None and space.benchmark is not None:
            path = default_benchmark_path(space.benchmark, resolve_data_root(cfg))
        if path is None:
            return None
        benchmark = load_space_benchmark(path, space.name)
        dataset = None
        if isinstance(benchmark, NB201Benchmark):
            dataset = benchmark.headline_dataset(None, run_dataset=cfg.dataset)
        return cls(benchmark, dataset)

    def query(self, key: str | None) -> dict[str, Any] | None:
        """Return the benchmark entry of ``key`` with its rank among all entries, or None."""
        if key is None or key not in self.benchmark:
            return None
        entry = dict(self.benchmark.query(key))
        metric = "test_acc"
        if isinstance(self.benchmark, NB201Benchmark) and self.dataset is not None:
            metric = f"{self.dataset}_test"
            for split in ("train", "test"):
                if f"{self.dataset}_{split}" in entry:
                    entry[f"{split}_acc"] = entry[f"{self.dataset}_{split}"]
        if metric in entry:
            rank, total, percentile = self.benchmark.rank(key, metric)
            entry.update(rank=rank, total=total, percentile=round(percentile, 2))
        return entry
