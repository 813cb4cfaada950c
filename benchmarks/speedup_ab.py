"""A/B of one CPU speed-up in the real training step, the two versions interleaved in one process.

Changes, each against what it replaced:

- ``depthwise-grad``: stride-1 depthwise convs' input gradient as the flipped-kernel conv (``layers.conv``),
  against torch's own backward.
- ``max-pool``: DARTS max pools channels-last (``layers.pooling.MaxPool2d``), against ``nn.MaxPool2d``.
- ``pool-norm``: DARTS pool + BN terms that recompute in backward (``layers.pool_norm``), against autograd's.
- ``shared-relu``: one ReLU per input tensor (``layers.relu``), against one per op.
- ``separable-max``: a stride-1 max pool that needs no gradient (the pool + norm forward) as a separable
  max, against the channels-last kernel.
- ``per-tap-wgrad``: stride-1 depthwise weight gradients on maps above 400 pixels as one reduction per
  kernel tap (``layers.conv.depthwise_weight_grad``), against ATen's.
- ``two-phases``: DARTS' FactorizedReduce as one 2-group conv of two pixel phases (``layers.phases``),
  against padding, shifting, two strided convs and a concatenation.
- ``shared-mask``: layers of one geometry reading the same mixing weights (cells that share their
  choices) share one superposition mask (``nas.superposition``), against one mask per layer.
- ``node-pool``: the NB201 edges into one node share one skip + pool term (one box sum; the pool is
  linear), against one term per edge that adds the node's sum so far into its output.

Each round runs every mode in both versions (one unmeasured step, two measured); prints the median and
fastest step of each and WE / largest.

Usage: python benchmarks/speedup_ab.py --change depthwise-grad --space toy_cell [--rounds 6] [--batch-size 64]
       python benchmarks/speedup_ab.py --change max-pool --space darts --modes we [--rounds 4]
       python benchmarks/speedup_ab.py --change pool-norm --space darts --modes we [--rounds 4]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
from torch import nn

from tanglenas_cli.engine.profile import ModeStep
from tanglenas_cli.errors import UserError
from tanglenas_cli.layers import conv, pool_norm, pooling, relu
from tanglenas_cli.nas import superposition
from tanglenas_cli.nas.mixed_op import MixedOp, Zero
from tanglenas_cli.spaces import darts_cells, nb201


def switches(change: str) -> Callable[[bool], None]:
    """Return a function that turns ``change`` on (True) or off (False)."""
    if change == "depthwise-grad":
        fast = conv._is_same_depthwise

        def turn(on: bool) -> None:
            conv._is_same_depthwise = fast if on else (lambda *args: False)

        return turn
    if change == "shared-relu":
        users = [darts_cells, nb201]  # the modules that call shared_relu by name

        def turn_relu(on: bool) -> None:
            relu.SharedReLU.forward = (lambda self, x: relu.shared_relu(x)) if on else nn.ReLU.forward
            for module in users:
                module.shared_relu = relu.shared_relu if on else torch.relu

        return turn_relu
    if change == "separable-max":
        separable = pooling.MaxPool2d._separable

        def turn_separable(on: bool) -> None:
            pooling.MaxPool2d._separable = separable if on else (lambda self: False)

        return turn_separable
    if change == "per-tap-wgrad":
        threshold = conv.PER_TAP_PIXELS

        def turn_taps(on: bool) -> None:
            conv.PER_TAP_PIXELS = threshold if on else 10**12

        return turn_taps
    if change == "two-phases":
        one_conv = darts_cells.FactorizedReduce._one_conv

        def turn_phases(on: bool) -> None:
            darts_cells.FactorizedReduce._one_conv = one_conv if on else (lambda self, x: False)

        return turn_phases
    if change == "shared-mask":
        shared_mask = superposition.Superposition.mask

        def turn_mask(on: bool) -> None:
            superposition.Superposition.mask = shared_mask if on else superposition.Superposition._mask

        return turn_mask
    if change == "node-pool":
        shared = nb201.Cell.forward

        def turn_node(on: bool) -> None:
            nb201.Cell.forward = shared if on else _cell_forward_per_edge

        return turn_node
    if change == "pool-norm":
        lean = pool_norm.PoolNorm.weighted

        def turn_lean(on: bool) -> None:
            pool_norm.PoolNorm.weighted = lean if on else (lambda self, x, weight: weight * self(x))

        return turn_lean
    fast_pool = pooling.MaxPool2d.forward

    def turn_pool(on: bool) -> None:
        pooling.MaxPool2d.forward = fast_pool if on else nn.MaxPool2d.forward

    return turn_pool


def _cell_forward_per_edge(cell: nb201.Cell, x: torch.Tensor) -> torch.Tensor:
    """NB201's cell before ``node-pool``: each supernet edge adds the node's sum so far into its output."""
    nodes = [x]
    for node in (1, 2, 3):
        total = None
        for edge, (target, source) in zip(cell.edges, nb201.EDGES, strict=True):
            if target == node and not isinstance(edge, Zero):
                if total is not None and isinstance(edge, MixedOp):
                    total = edge(nodes[source], into=total)
                else:
                    term = edge(nodes[source])
                    total = term if total is None else total + term
        nodes.append(total if total is not None else nodes[0] * 0)
    return nodes[3]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    changes = [
        "depthwise-grad",
        "max-pool",
        "pool-norm",
        "shared-relu",
        "separable-max",
        "two-phases",
        "per-tap-wgrad",
        "node-pool",
        "shared-mask",
    ]
    parser.add_argument("--change", choices=changes, required=True)
    parser.add_argument("--space", required=True)
    parser.add_argument("--modes", nargs="+", default=["we", "largest"], choices=["we", "ws", "largest"])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=64, help="a small batch shows per-op overhead")
    args = parser.parse_args()
    turn = switches(args.change)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    try:
        steps = {mode: ModeStep(args.space, mode, "drnas", args.batch_size, {}) for mode in args.modes}
    except UserError as error:  # an unknown space: one line, exit 2
        parser.error(str(error))
    for step in steps.values():
        step()
    times: dict[tuple[str, bool], list[float]] = {(m, on): [] for m in steps for on in (False, True)}
    for _ in range(args.rounds):
        for on in (False, True):
            turn(on)
            for mode, step in steps.items():
                step()
                times[(mode, on)].extend(step() for _ in range(2))
    for (mode, on), values in times.items():
        label = "with" if on else "without"
        print(f"{args.space} {mode} {label} {args.change}: median {statistics.median(values):.4f} s, "
              f"fastest {min(values):.4f} s")  # fmt: skip
    if {"we", "largest"} <= set(steps):
        for on in (False, True):
            ratio = statistics.median(times[("we", on)]) / statistics.median(times[("largest", on)])
            print(f"WE / largest {'with' if on else 'without'} {args.change}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
