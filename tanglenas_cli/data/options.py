"""Reading and checking `dataset_options`: unknown keys and bad values are one-line UserErrors."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from tanglenas_cli.errors import UserError


def read_options(
    dataset: str, options: Mapping[str, Any] | None, defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """Return `defaults` updated with `options` (None values keep the default); UserError on unknown keys."""
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise UserError(f"dataset options for {dataset} must be a mapping, got {options!r}")
    unknown = [str(key) for key in options if key not in defaults]
    if unknown:
        allowed = ", ".join(defaults) if defaults else "none"
        raise UserError(f"unknown dataset option {unknown[0]!r} for {dataset}; allowed: {allowed}")
    merged = dict(defaults)
    merged.update({key: value for key, value in options.items() if value is not None})
    return merged


def int_option(dataset: str, key: str, value: Any, minimum: int | None = None) -> int:
    """Return `value` as an int; UserError if it is not an integer (bools excluded) or below `minimum`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UserError(f"dataset option {key}={value!r} for {dataset} must be an integer")
    if minimum is not None and value < minimum:
        raise UserError(f"dataset option {key}={value!r} for {dataset} must be an integer >= {minimum}")
    return int(value)


def floats_option(
    dataset: str, key: str, value: Any, length: int, positive: bool = False
) -> tuple[float, ...]:
    """Return `value` as a tuple of `length` floats (a single number is repeated); UserError otherwise."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = [value] * length
    what = f"{length} {'positive ' if positive else ''}numbers"
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != length:
        raise UserError(f"dataset option {key}={value!r} for {dataset} must be {what}")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, numbers.Real) or (positive and item <= 0):
            raise UserError(f"dataset option {key}={value!r} for {dataset} must be {what}")
    return tuple(float(item) for item in value)
