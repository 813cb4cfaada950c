"""The dataset names this package knows, and the one-line errors for names it cannot build."""

from __future__ import annotations

from tanglenas_cli.errors import UserError
from tanglenas_cli.names import DATASETS

AVAILABLE: tuple[str, ...] = (
    "digits",
    "synthetic",
    "fashion_mnist",
    "cifar10",
    "cifar100",
    "imagenet16-120",
    "imagenet",
    "imagefolder",
    "text",
    "tinystories",
)
NOT_YET_AVAILABLE: tuple[str, ...] = ()
DATASET_NAMES: tuple[str, ...] = DATASETS


def check_available(name: str) -> str:
    """Return `name` if this package can build it; UserError for unknown or not-yet-available names."""
    if name in AVAILABLE:
        return name
    if name in NOT_YET_AVAILABLE:
        raise UserError(f"dataset {name!r} is not available yet; available: {', '.join(AVAILABLE)}")
    raise UserError(f"unknown dataset {str(name)!r}; choose one of: {', '.join(DATASET_NAMES)}")
