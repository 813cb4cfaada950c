"""Cost-aware search: does a parameter budget inside DrNAS-WE give good architectures within budget?

For the toy cell (Fashion-MNIST) and NB201 (CIFAR-10 as a JPEG folder), the parameter count of every
architecture of the space is computed with the project's cost model (the benchmark's network: toy cell
C=32, NB201 C=16 and N=5). The budgets are the 25th, 50th and 75th percentiles of those counts. Each
budget is searched with DrNAS-WE, 2 seeds, at the reduced protocol of ``benchmarks/search_quality.py``
(its commands, plus ``cost.metric=params``, ``cost.target`` and ``cost.space_options`` = the benchmark
network's options, so the proxy supernet is searched under the budget of the network that is trained),
and the architecture is taken with ``tanglenas derive RUN --within-budget``.

Reports per run: the derived architecture's parameters and whether they are within the budget (target:
within 5%), its benchmark test accuracy, its percentile among the architectures that meet the budget
(100: the best of them), and the same for the search's plain final argmax.

Writes (into --results, default benchmarks/results/):
  cost_aware.csv  one row per finished run (the cache: a rerun skips finished rows; an interrupted search
                  resumes from its checkpoint)
  cost_aware.md   the table (mean +- std over seeds per budget) and the commands; copied into README.md
                  between the `cost-aware` markers with --readme
  cost_aware.png  accuracy against parameters: every architecture grey, the found ones coloured per budget

Usage: python benchmarks/cost_aware.py [--spaces toy_cell nb201] [--seeds 0 1] [--temperature T]
       [--estimate mean|argmax] [--weight W] [--dry-run] [--readme]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import statistics
import sys
import time
from bisect import bisect_right
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import search_quality as quality  # noqa: E402  (the reduced protocol and its command line)
from readme_block import fill_block  # noqa: E402

from tanglenas_cli.config import CostConfig  # noqa: E402

PERCENTILES = (25, 50, 75)
# the network the benchmark trained: its space options and data shape
BENCHMARK_NETWORKS = {
    "toy_cell": ({"C": 32}, (10, (1, 28, 28))),
    "nb201": ({"C": 16, "N": 5}, (10, (3, 32, 32))),
}
DEFAULTS = {name: field.default for name, field in CostConfig.model_fields.items()}  # cost.* defaults
TOLERANCE = 0.05  # "within budget" allows 5% above the target
CSV_FIELDS = (
    "space", "percentile_budget", "target", "temperature", "estimate", "weight", "seed", "params", "within",
    "test_acc", "feasible_percentile",
    "feasible_best", "final_params", "final_within", "final_test_acc", "derived_epoch", "search_seconds",
    "benchmark_key", "command",
)  # fmt: skip


def uniform_mixture_params(space_name: str) -> float:
    """The expected parameter count of the benchmark network's supernet at uniform mixing weights."""
    import torch

    from tanglenas_cli.engine.cost import choice_candidates, cost_model
    from tanglenas_cli.spaces import create_space
    from tanglenas_cli.spaces.base import DataShape

    options, (classes, shape) = BENCHMARK_NETWORKS[space_name]
    space = create_space(space_name, DataShape(classes, shape), options)
    candidates = choice_candidates(space)
    uniform = {name: torch.full((len(v),), 1 / len(v), dtype=torch.float64) for name, v in candidates.items()}
    return float(cost_model(space, "params", candidates).expected(uniform))


def space_table(space_name: str, benchmark: Path, metric: str) -> list[tuple[float, float, str]]:
    """Return (parameters, benchmark accuracy, key) of every architecture of the space's benchmark network."""
    from tanglenas_cli.benchmarks import load_benchmark
    from tanglenas_cli.engine.cost import cost_model
    from tanglenas_cli.spaces import create_space
    from tanglenas_cli.spaces.base import DataShape

    options, (classes, shape) = BENCHMARK_NETWORKS[space_name]
    space = create_space(space_name, DataShape(classes, shape), options)
    costs = cost_model(space, "params")
    entries = load_benchmark(benchmark).entries
    table = []
    for arch in space.all_architectures() or []:
        key = space.benchmark_key(arch)
        accuracy = entries.get(key, {}).get(metric)
        if isinstance(accuracy, float):
            table.append((costs.of_architecture(arch), accuracy, key))
    return table


def percentile_of(values: list[float], q: int) -> float:
    """The ``q``-th percentile of ``values`` (the nearest-rank definition: an actual value of the list)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))]


def feasible_percentile(table: list[tuple[float, float, str]], target: float, accuracy: float) -> float:
    """Percentage of the architectures within ``target`` whose accuracy is at most ``accuracy``."""
    feasible = sorted(acc for params, acc, _ in table if params <= target)
    return round(100 * bisect_right(feasible, accuracy) / len(feasible), 1)


def run_one(space: str, q: int, target: float, penalty: tuple[float, str, float], seed: int, runs: Path,
            data_root: Path, table: list[tuple[float, float, str]]) -> dict[str, Any]:  # fmt: skip
    """Search (or resume) one budget and seed, derive within the budget, and return the CSV row."""
    spec = quality.PROTOCOLS["reduced"][space]
    temperature, estimate, weight = penalty
    suffix = ("" if estimate == "mean" else f"-{estimate}") + ("" if weight == 1 else f"-w{weight:g}")
    out = runs / f"{space}-p{q}-t{temperature:g}{suffix}-s{seed}"
    out.mkdir(parents=True, exist_ok=True)
    log = out / "cost_aware.log"
    options, _ = BENCHMARK_NETWORKS[space]
    command = quality.search_command(quality.Cell(space, "drnas", "we-original", seed), "reduced", out)
    shown = "{" + ", ".join(f"{k}: {v}" for k, v in options.items()) + "}"
    settings = ("cost.metric=params", f"cost.target={target:.0f}", f"cost.temperature={temperature:g}",
                f"cost.estimate={estimate}", f"cost.weight={weight:g}",
                f"cost.space_options={shown}")  # fmt: skip
    for text in settings:
        command += ["--set", text]
    benchmark = data_root / "benchmarks" / spec.benchmark
    if not (out / "summary.json").is_file():
        resume = ["--resume", str(out)] if (out / "checkpoint.pt").is_file() else []
        done = quality._cli([*command, "--benchmark", str(benchmark), *resume], log)
        if done.returncode != 0:
            raise RuntimeError(f"{out.name}: search failed (exit {done.returncode}); see {log}")
    derived = quality._cli(["tanglenas", "derive", str(out), "--within-budget", "--out",
                            str(out / "arch-within-budget.yaml"), "--json"])  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    if derived.returncode == 0:
        result = json.loads(derived.stdout)
    elif "no epoch's argmax architecture meets" in derived.stderr:  # reported as a miss: the final argmax
        epochs = sum(1 for line in (out / "trajectory.jsonl").read_text().splitlines() if line.strip())
        result = {"benchmark_key": summary["benchmark_key"], "derived_by": f"after epoch {epochs}, over"}
    else:
        raise RuntimeError(f"{out.name}: derive failed: {derived.stderr.strip() or derived.stdout.strip()}")
    by_key = {key: (params, acc) for params, acc, key in table}
    params, accuracy = by_key[result["benchmark_key"]]
    final_params, final_accuracy = by_key[summary["benchmark_key"]]
    feasible = [acc for p, acc, _ in table if p <= target]
    epoch = int(result["derived_by"].split("after epoch ")[1].split(",")[0])
    return {
        "space": space, "percentile_budget": q, "target": target, "temperature": temperature,
        "estimate": estimate, "weight": weight, "seed": seed,
        "params": int(params),
        "within": params <= target * (1 + TOLERANCE), "test_acc": round(accuracy, 3),
        "feasible_percentile": feasible_percentile(table, target, accuracy),
        "feasible_best": round(max(feasible), 3), "final_params": int(final_params),
        "final_within": final_params <= target * (1 + TOLERANCE), "final_test_acc": round(final_accuracy, 3),
        "derived_epoch": epoch, "search_seconds": summary["search_seconds"],
        "benchmark_key": result["benchmark_key"], "command": shlex.join(command),
    }  # fmt: skip


def _spread(values: list[float], digits: int = 2) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _penalty(row: dict[str, str]) -> str:
    """What a row's penalty read (the mean cost at its temperature, or the argmax's cost) and its weight."""
    weight = float(row.get("weight") or 1)
    estimate = row.get("estimate") or "mean"
    read = "argmax" if estimate == "argmax" else f"mean, T={float(row['temperature']):g}"
    default = estimate == DEFAULTS["estimate"] and weight == DEFAULTS["weight"]
    return f"{read}, weight {weight:g}" + (" (default)" if default else "")


def markdown(rows: list[dict[str, str]]) -> str:
    """The results table (one line per space and budget) and the commands."""
    lines = [
        "| space | budget (params) | penalty reads | seeds | within budget / within +5% "
        "| params found / budget | test acc (%) "
        "| percentile among feasible | best feasible (%) | final argmax within |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    grouped: dict[tuple[str, str, str], list[dict[str, str]]] = {}
    for row in rows:
        grouped.setdefault((row["space"], row["percentile_budget"], _penalty(row)), []).append(row)
    order = list(BENCHMARK_NETWORKS)
    for (space, q, penalty), members in sorted(grouped.items(), key=lambda item: order.index(item[0][0])):
        target = float(members[0]["target"])
        strict = sum(float(r["params"]) <= target for r in members)
        within = f"{strict}/{len(members)} / {sum(r['within'] == 'True' for r in members)}"
        final = sum(float(r["final_params"]) <= target for r in members)
        ratio = [float(r["params"]) / target for r in members]
        lines.append(
            f"| {space} | p{q}: {target:,.0f} | {penalty} | {len(members)} | {within}/{len(members)} "
            f"| {_spread(ratio, 3)} "
            f"| {_spread([float(r['test_acc']) for r in members])} "
            f"| {_spread([float(r['feasible_percentile']) for r in members], 1)} "
            f"| {float(members[0]['feasible_best']):.2f} | {final}/{len(members)} |"
        )
    lines += [
        "",
        "Commands (`--seed`, `cost.target`, `cost.temperature`, `cost.estimate` and `cost.weight` vary;"
        " RUN is the run folder), then `tanglenas derive RUN --within-budget`:",
        "",
    ]
    for space in order:
        members = [r for r in rows if r["space"] == space]
        if members:  # the default penalty's command where there is one
            row = next((r for r in members if _penalty(r).endswith("(default)")), members[0])
            words = shlex.split(row["command"])
            words[words.index("--out") + 1] = "RUN"
            lines.append(f"- {space}: `{shlex.join(words)}`")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, str]], tables: dict[str, list[tuple[float, float, str]]], path: Path) -> None:
    """Accuracy against parameters: all architectures grey, the found ones coloured per budget (at the cost
    defaults, squares, and with the mean at weight 1, circles; the table has every penalty)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spaces = [s for s in tables if any(r["space"] == s for r in rows)]
    figure, axes = plt.subplots(1, len(spaces), figsize=(6 * len(spaces), 4.5), squeeze=False)
    colours = {"25": "tab:blue", "50": "tab:orange", "75": "tab:green"}
    for axis, space in zip(axes[0], spaces, strict=True):
        table = tables[space]
        axis.scatter(
            [p for p, _, _ in table], [a for _, a, _ in table], s=3, c="0.8", label="all architectures"
        )
        for q, colour in colours.items():
            members = [r for r in rows if r["space"] == space and r["percentile_budget"] == q]
            if not members:
                continue
            target = float(members[0]["target"])
            axis.axvline(target, color=colour, linestyle="--", linewidth=1)
            for penalty in ("default", "mean, T=1, weight 1"):  # the defaults, and the first penalty tried
                chosen = [
                    r
                    for r in members
                    if _penalty(r).endswith("(default)" if penalty == "default" else penalty)
                ]
                found = [float(r["params"]) for r in chosen], [float(r["test_acc"]) for r in chosen]
                marker = "s" if penalty == "default" else "o"
                shown = (f"cost defaults ({DEFAULTS['estimate']}, weight {DEFAULTS['weight']:g})"
                         if penalty == "default" else penalty)  # fmt: skip
                axis.scatter(*found, s=40, c=colour, marker=marker, edgecolors="black", zorder=3,
                             label=f"found, budget p{q}, {shown}")  # fmt: skip
        accuracies = sorted(a for _, a, _ in table)
        axis.set_ylim(accuracies[len(accuracies) // 20], accuracies[-1] + 0.3)
        axis.set_xlabel("parameters of the benchmark network")
        axis.set_ylabel("benchmark test accuracy (%)")
        axis.set_title(f"{space}: DrNAS-WE with a parameter budget (dashed)")
        axis.legend(fontsize=7, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def append_row(path: Path, row: dict[str, Any]) -> None:
    new = not path.is_file()
    with path.open("a", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=CSV_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def write_reports(rows: list[dict[str, str]], tables: dict, results: Path, readme: Path | None) -> None:
    if not rows:
        return
    text = markdown(rows)
    (results / "cost_aware.md").write_text(text)
    plot(rows, tables, results / "cost_aware.png")
    if readme is not None:
        fill_block(readme, "cost-aware", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--spaces", nargs="+", default=list(BENCHMARK_NETWORKS), choices=list(BENCHMARK_NETWORKS)
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--percentiles", nargs="+", type=int, default=list(PERCENTILES))
    parser.add_argument("--temperature", type=float, default=1.0, help="cost.temperature of the searches.")
    parser.add_argument(
        "--estimate",
        choices=("mean", "argmax"),
        default=DEFAULTS["estimate"],
        help="cost.estimate of the searches (default: the config's).",
    )
    parser.add_argument("--weight", type=float, default=DEFAULTS["weight"],
                        help="cost.weight of the searches (default: the config's).")  # fmt: skip
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "cost_aware")
    parser.add_argument("--data-root", type=Path, default=None, help="Default: $TANGLENAS_DATA_ROOT.")
    parser.add_argument("--readme", action="store_true", help="Also update the table in README.md.")
    parser.add_argument("--dry-run", action="store_true", help="Print the budgets; run nothing.")
    args = parser.parse_args(argv)
    data_root = args.data_root or Path(os.environ.get("TANGLENAS_DATA_ROOT", "~/.cache/tanglenas/data"))
    data_root = data_root.expanduser().resolve()
    os.environ["TANGLENAS_DATA_ROOT"] = str(data_root)
    readme = ROOT / "README.md" if args.readme else None
    csv_path = args.results / "cost_aware.csv"
    tables = {}
    for space in args.spaces:
        spec = quality.PROTOCOLS["reduced"][space]
        tables[space] = space_table(space, data_root / "benchmarks" / spec.benchmark, spec.metric)
    done = {
        (
            r["space"],
            r["percentile_budget"],
            float(r["temperature"]),
            r.get("estimate") or "mean",
            float(r.get("weight") or 1),
            r["seed"],
        )
        for r in quality.read_rows(csv_path)
    }
    todo = []
    for space in args.spaces:
        params = [p for p, _, _ in tables[space]]
        print(f"{space}: {uniform_mixture_params(space):,.0f} parameters expected at uniform mixing weights")
        for q in args.percentiles:
            target = percentile_of(params, q)
            print(f"{space}: p{q} budget {target:,.0f} parameters "
                  f"({sum(p <= target for p in params)} of {len(params)} architectures within)")  # fmt: skip
            key = (space, str(q), args.temperature, args.estimate, args.weight)
            todo += [(space, q, target, s) for s in args.seeds if (*key, str(s)) not in done]
    if args.dry_run:
        return 0
    args.results.mkdir(parents=True, exist_ok=True)
    for number, (space, q, target, seed) in enumerate(todo, start=1):
        started = time.perf_counter()
        penalty = (args.temperature, args.estimate, args.weight)
        row = run_one(space, q, target, penalty, seed, args.runs, data_root, tables[space])
        append_row(csv_path, row)
        print(f"[{number}/{len(todo)}] {space} p{q} seed {seed}: {row['params']:,} params (budget "
              f"{target:,.0f}), test acc {row['test_acc']:.2f}, feasible percentile "
              f"{row['feasible_percentile']}, {time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
        write_reports(quality.read_rows(csv_path), tables, args.results, readme)
    write_reports(quality.read_rows(csv_path), tables, args.results, readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
