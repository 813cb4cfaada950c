"""``tanglenas correlate``: how well a trained supernet ranks architectures, against a tabular benchmark.

N architectures (all of them when N covers the space, else N distinct ones drawn uniformly with the
given seed) are scored on the trained supernet by the one scorer of the project
(:class:`~tanglenas_cli.engine.posthoc.SupernetScorer`: the path picked, batch norm recalibrated, the same
fixed arch-split batches for every candidate) and looked up in the benchmark. Reported: Kendall tau and
Spearman rho (scipy) between the two rankings, and the top-k overlap (the share of the supernet's k best
that are among the benchmark's k best of the same sample). Writes ``correlate.json`` (every architecture
with both numbers) and ``correlate.png`` (the scatter plot) into the run directory.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tanglenas_cli.benchmarks import NB201Benchmark
from tanglenas_cli.config import load_config
from tanglenas_cli.engine import run_dir as files
from tanglenas_cli.engine.lookup import benchmark_spaces, load_space_benchmark
from tanglenas_cli.errors import UserError

RESULT = "correlate.json"
PLOT = "correlate.png"
TOP_SHARE = 0.1  # default k: the best 10% of the sample


def rank_agreement(scores: Sequence[float], truth: Sequence[float], top_k: int) -> dict[str, float | None]:
    """Return Kendall tau(-b), Spearman rho and the top-k overlap of ``scores`` against ``truth``.

    The top-k overlap is |top_k(scores) & top_k(truth)| / k, each top-k taken by descending value
    (earlier items first on ties).
    """
    from scipy.stats import kendalltau, spearmanr

    if len(scores) != len(truth) or len(scores) < 2:
        raise UserError("rank agreement needs at least 2 architectures with a benchmark value")
    k = max(1, min(top_k, len(scores)))
    with warnings.catch_warnings():  # constant scores: the statistics are undefined (None), not a warning
        warnings.simplefilter("ignore")
        tau = kendalltau(scores, truth)
        rho = spearmanr(scores, truth)
    order = range(len(scores))
    best_scored = set(sorted(order, key=lambda i: -scores[i])[:k])
    best_true = set(sorted(order, key=lambda i: -truth[i])[:k])
    return {
        "kendall_tau": _number(tau.statistic),
        "kendall_p": _number(tau.pvalue),
        "spearman_rho": _number(rho.statistic),
        "spearman_p": _number(rho.pvalue),
        "top_k": k,
        "top_k_overlap": len(best_scored & best_true) / k,
    }


def _number(value: Any) -> float | None:
    """A statistic as a plain float; None where it is undefined (e.g. every score equal)."""
    value = float(value)
    return None if math.isnan(value) else value


def _shown(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


def _genomes(sizes: list[int], samples: int, draw: Any) -> list[tuple[int, ...]]:
    """Every genome when ``samples`` covers the space, else ``samples`` distinct ones from ``draw``."""
    total = math.prod(sizes)
    if samples >= total:
        return list(itertools.product(*(range(size) for size in sizes)))
    seen: dict[tuple[int, ...], None] = {}
    for _ in range(samples * 100):
        if len(seen) == samples:
            break
        seen.setdefault(draw(), None)
    return list(seen)


def plot_scatter(points: list[dict[str, Any]], path: Path, title: str, score_name: str) -> None:
    """Save the scatter plot of supernet score vs benchmark accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(4.8, 4.0))
    axis.scatter([p["benchmark"] for p in points], [p["supernet"] for p in points], s=10, alpha=0.7)
    axis.set_xlabel("benchmark test accuracy (%)")
    axis.set_ylabel(f"supernet {score_name}")
    axis.set_title(title, fontsize=9)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    temporary = path.with_name(f".{path.stem}.tmp.png")
    figure.savefig(temporary, dpi=110)
    plt.close(figure)
    temporary.replace(path)


def run_correlate(run_dir: Path, benchmark: Path, samples: int = 100, batches: int | None = None,
                  seed: int | None = None, top_k: int | None = None, dataset: str | None = None,
                  ) -> dict[str, Any]:  # fmt: skip
    """Score ``samples`` architectures on the supernet of ``run_dir`` and compare with ``benchmark``."""
    import torch

    from tanglenas_cli.engine.factory import load_search_data
    from tanglenas_cli.engine.posthoc import GenomeDrawer, SupernetScorer, scoring_batches
    from tanglenas_cli.engine.run_models import load_supernet
    from tanglenas_cli.engine.task import task_of
    from tanglenas_cli.spaces.base import choices_by_name

    cfg = load_config(run_dir)
    with_benchmark = benchmark_spaces()
    if cfg.space not in with_benchmark:
        raise UserError(
            f"space {cfg.space!r} has no tabular benchmark; correlate works on {', '.join(with_benchmark)}"
        )
    table = load_space_benchmark(benchmark, cfg.space)
    metric = "test_acc"
    if isinstance(table, NB201Benchmark):
        dataset = table.headline_dataset(dataset, run_dataset=cfg.dataset)
        metric = f"{dataset}_test"
    _, space, model = load_supernet(run_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    batches = batches if batches is not None else cfg.selection.batches
    valid, train = scoring_batches(cfg, load_search_data(cfg), batches, cfg.selection.recalibration_batches)
    choices = choices_by_name(model)
    scorer = SupernetScorer(model, space, choices, valid, train, device)
    seed = seed if seed is not None else cfg.seed
    genomes = _genomes([len(c) for c in choices.values()], samples, GenomeDrawer(space, choices, seed))
    points: list[dict[str, Any]] = []
    missing = 0
    for genome in genomes:
        key = space.benchmark_key(scorer.architecture(genome))
        if key is None or key not in table:
            missing += 1
            continue
        value = table.query(key).get(metric)
        if not isinstance(value, float) or math.isnan(value):
            missing += 1
            continue
        points.append({"key": key, "supernet": round(scorer(genome), 6), "benchmark": value})
    if len(points) < 2:
        raise UserError(f"only {len(points)} of {len(genomes)} sampled architectures are in {benchmark}")
    k = top_k if top_k is not None else max(1, math.ceil(TOP_SHARE * len(points)))
    stats = rank_agreement([p["supernet"] for p in points], [p["benchmark"] for p in points], k)
    picked = max(points, key=lambda p: p["supernet"])
    values = sorted((p["benchmark"] for p in points), reverse=True)
    score_name = task_of(space).score_name
    result: dict[str, Any] = {
        "run_dir": str(run_dir),
        "space": cfg.space,
        "benchmark": str(benchmark),
        "metric": metric,
        "samples": len(points),
        "not_in_benchmark": missing,
        "all_architectures": len(genomes) == math.prod(len(c) for c in choices.values()),
        **{name: None if value is None else round(value, 4) for name, value in stats.items()},
        "supernet_pick_test_acc": picked["benchmark"],
        "sample_best_test_acc": values[0],
        "sample_mean_test_acc": round(sum(values) / len(values), 4),
        "scored_on": f"{len(valid)} arch-split batches, batch norm recalibrated on {len(train)} training"
        " batches",
        "seed": seed,
    }
    files.write_json_atomic({**result, "architectures": points}, run_dir / RESULT)
    mode = "we" if cfg.entangle else "ws"
    title = (f"{cfg.space} {cfg.optimizer} ({mode}): Kendall tau {_shown(stats['kendall_tau'])},"
             f" Spearman {_shown(stats['spearman_rho'])}, n={len(points)}")  # fmt: skip
    plot_scatter(points, run_dir / PLOT, title, score_name)
    if stats["kendall_tau"] is None:
        result["note"] = "every architecture got the same supernet score: the rank statistics are undefined"
    result["written"] = f"{run_dir / RESULT}, {run_dir / PLOT}"
    return result
