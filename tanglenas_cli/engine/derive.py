"""``tanglenas derive``: the final architecture of a search run, from its checkpoint or trajectory."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from torch import nn

from tanglenas_cli.config import RunConfig, load_config
from tanglenas_cli.engine import run_dir as files
from tanglenas_cli.engine.checkpoint import load_checkpoint
from tanglenas_cli.engine.factory import build_search_supernet, load_search_data
from tanglenas_cli.engine.posthoc import (
    EvolutionSettings,
    GenomeDrawer,
    SupernetScorer,
    describe_limits,
    evolution,
    random_search,
    scoring_batches,
)
from tanglenas_cli.errors import UserError
from tanglenas_cli.spaces import SPACE_REGISTRY
from tanglenas_cli.spaces.base import NO_DATA, DataShape, SearchSpace, choices_by_name


def space_from_state(space: str, data_shape: dict[str, Any], options: dict[str, Any]) -> SearchSpace:
    """Return the space of a checkpoint, built for the data shape stored in it."""
    shape = DataShape(int(data_shape["num_classes"]), tuple(int(v) for v in data_shape["input_shape"]))  # type: ignore[arg-type]
    return SPACE_REGISTRY[space](shape, options)


def trained_network(
    path: Path, state: dict[str, Any], options: dict[str, Any]
) -> tuple[SearchSpace, nn.Module]:
    """Return the space and the discrete network of a ``train`` checkpoint ``state`` (read from ``path``)."""
    space = space_from_state(state["space"], state["data_shape"], options)
    model = space.build_network(state["architecture"])
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        # trained before discrete NB201 / NATS networks became the benchmark's (space_options.network)
        if "network" not in options and hasattr(space.options, "network"):
            older = space_from_state(state["space"], state["data_shape"], {**options, "network": "supernet"})
            model = older.build_network(state["architecture"])
            try:
                model.load_state_dict(state["model"])
                return older, model
            except RuntimeError:
                pass
        raise UserError(f"{path} does not match its architecture: {str(error).splitlines()[0]}") from None
    return space, model


def load_supernet(run_dir: Path) -> tuple[RunConfig, SearchSpace, nn.Module]:
    """Return the config, the space and the trained supernet of the search run in ``run_dir``."""
    cfg = load_config(run_dir)
    state = load_checkpoint(run_dir / files.CHECKPOINT, kind="search")
    space = space_from_state(cfg.space, state["data_shape"], cfg.space_options)
    model = build_search_supernet(cfg, space)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise UserError(
            f"checkpoint in {run_dir} does not match its config: {str(error).splitlines()[0]}"
        ) from None
    return cfg, space, model


def derive_from_checkpoint(run_dir: Path) -> tuple[SearchSpace, dict[str, Any]]:
    """Return the space and the argmax architecture of the search checkpoint in ``run_dir``."""
    _, space, model = load_supernet(run_dir)
    return space, space.derive(choices_by_name(model))


def derive_from_trajectory(run_dir: Path, epoch: int) -> dict[str, Any]:
    """Return the architecture recorded after ``epoch`` (counted from 1) in trajectory.jsonl."""
    records = files.read_jsonl(run_dir / files.TRAJECTORY)
    for record in records:
        if record.get("epoch") == epoch - 1:
            return record["architecture"]
    raise UserError(f"{run_dir / files.TRAJECTORY} has no epoch {epoch} (it has 1..{len(records)})")


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
    space = SPACE_REGISTRY[cfg.space](NO_DATA, {**searched.space_options, **cfg.space_options})
    arch = space.validate(derive_from_trajectory(run_dir, epoch))
    default = run_dir / f"train-epoch{epoch}-{cfg.dataset}-s{cfg.seed}"
    out = cfg.out_dir.expanduser() if cfg.out_dir is not None else default
    if (out / files.MODEL).exists():
        raise UserError(f"{out} already holds a trained model; pass another --out")
    out.mkdir(parents=True, exist_ok=True)
    files.write_arch(out / files.ARCH, cfg.space, arch, space.benchmark_key(arch), dataset=searched.dataset,
                     space_options=dict(searched.space_options),
                     derived_by=f"argmax of the architecture logits after epoch {epoch} of {run_dir}",
                     **space.arch_fields(arch))  # fmt: skip
    return out / files.ARCH


def search_trained_supernet(run_dir: Path, strategy: str, samples: int | None = None,
                            batches: int | None = None, min_params: int | None = None,
                            max_params: int | None = None, min_flops: float | None = None,
                            max_flops: float | None = None, settings: EvolutionSettings | None = None,
                            seed: int | None = None,
                            ) -> tuple[SearchSpace, dict, str, dict[str, int]]:  # fmt: skip
    """Random search or evolution over the supernet in ``run_dir``; ``samples``, ``batches`` and ``seed``
    default to the run's ``selection`` settings and seed (so ``random`` repeats a SPOS search's own pick).

    Return (space, architecture, method, {"params": ..., "flops": ...} of the architecture's network).
    """
    import torch

    check_limits(min_params, max_params, min_flops, max_flops)
    cfg, space, model = load_supernet(run_dir)
    if strategy == "evolution" and space.spos_subsets():
        raise UserError(
            f"evolution mutates choices independently; {cfg.space} keeps edge subsets (use --strategy random)"
        )
    samples = samples if samples is not None else cfg.selection.samples
    batches = batches if batches is not None else cfg.selection.batches
    seed = seed if seed is not None else cfg.seed
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    valid, train = scoring_batches(cfg, load_search_data(cfg), batches, cfg.selection.recalibration_batches)
    choices = choices_by_name(model)
    scorer = SupernetScorer(model, space, choices, valid, train, device, min_params, max_params,
                            min_flops, max_flops)  # fmt: skip
    if strategy == "random":
        genome = random_search(scorer, GenomeDrawer(space, choices, seed), samples)
    else:
        sizes = [len(c) for c in choices.values()]
        genome = evolution(scorer, sizes, settings or EvolutionSettings(), random.Random(seed))
    score = scorer(genome)
    shown = f"loss {-score:.4f}" if space.task == "language_model" else f"top-1 {score:.2f}%"
    limits = describe_limits(min_params, max_params, min_flops, max_flops)
    within = f"; within {limits}" if limits else ""
    method = (f"{strategy} over the trained supernet ({len(scorer.scores)} architectures scored; "
              f"supernet {shown} on {len(valid)} arch-split batches{within})")  # fmt: skip
    params, flops = scorer.measure(genome)
    return space, scorer.architecture(genome), method, {"params": params, "flops": flops}


def check_limits(min_params: int | None = None, max_params: int | None = None,
                 min_flops: float | None = None, max_flops: float | None = None) -> None:  # fmt: skip
    """Raise a UserError when a floor exceeds its cap."""
    for name, low, high in (("params", min_params, max_params), ("flops", min_flops, max_flops)):
        if low is not None and high is not None and low > high:
            low_text, high_text = (f"{v:g}" if isinstance(v, float) else str(v) for v in (low, high))
            raise UserError(
                f"--min-{name} {low_text} is above --max-{name} {high_text}; pass a floor <= the cap"
            )


def run_derive(run_dir: Path, out: Path | None = None, epoch: int | None = None, strategy: str | None = None,
               **search: Any) -> dict[str, Any]:  # fmt: skip
    """Derive the architecture of a search run, write it as arch.yaml and return a summary.

    ``strategy`` (random / evolution) searches the trained supernet instead of reading the logits.
    """
    cfg = load_config(run_dir)
    measured: dict[str, int] = {}
    if strategy is not None:
        if epoch is not None:
            raise UserError("--strategy searches the final supernet; drop --epoch")
        space, arch, method, measured = search_trained_supernet(run_dir, strategy, **search)
    elif epoch is not None:
        space = SPACE_REGISTRY[cfg.space](NO_DATA, cfg.space_options)
        arch = space.validate(derive_from_trajectory(run_dir, epoch))
        method = f"argmax of the architecture logits after epoch {epoch}"
    elif cfg.optimizer in ("spos", "discrete"):
        arch_file = run_dir / files.ARCH
        if not arch_file.is_file():
            raise UserError(f"{cfg.optimizer} does not train logits; finish the search to get {arch_file}")
        stored = files.read_arch(arch_file)
        space = SPACE_REGISTRY[cfg.space](NO_DATA, cfg.space_options)
        arch, method = space.validate(stored["architecture"]), stored.get("derived_by", "search")
    else:
        space, arch = derive_from_checkpoint(run_dir)
        method = "argmax of the architecture logits"
    key = space.benchmark_key(arch)
    target = out or run_dir / files.ARCH
    files.write_arch(
        target,
        cfg.space,
        arch,
        key,
        dataset=cfg.dataset,
        space_options=dict(cfg.space_options),
        derived_by=method,
        **space.arch_fields(arch),
    )
    result: dict[str, Any] = {"space": cfg.space, "architecture": space.describe(arch)}
    if key is not None:
        result["benchmark_key"] = key
    result.update(measured)  # with --strategy: the network's parameters and forward FLOPs on one input
    result.update({"derived_by": method, "written": str(target)})
    return result
