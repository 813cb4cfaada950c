"""Search quality: do the searches find good architectures, and does weight entanglement help?

Runs a grid of searches (space x optimizer x mode x seed) with the `tanglenas` command line, each in
its own process, and for every finished run records the benchmark test accuracy of the derived
architecture after every epoch (the anytime curve) and at the end, its rank, percentile and regret to
the benchmark's optimum, the supernet's rank agreement with the benchmark (`tanglenas correlate`), the
search time and the peak memory. Modes: `we-original` (weight entanglement, entangled_groups=original),
`we-scaled` (entangled_groups=scaled; cell spaces only) and `ws` (weight sharing). WE and WS always get
identical settings.

Writes (into --results, default benchmarks/results/):
  search_quality.csv  one row per finished run; it is also the cache: a rerun skips finished rows,
                      and an interrupted search resumes from its checkpoint (--runs holds the runs)
  search_quality.png  anytime curves, mean over seeds per mode, with the random baseline
  search_quality.md   the table (mean +- std over seeds) and the protocol; also copied into README.md
                      between the `search-quality` markers when --readme is given

Protocols:
  reduced (default)   fits a 2-core CPU: a fixed training subset, few epochs, a smaller proxy supernet
                      (NB201: C=8, N=1, as DARTS searches a smaller network than it trains), and the
                      arch learning rate scaled by (paper arch steps / reduced arch steps) so the logits
                      can move as far as in the paper's run
  paper               the presets as published (e.g. 100 epochs of the full training set): for a GPU
  smoke               a tiny grid on scikit-learn's digits for the test suite (< 2 minutes)

Data (offline): `tanglenas prepare-data fashion_mnist --from /usr/share/datasets/fashion-mnist`,
`tanglenas prepare-data imagefolder --from ../shared/data/cifar10-jpg.tar.gz` (CIFAR-10 as JPEG
images) and `tanglenas prepare-data toy-benchmarks|nb201-bench --from ...`; the script says which one
is missing.

Usage: python benchmarks/search_quality.py [--spaces toy_cell nb201] [--optimizers drnas] [--modes ws]
       [--seeds 0 1] [--protocol reduced|paper|smoke] [--smoke] [--dry-run] [--readme]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from readme_block import fill_block  # noqa: E402

MODES = ("we-original", "we-scaled", "ws")
# CIFAR-10 statistics (the image folder defaults to ImageNet's)
CIFAR_NORMALISE = (
    "dataset_options.mean=[0.4914, 0.4822, 0.4465]",
    "dataset_options.std=[0.247, 0.2435, 0.2616]",
)
FULL_TRAIN_IMAGES = {"fashion_mnist": 60_000, "cifar10": 50_000, "imagefolder": 50_000, "digits": 1_797}
CSV_FIELDS = (
    "space", "optimizer", "mode", "seed", "protocol", "test_acc", "rank", "total", "percentile", "regret",
    "best_test_acc", "benchmark_mean", "evaluations", "random_expected_best", "kendall_tau",
    "spearman_rho", "top_k_overlap", "correlate_samples", "search_seconds", "peak_memory_mb", "epochs",
    "anytime_test_acc", "benchmark_key", "command",
)  # fmt: skip


@dataclass(frozen=True)
class SpaceProtocol:
    """How one space is searched under one protocol."""

    preset_space: str  # preset name stem, e.g. toy-cell-fmnist
    dataset: str | None  # None: the preset's
    overrides: tuple[str, ...]
    benchmark: str  # file under DATA_ROOT/benchmarks
    metric: str  # the benchmark column that is ranked
    correlate_samples: int
    scale_arch_lr: bool = True


def _reduced(
    stem: str, dataset: str | None, extra: tuple[str, ...], benchmark: str, metric: str
) -> SpaceProtocol:
    common = ("train_subset=10000", "epochs=8", "eval_batches=20")
    return SpaceProtocol(stem, dataset, (*common, *extra), benchmark, metric, correlate_samples=100)


PROTOCOLS: dict[str, dict[str, SpaceProtocol]] = {
    "reduced": {
        "toy_cell": _reduced("toy-cell-fmnist", None, ("space_options.C=16",),
                             "entangled_cell_ss_benchmark.pkl", "test_acc"),
        "nb201": _reduced("nb201-cifar10", "imagefolder",
                          ("space_options.C=8", "space_options.N=1", "dataset_options.size=32",
                           *CIFAR_NORMALISE),
                          "nb201.csv", "cifar10_test"),
        "toy_conv_macro": _reduced("toy-conv-macro-cifar10", "imagefolder",
                                   ("dataset_options.size=32", *CIFAR_NORMALISE), "conv_macro_bench.pkl",
                                   "test_acc"),
    },
    "paper": {
        "toy_cell": SpaceProtocol("toy-cell-fmnist", None, (), "entangled_cell_ss_benchmark.pkl", "test_acc",
                                  correlate_samples=4096, scale_arch_lr=False),
        "nb201": SpaceProtocol("nb201-cifar10", None, (), "nb201.csv", "cifar10_test",
                               correlate_samples=200, scale_arch_lr=False),
        "toy_conv_macro": SpaceProtocol("toy-conv-macro-cifar10", None, (), "conv_macro_bench.pkl",
                                        "test_acc", correlate_samples=200, scale_arch_lr=False),
    },
    "smoke": {
        "toy_cell": SpaceProtocol(
            "toy-cell-fmnist", "digits",
            ("dataset_options.size=12", "space_options.C=4", "epochs=2", "batch_size=128", "eval_batches=2",
             "selection.samples=8", "selection.batches=1", "selection.recalibration_batches=1"),
            "entangled_cell_ss_benchmark.pkl", "test_acc", correlate_samples=12, scale_arch_lr=False,
        ),
    },
}  # fmt: skip
GRIDS: dict[str, list[tuple[str, str, tuple[int, ...]]]] = {
    "reduced": [
        ("toy_cell", "drnas", (0, 1, 2)),
        ("nb201", "drnas", (0, 1, 2)),
        ("toy_cell", "gdas", (0,)),
        ("toy_cell", "darts_v1", (0,)),
        ("toy_cell", "spos", (0,)),
        ("toy_conv_macro", "drnas", (0,)),
    ],
    "smoke": [("toy_cell", "drnas", (0,)), ("toy_cell", "spos", (0,))],
}
# the smoke grid: one cell of each kind of optimizer
SMOKE_MODES = {"drnas": ("we-scaled",), "spos": ("ws",)}
GRIDS["paper"] = GRIDS["reduced"]
SCALED_SPACES = ("toy_cell", "nb201", "darts")  # spaces whose entangled groups end in batch norm


@dataclass(frozen=True)
class Cell:
    space: str
    optimizer: str
    mode: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.space}-{self.optimizer}-{self.mode}-s{self.seed}"


def grid_cells(protocol: str, spaces: Sequence[str] | None, optimizers: Sequence[str] | None,
               modes: Sequence[str] | None, seeds: Sequence[int] | None) -> list[Cell]:  # fmt: skip
    """The cells of the protocol's default grid, narrowed by the selections (None: all); every group's first
    seed comes first, so a grid cut short still covers every group and mode."""
    cells: list[tuple[int, Cell]] = []
    for space, optimizer, default_seeds in GRIDS[protocol]:
        if (spaces and space not in spaces) or (optimizers and optimizer not in optimizers):
            continue
        for mode in MODES:
            if (modes and mode not in modes) or (mode == "we-scaled" and space not in SCALED_SPACES):
                continue
            # SPOS trains one-hot paths, where scaled groups equal the original ones exactly (issue #9)
            if mode == "we-scaled" and optimizer == "spos":
                continue
            if protocol == "smoke" and mode not in SMOKE_MODES[optimizer]:
                continue
            for position, seed in enumerate(seeds if seeds else default_seeds):
                cells.append((position, Cell(space, optimizer, mode, seed)))
    return [cell for _, cell in sorted(cells, key=lambda item: item[0])]


def _settings(preset: str, overrides: Iterable[str]) -> Any:
    sys.path.insert(0, str(ROOT))
    from tanglenas_cli.config import build_config

    return build_config(preset, overrides=list(overrides))


def arch_steps(cfg: Any, train_images: int) -> int:
    """Arch steps of a search with ``cfg`` (one per weight step) on ``train_images`` training images."""
    images = min(cfg.train_subset or train_images, train_images)
    weight_images = int(images * cfg.train_portion)
    steps = cfg.steps_per_epoch or math.ceil(weight_images / (cfg.batch_size * cfg.grad_accum))
    return cfg.epochs * steps


def search_command(cell: Cell, protocol: str, out: Path) -> list[str]:
    """The `tanglenas search` command of one cell (arch lr scaled for the reduced protocol)."""
    spec = PROTOCOLS[protocol][cell.space]
    preset = f"{spec.preset_space}-{cell.optimizer}"
    overrides = list(spec.overrides)
    if spec.dataset is not None:
        overrides.insert(0, f"dataset={spec.dataset}")
    if spec.scale_arch_lr and cell.optimizer != "spos":
        paper = _settings(preset, ())
        reduced = _settings(preset, overrides)
        full = FULL_TRAIN_IMAGES[paper.dataset]
        scale = arch_steps(paper, full) / arch_steps(reduced, FULL_TRAIN_IMAGES[reduced.dataset])
        overrides.append(f"arch_optimizer.lr={paper.arch_optimizer.lr * scale:.6g}")
    if cell.mode == "we-scaled":
        overrides.append("entangled_groups=scaled")
    command = ["tanglenas", "search", "--preset", preset, "--seed", str(cell.seed), "--out", str(out)]
    if cell.mode == "ws":
        command.append("--ws")
    for text in [*overrides, "logging.progress=false"]:
        command += ["--set", text]
    return command


def _cli(arguments: Sequence[str], log: Path | None = None) -> subprocess.CompletedProcess:
    """Run the tanglenas command line of this checkout in a fresh process."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "tanglenas_cli", *arguments[1:]]
    if log is None:
        return subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    with log.open("a") as stream:
        return subprocess.run(
            command, stdout=stream, stderr=subprocess.STDOUT, text=True, env=env, check=False
        )


def expected_best_of(values: Sequence[float], draws: int) -> float:
    """Expected maximum of ``draws`` uniform draws (with replacement) from ``values``."""
    ordered = sorted(values)
    n = len(ordered)
    return sum(v * ((i / n) ** draws - ((i - 1) / n) ** draws) for i, v in enumerate(ordered, start=1))


def benchmark_values(path: Path, metric: str) -> list[float]:
    sys.path.insert(0, str(ROOT))
    from tanglenas_cli.benchmarks import load_benchmark

    table = load_benchmark(path)
    values = [row.get(metric) for row in table.entries.values()]
    return [v for v in values if isinstance(v, float) and not math.isnan(v)]


def run_cell(cell: Cell, protocol: str, runs: Path, data_root: Path, values: list[float]) -> dict[str, Any]:
    """Search (or resume), correlate, and return the CSV row of one cell."""
    spec = PROTOCOLS[protocol][cell.space]
    out = runs / protocol / cell.name
    out.mkdir(parents=True, exist_ok=True)
    log = out / "search_quality.log"
    command = search_command(cell, protocol, out)
    benchmark = data_root / "benchmarks" / spec.benchmark
    if not (out / "summary.json").is_file():
        resume = ["--resume", str(out)] if (out / "checkpoint.pt").is_file() else []
        done = _cli([*command, "--benchmark", str(benchmark), *resume], log)
        if done.returncode != 0:
            raise RuntimeError(f"{cell.name}: search failed (exit {done.returncode}); see {log}")
    summary = json.loads((out / "summary.json").read_text())
    correlation_file = out / "correlate.json"
    correlation = json.loads(correlation_file.read_text()) if correlation_file.is_file() else {}
    if correlation.get("samples_requested") != spec.correlate_samples:
        done = _cli(["tanglenas", "correlate", str(out), "--benchmark", str(benchmark),
                     "--samples", str(spec.correlate_samples), "--json"])  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{cell.name}: correlate failed: {done.stderr.strip() or done.stdout.strip()}")
        correlation = json.loads(done.stdout)
        stored = json.loads(correlation_file.read_text())
        correlation_file.write_text(json.dumps({**stored, "samples_requested": spec.correlate_samples}))
    entry = summary.get("benchmark", {})
    test_acc = float(entry["test_acc"])
    epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    # SPOS's logits are never trained: its architecture exists only after the final random search
    anytime = [] if cell.optimizer == "spos" else [
        r.get("benchmark_test_acc") for r in epochs if r.get("kind") == "epoch"
    ]  # fmt: skip
    config = _settings_of_run(out)
    evaluations = config["selection"]["samples"] if cell.optimizer == "spos" else 1
    best = max(values)
    return {
        "space": cell.space, "optimizer": cell.optimizer, "mode": cell.mode, "seed": cell.seed,
        "protocol": protocol, "test_acc": round(test_acc, 4), "rank": entry.get("rank"),
        "total": entry.get("total"), "percentile": entry.get("percentile"),
        "regret": round(best - test_acc, 4),
        "best_test_acc": round(best, 4), "benchmark_mean": round(statistics.fmean(values), 4),
        "evaluations": evaluations, "random_expected_best": round(expected_best_of(values, evaluations), 4),
        "kendall_tau": correlation["kendall_tau"], "spearman_rho": correlation["spearman_rho"],
        "top_k_overlap": correlation["top_k_overlap"], "correlate_samples": correlation["samples"],
        "search_seconds": summary["search_seconds"], "peak_memory_mb": summary.get("peak_memory_mb"),
        "epochs": config["epochs"], "anytime_test_acc": json.dumps(anytime),
        "benchmark_key": summary.get("benchmark_key"), "command": shlex.join(command),
    }  # fmt: skip


def _settings_of_run(out: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load((out / "config.yaml").read_text())


def _number(value: float | None) -> str:
    """A statistic for the progress line; None when correlate found it undefined (constant scores)."""
    return "undefined" if value is None else f"{value:.3f}"


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


def append_row(path: Path, row: dict[str, Any]) -> None:
    new = not path.is_file()
    with path.open("a", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=CSV_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def _key(row: dict[str, Any]) -> tuple[str, str, str, str, str]:
    return (row["space"], row["optimizer"], row["mode"], str(row["seed"]), row["protocol"])


def _spread(values: list[float], digits: int = 2) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def groups(rows: list[dict[str, str]]) -> dict[tuple[str, str, str, str], list[dict[str, str]]]:
    grouped: dict[tuple[str, str, str, str], list[dict[str, str]]] = {}
    for row in rows:
        grouped.setdefault((row["protocol"], row["space"], row["optimizer"], row["mode"]), []).append(row)
    return grouped


def markdown_table(rows: list[dict[str, str]]) -> str:
    """The results as a markdown table: mean ± std over seeds per (space, optimizer, mode)."""
    lines = [
        "| protocol | space | optimizer | mode | seeds | test acc (%) | percentile | regret | Kendall tau |"
        " top-10% overlap | random: mean / E[best of K] (K) | search (min) | peak memory (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (protocol, space, optimizer, mode), members in groups(rows).items():

        def column(name: str, members: list[dict[str, str]] = members) -> list[float]:
            return [float(r[name]) for r in members if r.get(name) not in (None, "")]

        first = members[0]
        mean, expected = float(first["benchmark_mean"]), float(first["random_expected_best"])
        random_text = f"{mean:.2f} / {expected:.2f} ({first['evaluations']})"
        minutes = [v / 60 for v in column("search_seconds")]
        lines.append(
            f"| {protocol} | {space} | {optimizer} | {mode} | {len(members)} |"
            f" {_spread(column('test_acc'))} | {_spread(column('percentile'), 1)} |"
            f" {_spread(column('regret'))} | {_spread(column('kendall_tau'), 3)} |"
            f" {_spread(column('top_k_overlap'), 2)} | {random_text} | {_spread(minutes, 1)} |"
            f" {_spread(column('peak_memory_mb'), 0)} |"
        )  # fmt: skip
    return "\n".join(lines)


def protocol_text(rows: list[dict[str, str]]) -> str:
    """One line per (space, optimizer, mode): the exact command that ran (seed 0's)."""
    seen: dict[tuple[str, str, str, str], str] = {}
    for row in rows:
        seen.setdefault((row["protocol"], row["space"], row["optimizer"], row["mode"]), row["command"])
    return "\n".join(f"- {p} {s} {o} {m}: `{command}`" for (p, s, o, m), command in seen.items())


def plot(rows: list[dict[str, str]], path: Path) -> None:
    """Anytime curves (benchmark test accuracy of the derived architecture per epoch), mean over seeds."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: dict[tuple[str, str, str], dict[str, list[list[float]]]] = {}
    baselines: dict[tuple[str, str, str], tuple[float, float, tuple[int, float] | None]] = {}
    for row in rows:
        key = (row["protocol"], row["space"], row["optimizer"])
        curve = [v for v in json.loads(row["anytime_test_acc"]) if v is not None]
        if not curve:  # SPOS: one architecture, after the last epoch's random search
            curve = [math.nan] * (int(row["epochs"]) - 1) + [float(row["test_acc"])]
        panels.setdefault(key, {}).setdefault(row["mode"], []).append(curve)
        evaluations = int(row["evaluations"])
        baselines[key] = (
            float(row["benchmark_mean"]),
            float(row["best_test_acc"]),
            (evaluations, float(row["random_expected_best"])) if evaluations > 1 else None,
        )
    if not panels:
        return
    columns = min(3, len(panels))
    rows_count = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows_count, columns, figsize=(4.4 * columns, 3.2 * rows_count), squeeze=False)
    for axis, (key, modes) in zip(axes.flat, panels.items(), strict=False):
        for mode, curves in sorted(modes.items()):
            length = min(len(c) for c in curves)
            columns_of = np.array([c[:length] for c in curves], dtype=float)
            with warnings.catch_warnings():  # all-NaN epochs (SPOS before its pick) stay NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                mean, low, high = (f(columns_of, axis=0) for f in (np.nanmean, np.nanmin, np.nanmax))
            epochs = list(range(1, length + 1))
            axis.plot(epochs, mean, marker="o", markersize=3, label=f"{mode} (n={len(curves)})")
            axis.fill_between(epochs, low, high, alpha=0.15)
        mean_acc, best, random_best = baselines[key]
        axis.axhline(mean_acc, color="grey", linestyle="--", linewidth=1, label="benchmark mean")
        if random_best is not None:
            draws, value = random_best
            axis.axhline(
                value, color="tab:red", linestyle="-.", linewidth=1, label=f"E[best of {draws} random]"
            )
        axis.axhline(best, color="black", linestyle=":", linewidth=1, label="benchmark optimum")
        axis.set_title(f"{key[1]} {key[2]} ({key[0]})", fontsize=9)
        axis.set_xlabel("epoch", fontsize=8)
        axis.set_ylabel("benchmark test acc (%)", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.legend(fontsize=6)
    for axis in list(axes.flat)[len(panels) :]:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_reports(rows: list[dict[str, str]], results: Path, stem: str, readme: Path | None) -> None:
    body = f"{markdown_table(rows)}\n\nCommands (the protocol; `--seed` varies):\n\n{protocol_text(rows)}\n"
    (results / f"{stem}.md").write_text(body)
    plot(rows, results / f"{stem}.png")
    if readme is not None:
        fill_block(readme, "search-quality", markdown_table(rows))


def check_inputs(cells: list[Cell], protocol: str, data_root: Path) -> None:
    """Stop with the prepare-data command of the first missing benchmark file."""
    for cell in cells:
        spec = PROTOCOLS[protocol][cell.space]
        benchmark = data_root / "benchmarks" / spec.benchmark
        if not benchmark.is_file():
            kind = "nb201-bench" if spec.benchmark.endswith(".csv") else "toy-benchmarks"
            sys.exit(
                f"missing {benchmark}: run"
                f" `tanglenas prepare-data {kind} --from PATH --data-root {data_root}`"
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="reduced")
    parser.add_argument("--smoke", action="store_true", help="Same as --protocol smoke.")
    parser.add_argument("--spaces", nargs="+", help="Only these spaces (toy_cell, nb201, toy_conv_macro).")
    parser.add_argument(
        "--optimizers", nargs="+", help="Only these optimizers (drnas, gdas, darts_v1, spos)."
    )
    parser.add_argument("--modes", nargs="+", choices=MODES, help="Only these modes.")
    parser.add_argument("--seeds", nargs="+", type=int, help="These seeds instead of the grid's.")
    parser.add_argument(
        "--results", type=Path, default=ROOT / "benchmarks" / "results", help="Output folder."
    )
    parser.add_argument(
        "--runs", type=Path, default=ROOT / "runs" / "search_quality", help="Run directories."
    )
    parser.add_argument("--data-root", type=Path, default=None, help="Default: $TANGLENAS_DATA_ROOT.")
    parser.add_argument("--readme", action="store_true", help="Also update the table in README.md.")
    parser.add_argument("--dry-run", action="store_true", help="Print the cells and commands; run nothing.")
    parser.add_argument("--report", action="store_true", help="Only rewrite the reports from the CSV.")
    args = parser.parse_args(argv)
    protocol = "smoke" if args.smoke else args.protocol
    data_root = args.data_root or Path(os.environ.get("TANGLENAS_DATA_ROOT", "~/.cache/tanglenas/data"))
    data_root = data_root.expanduser().resolve()
    os.environ["TANGLENAS_DATA_ROOT"] = str(data_root)
    cells = grid_cells(protocol, args.spaces, args.optimizers, args.modes, args.seeds)
    if not cells:
        sys.exit("the selection leaves no cell of the grid")
    stem = "search_quality" if protocol != "smoke" else "search_quality_smoke"
    csv_path = args.results / f"{stem}.csv"
    if args.report:
        write_reports(read_rows(csv_path), args.results, stem, ROOT / "README.md" if args.readme else None)
        return 0
    done = {_key(row) for row in read_rows(csv_path)}
    todo = [c for c in cells if (c.space, c.optimizer, c.mode, str(c.seed), protocol) not in done]
    print(f"{protocol} protocol: {len(cells)} cells, {len(cells) - len(todo)} already in {csv_path}")
    if args.dry_run:
        for cell in todo:
            command = search_command(cell, protocol, args.runs / protocol / cell.name)
            print(f"{cell.name}: {shlex.join(command)}", flush=True)
        return 0
    check_inputs(todo, protocol, data_root)
    args.results.mkdir(parents=True, exist_ok=True)
    values: dict[str, list[float]] = {}
    for number, cell in enumerate(todo, start=1):
        spec = PROTOCOLS[protocol][cell.space]
        if spec.benchmark not in values:
            values[spec.benchmark] = benchmark_values(data_root / "benchmarks" / spec.benchmark, spec.metric)
        started = time.perf_counter()
        row = run_cell(cell, protocol, args.runs, data_root, values[spec.benchmark])
        append_row(csv_path, row)
        seconds = time.perf_counter() - started
        tau = _number(row["kendall_tau"])
        print(f"[{number}/{len(todo)}] {cell.name}: test acc {row['test_acc']:.2f}"
              f" (percentile {row['percentile']}), Kendall tau {tau}, {seconds:.0f} s",
              flush=True)  # fmt: skip
        write_reports(read_rows(csv_path), args.results, stem, ROOT / "README.md" if args.readme else None)
    write_reports(read_rows(csv_path), args.results, stem, ROOT / "README.md" if args.readme else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
