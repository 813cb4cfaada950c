"""The toy cell space of TangleNAS (Fashion-MNIST, 4,096 architectures; reference §3.4).

Three cells (reduction, normal, reduction), each with two nodes and three edges
(node1 <- input, node2 <- input, node2 <- node1) choosing among sep/dil convs 3x3/5x5. Both
reduction cells share one set of choices. WE entangles {sep 3x3, sep 5x5} and {dil 3x3, dil 5x5}.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from tanglenas_cli.benchmarks.toy_keys import TOY_CELL_BENCHMARK
from tanglenas_cli.errors import UserError
from tanglenas_cli.layers.relu import SharedReLU
from tanglenas_cli.nas.choices import Choice
from tanglenas_cli.nas.mixed_op import MixedOp
from tanglenas_cli.spaces import register_space
from tanglenas_cli.spaces.base import CostUnit, DataShape, SearchSpace
from tanglenas_cli.spaces.darts_ops import DilConv, SepConv

OPS = ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
EDGE_INPUTS = (0, 0, 1)  # the node each edge reads: 0 = cell input, 1 = node 1
CELL_TYPES = ("normal", "reduce")


def make_op(name: str, c_in: int, c_out: int, stride: int, affine: bool) -> nn.Module:
    """Return the discrete operation ``name``."""
    kind, kernel = name.rsplit("_", 1)
    size = int(kernel.split("x")[0])
    if kind == "sep_conv":
        return SepConv(c_in, c_out, size, stride, affine)
    return DilConv(c_in, c_out, size, stride, affine)


def entangled_edge(
    choice: Choice, c_in: int, c_out: int, stride: int, affine: bool, scaled: bool = False
) -> MixedOp:
    """Return an edge whose sep and dil pairs each share one superposed 5x5 kernel (``scaled``: each
    pair's output weighted by its total weight, see :class:`MixedOp`)."""
    sep = SepConv(c_in, c_out, [3, 5], stride, affine, choice.subset([0, 1], scaled))
    dil = DilConv(c_in, c_out, [3, 5], stride, affine, choice.subset([2, 3], scaled))
    return MixedOp(choice, [None] * 4, groups=[([0, 1], sep), ([2, 3], dil)], scale_groups=scaled)


def shared_edge(choice: Choice, c_in: int, c_out: int, stride: int, affine: bool) -> MixedOp:
    """Return a weight-sharing edge: four separate operations."""
    return MixedOp(choice, [make_op(op, c_in, c_out, stride, affine) for op in OPS])


class ToyCell(nn.Module):
    """ReLU-1x1 conv-BN to C channels, then two nodes; the output concatenates them (2 x C)."""

    def __init__(self, c_prev: int, c: int, edges: list[nn.Module], affine: bool) -> None:
        super().__init__()
        self.preprocess = nn.Sequential(
            SharedReLU(), nn.Conv2d(c_prev, c, 1, bias=False), nn.BatchNorm2d(c, affine=affine)
        )
        self.edges = nn.ModuleList(edges)

    def forward(self, x: Tensor) -> Tensor:
        x = self.preprocess(x)
        node1 = self.edges[0](x)
        second = self.edges[2]
        if isinstance(second, MixedOp):  # a supernet edge adds into its own output
            node2 = second(node1, into=self.edges[1](x))
        else:
            node2 = self.edges[1](x) + second(node1)
        return torch.cat([node1, node2], dim=1)


class ToyCellNetwork(nn.Module):
    """reduce(C) - normal(C) - reduce(2C), dropout after each, max-pool, MLP head (hidden 4C)."""

    def __init__(
        self, cells: list[ToyCell], flat_features: int, hidden: int, num_classes: int, dropout: float
    ) -> None:
        super().__init__()
        self.cells = nn.ModuleList(cells)
        self.dropout = nn.Dropout(dropout)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat_features, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        for cell in self.cells:
            x = self.dropout(cell(x))
        return self.head(self.pool(x))


@dataclass
class ToyCellOptions:
    """Settings of the toy cell space."""

    C: int = 32
    affine: bool = False  # every batch norm of the cells (preprocessing and operations)
    dropout: float = 0.2

    def check(self) -> None:
        if self.C < 1 or not 0 <= self.dropout < 1:
            raise UserError(
                f"toy_cell needs C >= 1 and 0 <= dropout < 1, got C={self.C}, dropout={self.dropout}"
            )


@register_space("toy_cell")
class ToyCellSpace(SearchSpace):
    """TangleNAS toy cell space."""

    benchmark = TOY_CELL_BENCHMARK
    profile_data = DataShape(num_classes=10, input_shape=(1, 28, 28))
    tiny_data = DataShape(num_classes=10, input_shape=(1, 16, 16))
    tiny_options: ClassVar[Mapping[str, Any]] = {"C": 4}
    scalable_groups = True
    Options = ToyCellOptions
    default_dataset = "fashion_mnist"

    def _plan(self) -> list[tuple[str, int, int, bool]]:
        """Return (cell type, c_in, C, reduction) for the three cells."""
        c = self.options.C
        c_in = self.data.input_shape[0]
        return [("reduce", c_in, c, True), ("normal", 2 * c, c, False), ("reduce", 2 * c, 2 * c, True)]

    def _flat_features(self) -> int:
        _, height, width = self.data.input_shape
        for _ in range(2):  # two stride-2 reduction cells (3x3 kernels, padding 1)
            height, width = (height + 1) // 2, (width + 1) // 2
        if height < 2 or width < 2:
            raise UserError(f"toy_cell needs inputs of at least 5x5 pixels, got {self.data.input_shape[1:]}")
        return 4 * self.options.C * (height // 2) * (width // 2)

    def _network(self, make_edge) -> ToyCellNetwork:
        cells = []
        for cell_type, c_in, c, reduction in self._plan():
            edges = []
            for edge, source in enumerate(EDGE_INPUTS):
                stride = 2 if reduction and source == 0 else 1
                edges.append(make_edge(cell_type, edge, c, stride))
            cells.append(ToyCell(c_in, c, edges, self.options.affine))
        hidden = 4 * self.options.C
        return ToyCellNetwork(
            cells, self._flat_features(), hidden, self.data.num_classes, self.options.dropout
        )

    def build_supernet(self, entangle: bool = True, entangled_groups: str = "original") -> nn.Module:
        choices = {f"{t}.edge{e}": Choice(f"{t}.edge{e}", OPS) for t in CELL_TYPES for e in range(3)}
        build = partial(entangled_edge, scaled=entangled_groups == "scaled") if entangle else shared_edge

        def make_edge(cell_type: str, edge: int, c: int, stride: int) -> nn.Module:
            return build(choices[f"{cell_type}.edge{edge}"], c, c, stride, self.options.affine)

        network = self._network(make_edge)
        network.choices = nn.ModuleDict({name.replace(".", "_"): c for name, c in choices.items()})
        return network

    def arch_of(self, picks: Mapping[str, Any]) -> dict[str, Any]:
        return {t: [[picks[f"{t}.edge{e}"], EDGE_INPUTS[e]] for e in range(3)] for t in CELL_TYPES}

    def picks_of(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        arch = self.validate(arch)
        return {f"{t}.edge{e}": arch[t][e][0] for t in CELL_TYPES for e in range(3)}

    def validate(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(arch, Mapping) or set(arch) != set(CELL_TYPES):
            raise UserError(f"a toy_cell architecture needs exactly the keys {list(CELL_TYPES)}")
        result = {}
        for cell_type in CELL_TYPES:
            edges = arch[cell_type]
            if not isinstance(edges, list) or len(edges) != 3:
                raise UserError(f"toy_cell {cell_type!r} needs 3 edges [op, input], got {edges!r}")
            normalised = []
            for edge, (expected_input, item) in enumerate(zip(EDGE_INPUTS, edges, strict=True)):
                if not isinstance(item, list | tuple) or len(item) != 2 or item[0] not in OPS:
                    raise UserError(
                        f"toy_cell {cell_type} edge {edge}: expected [op, input] with op in {OPS}"
                    )
                if item[1] != expected_input:
                    raise UserError(
                        f"toy_cell {cell_type} edge {edge} reads node {expected_input}, not {item[1]}"
                    )
                normalised.append([item[0], expected_input])
            result[cell_type] = normalised
        return result

    def build_network(self, arch: Mapping[str, Any]) -> nn.Module:
        arch = self.validate(arch)

        def make_edge(cell_type: str, edge: int, c: int, stride: int) -> nn.Module:
            return make_op(arch[cell_type][edge][0], c, c, stride, self.options.affine)

        return self._network(make_edge)

    def benchmark_key(self, arch: Mapping[str, Any]) -> str:
        arch = self.validate(arch)
        normal = repr([tuple(e) for e in arch["normal"]])
        reduce = repr([tuple(e) for e in arch["reduce"]])
        return (
            f"Genotype(normal={normal}, normal_concat=range(1, 3), "
            f"reduce={reduce}, reduce_concat=range(1, 3))"
        )

    def largest_architecture(self) -> dict[str, Any]:
        return {t: [["sep_conv_5x5", source] for source in EDGE_INPUTS] for t in CELL_TYPES}

    def cost_units(self) -> list[CostUnit]:
        """Every edge of every cell: its operation on its input (the cell's preprocessed input, or node 1)."""
        _, height, width = self.data.input_shape
        units = []
        for cell_type, _, c, reduction in self._plan():
            out_size = ((height + 1) // 2, (width + 1) // 2) if reduction else (height, width)
            for edge, source in enumerate(EDGE_INPUTS):
                stride = 2 if reduction and source == 0 else 1
                shape = (1, c, height, width) if source == 0 else (1, c, *out_size)

                def build(op: str, c: int = c, stride: int = stride, shape: tuple = shape) -> tuple:
                    return make_op(op, c, c, stride, self.options.affine), torch.zeros(shape)

                units.append(CostUnit((f"{cell_type}.edge{edge}",), build))
            height, width = out_size
        return units

    def all_architectures(self) -> list[dict[str, Any]]:
        result = []
        for ops in itertools.product(OPS, repeat=6):
            result.append(
                {t: [[ops[3 * i + e], EDGE_INPUTS[e]] for e in range(3)] for i, t in enumerate(CELL_TYPES)}
            )
        return result

    def describe(self, arch: Mapping[str, Any]) -> str:
        arch = self.validate(arch)
        return " | ".join(f"{t}: " + ", ".join(f"{op}@{i}" for op, i in arch[t]) for t in CELL_TYPES)
