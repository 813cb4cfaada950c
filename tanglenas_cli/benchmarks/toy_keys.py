"""Names, files and key shapes of the two TangleNAS toy benchmarks."""

from __future__ import annotations

# Search space name -> benchmark file name (as in the original repository's `toy_benchmarks/` folder).
KNOWN_TOY_BENCHMARKS: dict[str, str] = {
    "toy_cell": "entangled_cell_ss_benchmark.pkl",
    "toy_conv_macro": "conv_macro_bench.pkl",
}

# Number of architectures in each complete toy benchmark file.
TOY_BENCHMARK_SIZES: dict[str, int] = {
    "entangled_cell_ss_benchmark.pkl": 4096,
    "conv_macro_bench.pkl": 6561,
}


def toy_space_of_key(key: str) -> str | None:
    """Return the toy space whose benchmark keys look like `key` ('toy_cell', 'toy_conv_macro'), else None."""
    text = key.strip()
    if text.startswith("Genotype("):
        return "toy_cell"
    if text.startswith("[[") and text.endswith("]]"):
        return "toy_conv_macro"
    return None


def toy_space_of_file(file_name: str) -> str | None:
    """Return the toy space whose benchmark file is named `file_name`, else None."""
    for space, known_name in KNOWN_TOY_BENCHMARKS.items():
        if known_name == file_name:
            return space
    return None
