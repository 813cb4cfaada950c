"""SPOS second stage after the fact: random search or evolution over a trained supernet.

``tanglenas derive RUN --strategy random|evolution`` scores candidate architectures by the supernet's
top-1 accuracy (language models: its loss) on fixed batches of the run's arch split, each with its own
path picked (one-hot, the direct path), batch-norm statistics recalibrated on training batches first
where the space has batch norm, and optional parameter-count / FLOPs limits (forward FLOPs of the
discrete network on one input, see :mod:`tanglenas_cli.engine.flops`). Evolution follows AutoFormer's: a
random population, then per generation the best ``select`` so far parent ``mutation`` mutants (each
gene redrawn with probability ``mutation_prob``) and ``crossover`` children (each gene from either
parent).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tanglenas_cli.engine.evaluation import count_parameters, evaluate, fitness
from tanglenas_cli.engine.flops import count_flops
from tanglenas_cli.engine.spos import PickedChoice
from tanglenas_cli.errors import UserError
from tanglenas_cli.nas import Choice
from tanglenas_cli.spaces.base import SearchSpace

Genome = tuple[int, ...]  # one candidate index per choice, in the choices' order


@dataclass
class EvolutionSettings:
    """AutoFormer's evolution settings (reference §4.6)."""

    population: int = 50
    select: int = 10
    mutation: int = 25
    crossover: int = 25
    generations: int = 20
    mutation_prob: float = 0.2


def within(value: float, low: float | None, high: float | None) -> bool:
    """Whether ``low <= value <= high``, a missing bound being no bound."""
    return (low is None or value >= low) and (high is None or value <= high)


def describe_limits(min_params: int | None = None, max_params: int | None = None,
                    min_flops: float | None = None, max_flops: float | None = None) -> str:  # fmt: skip
    """Return the limits that apply, e.g. ``parameters <= 12,000, FLOPs 1e+06..2.5e+08`` ('' if none)."""
    parts = []
    for name, low, high, show in (("parameters", min_params, max_params, "{:,}".format),
                                  ("FLOPs", min_flops, max_flops, "{:.3g}".format)):  # fmt: skip
        if low is not None and high is not None:
            parts.append(f"{name} {show(low)}..{show(high)}")
        elif low is not None:
            parts.append(f"{name} >= {show(low)}")
        elif high is not None:
            parts.append(f"{name} <= {show(high)}")
    return ", ".join(parts)


class SupernetScorer:
    """Top-1 (language models: minus the loss) of the supernet on fixed batches, one genome at a time."""

    def __init__(self, model: nn.Module, space: SearchSpace, choices: Mapping[str, Choice],
                 valid_batches: list, train_batches: list, device: torch.device,
                 min_params: int | None = None, max_params: int | None = None,
                 min_flops: float | None = None, max_flops: float | None = None) -> None:  # fmt: skip
        self.model, self.space, self.choices = model, space, dict(choices)
        self.valid_batches, self.train_batches, self.device = valid_batches, train_batches, device
        self.min_params, self.max_params = min_params, max_params
        self.min_flops, self.max_flops = min_flops, max_flops
        self.norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self.scores: dict[Genome, float] = {}
        self.params: dict[Genome, int] = {}  # cached sizes of the genomes' discrete networks
        self.flops: dict[Genome, int] = {}

    def architecture(self, genome: Genome) -> dict[str, Any]:
        """Return the architecture a genome encodes."""
        picked = {
            name: PickedChoice(c.candidates[i])
            for (name, c), i in zip(self.choices.items(), genome, strict=True)
        }
        return self.space.derive(picked)  # type: ignore[arg-type]

    def measure(self, genome: Genome, flops: bool = True) -> tuple[int, int | None]:
        """Return (parameters, forward FLOPs on one input, None unless ``flops``) of the genome's discrete
        network; each count is cached, the network built at most once per call."""
        network = None
        if genome not in self.params:
            network = self.space.build_network(self.architecture(genome))
            self.params[genome] = count_parameters(network)
        if flops and genome not in self.flops:
            if network is None:
                network = self.space.build_network(self.architecture(genome))
            self.flops[genome] = count_flops(self.space, network)
        return self.params[genome], self.flops.get(genome) if flops else None

    def allowed(self, genome: Genome) -> bool:
        """Whether the genome's discrete network meets the parameter and FLOPs limits (FLOPs, the costlier
        count, only measured once the parameters pass)."""
        flops_limited = self.min_flops is not None or self.max_flops is not None
        if not flops_limited and self.min_params is None and self.max_params is None:
            return True
        params, _ = self.measure(genome, flops=False)
        if not within(params, self.min_params, self.max_params):
            return False
        if not flops_limited:
            return True
        return within(self.measure(genome)[1] or 0, self.min_flops, self.max_flops)

    def _select(self, genome: Genome) -> None:
        for choice, index in zip(self.choices.values(), genome, strict=True):
            choice.set_mixing(F.one_hot(torch.tensor(index), len(choice)).float().to(self.device), index)

    @torch.no_grad()
    def _recalibrate(self) -> None:
        if not self.norms or not self.train_batches:
            return
        saved = [(m.momentum, m.training) for m in self.norms]
        for norm in self.norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average over the recalibration batches
        self.model.train()
        for inputs, _ in self.train_batches:
            self.model(inputs.to(self.device))
        for norm, (momentum, _) in zip(self.norms, saved, strict=True):
            norm.momentum = momentum

    def __call__(self, genome: Genome) -> float:
        if genome not in self.scores:
            self._select(genome)
            self._recalibrate()
            self.scores[genome] = fitness(evaluate(self.model, self.valid_batches, self.device))
        return self.scores[genome]


def random_genome(
    sizes: list[int], rng: random.Random, allowed: Callable[[Genome], bool], tries: int = 1000
) -> Genome:
    """Return a uniformly drawn genome that passes ``allowed``."""
    for _ in range(tries):
        genome = tuple(rng.randrange(size) for size in sizes)
        if allowed(genome):
            return genome
    raise UserError(
        f"no architecture within the parameter/FLOPs limits after {tries} random draws; widen them"
    )


def random_search(scorer: SupernetScorer, sizes: list[int], samples: int, rng: random.Random) -> Genome:
    """Return the best of ``samples`` random genomes."""
    genomes = [random_genome(sizes, rng, scorer.allowed) for _ in range(samples)]
    return max(genomes, key=scorer)


def evolution(
    scorer: SupernetScorer, sizes: list[int], settings: EvolutionSettings, rng: random.Random
) -> Genome:
    """Return the best genome found by AutoFormer-style evolution."""
    population = [random_genome(sizes, rng, scorer.allowed) for _ in range(settings.population)]
    best = sorted(set(population), key=scorer, reverse=True)
    for _ in range(settings.generations):
        parents = best[: settings.select]
        children: list[Genome] = []
        for _ in range(settings.mutation * 10):
            if len(children) >= settings.mutation:
                break
            parent = rng.choice(parents)
            child = tuple(
                rng.randrange(size) if rng.random() < settings.mutation_prob else gene
                for gene, size in zip(parent, sizes, strict=True)
            )
            if scorer.allowed(child):
                children.append(child)
        crossed: list[Genome] = []
        for _ in range(settings.crossover * 10):
            if len(crossed) >= settings.crossover:
                break
            first, second = rng.choice(parents), rng.choice(parents)
            child = tuple(rng.choice(pair) for pair in zip(first, second, strict=True))
            if scorer.allowed(child):
                crossed.append(child)
        best = sorted(set(best) | set(children) | set(crossed), key=scorer, reverse=True)
    return best[0]
