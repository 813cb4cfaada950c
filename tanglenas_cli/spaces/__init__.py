"""Search spaces, registered by name with `@register_space("nb201")`."""

from collections.abc import Callable
from typing import TypeVar

SPACE_REGISTRY: dict[str, object] = {}

_Registered = TypeVar("_Registered")


def register_space(name: str) -> Callable[[_Registered], _Registered]:
    """Return a decorator that stores the decorated object in SPACE_REGISTRY under `name`."""

    def store(space: _Registered) -> _Registered:
        SPACE_REGISTRY[name] = space
        return space

    return store


def _register_builtin_spaces() -> None:
    # Imported here (not at the top) because each space module uses register_space.
    from tanglenas_cli.spaces import (  # noqa: F401
        autoformer,
        darts,
        mobilenetv3,
        nanogpt,
        nats_sss,
        nb201,
        toy_cell,
        toy_conv_macro,
    )


_register_builtin_spaces()
