"""Pydantic validation errors turned into one line: key, bad value, what is expected."""

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

_UNKNOWN_NAME = "tanglenas_unknown_name"
_INVALID = "tanglenas_invalid"


def unknown_name_error(message: str) -> PydanticCustomError:
    """Return the error a validator raises for an unknown name; reported as `message` alone."""
    return PydanticCustomError(_UNKNOWN_NAME, "{message}", {"message": message})


def invalid_error(message: str) -> PydanticCustomError:
    """Return the error a validator raises for an invalid combination; reported after its key."""
    return PydanticCustomError(_INVALID, "{message}", {"message": message})


def _dotted(location: Iterable[int | str]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "path_type": "a path",
    "dict_type": "a mapping",
    "model_type": "a mapping of settings",
    "model_attributes_type": "a mapping of settings",
    "tuple_type": "a list of 2 numbers",
    "too_long": "a list of 2 numbers",
}
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def _describe_error(error: Mapping[str, Any], hints: Mapping[str, str]) -> str:
    kind, context = error["type"], error.get("ctx") or {}
    location = list(error["loc"])
    if kind in (_UNKNOWN_NAME, _INVALID):
        message = str(context.get("message", error["msg"]))
        return message if kind == _UNKNOWN_NAME or not location else f"{_dotted(location)}: {message}"
    if kind == "missing" and location and isinstance(location[-1], int):
        kind, location = "too_short", location[:-1]
    key = _dotted(location)
    if kind == "missing":
        hint = f" ({hints[key]})" if key in hints else ""
        return f"missing required setting '{key}'{hint}"
    if kind == "extra_forbidden":
        return f"unknown setting '{key}'"
    if kind in _BOUNDS:
        bound = next(iter(context.values()), "?")
        expected = f"a number {_BOUNDS[kind]} {bound}"
    elif kind == "literal_error":
        expected = f"one of {context.get('expected', '?')}"
    elif kind == "too_short":
        expected = "a list of 2 numbers"
    else:
        expected = _EXPECTED.get(kind) or str(error["msg"]).replace("Input should be ", "")
    return f"invalid value for '{key}': {_short_repr(error['input'])} (expected {expected})"


def one_line(error: ValidationError, hints: Mapping[str, str] | None = None) -> str:
    """Return a pydantic ValidationError as one line naming the key, the bad value and what is expected.

    `hints` adds advice to "missing" errors, by dotted key.
    """
    problems = error.errors()
    message = _describe_error(problems[0], hints or {})
    others = sorted({_dotted(problem["loc"]) or "config" for problem in problems[1:]})
    return message + (f" (also invalid: {', '.join(others)})" if others else "")
