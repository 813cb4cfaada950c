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

Tried and rejected (the tried version lives here; "on" is it):

- ``shifted-pool`` (with ``--compile``): under torch.compile the average pool and the skip + pool term
  as shifted sums of the zero-padded input (``shifted_average`` below), against the project's autograd
  functions traced as they are (box sums as depthwise convs). Inductor vectorizes the shifted sums,
  where its ``avg_pool2d`` backward without padding counts is a scalar loop, yet the step is slower.

Each round runs every mode in both versions (one unmeasured step, two measured); prints the median and
fastest step of each and WE / largest.

Usage: python benchmarks/speedup_ab.py --change depthwise-grad --space toy_cell [--rounds 6] [--batch-size 64]
       python benchmarks/speedup_ab.py --change max-pool --space darts --modes we [--rounds 4]
       python benchmarks/speedup_ab.py --change pool-norm --space darts --modes we [--rounds 4]
       python benchmarks/speedup_ab.py --change shifted-pool --space nb201 --compile [--rounds 8]

With ``--compile`` each mode's model is compiled once per version (minutes each on 2 cores).
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from tanglenas_cli.engine.profile import ModeStep
from tanglenas_cli.errors import UserError
from tanglenas_cli.layers import conv, pool_norm, pooling, relu
from tanglenas_cli.nas import mixed_op, superposition
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
    if change == "shifted-pool":
        traced_forward, traced_mix = pooling.BoxAvgPool2d.forward, pooling.skip_pool_mix

        def turn_shifted(on: bool) -> None:
            pooling.BoxAvgPool2d.forward = _shifted_box_average if on else traced_forward
            for module in (pooling, nb201, mixed_op):  # the modules that call skip_pool_mix by name
                module.skip_pool_mix = shifted_skip_pool_mix if on else traced_mix

        return turn_shifted
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


def shifted_average(x: torch.Tensor, kernel_size: int, stride: int = 1) -> torch.Tensor:
    """The "same" average pool without padding counts as shifted sums of the zero-padded input."""
    if stride != 1:
        return F.avg_pool2d(x, kernel_size, stride, kernel_size // 2, count_include_pad=False)
    pad, (height, width) = kernel_size // 2, x.shape[-2:]
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = sum(padded[..., :, shift : shift + width] for shift in range(kernel_size))
    box = sum(rows[..., shift : shift + height, :] for shift in range(kernel_size))
    counts = [_window_counts(size, kernel_size, x.device, x.dtype) for size in (height, width)]
    return box / (counts[0][:, None] * counts[1][None, :])


def _window_counts(size: int, kernel_size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """How many in-bounds positions each "same" window along an axis of length ``size`` covers."""
    index, pad = torch.arange(size, device=device), kernel_size // 2
    return ((index + pad).clamp(max=size - 1) - (index - pad).clamp(min=0) + 1).to(dtype)


def _shifted_box_average(pool: pooling.BoxAvgPool2d, x: torch.Tensor) -> torch.Tensor:
    return shifted_average(x, pool.kernel_size, pool.stride)


def shifted_skip_pool_mix(sources: list[pooling.SkipPoolSource], *addends: torch.Tensor) -> torch.Tensor:
    """``pooling.skip_pool_mix`` in plain ops: one shifted average of the pool-weighted sum (it is linear)."""
    pooled = shifted_average(sum(s.w_pool * s.x for s in sources), sources[0].pool.kernel_size)
    return sum((s.w_skip * s.x for s in sources), pooled) + sum(addends, torch.zeros_like(pooled))


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
        "shifted-pool",
    ]
    parser.add_argument("--change", choices=changes, required=True)
    parser.add_argument("--space", required=True)
    parser.add_argument("--modes", nargs="+", default=["we", "largest"], choices=["we", "ws", "largest"])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=64, help="a small batch shows per-op overhead")
    parser.add_argument("--compile", action="store_true", help="the torch.compile'd steps")
    args = parser.parse_args()
    turn = switches(args.change)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    try:
        steps = {
            mode: ModeStep(args.space, mode, "drnas", args.batch_size, {}, compile=args.compile)
            for mode in args.modes
        }
    except UserError as error:  # an unknown space: one line, exit 2
        parser.error(str(error))
    for on in (False, True):  # under --compile, each version's first steps compile it
        turn(on)
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
