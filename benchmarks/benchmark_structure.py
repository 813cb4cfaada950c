"""How much of a tabular benchmark's ranking can a one-shot search see at all?

A supernet scores an architecture roughly as the sum of what its choices contribute. This script
fits exactly that model to the benchmark itself, by least squares on one-hot indicators of the
operation on every edge, and reports how much of the benchmark it explains (R^2), the benchmark
accuracy and percentile of the architecture the *fitted* model ranks first (the best an additive
scorer with perfect knowledge of the table could pick), and its Kendall tau with the table over all
architectures and over the better half only. The largest main effects say which choices matter.

Writes benchmarks/results/benchmark_structure.md (and .json).
Usage: python benchmarks/benchmark_structure.py [--data-root DIR]   (default: $TANGLENAS_DATA_ROOT)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau

ROOT = Path(__file__).resolve().parents[1]
# benchmark file under DATA_ROOT/benchmarks -> the column that is ranked
BENCHMARKS = {
    "toy_cell": ("entangled_cell_ss_benchmark.pkl", "test_acc"),
    "toy_conv_macro": ("conv_macro_bench.pkl", "test_acc"),
    "nb201": ("nb201.csv", "cifar10_test"),
}
# an operation with its input node: "('sep_conv_3x3', 0)" (DARTS genotypes) or "nor_conv_3x3~0" (NB201)
_GENOTYPE_OP = re.compile(r"\('(\w+)', \d+\)")
_NB201_OP = re.compile(r"(\w+)~\d+")


def edge_choices(key: str) -> list[str]:
    """The choice on every edge of an architecture key, in the key's order."""
    for pattern in (_GENOTYPE_OP, _NB201_OP):
        found = pattern.findall(key)
        if found:
            return found
    return re.findall(r"-?\d+", key)  # numeric keys such as conv_macro's [[...], ...]


def additive_fit(keys: Sequence[str], values: Sequence[float]) -> dict[str, Any]:
    """Least-squares fit of ``values`` on one-hot edge choices, and how well it ranks the table."""
    choices = [edge_choices(key) for key in keys]
    edges = len(choices[0])
    if any(len(c) != edges for c in choices):
        raise ValueError("architecture keys have different numbers of edges")
    vocabulary = [sorted({c[edge] for c in choices}) for edge in range(edges)]
    columns = [(edge, option) for edge in range(edges) for option in vocabulary[edge][1:]]
    design = np.array([[1.0] + [float(c[e] == o) for e, o in columns] for c in choices])
    y = np.asarray(values, dtype=float)
    coefficients, *_ = np.linalg.lstsq(design, y, rcond=None)
    predicted = design @ coefficients
    residual = float(((y - predicted) ** 2).sum())
    total = float(((y - y.mean()) ** 2).sum())
    pick = int(np.argmax(predicted))
    better_half = y >= np.median(y)
    effects = sorted(
        ({"edge": e, "choice": o, "effect": round(float(b), 3), "versus": vocabulary[e][0]}
         for (e, o), b in zip(columns, coefficients[1:], strict=True)),
        key=lambda item: abs(item["effect"]), reverse=True,
    )  # fmt: skip
    return {
        "architectures": len(y),
        "mean": round(float(y.mean()), 3),
        "std": round(float(y.std()), 3),
        "percentiles": {str(p): round(float(np.percentile(y, p)), 3) for p in (5, 25, 50, 75, 90, 99)},
        "best": round(float(y.max()), 3),
        "r2_additive": round(1 - residual / total, 3) if total > 0 else None,
        "additive_pick": {
            "value": round(float(y[pick]), 3),
            "percentile": round(float((y < y[pick]).mean() * 100), 2),
            "key": keys[pick],
        },
        "kendall_tau_all": round(float(kendalltau(predicted, y)[0]), 3),
        "kendall_tau_better_half": round(float(kendalltau(predicted[better_half], y[better_half])[0]), 3),
        "largest_effects": effects[:6],
    }


def analyse(path: Path, metric: str) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from tanglenas_cli.benchmarks import load_benchmark

    table = load_benchmark(path)
    pairs = [(k, row[metric]) for k, row in table.entries.items() if isinstance(row.get(metric), float)]
    pairs = [(k, v) for k, v in pairs if not np.isnan(v)]
    return additive_fit([k for k, _ in pairs], [v for _, v in pairs])


def markdown(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| space | archs | mean | std | median | p90 | best | additive R^2 | additive pick (percentile)"
        " | tau all | tau better half |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for space, r in results.items():
        p = r["percentiles"]
        lines.append(
            f"| {space} | {r['architectures']} | {r['mean']:.2f} | {r['std']:.2f} | {p['50']:.2f}"
            f" | {p['90']:.2f}"
            f" | {r['best']:.2f} | {r['r2_additive']:.3f} | {r['additive_pick']['value']:.2f}"
            f" ({r['additive_pick']['percentile']:.1f}) | {r['kendall_tau_all']:.3f}"
            f" | {r['kendall_tau_better_half']:.3f} |"
        )
    lines.append("")
    for space, r in results.items():
        effects = ", ".join(
            f"edge {e['edge']} {e['choice']} {e['effect']:+.2f} (vs {e['versus']})"
            for e in r["largest_effects"][:4]
        )
        lines.append(f"- {space}: largest main effects: {effects}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    root = (
        args.data_root or Path(os.environ.get("TANGLENAS_DATA_ROOT", "~/.cache/tanglenas/data"))
    ).expanduser()
    sys.path.insert(0, str(ROOT))
    from tanglenas_cli.errors import UserError

    results = {}
    for space, (name, metric) in BENCHMARKS.items():
        path = root / "benchmarks" / name
        if path.is_file():
            try:
                results[space] = analyse(path, metric)
            except UserError as error:  # unreadable file; the message names it
                print(f"error: {error}", file=sys.stderr)
                return 2
            except ValueError as error:  # architecture keys of mixed shapes
                print(f"error: {path}: {error}", file=sys.stderr)
                return 2
    if not results:
        where = root / "benchmarks"
        print(f"error: no benchmark under {where}: run tanglenas prepare-data toy-benchmarks|nb201-bench",
              file=sys.stderr)  # fmt: skip
        return 2
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "benchmark_structure.json").write_text(json.dumps(results, indent=1) + "\n")
    text = markdown(results)
    (args.results / "benchmark_structure.md").write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
