"""``tanglenas derive``: the final architecture of a search run, from its checkpoint or trajectory."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from tanglenas_cli.config import load_config
from tanglenas_cli.engine import run_dir as files
from tanglenas_cli.engine.budget import budget_model
from tanglenas_cli.engine.cost import format_cost
from tanglenas_cli.engine.factory import load_search_data
from tanglenas_cli.engine.posthoc import (
    EvolutionSettings,
    GenomeDrawer,
    SupernetScorer,
    describe_limits,
    evolution,
    random_search,
    scoring_batches,
)
from tanglenas_cli.engine.run_models import derive_from_trajectory, load_supernet
from tanglenas_cli.engine.task import task_of
from tanglenas_cli.errors import UserError
from tanglenas_cli.nas.samplers import sampler_class
from tanglenas_cli.spaces import create_space
from tanglenas_cli.spaces.base import SearchSpace, choices_by_name


def search_trained_supernet(run_dir: Path, strategy: str, samples: int | None = None,
                            batches: int | None = None, min_params: int | None = None,
                            max_params: int | None = None, min_flops: float | None = None,
                            max_flops: float | None = None, population: int = 50, generations: int = 20,
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
        settings = EvolutionSettings.for_population(population, generations)
        genome = evolution(scorer, sizes, settings, random.Random(seed))
    score = scorer(genome)
    shown = task_of(space).score_text(score)
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


def _within_budget(run_dir: Path) -> tuple[SearchSpace, dict[str, Any], str, dict[str, float]]:
    """Return (space, architecture, method, {metric: cost}) of the last epoch whose argmax architecture
    meets the run's cost budget."""
    cfg, space, model = load_supernet(run_dir)
    metric, target = cfg.cost.metric, cfg.cost.target
    if metric is None or target is None:
        raise UserError(
            f"{run_dir} searched without a cost budget; --within-budget needs a run with cost.metric and"
            " cost.target (or use derive --strategy evolution --max-params N)"
        )
    choices = choices_by_name(model)
    costs = budget_model(cfg, space, {name: c.candidates for name, c in choices.items()})
    records = files.read_jsonl(run_dir / files.TRAJECTORY)
    found = [
        (int(r["epoch"]) + 1, r["architecture"], costs.of_architecture(r["architecture"])) for r in records
    ]
    if not found:
        raise UserError(f"{run_dir / files.TRAJECTORY} records no epoch yet")
    meeting = [entry for entry in found if entry[2] <= target]
    if not meeting:
        epoch, _, smallest = min(found, key=lambda entry: entry[2])
        raise UserError(
            f"no epoch's argmax architecture meets cost.target={target:g}: the smallest is "
            f"{format_cost(metric, smallest)} after epoch {epoch}"
        )
    useful = [entry for entry in meeting if not space.ignores_input(entry[1])]
    if not useful:  # e.g. NB201 cells whose every path has a `none`: they score chance
        raise UserError(
            f"no epoch's argmax architecture meets cost.target={target:g} with a network that uses its "
            f"input: the {len(meeting)} within it output the same for every input (a `none` on every path)"
        )
    epoch, arch, cost = useful[-1]
    skipped = sum(1 for entry in meeting if entry[0] > epoch)
    method = (f"argmax of the architecture logits after epoch {epoch}, the last within cost.target "
              f"({format_cost(metric, cost)} <= {target:g})")  # fmt: skip
    if skipped:
        method += f" whose network uses its input ({skipped} later ones do not)"
    return space, space.validate(arch), method, {metric: cost if metric == "latency" else int(cost)}


def run_derive(run_dir: Path, out: Path | None = None, epoch: int | None = None, strategy: str | None = None,
               within_budget: bool = False, **search: Any) -> dict[str, Any]:  # fmt: skip
    """Derive the architecture of a search run, write it as arch.yaml and return a summary.

    ``strategy`` (random / evolution) searches the trained supernet instead of reading the logits;
    ``within_budget`` takes the last epoch's argmax that meets the run's cost budget.
    """
    cfg = load_config(run_dir)
    measured: dict[str, Any] = {}
    if within_budget:
        if epoch is not None:
            raise UserError("--within-budget picks the epoch itself; drop --epoch")
        space, arch, method, measured = _within_budget(run_dir)
    elif strategy is not None:
        if epoch is not None:
            raise UserError("--strategy searches the final supernet; drop --epoch")
        space, arch, method, measured = search_trained_supernet(run_dir, strategy, **search)
    elif epoch is not None:
        space = create_space(cfg.space, options=cfg.space_options)
        arch = space.validate(derive_from_trajectory(run_dir, epoch))
        method = f"argmax of the architecture logits after epoch {epoch}"
    elif not sampler_class(cfg.optimizer).trains_logits:
        arch_file = run_dir / files.ARCH
        if not arch_file.is_file():
            raise UserError(f"{cfg.optimizer} does not train logits; finish the search to get {arch_file}")
        stored = files.read_arch(arch_file)
        space = create_space(cfg.space, options=cfg.space_options)
        arch, method = space.validate(stored["architecture"]), stored.get("derived_by", "search")
    else:
        _, space, model = load_supernet(run_dir)
        arch = space.derive(choices_by_name(model))
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
