"""Loader for the TangleNAS toy benchmark pickles (toy cell and conv-macro spaces)."""

from __future__ import annotations

from pathlib import Path

from tanglenas_cli.errors import UserError

from .safe_pickle import load_pickle
from .tabular import TabularBenchmark
from .toy_keys import toy_benchmark_of_file


def load_toy_benchmark(path: Path) -> TabularBenchmark:
    """Load a toy benchmark pickle (a dict of architecture key -> dict of metrics) safely."""
    path = Path(path)
    data = load_pickle(path)
    if not isinstance(data, dict):
        raise UserError(
            f"{path} is not a toy benchmark: expected a dict of architecture key -> metrics, "
            f"got {type(data).__name__}"
        )
    if not data:
        raise UserError(f"{path} is not a toy benchmark: it holds no architectures")
    for key, row in data.items():
        if not isinstance(key, str):
            raise UserError(
                f"{path} is not a toy benchmark: key {key!r} is a {type(key).__name__}, expected a str"
            )
        if not isinstance(row, dict):
            raise UserError(
                f"{path} is not a toy benchmark: the value of {key[:200]!r} is a {type(row).__name__}, "
                "expected a dict of metrics"
            )
    name = toy_benchmark_of_file(path.name) or path.stem
    return TabularBenchmark(name, path, data)
