"""The one-shot optimizers by name: the sampler each one uses and how its architecture step is taken.

Torch-free (the samplers are named, not imported), so that ``tanglenas --help`` and config validation
can list and check the names cheaply. A new optimizer is one entry here (and a sampler if it needs one).
"""

from __future__ import annotations

from dataclasses import dataclass

from tanglenas_cli.registry import Registry


@dataclass(frozen=True)
class OneShotOptimizer:
    """A one-shot optimizer: its sampler (a class of ``nas.samplers``) and the order of its arch step."""

    sampler: str
    second_order: bool = False  # DARTS' unrolled step (finite-difference Hessian-vector product)


_OPTIMIZERS: Registry[OneShotOptimizer] = Registry(
    "optimizer",
    {
        "darts_v1": OneShotOptimizer("DartsSampler"),
        "darts_v2": OneShotOptimizer("DartsSampler", second_order=True),
        "drnas": OneShotOptimizer("DrNASSampler"),
        "gdas": OneShotOptimizer("GDASSampler"),
        "spos": OneShotOptimizer("SPOSSampler"),
        "discrete": OneShotOptimizer("DiscreteSampler"),
    },
)


def list_optimizers() -> list[str]:
    """Return the names of every one-shot optimizer, in the order they are listed."""
    return _OPTIMIZERS.names()


def optimizer_entry(name: str) -> OneShotOptimizer:
    """Return optimizer ``name``; UserError (the one "unknown optimizer" line) otherwise."""
    return _OPTIMIZERS.get(name)
