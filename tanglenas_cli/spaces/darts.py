"""The DARTS cell space (CIFAR-10; reference §3.3, §5, §8).

Normal and reduction cells of four intermediate nodes; every edge chooses among eight operations.
One Choice per edge and cell type (``normal.edge0`` .. ``reduce.edge13``), shared by all cells of that
type. WE superposes {sep_conv 3x3, 5x5} and {dil_conv 3x3, 5x5}; none, pools and skip stay separate.

An architecture is ``{"normal": [[op, input], ...], "reduce": [...]}`` with two pairs per node and
inputs numbered like DARTS (0, 1 = cell inputs, 2..5 = intermediate nodes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from tanglenas_cli.errors import UserError
from tanglenas_cli.nas.choices import Choice
from tanglenas_cli.spaces import register_space
from tanglenas_cli.spaces.base import CostUnit, SearchSpace
from tanglenas_cli.spaces.darts_cells import (
    NONE,
    OPS,
    SEARCH_INPUTS,
    STEPS,
    DartsNetwork,
    MakeOp,
    entangled_edge,
    make_op,
    reduction_layers,
    shared_edge,
)

CELL_TYPES = ("normal", "reduce")
NODE_EDGES: tuple[tuple[tuple[int, int], ...], ...] = tuple(
    tuple((sum(len(earlier) for earlier in SEARCH_INPUTS[:node]) + state, state) for state in inputs)
    for node, inputs in enumerate(SEARCH_INPUTS)
)
"""Per intermediate node, its (edge number, input state) pairs in the search cell."""

SHORT_NAMES = {
    "max": "max_pool_3x3",
    "avg": "avg_pool_3x3",
    "skip": "skip_connect",
    "sep3": "sep_conv_3x3",
    "sep5": "sep_conv_5x5",
    "dil3": "dil_conv_3x3",
    "dil5": "dil_conv_5x5",
}
# The genotypes found by the paper's DARTS searches (reference §5): "op@input", nodes split by "|".
NAMED_GENOTYPES: dict[str, tuple[str, str]] = {
    "arch_drnas_we2_0_5": (
        "sep3@1 sep5@0 | sep3@2 sep5@0 | dil3@2 skip@0 | skip@1 dil3@3",
        "sep3@0 dil5@1 | sep3@0 dil3@1 | sep3@3 dil3@1 | skip@2 sep5@4",
    ),
    "arch_drnas_we2_0_8": (
        "sep3@1 dil3@0 | dil5@2 sep3@0 | dil3@2 skip@0 | sep3@0 sep3@4",
        "dil3@0 dil3@1 | skip@2 dil3@0 | skip@2 dil3@0 | sep5@3 sep5@1",
    ),
    "arch_drnas_ws_0_5": (
        "sep3@0 sep3@1 | skip@0 sep5@1 | skip@0 skip@1 | sep5@0 sep5@4",
        "sep5@1 max@0 | max@0 dil5@2 | max@0 skip@2 | max@0 skip@2",
    ),
    "arch_drnas_ws_0_8": (
        "sep3@1 sep3@0 | sep3@2 sep3@0 | sep5@0 dil3@2 | skip@0 sep5@4",
        "sep5@1 max@0 | max@1 max@0 | dil5@3 sep3@0 | dil5@3 dil3@2",
    ),
    "arch_rs_spos": ("dil5@0 sep5@1 | dil3@1 skip@2 | avg@0 skip@3 | sep5@0 sep5@1",) * 2,
    "arch_re_spos_0_5": ("sep5@0 sep5@1 | dil5@0 avg@2 | sep5@0 max@1 | dil5@1 skip@3",) * 2,
    "arch_re_spos_0_8": ("sep5@0 sep5@1 | dil3@0 max@1 | sep5@1 skip@2 | dil5@2 skip@3",) * 2,
}


def parse_cell(text: str) -> list[list[Any]]:
    """Return the ``[op, input]`` pairs of a cell written as ``"sep3@1 sep5@0 | ..."``."""
    pairs: list[list[Any]] = []
    for item in text.replace("|", " ").split():
        short, _, state = item.partition("@")
        pairs.append([SHORT_NAMES[short], int(state)])
    return pairs


def genotype_string(arch: Mapping[str, Any]) -> str:
    """Return the repr a DARTS ``Genotype`` namedtuple prints for ``arch``."""
    normal = repr([(op, state) for op, state in arch["normal"]])
    reduce = repr([(op, state) for op, state in arch["reduce"]])
    end = STEPS + 2
    return (
        f"Genotype(normal={normal}, normal_concat=range(2, {end}), "
        f"reduce={reduce}, reduce_concat=range(2, {end}))"
    )


def best_op(weights: Sequence[float]) -> int:
    """Return the index of the largest weight other than ``none`` (the first on ties, as DARTS)."""
    return max((k for k in range(len(weights)) if k != NONE), key=lambda k: weights[k])


@dataclass
class DartsOptions:
    """Settings of the DARTS space (search defaults; the training preset sets the evaluation ones)."""

    C: int = 16
    layers: int = 8
    affine: bool = False  # batch norms of cells (search: False; trained network: True)
    auxiliary_weight: float = 0.0  # > 0 adds DARTS' auxiliary head to the trained network
    drop_path: float = 0.0  # final drop-path probability of the trained network (ramped per epoch)

    def check(self) -> None:
        if self.C < 1 or self.layers < 1:
            raise UserError(f"darts needs C >= 1 and layers >= 1, got C={self.C}, layers={self.layers}")
        if self.auxiliary_weight < 0 or not 0 <= self.drop_path < 1:
            raise UserError(
                f"darts needs auxiliary_weight >= 0 and 0 <= drop_path < 1, "
                f"got {self.auxiliary_weight}, {self.drop_path}"
            )


@register_space("darts")
class DartsSpace(SearchSpace):
    """The DARTS cell space."""

    tiny_options: ClassVar[Mapping[str, Any]] = {"C": 4, "layers": 3}
    scalable_groups = True
    Options = DartsOptions
    default_dataset = "cifar10"

    def _network(
        self,
        cell_inputs: Callable[[bool], Sequence[Sequence[int]]],
        make: Callable[[bool], MakeOp],
        auxiliary_weight: float,
        drop_path: float,
    ) -> DartsNetwork:
        return DartsNetwork(
            self.data.input_shape,
            self.data.num_classes,
            self.options.C,
            self.options.layers,
            cell_inputs,
            make,
            self.options.affine,
            auxiliary_weight=auxiliary_weight,
            drop_path=drop_path,
        )

    def build_supernet(self, entangle: bool = True, entangled_groups: str = "original") -> nn.Module:
        choices = {f"{t}.edge{e}": Choice(f"{t}.edge{e}", OPS) for t in CELL_TYPES for e in range(14)}
        build = partial(entangled_edge, scaled=entangled_groups == "scaled") if entangle else shared_edge
        affine = self.options.affine

        def make(reduction: bool) -> MakeOp:
            cell_type = "reduce" if reduction else "normal"
            return lambda edge, state, c, stride: build(choices[f"{cell_type}.edge{edge}"], c, stride, affine)

        network = self._network(lambda reduction: SEARCH_INPUTS, make, 0.0, 0.0)
        network.choices = nn.ModuleDict({name.replace(".", "_"): c for name, c in choices.items()})
        return network

    @staticmethod
    def _strongest_edges(edge_weights: Mapping[str, Sequence[float]]) -> dict[str, Any]:
        """Return the genotype of op weights per edge: per node its two strongest edges, each its best op."""
        arch: dict[str, Any] = {}
        for cell_type in CELL_TYPES:
            pairs = []
            for edges in NODE_EDGES:
                weights = {state: edge_weights[f"{cell_type}.edge{e}"] for e, state in edges}
                strength = {state: w[best_op(w)] for state, w in weights.items()}
                for state in sorted(weights, key=lambda s: -strength[s])[:2]:
                    pairs.append([OPS[best_op(weights[state])], state])
            arch[cell_type] = pairs
        return arch

    def derive(self, choices: Mapping[str, Choice]) -> dict[str, Any]:
        """DARTS' rule on softmax(logits): per node the two edges whose best op (not none) is strongest."""
        return self._strongest_edges(
            {name: [float(p) for p in c.probabilities()] for name, c in choices.items()}
        )

    def arch_of(self, picks: Mapping[str, Any]) -> dict[str, Any]:
        """The genotype of one op per edge (``none``: off), as DARTS' rule reads one-hot weights."""
        return self._strongest_edges(
            {name: [float(op == pick) for op in OPS] for name, pick in picks.items()}
        )

    def picks_of(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        arch = self.validate(arch)
        picks = {}
        for cell_type in CELL_TYPES:
            for node, edges in enumerate(NODE_EDGES):
                chosen = {state: op for op, state in reversed(arch[cell_type][2 * node : 2 * node + 2])}
                picks.update({f"{cell_type}.edge{e}": chosen.get(state, OPS[NONE]) for e, state in edges})
        return picks

    def largest_architecture(self) -> dict[str, Any]:
        pairs = [["sep_conv_5x5", state] for _ in NODE_EDGES for state in (0, 1)]
        return {cell_type: [list(p) for p in pairs] for cell_type in CELL_TYPES}

    def validate(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(arch, Mapping) or set(arch) != set(CELL_TYPES):
            raise UserError(f"a darts architecture needs exactly the keys {list(CELL_TYPES)}")
        result = {}
        for cell_type in CELL_TYPES:
            pairs = arch[cell_type]
            if not isinstance(pairs, list | tuple) or len(pairs) != 2 * STEPS:
                raise UserError(
                    f"darts {cell_type!r} needs {2 * STEPS} [op, input] pairs (2 per node), got {pairs!r}"
                )
            normalised = []
            for position, pair in enumerate(pairs):
                node = position // 2
                where = f"darts {cell_type} node {node + 2} pair {position % 2}"
                if not isinstance(pair, list | tuple) or len(pair) != 2:
                    raise UserError(f"{where}: expected [op, input], got {pair!r}")
                op, state = pair
                if op not in OPS[1:]:
                    raise UserError(f"{where}: unknown op {op!r}; choose one of: {', '.join(OPS[1:])}")
                if isinstance(state, bool) or not isinstance(state, int) or not 0 <= state < node + 2:
                    raise UserError(f"{where}: input must be a node number in 0..{node + 1}, got {state!r}")
                if position % 2 and state == normalised[-1][1]:
                    raise UserError(f"{where}: node {node + 2} reads input {state} twice")
                normalised.append([op, state])
            result[cell_type] = normalised
        return result

    def build_network(self, arch: Mapping[str, Any]) -> nn.Module:
        arch = self.validate(arch)
        affine = self.options.affine

        def cell_type(reduction: bool) -> str:
            return "reduce" if reduction else "normal"

        def cell_inputs(reduction: bool) -> list[list[int]]:
            pairs = arch[cell_type(reduction)]
            return [[pairs[2 * node][1], pairs[2 * node + 1][1]] for node in range(STEPS)]

        def make(reduction: bool) -> MakeOp:
            pairs = arch[cell_type(reduction)]
            return lambda position, state, c, stride: make_op(pairs[position][0], c, stride, affine)

        return self._network(cell_inputs, make, self.options.auxiliary_weight, self.options.drop_path)

    def describe(self, arch: Mapping[str, Any]) -> str:
        arch = self.validate(arch)
        parts = []
        for cell_type in CELL_TYPES:
            pairs = arch[cell_type]
            nodes = [
                " ".join(f"{op}@{state}" for op, state in pairs[2 * n : 2 * n + 2]) for n in range(STEPS)
            ]
            parts.append(f"{cell_type}: " + ", ".join(nodes))
        return " | ".join(parts)

    def arch_fields(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        return {"genotype": genotype_string(self.validate(arch))}

    def named_architectures(self) -> dict[str, dict[str, Any]]:
        return {
            name: {"normal": parse_cell(normal), "reduce": parse_cell(reduce)}
            for name, (normal, reduce) in NAMED_GENOTYPES.items()
        }

    def cost_units(self) -> list[CostUnit]:
        """Every edge of every cell: its operation on its input state; ``none`` stands for the max pool
        that a node's too few real edges are padded with (see :meth:`cost_weights`)."""
        affine = self.options.affine
        _, height, width = self.data.input_shape
        channels = self.options.C
        units = []
        for index in range(self.options.layers):
            reduction = index in reduction_layers(self.options.layers)
            before = (height, width)
            if reduction:
                channels *= 2
                height, width = math.ceil(height / 2), math.ceil(width / 2)
            cell_type = "reduce" if reduction else "normal"
            for edges in NODE_EDGES:
                for edge, state in edges:
                    stride = 2 if reduction and state < 2 else 1
                    shape = (1, channels, *(before if state < 2 else (height, width)))

                    def build(
                        op: str, c: int = channels, stride: int = stride, shape: tuple = shape
                    ) -> tuple:
                        kept = OPS[1] if op == OPS[NONE] else op
                        return make_op(kept, c, stride, affine), torch.zeros(shape)

                    units.append(CostUnit((f"{cell_type}.edge{edge}",), build))
        return units

    def cost_weights(self, weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Per edge, the probability of each op being built: the discrete cell keeps each node's first two
        edges (in edge order) whose op is not ``none``, padded with its first ``none`` edges as max pools
        (``arch_of`` on one-hot weights); the edges' picks are independent, so this is multilinear."""
        result = {}
        for cell_type in CELL_TYPES:
            for edges in NODE_EDGES:
                names = [f"{cell_type}.edge{e}" for e, _ in edges]
                real = [weights[n].sum() - weights[n][NONE] for n in names]  # P(not none)
                empty = [weights[n][NONE] for n in names]
                # prefix[j] = (P(no real edge before j), P(one real edge before j)), suffix likewise after j
                prefix, suffix = [], []
                counts = (torch.ones_like(real[0]), torch.zeros_like(real[0]))
                for j in range(len(names)):
                    prefix.append(counts)
                    counts = (counts[0] * empty[j], counts[1] * empty[j] + counts[0] * real[j])
                counts = (torch.ones_like(real[0]), torch.zeros_like(real[0]))
                for j in reversed(range(len(names))):
                    suffix.append(counts)
                    counts = (counts[0] * empty[j], counts[1] * empty[j] + counts[0] * real[j])
                suffix.reverse()
                for j, name in enumerate(names):
                    kept_if_real = prefix[j][0] + prefix[j][1]
                    # a none edge pads the node when (edges before it) + (real edges after it) < 2
                    pads = (
                        (suffix[j][0] + suffix[j][1]) if j == 0 else suffix[j][0] if j == 1 else 0 * real[0]
                    )
                    built = weights[name] * kept_if_real
                    result[name] = torch.cat([(weights[name][NONE] * pads)[None], built[1:]])
        return result

    def spos_subsets(self) -> list[list[str]]:
        return [[f"{t}.edge{e}" for e, _ in edges] for t in CELL_TYPES for edges in NODE_EDGES]
