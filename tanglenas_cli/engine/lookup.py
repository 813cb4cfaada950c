"""Benchmark look-ups during a search: the configured file, or the prepared default of the space."""

from __future__ import annotations

from typing import Any

from tanglenas_cli.benchmarks import (
    KNOWN_TOY_BENCHMARKS,
    TabularBenchmark,
    default_benchmark_path,
    load_benchmark,
)
from tanglenas_cli.config import RunConfig, resolve_data_root
from tanglenas_cli.errors import UserError
from tanglenas_cli.spaces.base import SearchSpace


class BenchmarkLookup:
    """Queries one tabular benchmark by architecture key; unknown keys give None instead of failing."""

    def __init__(self, benchmark: TabularBenchmark) -> None:
        self.benchmark = benchmark

    @classmethod
    def for_config(cls, cfg: RunConfig, space: SearchSpace) -> BenchmarkLookup | None:
        """Return a lookup for ``cfg.benchmark`` (or the space's prepared default), or None."""
        path = cfg.benchmark or default_benchmark_path(cfg.space, resolve_data_root(cfg))
        if path is None:
            return None
        benchmark = load_benchmark(path)
        if benchmark.name in KNOWN_TOY_BENCHMARKS and benchmark.name != space.name:
            raise UserError(f"benchmark {path} is for space {benchmark.name!r}, not {space.name!r}")
        return cls(benchmark)

    def query(self, key: str | None) -> dict[str, Any] | None:
        """Return the benchmark entry of ``key`` with its rank among all entries, or None."""
        if key is None or key not in self.benchmark:
            return None
        entry = dict(self.benchmark.query(key))
        if "test_acc" in entry:
            rank, total, percentile = self.benchmark.rank(key, "test_acc")
            entry.update(rank=rank, total=total, percentile=round(percentile, 2))
        return entry
