"""The cost of an architecture (parameters, multiply-adds, latency) and its differentiable expectation.

A space splits its discrete network into a constant part and *units* (``SearchSpace.cost_units``):
pieces whose module depends on the picks of a few choices. Every unit is measured for every combination
of its choices' candidates, giving one table per unit (identical modules on identical inputs are measured
once); the constant is the reference network's exact cost (every choice at its first candidate) minus
the cost of its units. So

    cost(arch) = base + sum_u table_u[picks of u's choices]

is the discrete network's own count, and the expected cost of mixing weights ``w``,

    E[cost] = base + sum_u sum_{i,j,...} table_u[i, j, ...] * w_a[i] * w_b[j] * ...,

is its multilinear extension: one-hot weights give an architecture's cost, soft weights the mean cost of
architectures drawn independently per choice, and the gradient reaches every logit that changes the cost.

Metrics: ``params`` (the discrete network's trainable parameters, as ``eval``), ``flops`` (multiply-adds
on one input: ``eval``'s ``macs``) and ``latency`` (milliseconds per batch, looked up in a table written by
``tanglenas latency-table``).
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from tanglenas_cli.engine.flops import count_flops, count_module_flops
from tanglenas_cli.engine.metrics import count_parameters
from tanglenas_cli.errors import UserError, check_name
from tanglenas_cli.spaces.base import CostUnit, SearchSpace, choices_by_name

METRICS = ("params", "flops", "latency")
UNITS = {"params": "parameters", "flops": "multiply-adds", "latency": "ms"}


class Meter(Protocol):
    """Measures one metric of a unit's module and of a whole discrete network.

    ``shapes_only``: the metric depends on shapes alone, so units are built on the meta device (no
    memory, no initialisation, no arithmetic).
    """

    shapes_only: bool

    def unit(self, module: nn.Module, inputs: Tensor) -> float: ...

    def network(self, space: SearchSpace, network: nn.Module) -> float: ...


class ParamsMeter:
    """Trainable parameters."""

    shapes_only = True

    def unit(self, module: nn.Module, inputs: Tensor) -> float:
        return float(count_parameters(module))

    def network(self, space: SearchSpace, network: nn.Module) -> float:
        return float(count_parameters(network))


class FlopsMeter:
    """Multiply-adds of one forward pass on one input (half of PyTorch's FLOP count, as ``eval``'s macs)."""

    shapes_only = True

    def unit(self, module: nn.Module, inputs: Tensor) -> float:
        return float(count_module_flops(module, inputs) // 2)

    def network(self, space: SearchSpace, network: nn.Module) -> float:
        return float(count_flops(space, network) // 2)


def unit_key(module: nn.Module, inputs: Tensor) -> str:
    """Return what identifies a unit's cost: its module's structure and its input's shape and type."""
    return f"{tuple(inputs.shape[1:])} {inputs.dtype} {module!r}"


def choice_candidates(space: SearchSpace) -> dict[str, list[Any]]:
    """Return every choice of ``space``'s supernet with its candidates (builds the WE supernet once)."""
    return {name: list(choice.candidates) for name, choice in choices_by_name(space.build_supernet()).items()}


def _build(unit: CostUnit, picks: Sequence[Any], meta: bool) -> tuple[nn.Module, Tensor] | None:
    """Return ``unit.build(*picks)``, on the meta device when ``meta`` and the unit's modules allow it."""
    if meta:
        try:
            with torch.device("meta"):
                return unit.build(*picks)
        except (NotImplementedError, RuntimeError):
            pass  # an operation without a meta kernel: build it for real
    return unit.build(*picks)


class CostModel:
    """One metric of every architecture of a space, as a function of the choices' mixing weights."""

    def __init__(self, space: SearchSpace, candidates: Mapping[str, Sequence[Any]], metric: str,
                 meter: Meter, base: float | None = None) -> None:  # fmt: skip
        """``base``: the constant part when the meter knows it (a latency table); else it is measured."""
        self.space, self.metric = space, metric
        self.candidates = {name: list(values) for name, values in candidates.items()}
        measured: dict[str, float] = {}
        tables: dict[tuple[str, ...], Tensor] = {}
        for unit in space.cost_units():
            unknown = [name for name in unit.choices if name not in self.candidates]
            if unknown:
                raise UserError(
                    f"the cost of {space.name} reads choices the supernet does not have "
                    f"({', '.join(unknown)});"
                    " cost.space_options may change sizes, not choices"
                )
            shape = tuple(len(self.candidates[name]) for name in unit.choices)
            table = torch.zeros(shape, dtype=torch.float64)
            for position in torch.cartesian_prod(*(torch.arange(n) for n in shape)).reshape(-1, len(shape)):
                index = tuple(int(i) for i in position)
                picks = [self.candidates[name][i] for name, i in zip(unit.choices, index, strict=True)]
                built = _build(unit, picks, meter.shapes_only)
                if built is None:
                    continue
                module, inputs = built
                key = unit_key(module, inputs)
                if key not in measured:
                    measured[key] = meter.unit(module, inputs)
                table[index] = measured[key]
            tables[unit.choices] = tables[unit.choices] + table if unit.choices in tables else table
        self.tables = tables
        self._on_device: dict[torch.device, dict[tuple[str, ...], Tensor]] = {}
        self.base = 0.0
        if base is None:
            reference = {name: values[0] for name, values in self.candidates.items()}
            network = space.build_network(space.arch_of(reference))
            base = meter.network(space, network) - float(self.expected(self.one_hot(reference)))
        self.base = base

    def one_hot(self, picks: Mapping[str, Any]) -> dict[str, Tensor]:
        """Return one-hot weights of ``picks`` (a candidate per choice; missing choices: the first)."""
        weights = {}
        for name, values in self.candidates.items():
            vector = torch.zeros(len(values), dtype=torch.float64)
            vector[values.index(picks[name]) if name in picks else 0] = 1
            weights[name] = vector
        return weights

    def expected(self, weights: Mapping[str, Tensor]) -> Tensor:
        """Return the expected cost (a float64 scalar, differentiable) under mixing weights by choice."""
        read = self.space.cost_weights({name: w.to(torch.float64) for name, w in weights.items()})
        device = next(iter(read.values())).device if read else torch.device("cpu")
        tables = self._on_device.get(device)
        if tables is None:
            tables = self._on_device[device] = {k: t.to(device) for k, t in self.tables.items()}
        total = torch.tensor(self.base, dtype=torch.float64, device=device)
        for names, table in tables.items():
            letters = string.ascii_letters[: len(names)]
            spec = f"{letters}," + ",".join(letters) + "->"
            total = total + torch.einsum(spec, table, *(read[name] for name in names))
        return total

    def of_picks(self, picks: Mapping[str, Any]) -> float:
        """Return the cost of the architecture of ``picks`` (its discrete network's exact count)."""
        if type(self.space).cost_weights is not SearchSpace.cost_weights:  # units read derived weights
            with torch.no_grad():
                return float(self.expected(self.one_hot(picks)))
        index = {name: values.index(picks[name]) if name in picks else 0
                 for name, values in self.candidates.items()}  # fmt: skip
        return self.base + sum(float(t[tuple(index[n] for n in names)]) for names, t in self.tables.items())

    def of_architecture(self, arch: Mapping[str, Any]) -> float:
        """Return the cost of the architecture ``arch``."""
        return self.of_picks(self.space.picks_of(arch))

    def minimum(self) -> float:
        """Return the smallest cost of any architecture: exact when the space lists its architectures or
        its units share no choice, else a lower bound (the sum of every table's minimum)."""
        architectures = self.space.all_architectures()
        if architectures is not None:
            return min(self.of_architecture(arch) for arch in architectures)
        return self.base + sum(float(table.min()) for table in self.tables.values())


def cost_model(space: SearchSpace, metric: str, candidates: Mapping[str, Sequence[Any]] | None = None,
               table: Any = None) -> CostModel:  # fmt: skip
    """Return the cost model of ``metric`` for ``space``; ``latency`` needs ``table`` (a path)."""
    check_name("cost metric", metric, METRICS)
    candidates = candidates if candidates is not None else choice_candidates(space)
    if metric == "latency":
        from tanglenas_cli.engine.latency import LatencyTable

        if table is None:
            raise UserError(
                "cost.metric=latency needs a latency table: run tanglenas latency-table --space "
                f"{space.name} and pass --set cost.table=FILE"
            )
        latency = LatencyTable.load(table, space)
        return CostModel(space, candidates, metric, latency, base=latency.base)
    meter: Meter = ParamsMeter() if metric == "params" else FlopsMeter()
    return CostModel(space, candidates, metric, meter)


def format_cost(metric: str, value: float) -> str:
    """Return ``value`` of ``metric`` for people: ``1,288,506 parameters``, ``2.1e+08 multiply-adds``."""
    shown = f"{value:,.0f}" if metric == "params" else f"{value:.4g}"
    return f"{shown} {UNITS[metric]}"
