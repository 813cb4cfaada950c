"""Names, files and key shapes of the two TangleNAS toy benchmarks."""

from __future__ import annotations

TOY_CELL_BENCHMARK = "toy cell"
TOY_CONV_MACRO_BENCHMARK = "toy conv-macro"
# Benchmark name -> file name (as in the original repository's `toy_benchmarks/` folder).
KNOWN_TOY_BENCHMARKS: dict[str, str] = {
    TOY_CELL_BENCHMARK: "entangled_cell_ss_benchmark.pkl",
    TOY_CONV_MACRO_BENCHMARK: "conv_macro_bench.pkl",
}

# Number of architectures in each complete toy benchmark file.
TOY_BENCHMARK_SIZES: dict[str, int] = {
    "entangled_cell_ss_benchmark.pkl": 4096,
    "conv_macro_bench.pkl": 6561,
}


def toy_benchmark_of_key(key: str) -> str | None:
    """Return the toy benchmark whose keys look like `key` (a cell genotype, a conv-macro list), else None."""
    text = key.strip()
    if text.startswith("Genotype("):
        return TOY_CELL_BENCHMARK
    if text.startswith("[[") and text.endswith("]]"):
        return TOY_CONV_MACRO_BENCHMARK
    return None


def toy_benchmark_of_file(file_name: str) -> str | None:
    """Return the toy benchmark whose file is named `file_name`, else None."""
    for benchmark, known_name in KNOWN_TOY_BENCHMARKS.items():
        if known_name == file_name:
            return benchmark
    return None
