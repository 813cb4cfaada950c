"""How well does a latency table predict whole-network latency? `tanglenas latency-table`, repeated.

For every space and batch size, builds the table ``--repeats`` times (each build times every unit and 30
random whole networks anew) and records the Spearman rank correlation between the table's sums and the
measured whole networks, their mean relative error, and for the toy cell the Spearman correlation with the
benchmark's recorded ``latency_cpu_mean``. The machine is noisy: the table shows min / median / max.

Writes (into --results, default benchmarks/results/): latency_check.csv (one row per build, appended:
a rerun skips the builds already there), latency_check.md (the table); --readme copies the table into
README.md between the `latency-check` markers.

Usage: python benchmarks/latency_check.py [--spaces toy_cell nb201] [--batch-sizes 1 16] [--repeats 3]
       [--data-root DIR] [--readme]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from readme_block import fill_block  # noqa: E402

# the benchmark's network of each space: its options and one input's shape
NETWORKS = {
    "toy_cell": (["space_options.C=32"], "1,28,28", "entangled_cell_ss_benchmark.pkl"),
    "nb201": (["space_options.C=16", "space_options.N=5"], "3,32,32", None),
}
FIELDS = ("space", "batch_size", "repeat", "threads", "whole_networks_spearman",
          "whole_networks_mean_relative_error", "benchmark_spearman", "command")  # fmt: skip


def build(space: str, batch_size: int, data_root: Path | None) -> tuple[dict, str]:
    """Build one table in a temporary folder; return its check numbers and the command line."""
    sets, shape, benchmark = NETWORKS[space]
    arguments = ["latency-table", "--space", space, "--device", "cpu", "--batch-size", str(batch_size),
                 "--input-shape", shape, *(x for s in sets for x in ("--set", s))]  # fmt: skip
    if benchmark is not None and data_root is not None and (data_root / "benchmarks" / benchmark).is_file():
        arguments += ["--benchmark", str(data_root / "benchmarks" / benchmark)]
    with tempfile.TemporaryDirectory() as folder:
        table = Path(folder) / "table.json"
        command = [sys.executable, "-m", "tanglenas_cli", *arguments, "--json", "--out", str(table)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"tanglenas {' '.join(arguments)} failed: {done.stderr.strip()[-500:]}", file=sys.stderr)
            raise SystemExit(2)
        threads = json.loads(table.read_text()).get("threads", "")
    shown = (
        " ".join(arguments).replace(str(data_root), "$TANGLENAS_DATA_ROOT")
        if data_root
        else " ".join(arguments)
    )
    return {**json.loads(done.stdout), "threads": threads}, f"tanglenas {shown}"


def spread(values: list[float]) -> str:
    """min / median / max of ``values`` ('-' when there are none)."""
    if not values:
        return "-"
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def markdown(rows: list[dict[str, str]]) -> str:
    """The table: per space and batch size, min / median / max over the builds."""
    groups: dict[tuple[str, str], list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault((row["space"], row["batch_size"]), []).append(row)
    lines = ["| space | batch | builds | Spearman vs 30 whole networks | mean relative error | Spearman vs "
             "benchmark latency_cpu_mean |", "|---|---|---|---|---|---|"]  # fmt: skip
    for (space, batch), members in groups.items():
        numbers = {key: [float(r[key]) for r in members if r[key]] for key in FIELDS[4:7]}
        lines.append(f"| {space} | {batch} | {len(members)} | {spread(numbers['whole_networks_spearman'])} | "
                     f"{spread(numbers['whole_networks_mean_relative_error'])} | "
                     f"{spread(numbers['benchmark_spearman'])} |")  # fmt: skip
    commands = {f"- `{row['command']}`" for row in rows}
    threads = sorted({row["threads"] for row in rows})
    return ("\n".join(lines) + f"\n\nmin / median / max over the builds, {', '.join(threads)} CPU threads; "
            "each build runs\n\n" + "\n".join(sorted(commands)) + "\n")  # fmt: skip


def positive(text: str) -> int:
    """An argparse type: an integer >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spaces", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--batch-sizes", nargs="+", type=positive, default=[1, 16])
    parser.add_argument("--repeats", type=positive, default=3)
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--data-root",
        type=Path,
        default=os.environ.get("TANGLENAS_DATA_ROOT"),
        help="Where prepare-data put the toy benchmarks. Default: $TANGLENAS_DATA_ROOT.",
    )
    parser.add_argument("--readme", action="store_true", help="Copy the table into README.md.")
    args = parser.parse_args(argv)
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / "latency_check.csv"
    rows = list(csv.DictReader(path.open())) if path.is_file() else []
    done = {(r["space"], r["batch_size"], r["repeat"]) for r in rows}
    for space in args.spaces:
        for batch_size in args.batch_sizes:
            for repeat in range(args.repeats):
                if (space, str(batch_size), str(repeat)) in done:
                    continue
                result, command = build(space, batch_size, args.data_root)
                row = {"space": space, "batch_size": batch_size, "repeat": repeat,
                       "threads": result.get("threads", ""), "command": command,
                       **{key: result.get(key, "") for key in FIELDS[4:7]}}  # fmt: skip
                new = not path.is_file()
                with path.open("a", newline="") as handle:
                    writer = csv.DictWriter(handle, FIELDS)
                    if new:
                        writer.writeheader()
                    writer.writerow(row)
                rows.append({key: str(value) for key, value in row.items()})
                rho, bench = row["whole_networks_spearman"], row["benchmark_spearman"] or "-"
                print(f"{space} batch {batch_size} #{repeat}: whole-network rho {rho}, benchmark rho {bench}")
    text = markdown(rows)
    (args.results / "latency_check.md").write_text(text)
    if args.readme:
        fill_block(ROOT / "README.md", "latency-check", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
