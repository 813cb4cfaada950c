"""The NAS-Bench-201 topology space (15,625 architectures; reference §3.1).

Stem, then three stages of N cells (C, 2C, 4C channels) joined by ResNet reduction blocks. A cell
has 4 nodes and 6 edges (j -> i for j < i), each choosing none / skip_connect / nor_conv_1x1 /
nor_conv_3x3 / avg_pool_3x3; node i sums its incoming edges and the cell outputs node 3. All
cells share one set of choices. WE entangles nor_conv_1x1 into nor_conv_3x3 (the centre tap).

The supernet's cell convs follow the search settings (BN without affine, conv biases instead, as the
original); the discrete network is by default NAS-Bench-201's own (BN with affine and running statistics,
convs without bias: 1,288,506 parameters for the best cell at C=16, N=5 and 10 classes), see
``NB201Options.network``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from tanglenas_cli.benchmarks.nb201_keys import NB201_BENCHMARK
from tanglenas_cli.errors import UserError, check_name
from tanglenas_cli.layers.conv import Conv2d
from tanglenas_cli.layers.pooling import BoxAvgPool2d, skip_pool_mix
from tanglenas_cli.layers.relu import SharedReLU, shared_relu
from tanglenas_cli.nas.choices import Choice, WeightSource
from tanglenas_cli.nas.entangled import EntangledConv2d
from tanglenas_cli.nas.mixed_op import MixedOp, Zero
from tanglenas_cli.spaces import register_space
from tanglenas_cli.spaces.base import CostUnit, SearchSpace

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (node, input node)
EDGE_NAMES = tuple(f"edge{node}<-{source}" for node, source in EDGES)
_OP = r"([a-z0-9_]+)"
ARCH_STRING = re.compile(rf"^\|{_OP}~0\|\+\|{_OP}~0\|{_OP}~1\|\+\|{_OP}~0\|{_OP}~1\|{_OP}~2\|$")
NETWORK_KINDS = ("benchmark", "supernet")
"""How the discrete network's cells are built: as the benchmark's trained networks, or as the supernet's."""


def check_network_kind(space: str, network: str) -> None:
    """Raise a UserError unless ``network`` is one of NETWORK_KINDS."""
    check_name(f"{space} space_options.network", network, NETWORK_KINDS)


@dataclass
class NB201Options:
    """Settings of the NB201 space (search: C=16, N=5, BN without affine).

    ``affine`` and ``track_running_stats`` set the supernet's cell BN (convs have a bias when BN has no
    affine, as in the original). ``network`` sets the discrete network's cells (``train``, ``derive``'s
    limits, ``network_params``): ``benchmark`` is NAS-Bench-201's network (BN with affine and running
    statistics, convs without bias), ``supernet`` takes the supernet's settings above, so a one-hot
    supernet's cell weights copy one to one.
    """

    C: int = 16
    N: int = 5
    affine: bool = False
    track_running_stats: bool = True
    network: str = "benchmark"

    def check(self) -> None:
        if self.C < 1 or self.N < 1:
            raise UserError(f"nb201 needs C >= 1 and N >= 1, got C={self.C}, N={self.N}")
        check_network_kind("nb201", self.network)

    def network_options(self) -> NB201Options:
        """Return the settings of the discrete network's cells (see ``network``)."""
        if self.network == "benchmark":
            return replace(self, affine=True, track_running_stats=True)
        return self


def norm(channels: int, options: NB201Options) -> nn.BatchNorm2d:
    """Return the cells' batch norm."""
    return nn.BatchNorm2d(channels, affine=options.affine, track_running_stats=options.track_running_stats)


class ReLUConvBN(nn.Sequential):
    """ReLU - conv (bias when BN has no affine, as in the original) - BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, options: NB201Options) -> None:
        super().__init__(
            SharedReLU(),  # the edges leaving one node share its output
            Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=not options.affine),
            norm(c_out, options),
        )


class EntangledReLUConvBN(nn.Module):
    """nor_conv_3x3 and nor_conv_1x1 in one superposed 3x3 kernel; the bias is added unweighted."""

    def __init__(self, source: WeightSource, channels: int, options: NB201Options) -> None:
        super().__init__()
        self.conv = EntangledConv2d(
            source, channels, channels, [3, 1], bias=not options.affine, bias_weighted=False
        )
        self.norm = norm(channels, options)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.conv(shared_relu(x)))


def make_op(name: str, channels: int, options: NB201Options) -> nn.Module:
    """Return the discrete operation ``name`` (stride 1, channels in = out)."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "avg_pool_3x3":
        return BoxAvgPool2d(3)
    return ReLUConvBN(channels, channels, 3 if name == "nor_conv_3x3" else 1, 1, options)


class Cell(nn.Module):
    """Node i = sum of its incoming edges; the output is node 3. The supernet edges into one node share
    one fused skip + pool term (:func:`skip_pool_mix`: the average pool is linear)."""

    def __init__(self, edges: list[nn.Module]) -> None:
        super().__init__()
        self.edges = nn.ModuleList(edges)

    def forward(self, x: Tensor) -> Tensor:
        nodes = [x]
        for node in (1, 2, 3):
            total, owned, sources = None, False, []
            for edge, (target, source) in zip(self.edges, EDGES, strict=True):
                if target != node or isinstance(edge, Zero):
                    continue
                if isinstance(edge, MixedOp):
                    fused, term = edge.split_skip_pool(nodes[source])
                    sources += [fused] if fused is not None else []
                    if term is None:
                        continue
                    if owned:  # a mixed edge's terms are new tensors: the node's sum is added into one
                        total = total.add_(term)  # type: ignore[union-attr]
                        continue
                else:
                    term = edge(nodes[source])  # may be an input itself (skip_connect)
                owned = total is not None or isinstance(edge, MixedOp)
                total = term if total is None else total + term
            if sources:  # adds the node's sum into its own new tensor
                total = skip_pool_mix(sources, *([total] if total is not None else []))
            nodes.append(total if total is not None else nodes[0] * 0)
        return nodes[3]


class ResNetBlock(nn.Module):
    """The reduction block between stages: two ReLU-conv-BN (stride 2 first) + avg-pool/1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        affine = NB201Options(affine=True)
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, affine)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, affine)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """stem - N cells - block - N cells - block - N cells - BN/ReLU - pool - linear."""

    def __init__(self, in_channels: int, num_classes: int, options: NB201Options, make_cell) -> None:
        super().__init__()
        c = options.C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        layers: list[nn.Module] = []
        for stage, width in enumerate((c, 2 * c, 4 * c)):
            if stage > 0:
                layers.append(ResNetBlock(width // 2, width))
            layers.extend(make_cell(width) for _ in range(options.N))
        self.layers = nn.Sequential(*layers)
        pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.BatchNorm2d(4 * c), nn.ReLU(), pool, nn.Linear(4 * c, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.layers(self.stem(x)))


def parse_arch_string(text: str) -> dict[str, Any]:
    """Return the architecture of an NB201 string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
    match = ARCH_STRING.match(text.strip())
    if match is None or any(op not in OPS for op in match.groups()):
        raise UserError(
            f"not an NB201 architecture string: {text!r}; expected |op~0|+|op~0|op~1|+|op~0|op~1|op~2| "
            f"with ops from {', '.join(OPS)}"
        )
    return {"edges": dict(zip(EDGE_NAMES, match.groups(), strict=True))}


@register_space("nb201")
class NB201Space(SearchSpace):
    """NAS-Bench-201 topology space."""

    benchmark = NB201_BENCHMARK
    tiny_options: ClassVar[Mapping[str, Any]] = {"C": 4, "N": 1}
    scalable_groups = True
    Options = NB201Options
    default_dataset = "cifar10"

    def _network(self, make_edge) -> NB201Network:
        def make_cell(width: int) -> Cell:
            return Cell([make_edge(name, width) for name in EDGE_NAMES])

        in_channels, num_classes = self.data.input_shape[0], self.data.num_classes
        return NB201Network(in_channels, num_classes, self.options, make_cell)

    def build_supernet(self, entangle: bool = True, entangled_groups: str = "original") -> nn.Module:
        choices = {name: Choice(name, OPS) for name in EDGE_NAMES}
        scaled = entangled_groups == "scaled"
        conv3, conv1 = OPS.index("nor_conv_3x3"), OPS.index("nor_conv_1x1")

        def make_edge(name: str, width: int) -> nn.Module:
            choice = choices[name]
            if not entangle:
                return MixedOp(choice, [make_op(op, width, self.options) for op in OPS])
            group = EntangledReLUConvBN(choice.subset([conv3, conv1], scaled), width, self.options)
            candidates = [
                None if op.startswith("nor_conv") else make_op(op, width, self.options) for op in OPS
            ]
            return MixedOp(choice, candidates, groups=[([conv3, conv1], group)], scale_groups=scaled)

        network = self._network(make_edge)
        network.choices = nn.ModuleDict({name.replace("<-", "_from_"): c for name, c in choices.items()})
        return network

    def arch_of(self, picks: Mapping[str, Any]) -> dict[str, Any]:
        return {"edges": {name: picks[name] for name in EDGE_NAMES}}

    def picks_of(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self.validate(arch)["edges"])

    def validate(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(arch, str):
            return parse_arch_string(arch)
        edges = arch.get("edges") if isinstance(arch, Mapping) else None
        if not isinstance(edges, Mapping) or set(edges) != set(EDGE_NAMES):
            raise UserError(f"an nb201 architecture needs 'edges' with the keys {', '.join(EDGE_NAMES)}")
        bad = {name: op for name, op in edges.items() if op not in OPS}
        if bad:
            raise UserError(f"unknown nb201 operations {bad}; choose from {', '.join(OPS)}")
        return {"edges": {name: edges[name] for name in EDGE_NAMES}}

    def build_network(self, arch: Mapping[str, Any]) -> nn.Module:
        edges = self.validate(arch)["edges"]
        options = self.options.network_options()
        return self._network(lambda name, width: make_op(edges[name], width, options))

    def benchmark_key(self, arch: Mapping[str, Any]) -> str:
        edges = self.validate(arch)["edges"]
        nodes = []
        for node in (1, 2, 3):
            nodes.append("|" + "|".join(f"{edges[f'edge{node}<-{j}']}~{j}" for j in range(node)) + "|")
        return "+".join(nodes)

    def largest_architecture(self) -> dict[str, Any]:
        return {"edges": dict.fromkeys(EDGE_NAMES, "nor_conv_3x3")}

    def cost_units(self) -> list[CostUnit]:
        """Every edge of every cell: its operation on the cell's (width, height, width) input."""
        options = self.options.network_options()
        _, height, width = self.data.input_shape
        units = []
        for stage in range(3):
            channels = self.options.C * 2**stage
            shape = (1, channels, height, width)

            def build(op: str, channels: int = channels, shape: tuple = shape) -> tuple | None:
                return None if op == "none" else (make_op(op, channels, options), torch.zeros(shape))

            units += [CostUnit((name,), build) for _ in range(self.options.N) for name in EDGE_NAMES]
            height, width = (height + 1) // 2, (width + 1) // 2  # the stride-2 3x3 conv of the next block
        return units

    def ignores_input(self, arch: Mapping[str, Any]) -> bool:
        """Whether no path from the cell's input to its output avoids ``none`` (the cell outputs zeros)."""
        edges = self.validate(arch)["edges"]
        reached = {0}
        for (node, source), name in zip(EDGES, EDGE_NAMES, strict=True):  # sources come before their nodes
            if source in reached and edges[name] != "none":
                reached.add(node)
        return 3 not in reached

    def all_architectures(self) -> list[dict[str, Any]]:
        combinations = itertools.product(OPS, repeat=len(EDGE_NAMES))
        return [{"edges": dict(zip(EDGE_NAMES, ops, strict=True))} for ops in combinations]

    def describe(self, arch: Mapping[str, Any]) -> str:
        return self.benchmark_key(arch)
