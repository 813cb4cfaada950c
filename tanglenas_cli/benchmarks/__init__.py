"""Tabular NAS benchmarks: safe loading and look-ups (toy benchmarks, NAS-Bench-201 and NATS-Bench)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tanglenas_cli.errors import UserError

from .nb201 import NB201Benchmark, load_nb201_benchmark
from .nb201_keys import NB201_BENCHMARKS, NB201_TABLE_FILES, check_key, nb201_benchmark_of_key
from .tabular import TabularBenchmark
from .toy import load_toy_benchmark
from .toy_keys import KNOWN_TOY_BENCHMARKS, toy_benchmark_of_key

__all__ = [
    "BENCHMARK_LOADERS",
    "KNOWN_TOY_BENCHMARKS",
    "NB201_TABLE_FILES",
    "NB201Benchmark",
    "TabularBenchmark",
    "benchmark_of_key",
    "check_benchmark_key",
    "default_benchmark_path",
    "load_benchmark",
    "supported_formats",
]

# File suffix -> (loader, description for error messages). A new format is one more entry here.
BENCHMARK_LOADERS: dict[str, tuple[Callable[[Path], TabularBenchmark], str]] = {
    ".pkl": (load_toy_benchmark, "toy benchmarks (" + ", ".join(KNOWN_TOY_BENCHMARKS.values()) + ")"),
    ".csv": (load_nb201_benchmark, "NB201 / NATS size tables, or the NATS-Bench 200-epoch CSV"),
    ".parquet": (load_nb201_benchmark, "the same tables as parquet"),
    ".pth": (
        load_nb201_benchmark,
        "the official NAS-Bench-201 file (needs nas-bench-201; runs pickled code)",
    ),
}
# A folder is read as a NATS-Bench `simple` benchmark (needs nats_bench; runs pickled code).
FOLDER_FORMAT = "a NATS-Bench tss/sss 'simple' folder"


def supported_formats() -> str:
    """Return the list of benchmark formats for error messages."""
    listed = "; ".join(f"{suffix} {about}" for suffix, (_, about) in BENCHMARK_LOADERS.items())
    return f"{listed}; {FOLDER_FORMAT}"


def load_benchmark(path: Path) -> TabularBenchmark:
    """Load the tabular benchmark in `path`, choosing the loader by the file's suffix (a folder: NATS-Bench).

    `.pth` files and NATS-Bench folders are Python pickles that can run code when loaded: pass only files you
    trust (they are loaded because the user named them).
    """
    path = Path(path)
    if path.is_dir():
        return load_nb201_benchmark(path)
    entry = BENCHMARK_LOADERS.get(path.suffix.lower())
    if entry is None:
        raise UserError(f"unsupported benchmark file {path} (supported formats: {supported_formats()})")
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise UserError(f"benchmark file {path} {what}")
    loader, _ = entry
    return loader(path)


def default_benchmark_path(benchmark: str, data_root: Path) -> Path | None:
    """Return the prepared file of `benchmark` (a table's name) under `data_root/benchmarks/`, else None."""
    file_name = KNOWN_TOY_BENCHMARKS.get(benchmark) or NB201_TABLE_FILES.get(benchmark)
    if file_name is None:
        return None
    candidate = Path(data_root) / "benchmarks" / file_name
    return candidate if candidate.is_file() else None


def benchmark_of_key(key: str) -> str | None:
    """Return the benchmark whose keys look like `key` (toy genotype or list, NB201 or NATS size string)."""
    return toy_benchmark_of_key(key) or nb201_benchmark_of_key(key)


def check_benchmark_key(benchmark: str | None, key: str) -> str:
    """Return `key` stripped; UserError when it is malformed for `benchmark` (NB201, NATS size check it)."""
    return check_key(benchmark, key) if benchmark in NB201_BENCHMARKS else key.strip()
