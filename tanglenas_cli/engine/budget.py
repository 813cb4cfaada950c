"""The cost budget of a search (config section ``cost``): the penalty on the architecture loss.

The penalised cost is the expected cost of the architectures the optimizer samples from: the cost model
at the mean of the sampler's mixing weights (DARTS: the softmax; DrNAS: the Dirichlet's mean; GDAS: the
softmax that its one-hot samples follow). The cost model is multilinear and the choices are drawn
independently, so this is exactly the mean of the cost of this step's mixing weights, without the
sampling noise, which would make a hinge push below the budget whenever a sample lands above it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from tanglenas_cli.config import CostConfig, RunConfig
from tanglenas_cli.engine.cost import CostModel, cost_model, format_cost
from tanglenas_cli.errors import UserError
from tanglenas_cli.nas.choices import Choice
from tanglenas_cli.nas.samplers import Sampler
from tanglenas_cli.spaces import create_space
from tanglenas_cli.spaces.base import SearchSpace


def budget_model(cfg: RunConfig, space: SearchSpace, candidates: Mapping[str, Any]) -> CostModel:
    """Return the cost model of the run's budget: of ``space``, or (``cost.space_options``) of the network
    of the space with those options on top of the run's."""
    settings = cfg.cost
    assert settings.metric is not None
    if settings.space_options:
        space = create_space(cfg.space, space.data, {**cfg.space_options, **settings.space_options})
    return cost_model(space, settings.metric, candidates, settings.table)


class Budget:
    """The cost penalty and the cost numbers an epoch record logs."""

    def __init__(self, settings: CostConfig, model: CostModel, choices: Mapping[str, Choice],
                 sampler: Sampler) -> None:  # fmt: skip
        self.settings, self.model, self.choices, self.sampler = settings, model, dict(choices), sampler
        assert settings.metric is not None and settings.target is not None
        self.metric, self.target = settings.metric, float(settings.target)
        smallest = model.minimum()
        if smallest > self.target:
            raise UserError(
                f"cost.target={self.target:g} is below the smallest architecture's {self.metric} "
                f"({format_cost(self.metric, smallest)}); raise the target"
            )

    def expected(self) -> Tensor:
        """Return the expected cost of the sampled architectures (differentiable in the logits), at
        ``cost.temperature``; ``cost.estimate=argmax``: the derived architecture's cost, with its gradient."""
        weights = {name: self.sampler.mean_weights(c.arch_logits) for name, c in self.choices.items()}
        temperature = self.settings.temperature
        if temperature != 1:
            weights = {
                name: torch.softmax(w.clamp_min(1e-30).log() / temperature, -1) for name, w in weights.items()
            }
        soft = self.model.expected(weights)
        if self.settings.estimate == "mean":
            return soft
        with torch.no_grad():  # the architecture `derive` returns now (DARTS: its two kept edges per node)
            hard = self.model.of_architecture(self.model.space.derive(self.choices))
        return soft + (torch.tensor(hard, dtype=soft.dtype, device=soft.device) - soft).detach()

    def apply(self, loss: Tensor) -> Tensor:
        """Return ``loss`` with the budget's penalty (``hinge``: added; ``fbnet``: a factor)."""
        cost = self.expected()
        if self.settings.form == "hinge":
            penalty = self.settings.weight * torch.relu(cost / self.target - 1)
            return loss + penalty.to(loss.dtype)
        factor = (
            torch.log(cost) / torch.log(torch.tensor(self.target, dtype=cost.dtype))
        ) ** self.settings.beta
        return loss * factor.to(loss.dtype)

    def penalty(self) -> Tensor:
        """Return the additive hinge penalty alone (the simultaneous strategy adds it to the training
        loss)."""
        return self.apply(torch.zeros((), dtype=torch.float64))

    def record(self, arch: Mapping[str, Any]) -> dict[str, float]:
        """Return the epoch record's cost fields: the expected cost now and the argmax architecture's."""
        with torch.no_grad():
            expected = float(self.expected())  # at cost.temperature: what the penalty reads
        argmax = self.model.of_architecture(arch)
        return {
            f"expected_{self.metric}": expected,
            f"argmax_{self.metric}": argmax if self.metric == "latency" else int(argmax),
        }

    def within(self, arch: Mapping[str, Any]) -> bool:
        """Whether ``arch`` meets the budget."""
        return self.model.of_architecture(arch) <= self.target
