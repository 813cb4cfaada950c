"""Architecture choices: named candidate lists that own architecture logits.

A sampler sets each :class:`Choice`'s mixing weights once per step; layers read them through a
*weight source* (a Choice, a subset of one, or a joint product of several) instead of having
alphas threaded through every forward call.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Mixing:
    """This step's mixing weights of one weight source.

    ``index`` is set when the weights are one-hot (SPOS, GDAS, discrete): layers then take the
    direct path and compute only the selected candidate, scaled by ``weights[index]`` so that
    straight-through gradients still reach the logits.
    """

    weights: Tensor
    index: int | None = None


class WeightSource(Protocol):
    """Anything a layer can read its mixing weights from."""

    candidates: Sequence[Any]

    def mixing(self) -> Mixing: ...

    def __len__(self) -> int: ...


class Choice(nn.Module):
    """A named decision over ``candidates`` with its architecture logits (an ``nn.Parameter``)."""

    def __init__(self, name: str, candidates: Sequence[Any], init_scale: float = 1e-3) -> None:
        super().__init__()
        if len(candidates) < 1:
            raise ValueError(f"choice {name!r} needs at least one candidate")
        self.name = name
        self.candidates = list(candidates)
        self.arch_logits = nn.Parameter(init_scale * torch.randn(len(self.candidates)))
        self._mixing: Mixing | None = None
        self.version = 0  # bumped on every new sample, so views can cache their result
        self._subsets: dict[tuple[tuple[int, ...], bool], ChoiceSubset] = {}

    def __len__(self) -> int:
        return len(self.candidates)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, candidates={self.candidates}"

    def set_mixing(self, weights: Tensor, index: int | None = None) -> None:
        """Store this step's mixing weights (called by samplers)."""
        if weights.shape != (len(self),):
            raise ValueError(
                f"choice {self.name!r}: expected {len(self)} weights, got {tuple(weights.shape)}"
            )
        self._mixing = Mixing(weights, index)
        self.version += 1

    def mixing(self) -> Mixing:
        """Return the mixing weights set by the last sampler call."""
        if self._mixing is None:
            raise RuntimeError(f"choice {self.name!r} has no mixing weights: call a sampler's sample() first")
        return self._mixing

    def derived_index(self) -> int:
        """Return the index of the candidate with the largest logit."""
        return int(self.arch_logits.detach().argmax())

    def derive(self) -> Any:
        """Return the candidate with the largest logit."""
        return self.candidates[self.derived_index()]

    def probabilities(self) -> Tensor:
        """Return softmax(logits) as a detached tensor."""
        return torch.softmax(self.arch_logits.detach().float(), dim=-1)

    def subset(self, indices: Sequence[int], normalized: bool = False) -> ChoiceSubset:
        """Return a view onto some of this choice's candidates (e.g. an entangled group of an edge);
        ``normalized``: its weights divided by their sum (all zero when the sum is zero). Equal
        arguments give the same view, so layers that share a choice (NB201's cells) share its weights."""
        key = (tuple(indices), normalized)
        if key not in self._subsets:
            self._subsets[key] = ChoiceSubset(self, indices, normalized)
        return self._subsets[key]


class FixedChoice:
    """A weight source with one candidate and no logits: layers built on it are plain discrete layers.

    Discrete networks reuse the entangled layer classes at exactly one size; their direct path then
    computes the same as ``nn.Linear`` / ``nn.LayerNorm`` / ... of that size, with no extra parameters.
    """

    def __init__(self, candidate: Any = None) -> None:
        self.candidates = [candidate]
        self._mixing = Mixing(torch.ones(1), 0)

    def __len__(self) -> int:
        return 1

    def mixing(self) -> Mixing:
        return self._mixing


class _CachedSource:
    """Caches a derived :class:`Mixing` until one of its parent choices is re-sampled."""

    def __init__(self, parents: Sequence[Choice]) -> None:
        self._parents = tuple(parents)
        self._cache_key: tuple[int, ...] | None = None
        self._cache: Mixing | None = None

    def mixing(self) -> Mixing:
        if torch.compiler.is_compiling():  # version counters would make torch.compile re-trace every step
            return self._compute()
        key = tuple(p.version for p in self._parents)
        if key != self._cache_key:
            self._cache = self._compute()
            self._cache_key = key
        assert self._cache is not None
        return self._cache

    def _compute(self) -> Mixing:
        raise NotImplementedError


def _root_choices(source: WeightSource) -> list[Choice]:
    if isinstance(source, Choice):
        return [source]
    if isinstance(source, ChoiceSubset):
        return [source.parent]
    if isinstance(source, JointChoice):
        return [c for s in source.sources for c in _root_choices(s)]
    raise TypeError(f"not a weight source: {source!r}")


class ChoiceSubset(_CachedSource):
    """Some candidates of a choice, in a given order; mixing weights are the matching entries, or
    (``normalized``) those entries divided by their sum."""

    def __init__(self, parent: Choice, indices: Sequence[int], normalized: bool = False) -> None:
        super().__init__([parent])
        if not indices or any(not 0 <= i < len(parent) for i in indices):
            raise ValueError(f"subset {list(indices)} out of range for choice {parent.name!r}")
        self.parent = parent
        self.indices = list(indices)
        self.normalized = normalized
        self.candidates = [parent.candidates[i] for i in self.indices]
        self._index_tensor = torch.tensor(self.indices)

    def __len__(self) -> int:
        return len(self.indices)

    def _compute(self) -> Mixing:
        parent = self.parent.mixing()
        weights = parent.weights.index_select(0, self._index_tensor.to(parent.weights.device))
        if self.normalized:  # a zero sum leaves zeros (0 / tiny), never NaN
            weights = weights / weights.sum().clamp_min(torch.finfo(weights.dtype).tiny)
        index = self.indices.index(parent.index) if parent.index in self.indices else None
        return Mixing(weights, index)


class JointChoice(_CachedSource):
    """Several sources driving one tensor ("combi"): weights are the row-major outer product.

    Candidates are ``itertools.product`` of the sources' candidates in the same order, so the
    first source is the slowest index.
    """

    def __init__(self, sources: Sequence[WeightSource]) -> None:
        if len(sources) < 1:
            raise ValueError("a joint choice needs at least one source")
        super().__init__([c for s in sources for c in _root_choices(s)])
        self.sources = list(sources)
        self.shape = tuple(len(s) for s in self.sources)
        self.candidates = list(itertools.product(*(s.candidates for s in self.sources)))

    def __len__(self) -> int:
        return math.prod(self.shape)

    def _compute(self) -> Mixing:
        parts = [s.mixing() for s in self.sources]
        weights = parts[0].weights
        for part in parts[1:]:
            weights = (weights[:, None] * part.weights[None, :]).reshape(-1)
        index = None
        if all(p.index is not None for p in parts):
            index = 0
            for p, size in zip(parts, self.shape, strict=True):
                index = index * size + p.index  # type: ignore[operator]
        return Mixing(weights, index)


def find_choices(model: nn.Module) -> list[Choice]:
    """Return the distinct Choice modules of ``model`` in registration order."""
    seen: dict[int, Choice] = {}
    for module in model.modules():
        if isinstance(module, Choice) and id(module) not in seen:
            seen[id(module)] = module
    return list(seen.values())


def arch_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Return the architecture logits of every Choice in ``model``."""
    return [choice.arch_logits for choice in find_choices(model)]


def weight_parameters(model: nn.Module, exclude: Iterable[Tensor] | None = None) -> list[nn.Parameter]:
    """Return the trainable parameters of ``model`` that are not architecture logits (by identity)."""
    arch_ids = {id(p) for p in (exclude if exclude is not None else arch_parameters(model))}
    return [p for p in model.parameters() if p.requires_grad and id(p) not in arch_ids]
