"""Errors the command line reports as one line (exit code 2) instead of a traceback."""

from collections.abc import Iterable


class UserError(Exception):
    """Bad input by the user: a missing file, an unknown name, an invalid setting.

    The message is one line that names the bad value and says what is allowed.
    """


def unknown_name_message(kind: str, value: object, allowed: Iterable[str]) -> str:
    """Return the one line for a name that is not one of ``allowed`` (every registry's "unknown X")."""
    return f"unknown {kind} {str(value)!r}; choose one of: {', '.join(allowed)}"


def check_name(kind: str, value: str, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``; raise UserError naming it otherwise."""
    allowed = list(allowed)
    if value not in allowed:
        raise UserError(unknown_name_message(kind, value, allowed))
    return value
