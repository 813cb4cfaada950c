"""Tabular NAS benchmarks: safe loading and look-ups (toy benchmarks now; NB201 / NATS later)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tanglenas_cli.errors import UserError

from .tabular import TabularBenchmark
from .toy import load_toy_benchmark
from .toy_keys import KNOWN_TOY_BENCHMARKS

__all__ = [
    "BENCHMARK_LOADERS",
    "KNOWN_TOY_BENCHMARKS",
    "TabularBenchmark",
    "default_benchmark_path",
    "load_benchmark",
]

# File suffix -> (loader, description for error messages). A new format is one more entry here.
BENCHMARK_LOADERS: dict[str, tuple[Callable[[Path], TabularBenchmark], str]] = {
    ".pkl": (load_toy_benchmark, "toy benchmarks (" + ", ".join(KNOWN_TOY_BENCHMARKS.values()) + ")"),
}


def load_benchmark(path: Path) -> TabularBenchmark:
    """Load the tabular benchmark in `path`, choosing the loader by the file's suffix."""
    path = Path(path)
    entry = BENCHMARK_LOADERS.get(path.suffix.lower())
    if entry is None:
        supported = "; ".join(f"{suffix} {about}" for suffix, (_, about) in BENCHMARK_LOADERS.items())
        raise UserError(f"unsupported benchmark file {path} (supported formats: {supported})")
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise UserError(f"benchmark file {path} {what}")
    loader, _ = entry
    return loader(path)


def default_benchmark_path(space: str, data_root: Path) -> Path | None:
    """Return the prepared benchmark file of `space` under `data_root/benchmarks/`, else None."""
    file_name = KNOWN_TOY_BENCHMARKS.get(space)
    if file_name is None:
        return None
    candidate = Path(data_root) / "benchmarks" / file_name
    return candidate if candidate.is_file() else None
