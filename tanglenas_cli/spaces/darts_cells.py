"""DARTS cells and networks (reference §3.3, §8): the search supernet and NetworkCIFAR share one shape.

A cell preprocesses its two inputs to ``C`` channels, builds four intermediate nodes (each the sum of
operations on earlier states) and concatenates them (4 x C channels). The search cell has one edge
per (node, earlier state) pair, 14 in all; the discrete cell has the genotype's two per node.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tanglenas_cli.layers.conv import Conv2d
from tanglenas_cli.layers.phases import two_phases
from tanglenas_cli.layers.pool_norm import PoolNorm
from tanglenas_cli.layers.pooling import BoxAvgPool2d, MaxPool2d
from tanglenas_cli.layers.relu import SharedReLU, shared_relu
from tanglenas_cli.nas.choices import Choice
from tanglenas_cli.nas.mixed_op import MixedOp, Zero
from tanglenas_cli.spaces.darts_ops import DilConv, SepConv

OPS = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
NONE = OPS.index("none")
STEPS = 4  # intermediate nodes per cell
SEARCH_INPUTS: tuple[tuple[int, ...], ...] = tuple(tuple(range(node + 2)) for node in range(STEPS))
"""The states every intermediate node reads in the search cell (0, 1 = cell inputs); 14 edges in all."""

MakeOp = Callable[[int, int, int, int], nn.Module]
"""``make_op(position, input_state, channels, stride)`` returns the operation of one cell edge."""


class ReLUConvBN(nn.Sequential):
    """ReLU - 1x1 conv - BN: brings a cell input to the cell's channel count."""

    def __init__(self, c_in: int, c_out: int, affine: bool) -> None:
        super().__init__(
            SharedReLU(), nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out, affine=affine)
        )


class FactorizedReduce(nn.Module):
    """ReLU, two stride-2 1x1 convs on the input and on the input shifted by one pixel, concat, BN."""

    def __init__(self, c_in: int, c_out: int, affine: bool) -> None:
        super().__init__()
        self.conv_1 = Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: Tensor) -> Tensor:
        x = shared_relu(x)
        if self._one_conv(x):  # one 2-group conv of the two pixel phases the strided convs read
            weight = torch.cat([self.conv_1.weight, self.conv_2.weight])
            return self.bn(F.conv2d(two_phases(x), weight, groups=2))
        # padding one row/column before shifting keeps odd sizes aligned (same result for even sizes)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))

    def _one_conv(self, x: Tensor) -> bool:
        """Whether to run the two convs as one (``layers.phases``): equal halves, eager mode."""
        same_halves = self.conv_1.weight.shape == self.conv_2.weight.shape
        return same_halves and x.dim() == 4 and not torch.compiler.is_compiling()


def make_op(name: str, channels: int, stride: int, affine: bool, pool_norm: bool = False) -> nn.Module:
    """Return the discrete DARTS operation ``name`` (``pool_norm``: BN after pooling, as in the search)."""
    if name == "none":
        return Zero(stride)
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        pool: nn.Module
        if name == "max_pool_3x3":
            pool = MaxPool2d(3, stride=stride, padding=1)
        else:
            pool = BoxAvgPool2d(3, stride=stride)
        return PoolNorm(pool, nn.BatchNorm2d(channels, affine=False)) if pool_norm else pool
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels, affine)
    kind, size = name.rsplit("_", 1)
    kernel = int(size.split("x")[0])
    if kind == "sep_conv":
        return SepConv(channels, channels, kernel, stride, affine)
    if kind == "dil_conv":
        return DilConv(channels, channels, kernel, stride, affine)
    raise ValueError(f"unknown DARTS operation {name!r}")


def entangled_edge(choice: Choice, channels: int, stride: int, affine: bool, scaled: bool = False) -> MixedOp:
    """Return a WE edge: none, pools and skip apart; {sep 3x3, 5x5} and {dil 3x3, 5x5} superposed
    (``scaled``: each pair's output weighted by its total weight, see :class:`MixedOp`)."""
    separate: list[nn.Module | None] = [make_op(name, channels, stride, affine, True) for name in OPS[:4]]
    sep = SepConv(channels, channels, [3, 5], stride, affine, choice.subset([4, 5], scaled))
    dil = DilConv(channels, channels, [3, 5], stride, affine, choice.subset([6, 7], scaled))
    groups = [([4, 5], sep), ([6, 7], dil)]
    return MixedOp(choice, separate + [None] * 4, groups=groups, scale_groups=scaled)


def shared_edge(choice: Choice, channels: int, stride: int, affine: bool) -> MixedOp:
    """Return a WS edge: eight separate operations, outputs mixed."""
    return MixedOp(choice, [make_op(name, channels, stride, affine, True) for name in OPS])


def drop_path(x: Tensor, probability: float) -> Tensor:
    """Return ``x`` with whole samples zeroed with ``probability`` (the others scaled by 1 / keep)."""
    keep = 1.0 - probability
    mask = torch.empty(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * mask / keep


class Cell(nn.Module):
    """A DARTS cell; ``node_inputs[k]`` lists the state each of node k's operations reads, in op order."""

    def __init__(
        self,
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        reduction: bool,
        reduction_prev: bool,
        node_inputs: Sequence[Sequence[int]],
        make: MakeOp,
        affine: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(c_prev_prev, channels, affine)
        else:
            self.preprocess0 = ReLUConvBN(c_prev_prev, channels, affine)
        self.preprocess1 = ReLUConvBN(c_prev, channels, affine)
        self.node_inputs = [list(inputs) for inputs in node_inputs]
        ops = []
        for inputs in self.node_inputs:
            for state in inputs:
                stride = 2 if reduction and state < 2 else 1
                ops.append(make(len(ops), state, channels, stride))
        self.ops = nn.ModuleList(ops)
        self.out_channels = len(self.node_inputs) * channels

    def forward(self, s0: Tensor, s1: Tensor, drop_probability: float = 0.0) -> Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        position = 0
        for inputs in self.node_inputs:
            total: Tensor | None = None
            for state in inputs:
                op = self.ops[position]
                position += 1
                dropping = drop_probability > 0 and self.training and not isinstance(op, nn.Identity)
                if total is not None and isinstance(op, MixedOp) and not dropping:
                    total = op(states[state], into=total)  # a supernet edge adds into its own output
                    continue
                out = op(states[state])
                if dropping:
                    out = drop_path(out, drop_probability)
                total = out if total is None else total + out
            assert total is not None
            states.append(total)
        return torch.cat(states[2:], dim=1)


class AuxiliaryHead(nn.Module):
    """DARTS' AuxiliaryHeadCIFAR; pooling and conv sizes shrink for feature maps below 8x8."""

    def __init__(self, channels: int, num_classes: int, size: tuple[int, int]) -> None:
        super().__init__()
        pool = tuple(min(5, s) for s in size)
        pooled = tuple((s - p) // 3 + 1 for s, p in zip(size, pool, strict=True))
        kernel = tuple(min(2, s) for s in pooled)
        self.features = nn.Sequential(
            nn.ReLU(),
            nn.AvgPool2d(pool, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(channels, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.Conv2d(128, 768, kernel, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(),
        )
        flat = 768 * math.prod(s - k + 1 for s, k in zip(pooled, kernel, strict=True))
        self.classifier = nn.Linear(flat, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


def reduction_layers(layers: int) -> tuple[int, int]:
    """Return the indices of the two reduction cells (layers // 3 and 2 * layers // 3)."""
    return layers // 3, 2 * layers // 3


class DartsNetwork(nn.Module):
    """Stem conv3x3 (3C) + BN, ``layers`` cells, global average pool, linear; optional auxiliary head.

    In training mode with an auxiliary head the forward returns ``(logits, aux_logits)``.
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        channels: int,
        layers: int,
        cell_inputs: Callable[[bool], Sequence[Sequence[int]]],
        make: Callable[[bool], MakeOp],
        affine: bool,
        auxiliary_weight: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        in_channels, height, width = input_shape
        stem_channels = 3 * channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 3, padding=1, bias=False), nn.BatchNorm2d(stem_channels)
        )
        self.auxiliary_weight = auxiliary_weight
        self.drop_path = drop_path
        self.drop_probability = 0.0
        self.auxiliary_index = reduction_layers(layers)[1]
        self.auxiliary: AuxiliaryHead | None = None
        c_prev_prev, c_prev, current = stem_channels, stem_channels, channels
        reduction_prev = False
        cells = []
        for index in range(layers):
            reduction = index in reduction_layers(layers)
            if reduction:
                current *= 2
                height, width = math.ceil(height / 2), math.ceil(width / 2)
            inputs, make_edge = cell_inputs(reduction), make(reduction)
            cell = Cell(c_prev_prev, c_prev, current, reduction, reduction_prev, inputs, make_edge, affine)
            cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, cell.out_channels
            if index == self.auxiliary_index and auxiliary_weight > 0:
                self.auxiliary = AuxiliaryHead(c_prev, num_classes, (height, width))
        self.cells = nn.ModuleList(cells)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def set_epoch(self, epoch: int, total_epochs: int) -> None:
        """Ramp the drop-path probability linearly: ``drop_path * epoch / total_epochs``."""
        self.drop_probability = self.drop_path * epoch / max(total_epochs, 1)

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        s0 = s1 = self.stem(x)
        aux_logits = None
        for index, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_probability)
            if index == self.auxiliary_index and self.auxiliary is not None and self.training:
                aux_logits = self.auxiliary(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        if aux_logits is not None:
            return logits, aux_logits
        return logits
