"""Every space x mode (WE supernet, WS supernet, largest subnet): step time and peak memory, each mode in
its own process (``tanglenas profile``), as CSV and a PNG bar chart.

Usage: python benchmarks/spaces_table.py [--spaces nb201 toy_cell ...] [--batch-size 64] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from tanglenas_cli.engine.profile import MODES, run_profile

DEFAULT_SPACES = ("toy_cell", "toy_conv_macro", "nb201", "nats_sss", "darts")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=list(DEFAULT_SPACES))
    parser.add_argument("--optimizer", default="drnas")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--channels-last", action="store_true", help="profile with channels-last layout")
    parser.add_argument("--compile", action="store_true", help="profile with torch.compile")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for space in args.spaces:
        result = run_profile(
            space,
            args.optimizer,
            args.batch_size,
            args.steps,
            channels_last=args.channels_last,
            compile=args.compile,
        )
        for mode in MODES:
            numbers = result["modes"][mode]
            rows.append(
                {
                    "space": space,
                    "mode": mode,
                    "step_s": numbers["step_s"],
                    "peak_mb": numbers["peak_mb"],
                    "time_vs_largest": result.get(f"{mode}_time_ratio", 1.0),
                    "memory_vs_largest": result.get(f"{mode}_memory_ratio", 1.0),
                    "device": numbers["device"],
                }
            )
            print(rows[-1])
    suffix = "".join(
        f"-{n}" for n, on in (("channels-last", args.channels_last), ("compiled", args.compile)) if on
    )
    csv_path, png_path = args.out / f"spaces{suffix}.csv", args.out / f"spaces{suffix}.png"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    figure, axes = plt.subplots(1, 2, figsize=(12, 4))
    width = 0.27
    for index, mode in enumerate(MODES):
        chosen = [r for r in rows if r["mode"] == mode]
        positions = [i + (index - 1) * width for i in range(len(chosen))]
        axes[0].bar(positions, [r["time_vs_largest"] for r in chosen], width, label=mode)
        axes[1].bar(positions, [r["memory_vs_largest"] for r in chosen], width, label=mode)
    for axis, title in zip(axes, ("step time / largest subnet", "peak memory / largest subnet"), strict=True):
        axis.set_xticks(range(len(args.spaces)), args.spaces, fontsize=8)
        axis.axhline(1.0, color="grey", linewidth=0.8)
        axis.set_title(title)
        axis.legend(fontsize=8)
    figure.suptitle(
        f"{args.optimizer}, batch {args.batch_size}{suffix.replace('-', ', ', 1)}, {rows[0]['device']}"
    )
    figure.tight_layout()
    figure.savefig(png_path, dpi=110)
    print(f"wrote {csv_path} and {png_path}")


if __name__ == "__main__":
    main()
