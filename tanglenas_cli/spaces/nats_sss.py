"""The NATS-Bench size space (32,768 architectures; reference §3.2).

Five layers -- cell, ResNet block (stride 2), cell, ResNet block, cell -- each choosing its width
from {8, ..., 64}; the cell topology is fixed to NB201's best cell. WE: widths are channel prefixes
of one 64-wide weight per conv and batch norm; a conv between two layers takes the joint
(input width x output width) candidates. The architecture key is the NATS size string ``8:16:...``.

A skip edge between two different widths is a 1x1 conv + BN with no ReLU before it, as NATS-Bench's
(xautodl's ``FactorizedReduce`` at stride 1); between equal widths the discrete network uses the identity.
In the supernet a skip edge is the identity only where both ends share one width choice (the first
cell, whose input is the stem); elsewhere it is the 1x1 conv + BN, since the two widths are separate
choices. WS: one separate module per width, each reading the zero-padded 64-channel input.

The discrete network is by default NATS-Bench's own (every BN with affine and running statistics, convs
without bias); ``NATSSizeOptions.network`` keeps the supernet's cell settings instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from tanglenas_cli.benchmarks.nb201_keys import NATS_SSS_BENCHMARK
from tanglenas_cli.errors import UserError
from tanglenas_cli.layers.conv import Conv2d
from tanglenas_cli.nas.choices import Choice, JointChoice, WeightSource
from tanglenas_cli.nas.entangled import EntangledConv2d, EntangledLinear
from tanglenas_cli.nas.entangled_norm import EntangledBatchNorm2d
from tanglenas_cli.nas.mixed_op import MixedOp
from tanglenas_cli.spaces import register_space
from tanglenas_cli.spaces.base import CostUnit, SearchSpace
from tanglenas_cli.spaces.nb201 import EDGES, Cell, check_network_kind

WIDTHS = (8, 16, 24, 32, 40, 48, 56, 64)
MAX_WIDTH = max(WIDTHS)
LAYERS = 5
REDUCTIONS = (1, 3)  # ResNet blocks; the other layers are cells
# NB201's best cell, on NB201's edges (node, input node): the op of each edge
CELL = tuple(
    (*edge, op) for edge, op in zip(EDGES, ("conv", "conv", "conv", "skip", "conv", "conv"), strict=True)
)


@dataclass
class NATSSizeOptions:
    """Settings of the NATS size space.

    ``affine`` and ``track_running_stats`` set the supernet's cell BN (convs without bias). ``network`` sets
    the discrete network's cells: ``benchmark`` is NATS-Bench's network (BN with affine and running
    statistics), ``supernet`` takes the supernet's settings, so a one-hot supernet's weights copy one to one.
    """

    affine: bool = False
    track_running_stats: bool = True
    network: str = "benchmark"

    def check(self) -> None:
        check_network_kind("nats_sss", self.network)

    def network_norm(self) -> tuple[bool, bool]:
        """Return (affine, track_running_stats) of the discrete network's cell BN (see ``network``)."""
        if self.network == "benchmark":
            return True, True
        return self.affine, self.track_running_stats


class ReLUConvBN(nn.Sequential):
    """ReLU - conv (no bias) - BN; used discrete and, with entangled parts, in the supernet."""


class ConvBN(nn.Sequential):
    """1x1 conv (no bias) - BN, no ReLU: the skip edge between two different widths."""


def conv_bn(
    c_in: int, c_out: int, kernel: int, stride: int, affine: bool, track: bool, relu: bool = True
) -> nn.Sequential:
    """Return a discrete ReLU-conv-BN (``relu``), else conv-BN."""
    conv = Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False)
    norm = nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track)
    return ReLUConvBN(nn.ReLU(), conv, norm) if relu else ConvBN(conv, norm)


class ResNetBlock(nn.Module):
    """conv_a (stride 2) - conv_b, plus avg-pool + 1x1 conv shortcut."""

    def __init__(self, conv_a: nn.Module, conv_b: nn.Module, shortcut_conv: nn.Module) -> None:
        super().__init__()
        self.conv_a, self.conv_b = conv_a, conv_b
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), shortcut_conv)

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class SizeNetwork(nn.Module):
    """stem - five layers - BN/ReLU - pool - linear."""

    def __init__(
        self, stem: nn.Module, layers: list[nn.Module], last_norm: nn.Module, classifier: nn.Module
    ) -> None:
        super().__init__()
        self.stem = stem
        self.layers = nn.Sequential(*layers)
        self.last_norm = last_norm
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        x = self.last_norm(self.layers(self.stem(x))).relu()
        return self.classifier(x.mean(dim=(2, 3)))


class _Parts:
    """Builds the layers of one kind of network from per-layer widths (Choices, or ints when discrete)."""

    def __init__(self, space: NATSSizeSpace) -> None:
        self.space = space

    def same(self, a: Any, b: Any) -> bool:
        """Whether two layers have one width (the skip edge between them is then the identity)."""
        return a is b

    def cell_norm(self, cell: bool) -> tuple[bool, bool]:
        """Return (affine, track_running_stats) of a cell's (``cell``) or a ResNet block's BN."""
        return (self.space.options.affine if cell else True), self.space.options.track_running_stats


class _EntangledParts(_Parts):
    """WE: every conv and batch norm is one 64-wide tensor whose widths are channel prefixes."""

    def _conv_source(self, prev: Choice, cur: Choice) -> tuple[WeightSource, list[int], list[int]]:
        if prev is cur:
            return cur, list(WIDTHS), list(WIDTHS)
        joint = JointChoice([prev, cur])
        ins, outs = (list(v) for v in zip(*joint.candidates, strict=True))
        return joint, ins, outs

    def conv_bn(self, prev: Choice, cur: Choice, kernel: int, stride: int, cell: bool = True,
                relu: bool = True) -> nn.Module:  # fmt: skip
        source, ins, outs = self._conv_source(prev, cur)
        affine, track = self.cell_norm(cell)
        conv = EntangledConv2d(source, ins, outs, kernel, stride=stride)
        norm = EntangledBatchNorm2d(cur, WIDTHS, affine=affine, track_running_stats=track)
        return ReLUConvBN(nn.ReLU(), conv, norm) if relu else ConvBN(conv, norm)

    def shortcut(self, prev: Choice, cur: Choice) -> nn.Module:
        source, ins, outs = self._conv_source(prev, cur)
        return EntangledConv2d(source, ins, outs, 1)

    def stem(self, first: Choice) -> nn.Module:
        in_channels = self.space.data.input_shape[0]
        return nn.Sequential(
            EntangledConv2d(first, in_channels, list(WIDTHS), 3),
            EntangledBatchNorm2d(first, WIDTHS, affine=True),
        )

    def last_norm(self, last: Choice) -> nn.Module:
        return EntangledBatchNorm2d(last, WIDTHS, affine=True)

    def classifier(self, last: Choice) -> nn.Module:
        return EntangledLinear(last, list(WIDTHS), self.space.data.num_classes, bias_weighted=False)


class PadChannels(nn.Module):
    """Zero-pads (or cuts) dimension 1 to ``width`` channels: WS candidates all read the widest input."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width

    def forward(self, x: Tensor) -> Tensor:
        missing = self.width - x.shape[1]
        if missing > 0:
            return torch.cat([x, x.new_zeros(x.shape[0], missing, *x.shape[2:])], dim=1)
        return x[:, : self.width]


class _SharedParts(_Parts):
    """WS: one separate module per candidate width; outputs are zero-padded to 64 and mixed."""

    def conv_bn(self, prev: Choice, cur: Choice, kernel: int, stride: int, cell: bool = True,
                relu: bool = True) -> nn.Module:  # fmt: skip
        affine, track = self.cell_norm(cell)
        ops = [
            nn.Sequential(
                PadChannels(MAX_WIDTH), conv_bn(MAX_WIDTH, width, kernel, stride, affine, track, relu)
            )
            for width in WIDTHS
        ]
        return MixedOp(cur, ops, pad_dim=1)

    def shortcut(self, prev: Choice, cur: Choice) -> nn.Module:
        ops = [nn.Sequential(PadChannels(MAX_WIDTH), nn.Conv2d(MAX_WIDTH, w, 1, bias=False)) for w in WIDTHS]
        return MixedOp(cur, ops, pad_dim=1)

    def stem(self, first: Choice) -> nn.Module:
        in_channels = self.space.data.input_shape[0]
        ops = [
            nn.Sequential(nn.Conv2d(in_channels, w, 3, padding=1, bias=False), nn.BatchNorm2d(w))
            for w in WIDTHS
        ]
        return MixedOp(first, ops, pad_dim=1)

    def last_norm(self, last: Choice) -> nn.Module:
        return MixedOp(last, [nn.Sequential(PadChannels(w), nn.BatchNorm2d(w)) for w in WIDTHS], pad_dim=1)

    def classifier(self, last: Choice) -> nn.Module:
        classes = self.space.data.num_classes
        return MixedOp(last, [_FirstFeatures(w, nn.Linear(w, classes)) for w in WIDTHS])


class _DiscreteParts(_Parts):
    """The discrete network: plain layers of the given widths (NATS-Bench's own by default)."""

    def same(self, a: int, b: int) -> bool:
        return a == b

    def cell_norm(self, cell: bool) -> tuple[bool, bool]:
        return self.space.options.network_norm() if cell else (True, True)

    def conv_bn(self, c_in: int, c_out: int, kernel: int, stride: int, cell: bool = True,
                relu: bool = True) -> nn.Module:  # fmt: skip
        return conv_bn(c_in, c_out, kernel, stride, *self.cell_norm(cell), relu)

    def shortcut(self, c_in: int, c_out: int) -> nn.Module:
        return nn.Conv2d(c_in, c_out, 1, bias=False)

    def stem(self, width: int) -> nn.Module:
        conv = nn.Conv2d(self.space.data.input_shape[0], width, 3, padding=1, bias=False)
        return nn.Sequential(conv, nn.BatchNorm2d(width))

    def last_norm(self, width: int) -> nn.Module:
        return nn.BatchNorm2d(width)

    def classifier(self, width: int) -> nn.Module:
        return nn.Linear(width, self.space.data.num_classes)


def _layer(parts: _Parts, index: int, prev: Any, cur: Any) -> nn.Module:
    """Return layer ``index`` (a cell, or a ResNet block) from width ``prev`` to width ``cur``."""
    if index in REDUCTIONS:
        convs = parts.conv_bn(prev, cur, 3, 2, cell=False), parts.conv_bn(cur, cur, 3, 1, cell=False)
        return ResNetBlock(*convs, parts.shortcut(prev, cur))
    edges: list[nn.Module] = []
    for _, src, op in CELL:
        first = prev if src == 0 else cur
        if op == "conv":
            edges.append(parts.conv_bn(first, cur, 3, 1))
        elif parts.same(first, cur):
            edges.append(nn.Identity())
        else:
            edges.append(parts.conv_bn(first, cur, 1, 1, relu=False))
    return Cell(edges)


def _assemble(parts: _Parts, widths: list[Any]) -> SizeNetwork:
    """Return the size network with layer ``i`` of width ``widths[i]``, its layers built by ``parts``."""
    layers = [_layer(parts, i, widths[max(i - 1, 0)], cur) for i, cur in enumerate(widths)]
    return SizeNetwork(
        parts.stem(widths[0]), layers, parts.last_norm(widths[-1]), parts.classifier(widths[-1])
    )


class _FirstFeatures(nn.Module):
    """Feeds the first ``width`` features to ``module``."""

    def __init__(self, width: int, module: nn.Module) -> None:
        super().__init__()
        self.width, self.module = width, module

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x[..., : self.width])


@register_space("nats_sss")
class NATSSizeSpace(SearchSpace):
    """NATS-Bench size search space (channel widths of 5 layers)."""

    benchmark = NATS_SSS_BENCHMARK
    Options = NATSSizeOptions
    default_dataset = "cifar10"

    # -- supernet -------------------------------------------------------------------------------
    def build_supernet(self, entangle: bool = True) -> nn.Module:
        choices = [Choice(f"channels{i}", WIDTHS) for i in range(LAYERS)]
        network = _assemble(_EntangledParts(self) if entangle else _SharedParts(self), choices)
        network.choices = nn.ModuleDict({c.name: c for c in choices})
        return network

    # -- discrete network -----------------------------------------------------------------------
    def build_network(self, arch: Mapping[str, Any]) -> nn.Module:
        return _assemble(_DiscreteParts(self), self.validate(arch)["channels"])

    # -- architectures ------------------------------------------------------------------------
    def arch_of(self, picks: Mapping[str, Any]) -> dict[str, Any]:
        return {"channels": [picks[f"channels{i}"] for i in range(LAYERS)]}

    def picks_of(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        return {f"channels{i}": channels for i, channels in enumerate(self.validate(arch)["channels"])}

    def validate(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(arch, str):
            try:
                arch = {"channels": [int(v) for v in arch.split(":")]}
            except ValueError:
                raise UserError(
                    f"not a NATS size string: {arch!r}; expected 5 widths like 8:16:32:64:64"
                ) from None
        channels = arch.get("channels") if isinstance(arch, Mapping) else None
        if (
            not isinstance(channels, list)
            or len(channels) != LAYERS
            or any(c not in WIDTHS for c in channels)
        ):
            raise UserError(f"a nats_sss architecture needs 'channels': {LAYERS} widths from {list(WIDTHS)}")
        return {"channels": [int(c) for c in channels]}

    def benchmark_key(self, arch: Mapping[str, Any]) -> str:
        return ":".join(str(c) for c in self.validate(arch)["channels"])

    def largest_architecture(self) -> dict[str, Any]:
        return {"channels": [MAX_WIDTH] * LAYERS}

    def cost_units(self) -> list[CostUnit]:
        """The stem, every layer (from the previous layer's width to its own) and the head."""
        parts = _DiscreteParts(self)
        c_in, height, width = self.data.input_shape
        stem_input = (1, c_in, height, width)
        units = [CostUnit(("channels0",), lambda w: (parts.stem(w), torch.zeros(stem_input)))]
        for i in range(LAYERS):
            size = (height, width)

            def layer(*picks: int, i: int = i, size: tuple = size) -> tuple:
                prev, cur = (picks[0], picks[0]) if len(picks) == 1 else picks
                return _layer(parts, i, prev, cur), torch.zeros(1, prev, *size)

            names = ("channels0",) if i == 0 else (f"channels{i - 1}", f"channels{i}")
            units.append(CostUnit(names, layer))
            if i in REDUCTIONS:
                height, width = (height + 1) // 2, (width + 1) // 2
        last, size = f"channels{LAYERS - 1}", (height, width)
        units.append(CostUnit((last,), lambda w: (parts.last_norm(w), torch.zeros(1, w, *size))))
        units.append(CostUnit((last,), lambda w: (parts.classifier(w), torch.zeros(1, w))))
        return units

    def all_architectures(self) -> list[dict[str, Any]]:
        return [{"channels": list(c)} for c in itertools.product(WIDTHS, repeat=LAYERS)]

    def describe(self, arch: Mapping[str, Any]) -> str:
        return self.benchmark_key(arch)
