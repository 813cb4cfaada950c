"""Every space x mode (WE supernet, WS supernet, largest subnet): step time and peak memory, measured
``--runs`` times by ``tanglenas profile``, as a CSV (one row per run), a Markdown table with the
min / median / max of each ratio to the largest subnet, a PNG bar chart (median, whiskers min to max)
and the README's ``spaces`` block.

Usage: python benchmarks/spaces_table.py [--spaces nb201 toy_cell ...] [--runs 3] [--batch-size 64]
       [--channels-last] [--compile] [--out DIR] [--readme README.md]
Finished (space, run) rows are kept in the CSV and not measured again: an interrupted table resumes.
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from readme_block import fill_block

from tanglenas_cli.engine.profile import MODES, run_profile

DEFAULT_SPACES = ("toy_cell", "toy_conv_macro", "nb201", "nats_sss", "darts")
FIELDS = ["space", "run", "mode", "step_s", "step_min_s", "peak_mb", "time_vs_largest",
          "time_vs_largest_rounds", "memory_vs_largest", "device"]  # fmt: skip
LABELS = {"toy_cell": "`toy_cell` (C=32)", "nb201": "`nb201` (C=16, N=5)", "darts": "`darts` (C=16, 8 cells)"}


def read_rows(path: Path) -> list[dict[str, str]]:
    """Return the CSV's rows (none if it is absent or from the one-run format)."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows if rows and "run" in rows[0] else []


def profile_rows(space: str, run: int, args: argparse.Namespace) -> list[dict[str, object]]:
    """Profile ``space`` once; return one row per mode."""
    result = run_profile(space, args.optimizer, args.batch_size, args.steps,
                         channels_last=args.channels_last, compile=args.compile)  # fmt: skip
    rows = []
    for mode in MODES:
        if mode not in result["modes"]:
            continue
        numbers = result["modes"][mode]
        low, high = result.get(f"{mode}_time_ratio_rounds", (1.0, 1.0))
        rows.append({"space": space, "run": run, "mode": mode, "step_s": round(numbers["step_s"], 4),
                     "step_min_s": round(numbers["step_min_s"], 4), "peak_mb": round(numbers["peak_mb"], 1),
                     "time_vs_largest": result.get(f"{mode}_time_ratio", 1.0),
                     "time_vs_largest_rounds": f"{low}-{high}",
                     "memory_vs_largest": result.get(f"{mode}_memory_ratio", 1.0),
                     "device": numbers["device"]})  # fmt: skip
    return rows


def spread(values: list[float], unit: str = "x") -> str:
    """``median (min-max)`` of ``values``."""
    return f"{statistics.median(values):.2f}{unit} ({min(values):.2f}-{max(values):.2f})"


def markdown(rows: list[dict[str, str]], spaces: list[str]) -> str:
    """The table of medians and spreads over the runs, one line per space."""
    lines = [
        "| space | runs | WE step | WE / largest, time | WE / largest, memory | WS / largest, time | "
        "WS / largest, memory | largest subnet step / memory |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for space in spaces:
        of = {mode: [r for r in rows if r["space"] == space and r["mode"] == mode] for mode in MODES}
        if not of["largest"]:
            continue

        def values(mode: str, field: str, of: dict = of) -> list[float]:
            return [float(r[field]) for r in of[mode]]

        ws_time = spread(values("ws", "time_vs_largest")) if of["ws"] else "-"
        ws_memory = spread(values("ws", "memory_vs_largest")) if of["ws"] else "-"
        largest = (f"{statistics.median(values('largest', 'step_s')):.3f} s / "
                   f"{statistics.median(values('largest', 'peak_mb')) / 1024:.2f} GB")  # fmt: skip
        we_step = f"{statistics.median(values('we', 'step_s')):.3f} s"
        we_time, we_memory = (
            spread(values("we", "time_vs_largest")),
            spread(values("we", "memory_vs_largest")),
        )
        lines.append(f"| {LABELS.get(space, f'`{space}`')} | {len(of['largest'])} | {we_step} | {we_time} | "
                     f"{we_memory} | {ws_time} | {ws_memory} | {largest} |")  # fmt: skip
    return "\n".join(lines)


def plot(rows: list[dict[str, str]], spaces: list[str], title: str, path: Path) -> None:
    """Bars of the median ratio per space and mode, whiskers from the min to the max run."""
    figure, axes = plt.subplots(1, 2, figsize=(12, 4))
    width = 0.27
    panels = (
        ("time_vs_largest", "step time / largest subnet"),
        ("memory_vs_largest", "peak memory / largest subnet"),
    )
    for axis, (field, name) in zip(axes, panels, strict=True):
        for index, mode in enumerate(MODES):
            positions, medians, low, high = [], [], [], []
            for number, space in enumerate(spaces):
                values = [float(r[field]) for r in rows if r["space"] == space and r["mode"] == mode]
                if not values:
                    continue
                middle = statistics.median(values)
                positions.append(number + (index - 1) * width)
                medians.append(middle)
                low.append(middle - min(values))
                high.append(max(values) - middle)
            axis.bar(positions, medians, width, yerr=[low, high], capsize=3, label=mode)
        axis.set_xticks(range(len(spaces)), spaces, fontsize=8)
        axis.axhline(1.0, color="grey", linewidth=0.8)
        axis.set_title(f"{name} (median, min-max)")
        axis.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=list(DEFAULT_SPACES))
    parser.add_argument("--runs", type=int, default=3, help="profiles per space (the table shows the spread)")
    parser.add_argument("--optimizer", default="drnas")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="measured steps per mode and run")
    parser.add_argument("--channels-last", action="store_true", help="profile with channels-last layout")
    parser.add_argument("--compile", action="store_true", help="profile with torch.compile")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--readme", type=Path, default=Path("README.md"), help="README with a spaces block")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "".join(
        f"-{n}" for n, on in (("channels-last", args.channels_last), ("compiled", args.compile)) if on
    )
    csv_path = args.out / f"spaces{suffix}.csv"
    rows = read_rows(csv_path)
    for run in range(args.runs):
        for space in args.spaces:
            if any(r["space"] == space and int(r["run"]) == run for r in rows):
                continue
            rows.extend({k: str(v) for k, v in row.items()} for row in profile_rows(space, run, args))
            with csv_path.open("w", newline="") as handle:  # after every profile: a stop loses at most one
                writer = csv.DictWriter(handle, fieldnames=FIELDS)
                writer.writeheader()
                writer.writerows(rows)
            print(f"{space} run {run + 1}/{args.runs} written to {csv_path}", flush=True)
    spaces = [s for s in args.spaces if any(r["space"] == s for r in rows)]
    setting = suffix.replace("-", ", ").lstrip(", ") or "eager, default layout"
    title = f"{args.optimizer}, batch {args.batch_size}, {setting}, {rows[0]['device']}, {args.runs} runs"
    table = markdown(rows, spaces)
    (args.out / f"spaces{suffix}.md").write_text(f"{title}\n\n{table}\n")
    plot(rows, spaces, title, args.out / f"spaces{suffix}.png")
    block = f"spaces{suffix}"
    if fill_block(args.readme, block, f"{title}:\n\n{table}"):
        print(f"updated the {block} block of {args.readme}")
    print(table)


if __name__ == "__main__":
    main()
