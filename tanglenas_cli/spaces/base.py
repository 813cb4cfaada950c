"""The interface every search space provides to the engine."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from torch import Tensor, nn

from tanglenas_cli.errors import UserError
from tanglenas_cli.nas.choices import Choice, find_choices


@dataclass(frozen=True)
class DataShape:
    """What a space needs to know about the data: classes and one input's (C, H, W)."""

    num_classes: int
    input_shape: tuple[int, int, int]


@dataclass(frozen=True)
class CostUnit:
    """A piece of a discrete network whose module depends on the picks of ``choices`` (by name).

    ``build(*picks)`` (one candidate per choice, in that order) returns the piece's module and an input
    batch of one for it, or None when these picks leave the piece out (a layer beyond the picked depth).
    The cost of an architecture is the cost of its units plus a constant (see
    :mod:`tanglenas_cli.engine.cost`).
    """

    choices: tuple[str, ...]
    build: Callable[..., tuple[nn.Module, Tensor] | None]


NO_DATA = DataShape(num_classes=1, input_shape=(1, 1, 1))
"""A placeholder data shape for spaces used only to derive, validate or key architectures."""


class SearchSpace:
    """A search space: builds the supernet (WE or WS), derives and builds discrete networks.

    Subclasses set ``name``, ``Options`` (a dataclass of space settings with defaults) and implement
    the abstract methods. An architecture is a plain, YAML-serialisable dict.
    """

    name: ClassVar[str] = ""  # set by @register_space
    Options: ClassVar[type] = object
    default_dataset: ClassVar[str] = ""  # the dataset the space is searched on by default
    # the data `tanglenas profile` measures a step on (classes or vocabulary, one input's shape)
    profile_data: ClassVar[DataShape] = DataShape(num_classes=10, input_shape=(3, 32, 32))
    # the smallest settings that still exercise every part of the space (the tests of every space)
    tiny_data: ClassVar[DataShape] = DataShape(num_classes=10, input_shape=(3, 16, 16))
    tiny_options: ClassVar[Mapping[str, Any]] = {}
    benchmark: ClassVar[str | None] = (
        None  # the tabular benchmark of the space (see tanglenas_cli.benchmarks)
    )
    supports_ws: ClassVar[bool] = True  # False: weight entanglement only (build_supernet(False) refuses)
    # True: entangled groups end in batch norm, and build_supernet takes entangled_groups="original"|"scaled"
    scalable_groups: ClassVar[bool] = False
    task: ClassVar[str] = "classification"  # or "language_model": inputs (B, T) token ids, logits (B, T, V)

    def __init__(self, data: DataShape, options: Mapping[str, Any] | None = None) -> None:
        self.data = data
        self.options = parse_options(self.Options, options or {}, self.name)

    def build_supernet(self, entangle: bool = True) -> nn.Module:
        """Return the supernet: weight entanglement (WE) or weight sharing (WS, one module per candidate)."""
        raise NotImplementedError

    def derive(self, choices: Mapping[str, Choice]) -> dict[str, Any]:
        """Return the architecture given by the largest logit of every choice (by name)."""
        return self.arch_of({name: choice.derive() for name, choice in choices.items()})

    def arch_of(self, picks: Mapping[str, Any]) -> dict[str, Any]:
        """Return the architecture that takes candidate ``picks[name]`` at every choice ``name``."""
        raise NotImplementedError

    def picks_of(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        """Return the candidate of every choice of the supernet that makes ``arch`` (inverse of arch_of).

        Choices that do not shape ``arch`` (layers beyond its depth) take their first candidate.
        """
        raise NotImplementedError

    def build_network(self, arch: Mapping[str, Any]) -> nn.Module:
        """Return the discrete network of ``arch``, freshly initialised, for training from scratch."""
        raise NotImplementedError

    def validate(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``arch`` normalised, or raise UserError saying what is wrong with it."""
        raise NotImplementedError

    def benchmark_key(self, arch: Mapping[str, Any]) -> str | None:
        """Return the tabular-benchmark key of ``arch`` (None when the space has no benchmark)."""
        return None

    def largest_architecture(self) -> dict[str, Any]:
        """Return the single most expensive architecture (the cost floor a supernet step is compared to)."""
        raise UserError(f"space {self.name!r} defines no largest architecture")

    def ignores_input(self, arch: Mapping[str, Any]) -> bool:
        """Whether the network of ``arch`` gives the same output for every input (e.g. an NB201 cell with
        a ``none`` on every path): an architecture no budget should settle for."""
        return False

    def all_architectures(self) -> list[dict[str, Any]] | None:
        """Return every architecture of the space when it is small enough to list (else None)."""
        return None

    def describe(self, arch: Mapping[str, Any]) -> str:
        """Return a one-line description of ``arch``."""
        return str(dict(arch))

    def arch_fields(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        """Return extra fields written beside ``arch`` in arch.yaml (e.g. a DARTS genotype string)."""
        return {}

    def named_architectures(self) -> dict[str, dict[str, Any]]:
        """Return the architectures shipped with the space, by name (e.g. published genotypes)."""
        return {}

    def inherit_weights(self, supernet_state: Mapping[str, Any], network: nn.Module) -> None:
        """Copy ``network``'s weights out of a trained supernet's state dict (``train --inherit``)."""
        raise UserError(f"space {self.name!r} cannot inherit supernet weights; train from scratch")

    def load_pretrained(self, supernet: nn.Module, path: Any) -> dict[str, Any]:
        """Initialise ``supernet`` from a released checkpoint (``search --init-from``); return a summary."""
        raise UserError(f"space {self.name!r} has no pretrained checkpoint format to --init-from")

    def no_weight_decay(self, model: nn.Module) -> set[str]:
        """Return the names of ``model``'s parameters that this space's reference trains without weight decay.

        ``model`` is this space's supernet or one of its discrete networks. The weight optimizers of
        ``search`` and ``train`` put these in the zero-decay group whatever their shape (the timm
        ``no_weight_decay`` convention); ``weight_optimizer.no_decay_1d`` adds every 1-d parameter.
        Default: none.
        """
        return set()

    def cost_units(self) -> list[CostUnit]:
        """Return the pieces of the discrete network that depend on choices (everything else is constant)."""
        raise UserError(f"space {self.name!r} has no cost model (cost.metric, derive --within-budget)")

    def cost_weights(self, weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Return the weights the cost units read, from the mixing weights of every choice (by name).

        Default: the mixing weights themselves. A space whose discrete network is not one pick per choice
        (DARTS keeps two edges per node) returns each unit choice's probability of being built.
        """
        return dict(weights)

    def spos_subsets(self) -> list[list[str]] | None:
        """Return groups of choice names of which SPOS keeps only some per sample (None: no groups)."""
        return None


def inherit_prefix_slices(supernet_state: Mapping[str, Any], network: nn.Module) -> None:
    """Copy into ``network`` the leading slice of the supernet tensor of the same name, for every tensor.

    This is ``inherit_weights`` for spaces whose discrete networks are built from the same layers at one
    size (every candidate is a prefix slice of its super tensor).
    """
    import torch

    with torch.no_grad():
        for key, tensor in network.state_dict().items():
            source = supernet_state.get(key)
            if source is None or source.dim() != tensor.dim():
                raise UserError(f"the supernet checkpoint has no tensor {key!r} for this architecture")
            if any(a > b for a, b in zip(tensor.shape, source.shape, strict=True)):
                raise UserError(f"{key!r}: the architecture is larger than the supernet's tensor")
            tensor.copy_(source[tuple(slice(0, n) for n in tensor.shape)])


def check_rate(space: str, key: str, value: float) -> None:
    """Raise a UserError unless 0 <= ``value`` < 1 (a dropout or drop-path rate of space option ``key``)."""
    if not 0 <= value < 1:
        raise UserError(f"{space} needs 0 <= {key} < 1, got {value}")


def choices_by_name(model: nn.Module) -> dict[str, Choice]:
    """Return the Choices of ``model`` keyed by their names."""
    return {choice.name: choice for choice in find_choices(model)}


def parse_options(options_type: type, values: Mapping[str, Any], space: str) -> Any:
    """Return ``options_type(**values)``, turning unknown keys and wrong types into a UserError."""
    if options_type is object:
        if values:
            raise UserError(f"space {space!r} takes no space_options (got {', '.join(values)})")
        return None
    known = {f.name: f for f in fields(options_type)}
    for key, value in values.items():
        if key not in known:
            raise UserError(
                f"unknown space_options key {key!r} for space {space!r}; "
                f"allowed: {', '.join(known) or 'none'}"
            )
        expected = known[key].type if isinstance(known[key].type, type) else type(known[key].default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise UserError(
                f"space_options.{key}={value!r} has the wrong type for space {space!r}; "
                f"expected {expected.__name__}"
            )
    result = options_type(**values)
    if hasattr(result, "check"):
        result.check()
    return result
