"""Picking an architecture by scoring paths of a trained supernet: the one scorer of the project.

SPOS' final random search (end of ``tanglenas search --opt spos``) and ``tanglenas derive RUN --strategy
random|evolution`` both use :class:`SupernetScorer`: each candidate's path is picked (one-hot, the
direct path), the batch-norm statistics are re-estimated on fixed training batches (eval-mode network,
so dropout is off), and the path is scored by top-1 accuracy (language models: minus the loss) on the
same fixed arch-split batches as every other candidate. Architectures are never scored on test data: a
run without an arch split is refused. Optional parameter-count / FLOPs limits use the forward FLOPs of
the discrete network on one input (see :mod:`tanglenas_cli.engine.flops`). Evolution follows
AutoFormer's: a random population, then per generation the best ``select`` so far parent ``mutation``
mutants (each gene redrawn with probability ``mutation_prob``) and ``crossover`` children (each gene
from either parent).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tanglenas_cli.config import RunConfig
from tanglenas_cli.data.splits import SearchData
from tanglenas_cli.engine.flops import count_flops
from tanglenas_cli.engine.loaders import batch_stream, epoch_loader
from tanglenas_cli.engine.metrics import count_parameters, evaluate
from tanglenas_cli.engine.task import task_of
from tanglenas_cli.errors import UserError
from tanglenas_cli.nas.choices import Choice
from tanglenas_cli.nas.samplers import SubsetSPOSSampler
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

    @classmethod
    def for_population(cls, population: int = 50, generations: int = 20) -> EvolutionSettings:
        """Return the settings of ``population``: top fifth (at least 2) kept, half mutated, half crossed."""
        return cls(population=population, select=max(2, population // 5), mutation=population // 2,
                   crossover=population // 2, generations=generations)  # fmt: skip


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
        self.task = task_of(space)
        self.valid_batches, self.train_batches, self.device = valid_batches, train_batches, device
        self.min_params, self.max_params = min_params, max_params
        self.min_flops, self.max_flops = min_flops, max_flops
        self.norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self.scores: dict[Genome, float] = {}
        self.params: dict[Genome, int] = {}  # cached sizes of the genomes' discrete networks
        self.flops: dict[Genome, int] = {}

    def architecture(self, genome: Genome) -> dict[str, Any]:
        """Return the architecture a genome encodes."""
        picks = {name: c.candidates[i] for (name, c), i in zip(self.choices.items(), genome, strict=True)}
        return self.space.arch_of(picks)

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
        saved = [norm.momentum for norm in self.norms]
        self.model.eval()  # dropout off: the statistics of the network that is then scored
        for norm in self.norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average over the recalibration batches
            norm.train()
        for inputs, _ in self.train_batches:
            self.model(inputs.to(self.device))
        for norm, momentum in zip(self.norms, saved, strict=True):
            norm.momentum = momentum
            norm.eval()

    def __call__(self, genome: Genome) -> float:
        if genome not in self.scores:
            self._select(genome)
            self._recalibrate()
            self.scores[genome] = self.task.fitness(evaluate(self.model, self.valid_batches, self.device))
        return self.scores[genome]


def scoring_batches(
    cfg: RunConfig, data: SearchData, batches: int, recalibration_batches: int
) -> tuple[list, list]:
    """Return (the arch-split batches every candidate is scored on, the training batches that re-estimate
    its batch-norm statistics), fixed by seeds; refuse a run whose validation split is the test split."""
    if data.valid_is_test:
        raise UserError(
            f"train_portion={cfg.train_portion} leaves no arch split, and architectures are never scored on"
            " the test split; set train_portion below 1 (e.g. 0.8) or arch_split_size=N"
        )
    loader = epoch_loader(data.valid_split, cfg.batch_size, seed=1, num_workers=cfg.num_workers,
                          pin_memory=cfg.pin_memory)  # fmt: skip
    valid = list(itertools.islice(loader, batches))
    if not valid:
        raise UserError("the arch split holds no batch to score architectures on; lower train_portion")
    stream = batch_stream(data.weight_split, cfg.batch_size, seed=2, num_workers=cfg.num_workers,
                          pin_memory=cfg.pin_memory)  # fmt: skip
    return valid, [next(stream) for _ in range(recalibration_batches)]


class GenomeDrawer:
    """Uniformly random genomes: one candidate per choice, or, in spaces with SPOS edge subsets (DARTS),
    the subsets SPOS trains (per node two incoming edges, one op each)."""

    def __init__(self, space: SearchSpace, choices: Mapping[str, Choice], seed: int) -> None:
        self.choices = list(choices.values())
        self.sizes = [len(c) for c in self.choices]
        self.rng = random.Random(seed)
        subsets = space.spos_subsets()
        self.subset_sampler = SubsetSPOSSampler(subsets, seed=seed) if subsets else None

    def __call__(self) -> Genome:
        if self.subset_sampler is None:
            return tuple(self.rng.randrange(size) for size in self.sizes)
        self.subset_sampler.sample(self.choices)
        return tuple(int(c.mixing().index) for c in self.choices)  # type: ignore[arg-type]


def random_genome(draw: Callable[[], Genome], allowed: Callable[[Genome], bool], tries: int = 1000) -> Genome:
    """Return a genome from ``draw`` that passes ``allowed``."""
    for _ in range(tries):
        genome = draw()
        if allowed(genome):
            return genome
    raise UserError(
        f"no architecture within the parameter/FLOPs limits after {tries} random draws; widen them"
    )


def random_search(scorer: SupernetScorer, draw: Callable[[], Genome], samples: int) -> Genome:
    """Return the best of ``samples`` genomes from ``draw`` (the first drawn on ties)."""
    genomes = [random_genome(draw, scorer.allowed) for _ in range(samples)]
    return max(genomes, key=scorer)


def evolution(
    scorer: SupernetScorer, sizes: list[int], settings: EvolutionSettings, rng: random.Random
) -> Genome:
    """Return the best genome found by AutoFormer-style evolution."""

    def draw() -> Genome:
        return tuple(rng.randrange(size) for size in sizes)

    population = [random_genome(draw, scorer.allowed) for _ in range(settings.population)]
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
