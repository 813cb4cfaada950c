"""How much of a WE supernet step's excess over its largest subnet is the candidates that subnet does not
run: the WE step, the same step with those candidates dropped, and the largest subnet, interleaved.

Dropped candidates become ``Zero`` ops (which a mixed edge skips); a dropped entangled group becomes a
``Zero`` of its output shape, so one zero tensor per edge is still added. Defaults, per space:

- ``darts``: the max and average pools (pool + batch norm on all 14 edges of a cell).
- ``nb201``: the identity and the average pool (the fused skip + pool term).
- ``toy_cell``: the dilated-conv group (the one conv stack an edge runs besides the sep group).

Each run builds the three steps afresh, warms them up, then runs ``--rounds`` rounds of one step of
each; it records the median and the fastest step of each. Rows go to
``benchmarks/results/step_floor.csv`` (finished (space, dropped, run) rows are kept: an interrupted
table resumes) and the min / median / max over runs to ``benchmarks/results/step_floor.md``.

Usage: python benchmarks/step_floor.py [--spaces darts nb201 toy_cell] [--runs 3] [--rounds 6]
       [--drop NAME ...]
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

import torch
from torch import nn

from tanglenas_cli.engine.profile import ModeStep
from tanglenas_cli.errors import UserError
from tanglenas_cli.nas.mixed_op import MixedOp, Zero

DROPPED = {
    "darts": ("max_pool_3x3", "avg_pool_3x3"),
    "nb201": ("skip_connect", "avg_pool_3x3"),
    "toy_cell": ("dil_conv_3x3", "dil_conv_5x5"),
}
FIELDS = ["space", "run", "dropped", "we_s", "without_s", "largest_s", "we_min_s", "without_min_s",
          "largest_min_s", "device"]  # fmt: skip


def _as_int(value: int | tuple[int, ...]) -> int:
    return value if isinstance(value, int) else value[0]


def zero_like(module: nn.Module) -> Zero:
    """Return the ``Zero`` op of ``module``'s output shape (its largest stride, its last conv's width)."""
    strides = [
        _as_int(m.stride) for m in module.modules() if isinstance(getattr(m, "stride", None), int | tuple)
    ]
    widths = [m.out_channels for m in module.modules() if isinstance(m, nn.Conv2d)]
    return Zero(max(strides, default=1), widths[-1] if widths else None)


def drop_candidates(model: nn.Module, names: set[str]) -> int:
    """Replace the candidates called ``names`` in every mixed edge by zeros; return how many edges changed."""
    changed = 0
    for edge in model.modules():
        if not isinstance(edge, MixedOp):
            continue
        candidates = list(edge.source.candidates)
        picked = {i for i, name in enumerate(candidates) if name in names}
        if not picked:
            continue
        for index in picked:
            if edge._is_plain[index]:
                edge.candidates[index] = zero_like(edge.candidates[index])
        for number, indices in enumerate(edge._group_indices):
            group = set(indices.tolist())
            if group & picked and not group <= picked:
                raise ValueError(f"drop all of the group {[candidates[i] for i in sorted(group)]} or none")
            if group <= picked:
                edge.groups[number] = zero_like(edge.groups[number])
        if edge._skip_pool is not None and set(edge._skip_pool) & picked:
            edge._skip_pool = None
        changed += 1
    return changed


def measure(space: str, dropped: tuple[str, ...], rounds: int) -> dict[str, float]:
    """Return the median and fastest step seconds of WE, WE without ``dropped`` and the largest subnet."""
    steps = {name: ModeStep(space, mode, "drnas", 64, {})
             for name, mode in (("we", "we"), ("without", "we"), ("largest", "largest"))}  # fmt: skip
    if not drop_candidates(steps["without"].model, set(dropped)):
        raise ValueError(f"no {space} edge has a candidate called {', '.join(dropped)}")
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():
        step()
        step()
    for _ in range(rounds):
        for name, step in steps.items():
            times[name].append(step())
    result = {f"{name}_s": statistics.median(values) for name, values in times.items()}
    result.update({f"{name}_min_s": min(values) for name, values in times.items()})
    return result


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


def write_table(rows: list[dict[str, str]], path: Path) -> str:
    lines = [
        "# The WE step without the candidates its largest subnet does not run",
        "",
        "`python benchmarks/step_floor.py`; batch 64, DrNAS, eager, "
        f"{torch.get_num_threads()} CPU threads. Each ratio is to the largest subnet's step, from the "
        "median step of each mode in a run (in brackets: min-max over runs); the last columns are from "
        "the fastest step of each mode.",
        "",
        "| space | dropped | runs | WE | WE without them | their cost | WE, fastest | without, fastest |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for space, dropped in dict.fromkeys((row["space"], row["dropped"]) for row in rows):
        mine = [row for row in rows if (row["space"], row["dropped"]) == (space, dropped)]
        ratio = {
            key: [float(r[f"{key}_s"]) / float(r["largest_s"]) for r in mine] for key in ("we", "without")
        }
        fastest = {key: [float(r[f"{key}_min_s"]) / float(r["largest_min_s"]) for r in mine]
                   for key in ("we", "without")}  # fmt: skip
        cost = [we - without for we, without in zip(ratio["we"], ratio["without"], strict=True)]
        lines.append(f"| {space} | {dropped} | {len(mine)} | {spread(ratio['we'])} | "
                     f"{spread(ratio['without'])} | {spread(cost)} | {spread(fastest['we'])} | "
                     f"{spread(fastest['without'])} |")  # fmt: skip
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=list(DROPPED))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--drop", nargs="+", help="candidate names to drop (default: per space, above)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    csv_path = args.out / "step_floor.csv"
    rows: list[dict[str, str]] = []
    if csv_path.is_file():
        with csv_path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    for space in args.spaces:
        dropped = tuple(args.drop or DROPPED.get(space, ()))
        if not dropped:
            parser.error(f"say which {space} candidates to drop (--drop)")
        for run in range(args.runs):
            label = " ".join(dropped)
            if any((row["space"], row["dropped"], int(row["run"])) == (space, label, run) for row in rows):
                continue
            try:
                result = measure(space, dropped, args.rounds)
            except (UserError, ValueError) as error:  # unknown space or candidate: one line, exit 2
                parser.error(str(error))
            row = {"space": space, "run": str(run), "dropped": label}
            row.update({key: f"{value:.4f}" for key, value in result.items()})
            row["device"] = f"cpu ({torch.get_num_threads()} threads)"
            rows.append(row)
            with csv_path.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=FIELDS)
                writer.writeheader()
                writer.writerows(rows)
            print(f"{space} run {run}: " + ", ".join(f"{k} {v}" for k, v in row.items() if k.endswith("_s")))
    print(write_table(rows, args.out / "step_floor.md"))


if __name__ == "__main__":
    main()
