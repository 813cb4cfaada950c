"""The search spaces by name: ``list_spaces()``, ``space_class(name)``, ``create_space(name, ...)``.

A space is a :class:`~tanglenas_cli.spaces.base.SearchSpace` subclass registered with
``@register_space("name")``. The built-in ones are imported on first use (their modules import torch,
which ``tanglenas --help`` does not need); any other module that registers a space adds it by being
imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from tanglenas_cli.registry import Registry

if TYPE_CHECKING:
    from tanglenas_cli.spaces.base import DataShape, SearchSpace

# name -> its class, or (built-in spaces not imported yet) the module of this package that registers it
_SPACES: Registry[type | str] = Registry("space", {
    "toy_cell": "toy_cell",
    "toy_conv_macro": "toy_conv_macro",
    "nb201": "nb201",
    "nats_sss": "nats_sss",
    "darts": "darts",
    "autoformer": "autoformer",
    "autoformer_s": "autoformer",
    "nanogpt": "nanogpt",
    "mobilenetv3": "mobilenetv3",
})  # fmt: skip

_Space = TypeVar("_Space", bound=type)


def register_space(name: str) -> Callable[[_Space], _Space]:
    """Return a class decorator that registers a SearchSpace subclass under ``name`` (and sets its name)."""

    def store(space: _Space) -> _Space:
        space.name = name  # type: ignore[attr-defined]
        _SPACES.add(name, space)
        return space

    return store


def list_spaces() -> list[str]:
    """Return the names of every space: the built-in ones in their order, then the others as registered."""
    return _SPACES.names()


def check_space(name: str) -> str:
    """Return ``name`` if it is a space; UserError (the one "unknown space" line) otherwise."""
    _SPACES.get(name)
    return name


def space_class(name: str) -> type[SearchSpace]:
    """Return the SearchSpace subclass registered as ``name``, importing a built-in one on first use."""
    entry = _SPACES.get(name)
    if isinstance(entry, str):
        importlib.import_module(f"{__name__}.{entry}")
        entry = _SPACES.get(name)
    return entry  # type: ignore[return-value]


def create_space(
    name: str, data: DataShape | None = None, options: Mapping[str, Any] | None = None
) -> SearchSpace:
    """Return space ``name`` for data of shape ``data`` (default: the placeholder ``NO_DATA``)."""
    from tanglenas_cli.spaces.base import NO_DATA

    return space_class(name)(NO_DATA if data is None else data, options or {})
