"""Names, key shapes and table columns of NAS-Bench-201 (NATS-Bench topology, `tss`) and NATS size (`sss`).

NB201 keys are the official architecture strings `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`: node 1 has one
incoming edge (from node 0), node 2 two (from nodes 0 and 1), node 3 three; 6 edges, 5 operations,
5**6 = 15,625 cells.
NATS size keys are five channel counts `c1:c2:c3:c4:c5`, each one of 8, 16, ..., 64 (8**5 = 32,768 networks).
"""

from __future__ import annotations

import re

from tanglenas_cli.errors import UserError

# The names of the two benchmarks (the `name` of their loaded tables).
NB201_BENCHMARK = "NAS-Bench-201"
NATS_SSS_BENCHMARK = "NATS-Bench size"
NB201_BENCHMARKS: tuple[str, ...] = (NB201_BENCHMARK, NATS_SSS_BENCHMARK)

# The operation names of the topology space, in the official order.
NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_NODES = 4
NB201_EXAMPLE_KEY = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)

# The channel counts of the size space: 5 layers, each one of these.
NATS_SSS_CHANNELS: tuple[int, ...] = (8, 16, 24, 32, 40, 48, 56, 64)
NATS_SSS_LAYERS = 5
NATS_SSS_EXAMPLE_KEY = "8:16:32:64:64"

# Datasets of the compact table (tanglenas dataset names) and their splits, in column order.
NB201_DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "imagenet16-120")
NB201_SPLITS: tuple[str, ...] = ("train", "valid", "test")
NB201_COLUMNS: tuple[str, ...] = tuple(
    f"{dataset}_{split}" for dataset in NB201_DATASETS for split in NB201_SPLITS
)
KEY_COLUMN = "arch"

# Prepared table file of each benchmark under `data_root/benchmarks/`.
NB201_TABLE_FILES: dict[str, str] = {NB201_BENCHMARK: "nb201.csv", NATS_SSS_BENCHMARK: "nats_sss.csv"}

_NB201_EXPECTED = (
    f"expected the NB201 form |op~0|+|op~0|op~1|+|op~0|op~1|op~2| with each op one of {', '.join(NB201_OPS)}"
)
_SSS_EXPECTED = (
    f"expected the NATS size form c1:c2:c3:c4:c5 ({NATS_SSS_LAYERS} channel counts, each one of "
    f"{', '.join(map(str, NATS_SSS_CHANNELS))}), e.g. {NATS_SSS_EXAMPLE_KEY}"
)
_SSS_PATTERN = re.compile(r"^\s*\d+(\s*:\s*\d+)+\s*$")


def column_name(dataset: str, split: str) -> str:
    """Return the table column of `dataset`'s `split` accuracy, e.g. 'cifar10_test'."""
    return f"{dataset}_{split}"


def nb201_key_problem(key: str) -> str | None:
    """Return why `key` is not a well-formed NB201 architecture string, or None when it is one."""
    text = key.strip()
    nodes = text.split("+")
    if len(nodes) != NB201_NODES - 1:
        return f"it has {len(nodes)} node group(s) separated by '+', not {NB201_NODES - 1}"
    for node, group in enumerate(nodes, start=1):
        if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
            return f"node group {node} ({group!r}) must start and end with '|'"
        edges = group[1:-1].split("|")
        if len(edges) != node:
            return f"node group {node} ({group!r}) has {len(edges)} edge(s), expected {node}"
        for source, edge in enumerate(edges):
            op, separator, index = edge.partition("~")
            if not separator or op not in NB201_OPS:
                return f"edge {edge!r} is not op~input with op one of {', '.join(NB201_OPS)}"
            if index != str(source):
                return f"edge {edge!r} of node group {node} must read from node {source} (~{source})"
    return None


def nats_sss_key_problem(key: str) -> str | None:
    """Return why `key` is not a well-formed NATS size string, or None when it is one."""
    parts = key.strip().split(":")
    if len(parts) != NATS_SSS_LAYERS:
        return f"it has {len(parts)} channel count(s), not {NATS_SSS_LAYERS}"
    for part in parts:
        if not part.isdigit() or int(part) not in NATS_SSS_CHANNELS or part != str(int(part)):
            return f"channel count {part!r} is not one of {', '.join(map(str, NATS_SSS_CHANNELS))}"
    return None


def check_key(benchmark: str, key: str) -> str:
    """Validate `key` as an architecture string of `benchmark` (NB201 or NATS size); return it stripped."""
    sss = benchmark == NATS_SSS_BENCHMARK
    problem = (nats_sss_key_problem if sss else nb201_key_problem)(key)
    if problem is not None:
        what, expected = ("NATS size", _SSS_EXPECTED) if sss else ("NB201", _NB201_EXPECTED)
        raise UserError(f"malformed {what} architecture string {_quoted(key)}: {problem}; {expected}")
    return key.strip()


def nb201_benchmark_of_key(key: str) -> str | None:
    """Return the benchmark (NB201 or NATS size) whose strings `key` looks like (may not be), else None."""
    text = key.strip()
    if text.startswith("|"):
        return NB201_BENCHMARK
    if _SSS_PATTERN.match(text):
        return NATS_SSS_BENCHMARK
    return None


def _quoted(key: str, limit: int = 200) -> str:
    """Return `key` quoted and cut so the error message stays readable."""
    text = repr(key)
    return text if len(text) <= limit else text[: limit - 3] + "..."
