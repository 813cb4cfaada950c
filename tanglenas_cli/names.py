"""The known names of search spaces, one-shot optimizers and datasets, in one place."""

from collections.abc import Sequence

from tanglenas_cli.errors import UserError

SPACES: tuple[str, ...] = (
    "toy_cell",
    "toy_conv_macro",
    "nb201",
    "nats_sss",
    "darts",
    "autoformer",
    "autoformer_s",
    "nanogpt",
    "mobilenetv3",
)
OPTIMIZERS: tuple[str, ...] = ("darts_v1", "darts_v2", "drnas", "gdas", "spos", "discrete")
DATASETS: tuple[str, ...] = (
    "digits",
    "synthetic",
    "fashion_mnist",
    "cifar10",
    "cifar100",
    "imagenet16-120",
    "imagenet",
    "imagefolder",
    "tinystories",
    "text",
)
# Things `prepare-data` fetches that are not datasets of a run.
PREPARE_ONLY: tuple[str, ...] = ("toy-benchmarks", "nb201-bench")


def unknown_name_message(kind: str, value: object, allowed: Sequence[str]) -> str:
    """Return the one-line message for a name that is not one of `allowed`."""
    return f"unknown {kind} {str(value)!r}; choose one of: {', '.join(allowed)}"


def check_name(kind: str, value: str, allowed: Sequence[str]) -> str:
    """Return `value` if it is one of `allowed`; raise UserError naming it otherwise."""
    if value not in allowed:
        raise UserError(unknown_name_message(kind, value, allowed))
    return value
