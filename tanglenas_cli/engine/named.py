"""Named architectures shipped with a space (``tanglenas train darts:arch_rs_spos``)."""

from __future__ import annotations

import re
from pathlib import Path

from tanglenas_cli.config import RunConfig
from tanglenas_cli.engine import run_dir as files
from tanglenas_cli.errors import UserError

NAMED_TARGET = re.compile(r"^(?P<space>[A-Za-z0-9_]+):(?P<name>[A-Za-z0-9_.-]+)$")


def parse_named_target(text: str) -> tuple[str, str] | None:
    """Return (space, name) when ``text`` looks like ``SPACE:NAME``, else None."""
    match = NAMED_TARGET.match(text)
    return (match["space"], match["name"]) if match else None


def default_named_train_dir(space: str, name: str, cfg: RunConfig) -> Path:
    """Return ``runs/train-<space>-<name>-<dataset>-s<seed>`` under the working directory."""
    return Path.cwd() / "runs" / f"train-{space}-{name}-{cfg.dataset}-s{cfg.seed}"


def write_named_arch(space: str, name: str, cfg: RunConfig) -> Path:
    """Write the named architecture ``space:name`` as arch.yaml in the training output folder; return it."""
    from tanglenas_cli.spaces import SPACE_REGISTRY
    from tanglenas_cli.spaces.base import NO_DATA

    if space not in SPACE_REGISTRY:
        raise UserError(
            f"unknown space {space!r} in {space}:{name}; available: {', '.join(sorted(SPACE_REGISTRY))}"
        )
    search_space = SPACE_REGISTRY[space](NO_DATA, {})
    named = search_space.named_architectures()
    if name not in named:
        available = ", ".join(f"{space}:{n}" for n in sorted(named)) or "none"
        raise UserError(f"unknown architecture {name!r} of space {space!r}; available: {available}")
    arch = search_space.validate(named[name])
    out = cfg.out_dir.expanduser() if cfg.out_dir is not None else default_named_train_dir(space, name, cfg)
    if (out / files.MODEL).exists():
        raise UserError(f"{out} already holds a trained model; pass another --out")
    out.mkdir(parents=True, exist_ok=True)
    arch_file = out / files.ARCH
    files.write_arch(arch_file, space, arch, search_space.benchmark_key(arch), named=f"{space}:{name}",
                     **search_space.arch_fields(arch))  # fmt: skip
    return arch_file
