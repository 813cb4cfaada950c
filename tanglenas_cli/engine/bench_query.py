"""``tanglenas bench-query``: an architecture's entry in a tabular benchmark, with its rank."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tanglenas_cli.benchmarks import load_benchmark
from tanglenas_cli.benchmarks.toy_keys import toy_space_of_key
from tanglenas_cli.engine import run_dir as files
from tanglenas_cli.errors import UserError
from tanglenas_cli.spaces import SPACE_REGISTRY
from tanglenas_cli.spaces.base import NO_DATA


def benchmark_key_of(target: Path | str, space: str | None = None) -> tuple[str | None, str]:
    """Return (space, benchmark key) for a run directory, an arch.yaml, or a key string."""
    if isinstance(target, Path):
        arch_file = target / files.ARCH if target.is_dir() else target
        stored = files.read_arch(arch_file)
        name = stored["space"]
        if name not in SPACE_REGISTRY:
            raise UserError(f"{arch_file}: unknown space {name!r}")
        key = SPACE_REGISTRY[name](NO_DATA, stored.get("space_options") or {}).benchmark_key(
            stored["architecture"]
        )
        if key is None:
            raise UserError(f"space {name!r} has no tabular benchmark")
        return name, key
    return space or toy_space_of_key(target), target.strip()


def run_bench_query(
    target: Path | str, benchmark: Path, space: str | None = None, dataset: str | None = None
) -> dict[str, Any]:
    """Return the benchmark's metrics of ``target`` plus its rank and percentile by test accuracy."""
    name, key = benchmark_key_of(target, space)
    table = load_benchmark(benchmark)
    if name is not None and table.name in SPACE_REGISTRY and table.name != name:
        raise UserError(f"{benchmark} is the benchmark of space {table.name!r}, not {name!r}")
    entry = table.query(key)
    result: dict[str, Any] = {"benchmark": str(benchmark), "space": table.name, "key": key}
    result.update(entry)
    if "test_acc" in entry:
        rank, total, percentile = table.rank(key, "test_acc")
        _, best = table.best("test_acc")
        result.update(
            rank=f"{rank} / {total}",
            percentile=round(percentile, 2),
            best_test_acc=best["test_acc"],
        )
    return result
