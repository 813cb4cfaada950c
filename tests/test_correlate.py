"""`tanglenas correlate`: statistics against scipy, the four benchmark spaces, and the refusals."""

from __future__ import annotations

import itertools
import json
import pickle
import random
import shutil
from pathlib import Path

import pytest
import yaml
from scipy.stats import kendalltau, spearmanr
from support import invoke, synthetic_benchmark

from tanglenas_cli.benchmarks import KNOWN_TOY_BENCHMARKS
from tanglenas_cli.engine.correlate import _genomes, rank_agreement
from tanglenas_cli.errors import UserError
from tanglenas_cli.spaces import space_class

COMMON = ["--dataset", "digits", "--set", "dataset_options.size=12", "--set", "epochs=1",
          "--set", "batch_size=32", "--set", "train_subset=128", "--set", "logging.progress=false",
          "--set", "selection.batches=1", "--set", "selection.recalibration_batches=1"]  # fmt: skip
SPACES = {
    "toy_cell": ["--set", "space_options.C=4"],
    "toy_conv_macro": [],
    "nb201": ["--set", "space_options.C=4", "--set", "space_options.N=1"],
    "nats_sss": [],
}


def one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    return lines[0]


def test_statistics_equal_scipy_on_known_inputs():
    assert rank_agreement([1, 2, 3, 4], [10, 20, 30, 40], top_k=2) == pytest.approx(
        {
            "kendall_tau": 1.0,
            "kendall_p": 1 / 12,
            "spearman_rho": 1.0,
            "spearman_p": 0.0,
            "top_k": 2,
            "top_k_overlap": 1.0,
        }
    )
    reverse = rank_agreement([4, 3, 2, 1], [10, 20, 30, 40], top_k=1)
    assert (reverse["kendall_tau"], reverse["spearman_rho"], reverse["top_k_overlap"]) == (-1.0, -1.0, 0.0)
    rng = random.Random(3)
    scores = [rng.random() for _ in range(40)]
    truth = [s + rng.gauss(0, 0.3) for s in scores]
    stats = rank_agreement(scores, truth, top_k=5)
    assert stats["kendall_tau"] == pytest.approx(kendalltau(scores, truth).statistic)
    assert stats["spearman_rho"] == pytest.approx(spearmanr(scores, truth).statistic)
    best_scored = sorted(range(40), key=lambda i: -scores[i])[:5]
    best_true = sorted(range(40), key=lambda i: -truth[i])[:5]
    assert stats["top_k_overlap"] == len(set(best_scored) & set(best_true)) / 5
    # Kendall tau-b on ties (scipy's default): two tied scores
    tied = rank_agreement([1, 1, 2, 3], [1, 2, 3, 4], top_k=1)
    assert tied["kendall_tau"] == pytest.approx(kendalltau([1, 1, 2, 3], [1, 2, 3, 4]).statistic)
    constant = rank_agreement([1, 1, 1], [1, 2, 3], top_k=1)
    assert constant["kendall_tau"] is None and constant["spearman_rho"] is None
    with pytest.raises(UserError):
        rank_agreement([1.0], [2.0], top_k=1)


def test_small_spaces_are_enumerated_whole():
    draws = iter([(0, 0), (0, 0), (1, 2)])
    assert _genomes([2, 3], 6, lambda: next(draws)) == list(itertools.product(range(2), range(3)))
    assert _genomes([2, 3], 2, lambda: next(draws)) == [(0, 0), (1, 2)]  # distinct draws


def _options(space: str) -> dict:
    flags = SPACES[space]
    return {f.split("=")[0].split(".")[1]: int(f.split("=")[1]) for f in flags[1::2]}


_SEARCHED: dict[str, Path] = {}


def searched_run(space: str, folder: Path) -> Path:
    """A one-epoch search of ``space`` (run once per test session, then reused)."""
    if space not in _SEARCHED:
        run = folder / "run"
        searched = invoke("search", "--space", space, *COMMON, *SPACES[space], "--out", run)
        assert searched.exit_code == 0, searched.output
        _SEARCHED[space] = run
    return _SEARCHED[space]


@pytest.mark.parametrize("space", list(SPACES))
def test_correlate_on_every_benchmark_space(space: str, tmp_path: Path):
    run = searched_run(space, tmp_path)
    benchmark = synthetic_benchmark(space, _options(space), tmp_path)
    result = invoke("correlate", run, "--benchmark", benchmark, "--samples", "12", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    stored = json.loads((run / "correlate.json").read_text())
    points = stored["architectures"]
    assert report["samples"] == len(points) == 12 and len({p["key"] for p in points}) == 12
    scores, truth = [p["supernet"] for p in points], [p["benchmark"] for p in points]
    if len(set(scores)) > 1:
        assert report["kendall_tau"] == pytest.approx(kendalltau(scores, truth).statistic, abs=1e-4)
        assert report["spearman_rho"] == pytest.approx(spearmanr(scores, truth).statistic, abs=1e-4)
    else:  # an untrained supernet may score every path the same: undefined, said so
        assert report["kendall_tau"] is None and "undefined" in report["note"]
    assert report["top_k"] == 2 and 0 <= report["top_k_overlap"] <= 1
    assert (run / "correlate.png").stat().st_size > 0
    assert report["sample_best_test_acc"] == max(truth)


def test_correlate_refusals(tmp_path: Path):
    run = tmp_path / "run"
    shutil.copytree(searched_run("toy_cell", tmp_path / "searched"), run)
    cell_benchmark = synthetic_benchmark("toy_cell", {"C": 4}, tmp_path)
    assert "--benchmark" in one_line(invoke("correlate", run))
    assert "not found" in one_line(invoke("correlate", run, "--benchmark", tmp_path / "missing.pkl"))
    macro = tmp_path / KNOWN_TOY_BENCHMARKS[space_class("toy_conv_macro").benchmark]
    macro.write_bytes(pickle.dumps({"[[1, 1, 1, 1], [3, 3, 3, 3]]": {"test_acc": 90.0}}))
    assert "not 'toy_cell'" in one_line(invoke("correlate", run, "--benchmark", macro))
    no_benchmark = tmp_path / "darts-run"
    shutil.copytree(run, no_benchmark)
    config = yaml.safe_load((no_benchmark / "config.yaml").read_text())
    (no_benchmark / "config.yaml").write_text(yaml.safe_dump({**config, "space": "darts"}))
    assert "no tabular benchmark" in one_line(
        invoke("correlate", no_benchmark, "--benchmark", cell_benchmark)
    )
    (run / "checkpoint.pt").unlink()
    assert "checkpoint not found" in one_line(invoke("correlate", run, "--benchmark", cell_benchmark))
    assert "not found" in one_line(invoke("correlate", tmp_path / "nowhere", "--benchmark", cell_benchmark))
