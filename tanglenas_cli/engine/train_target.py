"""What ``tanglenas train`` trains: an arch.yaml, an epoch of a search's trajectory, or a named architecture
(``SPACE:NAME``, shipped with a space, e.g. ``darts:arch_rs_spos``).

Each target gives the architecture file and the run config, built from the search's settings (where
there was a search) under the preset, flags and overrides of the command line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tanglenas_cli.config import CONFIG_FILE, INHERITED_BY_TRAIN, RunConfig, build_config, load_config
from tanglenas_cli.engine import run_dir as files
from tanglenas_cli.engine.run_models import derive_from_trajectory
from tanglenas_cli.errors import UserError
from tanglenas_cli.presets import paper_preset, run_dataset
from tanglenas_cli.spaces import check_space, create_space

NAMED_TARGET = re.compile(r"^(?P<space>[A-Za-z0-9_]+):(?P<name>[A-Za-z0-9_.-]+)$")


def _inherited(config_path: Path) -> dict[str, Any]:
    searched = load_config(config_path).model_dump(mode="json")
    return {key: searched[key] for key in INHERITED_BY_TRAIN}


def _training_folder(cfg: RunConfig, default: Path) -> Path:
    """Return the training folder (``--out``, else ``default``), created; UserError if it holds a model."""
    out = cfg.out_dir.expanduser() if cfg.out_dir is not None else default
    if (out / files.MODEL).exists():
        raise UserError(f"{out} already holds a trained model; pass another --out")
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_named_arch(space: str, name: str, cfg: RunConfig) -> Path:
    """Write the named architecture ``space:name`` as the arch.yaml of the training folder (default:
    ``runs/train-SPACE-NAME-DATASET-sSEED``); return that file."""
    search_space = create_space(space)
    named = search_space.named_architectures()
    if name not in named:
        available = ", ".join(f"{space}:{n}" for n in sorted(named)) or "none"
        raise UserError(f"unknown architecture {name!r} of space {space!r}; available: {available}")
    arch = search_space.validate(named[name])
    out = _training_folder(cfg, Path.cwd() / "runs" / f"train-{space}-{name}-{cfg.dataset}-s{cfg.seed}")
    files.write_arch(out / files.ARCH, space, arch, search_space.benchmark_key(arch), named=f"{space}:{name}",
                     **search_space.arch_fields(arch))  # fmt: skip
    return out / files.ARCH


def write_trajectory_arch(run_dir: Path, epoch: int | None, cfg: RunConfig) -> Path:
    """Write the architecture of ``run_dir`` after ``epoch`` (default: its last) as the arch.yaml of a
    training folder (``--out``, else RUN/train-epochN-DATASET-sSEED); return that file."""
    records = files.read_jsonl(run_dir / files.TRAJECTORY)
    if not records:
        raise UserError(
            f"{run_dir} has no trajectory yet ({files.TRAJECTORY}); let the search finish an epoch"
        )
    epoch = epoch if epoch is not None else int(records[-1]["epoch"]) + 1
    searched = load_config(run_dir)
    space = create_space(cfg.space, options={**searched.space_options, **cfg.space_options})
    arch = space.validate(derive_from_trajectory(run_dir, epoch))
    out = _training_folder(cfg, run_dir / f"train-epoch{epoch}-{cfg.dataset}-s{cfg.seed}")
    files.write_arch(out / files.ARCH, cfg.space, arch, space.benchmark_key(arch), dataset=searched.dataset,
                     space_options=dict(searched.space_options),
                     derived_by=f"argmax of the architecture logits after epoch {epoch} of {run_dir}",
                     **space.arch_fields(arch))  # fmt: skip
    return out / files.ARCH


def resolve_train_target(
    target: Path | None,
    from_run: Path | None,
    epoch: int | None,
    preset: str | None,
    flags: Mapping[str, Any],
    overrides: Sequence[str],
    use_paper_preset: bool = True,
) -> tuple[Path, RunConfig]:
    """Return (the arch.yaml to train, the run config) for ``train TARGET`` or ``train --from-run RUN``.

    ``TARGET`` is an arch.yaml, a folder holding one, or ``SPACE:NAME``; with ``from_run``, the
    architecture after ``epoch`` (default: the last) is written into the training folder first. With
    ``use_paper_preset`` and no ``preset``, a space named by ``--space`` or ``SPACE:NAME`` trains with the
    paper's training preset for it on the dataset (given, inherited, else the space's own) if there is one.
    """
    if (target is None) == (from_run is None):
        raise UserError("give an architecture (ARCH_YAML_OR_RUN_DIR) or --from-run RUN_DIR, not both")
    if epoch is not None and from_run is None:
        raise UserError("--epoch picks an epoch of --from-run RUN_DIR; give --from-run too")
    if epoch is not None and epoch <= 0:
        raise UserError(f"invalid value for --epoch: {epoch} (epochs count from 1)")
    # SPACE:NAME, an architecture shipped with a space
    named = NAMED_TARGET.match(str(target)) if target is not None and not target.exists() else None
    base = None
    arch_file = None
    if named is not None:
        base = {"space": check_space(named["space"])}
    elif from_run is not None:
        if not from_run.is_dir():
            raise UserError(f"search run not found: {from_run}")
        base = _inherited(from_run)
    else:
        assert target is not None
        arch_file = target / files.ARCH if target.is_dir() else target
        if not arch_file.is_file():
            raise UserError(f"architecture file not found: {arch_file}")
        if (arch_file.parent / CONFIG_FILE).is_file():
            base = _inherited(arch_file.parent / CONFIG_FILE)
    space = flags.get("space") or (named["space"] if named is not None else None)
    if space is not None:
        check_space(space)
        dataset = run_dataset(space, flags.get("dataset") or (base or {}).get("dataset"))
        base = {**(base or {}), "dataset": dataset}
        found = paper_preset("train", space, dataset) if preset is None and use_paper_preset else None
        preset = found.name if found is not None else preset
    cfg = build_config(preset=preset, flags=flags, overrides=overrides, base=base)
    if named is not None:
        arch_file = write_named_arch(named["space"], named["name"], cfg)
    elif from_run is not None:
        arch_file = write_trajectory_arch(from_run, epoch, cfg)
    else:
        return arch_file, cfg  # type: ignore[return-value]
    return arch_file, cfg.model_copy(update={"out_dir": arch_file.parent})
