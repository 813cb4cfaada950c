"""Samplers: turn architecture logits into this step's mixing weights, one per optimizer.

Every sampler owns a CPU ``torch.Generator`` for its randomness, so that the draws are
reproducible, checkpointable and identical on every process started with the same seed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from tanglenas_cli.nas.choices import Choice
from tanglenas_cli.nas.optimizers import optimizer_entry


def sparsemax(logits: Tensor) -> Tensor:
    """Return the Euclidean projection of ``logits`` onto the probability simplex (last dim)."""
    sorted_logits, _ = torch.sort(logits, dim=-1, descending=True)
    cumulative = sorted_logits.cumsum(dim=-1)
    ranks = torch.arange(1, logits.shape[-1] + 1, device=logits.device, dtype=logits.dtype)
    in_support = 1 + ranks * sorted_logits > cumulative
    support_size = in_support.sum(dim=-1, keepdim=True)
    threshold = (cumulative.gather(-1, support_size - 1) - 1) / support_size.to(logits.dtype)
    return torch.clamp(logits - threshold, min=0)


def one_hot(index: int, size: int, like: Tensor) -> Tensor:
    """Return a one-hot vector with the dtype and device of ``like``."""
    vector = torch.zeros(size, dtype=like.dtype, device=like.device)
    vector[index] = 1
    return vector


class Sampler:
    """Base class: ``sample(choices)`` sets every choice's mixing weights for one step."""

    one_hot: ClassVar[bool] = False  # weights are one-hot: layers take the direct (sliced) path
    trains_logits: ClassVar[bool] = True  # False: the architect leaves the logits alone (SPOS)
    draws_paths: ClassVar[bool] = False  # True: a random one-hot path per step (what runs changes each step)

    def __init__(self, seed: int = 0) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def weights(self, logits: Tensor) -> tuple[Tensor, int | None]:
        """Return (mixing weights, one-hot index or None) for one logit vector."""
        raise NotImplementedError

    def eval_weights(self, logits: Tensor) -> tuple[Tensor, int | None]:
        """Return deterministic weights for validation: the expected/most likely architecture."""
        return self.weights(logits)

    def mean_weights(self, logits: Tensor) -> Tensor:
        """Return the mean of this sampler's mixing weights, differentiable in ``logits`` (a function of
        the mixing weights that is linear in each choice's weights has its mean there, with no noise)."""
        return self.weights(logits)[0]

    def sample(self, choices: Iterable[Choice], training: bool = True) -> None:
        """Draw this step's mixing weights for every choice (``training=False``: deterministic)."""
        draw = self.weights if training else self.eval_weights
        for choice in choices:
            weights, index = draw(choice.arch_logits)
            choice.set_mixing(weights, index)

    @classmethod
    def options_from(cls, settings: Any) -> dict[str, Any]:
        """Return this sampler's keyword arguments from the run's ``sampler`` settings (config section)."""
        return {}

    @classmethod
    def arch_weight_decay(cls, settings: Any, weight_decay: float) -> float:
        """Return the arch weight decay: the config's ``weight_decay`` unless the method sets its own."""
        return weight_decay

    def set_epoch(self, epoch: int, total_epochs: int) -> None:
        """Update per-epoch state (GDAS temperature); ``epoch`` counts from 0."""

    def regularization(self, choices: Iterable[Choice]) -> Tensor | None:
        """Return an extra architecture-loss term, or None."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """Return the sampler state (generator state and schedule values)."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state returned by :meth:`state_dict`."""
        self.generator.set_state(state["generator"])


class DartsSampler(Sampler):
    """DARTS: softmax of the logits (sparsemax optionally, as in the paper's WE code)."""

    def __init__(self, seed: int = 0, activation: str = "softmax") -> None:
        super().__init__(seed)
        if activation not in ("softmax", "sparsemax"):
            raise ValueError(f"unknown DARTS activation {activation!r}; choose softmax or sparsemax")
        self.activation = activation

    @classmethod
    def options_from(cls, settings: Any) -> dict[str, Any]:
        return {"activation": settings.darts_activation}

    def weights(self, logits: Tensor) -> tuple[Tensor, int | None]:
        if self.activation == "sparsemax":
            return sparsemax(logits), None
        return torch.softmax(logits, dim=-1), None


class DrNASSampler(Sampler):
    """DrNAS: a reparameterised sample of Dirichlet(elu(logits) + 1); optional KL regulariser."""

    def __init__(self, seed: int = 0, kl_scale: float = 0.0) -> None:
        super().__init__(seed)
        self.kl_scale = kl_scale

    @classmethod
    def options_from(cls, settings: Any) -> dict[str, Any]:
        return {"kl_scale": settings.drnas_reg_scale if settings.drnas_reg == "kl" else 0.0}

    @classmethod
    def arch_weight_decay(cls, settings: Any, weight_decay: float) -> float:
        """DrNAS' l2 regulariser is the arch optimizer's weight decay (none with its KL regulariser)."""
        return settings.drnas_reg_scale if settings.drnas_reg == "l2" else 0.0

    @staticmethod
    def concentration(logits: Tensor) -> Tensor:
        """Return the Dirichlet concentration elu(logits) + 1."""
        return F.elu(logits) + 1

    def weights(self, logits: Tensor) -> tuple[Tensor, int | None]:
        concentration = self.concentration(logits)
        # Gamma draws are reparameterised (implicit gradients); drawing them on the CPU with our
        # own generator keeps runs reproducible and identical across processes and devices.
        gammas = torch._standard_gamma(concentration.float().cpu(), generator=self.generator)
        gammas = gammas.clamp_min(torch.finfo(gammas.dtype).tiny)
        sample = (gammas / gammas.sum(-1, keepdim=True)).to(device=logits.device, dtype=logits.dtype)
        return sample, None

    def eval_weights(self, logits: Tensor) -> tuple[Tensor, int | None]:
        return self.mean_weights(logits), None

    def mean_weights(self, logits: Tensor) -> Tensor:
        concentration = self.concentration(logits)  # the Dirichlet's mean
        return concentration / concentration.sum(-1, keepdim=True)

    def regularization(self, choices: Iterable[Choice]) -> Tensor | None:
        if self.kl_scale == 0:
            return None
        terms = []
        for choice in choices:
            concentration = self.concentration(choice.arch_logits)
            posterior = torch.distributions.Dirichlet(concentration)
            prior = torch.distributions.Dirichlet(torch.ones_like(concentration))
            terms.append(torch.distributions.kl_divergence(posterior, prior))
        if not terms:
            return None
        return self.kl_scale * torch.stack(terms).sum()


class GDASSampler(Sampler):
    """GDAS: straight-through hard Gumbel-softmax; temperature annealed linearly per epoch."""

    one_hot = True
    draws_paths = True

    def __init__(self, seed: int = 0, tau_max: float = 10.0, tau_min: float = 0.1) -> None:
        super().__init__(seed)
        if not 0 < tau_min <= tau_max:
            raise ValueError(f"GDAS needs 0 < tau_min <= tau_max, got {tau_min}, {tau_max}")
        self.tau_max, self.tau_min = tau_max, tau_min
        self.tau = tau_max

    @classmethod
    def options_from(cls, settings: Any) -> dict[str, Any]:
        return {"tau_max": settings.tau_max, "tau_min": settings.tau_min}

    def set_epoch(self, epoch: int, total_epochs: int) -> None:
        span = max(total_epochs - 1, 1)
        self.tau = self.tau_max - (self.tau_max - self.tau_min) * min(epoch, span) / span

    def weights(self, logits: Tensor) -> tuple[Tensor, int | None]:
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        while True:
            exponential = torch.empty(logits.shape, dtype=torch.float32).exponential_(
                generator=self.generator
            )
            gumbel = -exponential.log().to(logits.device)
            soft = torch.softmax((log_probs + gumbel) / self.tau, dim=-1)
            if torch.isfinite(soft).all() and torch.isfinite(gumbel).all():
                break
        index = int(soft.detach().argmax())
        hard = one_hot(index, logits.shape[-1], soft) - soft.detach() + soft
        return hard.to(logits.dtype), index

    def eval_weights(self, logits: Tensor) -> tuple[Tensor, int | None]:
        index = int(logits.detach().argmax())
        return one_hot(index, logits.shape[-1], logits), index

    def mean_weights(self, logits: Tensor) -> Tensor:
        return torch.softmax(logits, dim=-1)  # the hard Gumbel sample picks k with probability softmax_k

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "tau": self.tau}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.tau = float(state["tau"])


class SPOSSampler(Sampler):
    """SPOS: a uniformly random one-hot per choice; the logits are never used or trained."""

    one_hot = True
    draws_paths = True
    trains_logits = False

    def weights(self, logits: Tensor) -> tuple[Tensor, int | None]:
        index = int(torch.randint(logits.shape[-1], (), generator=self.generator))
        return one_hot(index, logits.shape[-1], logits.detach()), index

    def eval_weights(self, logits: Tensor) -> tuple[Tensor, int | None]:
        return self.weights(logits)

    def mean_weights(self, logits: Tensor) -> Tensor:
        return torch.full_like(logits, 1 / logits.shape[-1])


class SubsetSPOSSampler(SPOSSampler):
    """SPOS over groups of choices (e.g. the incoming edges of a DARTS node): per group, ``keep``
    choices draw a uniform candidate other than ``off_index`` and the others are set to
    ``off_index`` (the ``none`` op); choices in no group are sampled as in plain SPOS."""

    def __init__(
        self, groups: Sequence[Sequence[str]], keep: int = 2, off_index: int = 0, seed: int = 0
    ) -> None:
        super().__init__(seed)
        names = [name for group in groups for name in group]
        if keep < 1 or off_index < 0 or len(names) != len(set(names)):
            raise ValueError(f"subset SPOS needs keep >= 1, off_index >= 0 and disjoint groups, got {groups}")
        self.groups = [list(group) for group in groups]
        self.keep, self.off_index = keep, off_index

    def _draw_on(self, choice: Choice) -> int:
        if len(choice) < 2 or self.off_index >= len(choice):
            raise ValueError(f"choice {choice.name!r} cannot be kept apart from candidate {self.off_index}")
        index = int(torch.randint(len(choice) - 1, (), generator=self.generator))
        return index + 1 if index >= self.off_index else index

    def sample(self, choices: Iterable[Choice], training: bool = True) -> None:
        by_name = {choice.name: choice for choice in choices}
        grouped: set[str] = set()
        for group in self.groups:
            members = [by_name[name] for name in group if name in by_name]
            grouped.update(choice.name for choice in members)
            kept = set(torch.randperm(len(members), generator=self.generator)[: self.keep].tolist())
            for position, choice in enumerate(members):
                index = self._draw_on(choice) if position in kept else self.off_index
                choice.set_mixing(one_hot(index, len(choice), choice.arch_logits.detach()), index)
        for name, choice in by_name.items():
            if name not in grouped:
                weights, index = self.weights(choice.arch_logits)
                choice.set_mixing(weights, index)


class DiscreteSampler(Sampler):
    """Discrete: the argmax candidate as a constant one-hot (fixed architecture)."""

    one_hot = True
    trains_logits = False

    def weights(self, logits: Tensor) -> tuple[Tensor, int | None]:
        index = int(logits.detach().argmax())
        return one_hot(index, logits.shape[-1], logits.detach()), index


def sampler_class(optimizer: str) -> type[Sampler]:
    """Return the sampler class of one-shot optimizer ``optimizer``; UserError for an unknown name."""
    return globals()[optimizer_entry(optimizer).sampler]


def make_sampler(optimizer: str, seed: int = 0, **options: Any) -> Sampler:
    """Return the sampler of one-shot optimizer ``optimizer`` (``options``: its keyword arguments)."""
    return sampler_class(optimizer)(seed=seed, **options)
