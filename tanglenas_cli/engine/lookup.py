"""Benchmark look-ups during a search: the configured file, or the prepared default of the space."""

from __future__ import annotations

from typing import Any

from tanglenas_cli.benchmarks import (
    NB201Benchmark,
    TabularBenchmark,
    default_benchmark_path,
    load_benchmark,
)
from tanglenas_cli.config import RunConfig, resolve_data_root
from tanglenas_cli.errors import UserError
from tanglenas_cli.names import SPACES
from tanglenas_cli.spaces.base import SearchSpace


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
        path = cfg.benchmark or default_benchmark_path(cfg.space, resolve_data_root(cfg))
        if path is None:
            return None
        benchmark = load_benchmark(path)
        if benchmark.name in SPACES and benchmark.name != space.name:
            raise UserError(f"benchmark {path} is for space {benchmark.name!r}, not {space.name!r}")
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
