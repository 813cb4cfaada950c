"""Where a supernet step's time goes: a ``torch.profiler`` table of the WE supernet's training step next
to its largest subnet's, op by op (self time per step), with the excess of the supernet.

The steps are those of ``tanglenas profile`` (forward, loss, backward; DrNAS sampling). Writes
``benchmarks/results/step_profile-SPACE[-compiled].md``; with ``--shapes`` the convolutions are split by
input shape (which kernel of which layer costs what).

Usage: python benchmarks/step_profile.py --space toy_cell [--steps 5] [--rows 20] [--shapes] [--compile]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from tanglenas_cli.engine.profile import ModeStep


def op_times(steps_by_mode: dict[str, ModeStep], steps: int, shapes: bool) -> tuple[dict, dict]:
    """Return per mode (self CPU milliseconds per step of each op, profiled wall ms per step).

    The modes' steps alternate, each profiled on its own, so that a slow spell of the machine hits every
    mode alike (profiling one mode after the other had skewed their ratio by 30%).
    """
    for step in steps_by_mode.values():
        for _ in range(3):
            step()
    tables: dict[str, dict[str, float]] = {mode: {} for mode in steps_by_mode}
    walls = dict.fromkeys(steps_by_mode, 0.0)
    for _ in range(steps):
        for mode, step in steps_by_mode.items():
            with profile(activities=[ProfilerActivity.CPU], record_shapes=shapes) as prof:
                walls[mode] += step()
            table = tables[mode]
            for event in prof.key_averages(group_by_input_shape=shapes):
                name = event.key
                if shapes and event.key in ("aten::mkldnn_convolution", "aten::convolution_backward"):
                    name = f"{event.key} {event.input_shapes[:3]}"
                table[name] = table.get(name, 0.0) + event.self_cpu_time_total / 1000 / steps
    return tables, {mode: wall * 1000 / steps for mode, wall in walls.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", required=True)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--shapes", action="store_true", help="split convolutions by input shape")
    parser.add_argument("--compile", action="store_true", help="profile the torch.compile'd steps")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    built = {mode: ModeStep(args.space, mode, "drnas", args.batch_size, {}, compile=args.compile)
             for mode in ("we", "largest")}  # fmt: skip
    tables, walls = op_times(built, args.steps, args.shapes)
    names = sorted(set(tables["we"]) | set(tables["largest"]), key=lambda n: -tables["we"].get(n, 0.0))
    lines = [
        f"# {args.space}: one training step, WE supernet against its largest subnet",
        "",
        f"`python benchmarks/step_profile.py --space {args.space}"
        + (" --shapes" if args.shapes else "") + (" --compile" if args.compile else "") + "`; "
        f"batch {args.batch_size}, DrNAS, {torch.get_num_threads()} CPU threads, {args.steps} profiled steps "
        f"each, the modes alternating. Profiled wall time per step: WE {walls['we']:.1f} ms, "
        f"largest {walls['largest']:.1f} ms "
        f"({walls['we'] / walls['largest']:.2f}x; the profiler itself adds overhead).",
        "",
        "| op (self CPU time) | WE ms/step | largest ms/step | WE - largest |",
        "|---|---|---|---|",
    ]  # fmt: skip
    for name in names[: args.rows]:
        we, largest = tables["we"].get(name, 0.0), tables["largest"].get(name, 0.0)
        lines.append(f"| `{name}` | {we:.1f} | {largest:.1f} | {we - largest:+.1f} |")
    rest_we = sum(tables["we"].get(n, 0.0) for n in names[args.rows :])
    rest_largest = sum(tables["largest"].get(n, 0.0) for n in names[args.rows :])
    lines.append(f"| all other ops | {rest_we:.1f} | {rest_largest:.1f} | {rest_we - rest_largest:+.1f} |")
    total_we, total_largest = sum(tables["we"].values()), sum(tables["largest"].values())
    lines.append(f"| **total** | {total_we:.1f} | {total_largest:.1f} | {total_we - total_largest:+.1f} |")
    suffix = ("-shapes" if args.shapes else "") + ("-compiled" if args.compile else "")
    path = args.out / f"step_profile-{args.space}{suffix}.md"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
