"""Errors the command line reports as one line instead of a traceback, each with its exit code.

Exit codes: 0 done; 2 bad input (:class:`UserError`); 3 a run stopped because its loss, gradients or
weights became NaN/inf (:class:`NonFiniteError`); 130 interrupted (Ctrl-C, :class:`Interrupted`).
"""

from collections.abc import Iterable


class UserError(Exception):
    """Bad input by the user: a missing file, an unknown name, an invalid setting.

    The message is one line that names the bad value and says what is allowed.
    """

    exit_code = 2


class NonFiniteError(UserError):
    """A run stopped on NaN/inf (too many skipped steps, or non-finite weights before a checkpoint)."""

    exit_code = 3


class Interrupted(UserError):
    """Ctrl-C: the run stopped between checkpoints; the message says how to resume."""

    exit_code = 130


def unknown_name_message(kind: str, value: object, allowed: Iterable[str]) -> str:
    """Return the one line for a name that is not one of ``allowed`` (every registry's "unknown X")."""
    return f"unknown {kind} {str(value)!r}; choose one of: {', '.join(allowed)}"


def check_name(kind: str, value: str, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``; raise UserError naming it otherwise."""
    allowed = list(allowed)
    if value not in allowed:
        raise UserError(unknown_name_message(kind, value, allowed))
    return value
