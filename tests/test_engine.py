"""End to end on real data (scikit-learn's digits): search, resume, derive, train, eval, bench-query."""

from __future__ import annotations

import json
import random
import signal
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from support import TOY_BENCHMARKS, invoke, run_cli

BENCHMARKS = TOY_BENCHMARKS
TINY = [
    "--space", "toy_cell", "--dataset", "digits",
    "--set", "dataset_options.size=12", "--set", "space_options.C=4",
    "--set", "epochs=2", "--set", "batch_size=128", "--set", "logging.progress=false",
]  # fmt: skip


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "search"
    result = invoke("search", *TINY, "--opt", "drnas", "--out", out, "--seed", 3)
    assert result.exit_code == 0, result.output
    return out


def test_search_writes_the_run_directory(searched: Path):
    for name in ("config.yaml", "metrics.jsonl", "trajectory.jsonl", "checkpoint.pt", "arch.yaml",
                 "summary.json", "mixing_weights.png"):  # fmt: skip
        assert (searched / name).is_file(), name
    epochs = [json.loads(line) for line in (searched / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in epochs if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [0, 1]
    assert all(0 <= r["valid_acc"] <= 100 and r["train_loss"] > 0 for r in epochs)
    trajectory = [json.loads(line) for line in (searched / "trajectory.jsonl").read_text().splitlines()]
    assert len(trajectory) == 2
    for probabilities in trajectory[-1]["probabilities"].values():
        assert abs(sum(probabilities.values()) - 1) < 1e-4
    state = torch.load(searched / "checkpoint.pt", weights_only=True)  # every stateful part, by its key
    parts = {"model", "weight_optimizer", "arch_optimizer", "sampler", "weight_stream", "step_guard"}
    assert parts <= set(state)
    assert state["step_guard"] == {"skipped_total": 0, "scaler": None}  # no fp16: no loss scaler
    arch = yaml.safe_load((searched / "arch.yaml").read_text())
    assert arch["space"] == "toy_cell" and arch["benchmark_key"].startswith("Genotype(normal=[(")
    summary = json.loads((searched / "summary.json").read_text())
    assert summary["network_params"] > 0 and summary["mode"] == "we"


@pytest.mark.parametrize(("every_s", "plotted_after"), [(0.0, [1, 2, 3]), (3600.0, [3])])
def test_the_plot_is_redrawn_after_the_last_epoch_and_at_most_every_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, every_s: float, plotted_after: list[int]
):
    from tanglenas_cli.engine import search

    drawn: list[int] = []
    monkeypatch.setattr(search, "PLOT_EVERY_S", every_s)
    monkeypatch.setattr(search, "plot_trajectories", lambda records, path, title: drawn.append(len(records)))
    result = invoke(
        "search", *TINY, "--set", "epochs=3", "--set", "steps_per_epoch=1", "--out", tmp_path / "r"
    )
    assert result.exit_code == 0, result.output
    assert drawn == plotted_after


def test_search_refuses_to_overwrite_a_run(searched: Path):
    before = (searched / "metrics.jsonl").read_bytes()
    result = invoke("search", *TINY, "--out", searched)
    assert result.exit_code == 2 and len(lines(result.output)) == 1 and "--resume" in result.output
    assert (searched / "metrics.jsonl").read_bytes() == before


def test_derive_matches_the_search_and_reads_epochs(searched: Path, tmp_path: Path):
    result = invoke("derive", searched, "--out", tmp_path / "arch.yaml")
    assert result.exit_code == 0, result.output
    derived = yaml.safe_load((tmp_path / "arch.yaml").read_text())
    assert derived["architecture"] == yaml.safe_load((searched / "arch.yaml").read_text())["architecture"]
    first = invoke("derive", searched, "--epoch", 1, "--out", tmp_path / "first.yaml")
    assert first.exit_code == 0, first.output
    trajectory = json.loads((searched / "trajectory.jsonl").read_text().splitlines()[0])
    assert yaml.safe_load((tmp_path / "first.yaml").read_text())["architecture"] == trajectory["architecture"]
    assert invoke("derive", searched, "--epoch", 9).exit_code == 2


def test_bench_query_of_the_run(searched: Path):
    benchmark = BENCHMARKS / "entangled_cell_ss_benchmark.pkl"
    if not benchmark.is_file():
        pytest.skip(f"benchmark not found: {benchmark}")
    result = invoke("bench-query", searched, "--benchmark", benchmark, "--json")
    assert result.exit_code == 0, result.output
    entry = json.loads(result.output)
    assert (
        86.0 <= entry["test_acc"] <= 91.63 and "/ 4096" in entry["rank"] and 0 <= entry["percentile"] <= 100
    )
    wrong = invoke("bench-query", searched, "--benchmark", BENCHMARKS / "conv_macro_bench.pkl")
    assert wrong.exit_code == 2 and len(lines(wrong.output)) == 1


def test_search_queries_the_benchmark_every_epoch(tmp_path: Path):
    benchmark = BENCHMARKS / "entangled_cell_ss_benchmark.pkl"
    if not benchmark.is_file():
        pytest.skip(f"benchmark not found: {benchmark}")
    result = invoke("search", *TINY, "--set", "epochs=1", "--opt", "gdas", "--out", tmp_path / "run",
                    "--benchmark", benchmark)  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert 86.0 <= record["benchmark_test_acc"] <= 91.63


def test_train_then_eval(searched: Path, tmp_path: Path):
    out = tmp_path / "trained"
    result = invoke("train", searched, "--out", out, "--set", "epochs=1", "--set", "logging.progress=false",
                    "--channels-last")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (out / "model.pt").is_file() and (out / "summary.json").is_file()
    evaluation = invoke("eval", out / "model.pt", "--json")
    assert evaluation.exit_code == 0, evaluation.output
    metrics = json.loads(evaluation.output)
    summary = json.loads((out / "summary.json").read_text())
    assert metrics["samples"] == 360 and metrics["params"] == summary["params"]
    assert abs(metrics["top1"] - summary["test_acc"]) < 1e-3
    assert metrics["macs"] > metrics["params"] and metrics["input"] == "1x12x12"  # the run's digits size
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes((out / "model.pt").read_bytes()[:500])
    bad = invoke("eval", corrupt)
    assert bad.exit_code == 2 and len(lines(bad.output)) == 1 and "corrupt.pt" in bad.output
    foreign = invoke("eval", searched / "checkpoint.pt")
    assert foreign.exit_code == 2 and "not a trained checkpoint" in foreign.output


@pytest.mark.parametrize(
    "optimizer, extra",
    [
        ("darts_v2", []),
        ("spos", ["--set", "selection.samples=6"]),  # the final random search: 6 candidates, not 100
        ("gdas", ["--ws"]),
        ("darts_v1", ["--channels-last"]),
    ],
)
def test_other_optimizers_and_weight_sharing(optimizer, extra, tmp_path: Path):
    result = invoke(
        "search", *TINY, "--set", "epochs=1", "--opt", optimizer, *extra, "--out", tmp_path / "run"
    )
    assert result.exit_code == 0, result.output
    arch = yaml.safe_load((tmp_path / "run" / "arch.yaml").read_text())
    assert len(arch["architecture"]["normal"]) == 3
    if optimizer == "spos":
        assert "random search" in arch["derived_by"]


def test_conv_macro_search_runs(tmp_path: Path):
    result = invoke("search", "--space", "toy_conv_macro", "--dataset", "digits", "--opt", "drnas",
                    "--set", "dataset_options.size=16", "--set", "dataset_options.channels=3",
                    "--set", "epochs=1", "--set", "batch_size=256", "--set", "train_portion=0.3",
                    "--set", "logging.progress=false", "--out", tmp_path / "run")  # fmt: skip
    assert result.exit_code == 0, result.output
    arch = yaml.safe_load((tmp_path / "run" / "arch.yaml").read_text())
    assert arch["benchmark_key"].startswith("[[")


def final_logits(run: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    return {k: v for k, v in state["model"].items() if k.endswith("arch_logits")}


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path: Path):
    args = [*TINY, "--set", "epochs=3", "--set", "logging.log_every=1", "--set", "batch_size=64",
            "--opt", "drnas", "--seed", 11]  # fmt: skip
    one_thread = {"OMP_NUM_THREADS": "1"}  # two runs side by side on a 2-core machine
    reference = run_cli("search", *args, "--out", tmp_path / "reference", env=one_thread)
    interrupted = run_cli("search", *args, "--out", tmp_path / "killed", env=one_thread)
    metrics = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.time() + 300
    # wait until epoch 2 is under way (one epoch checkpointed, steps of the next one logged)
    while time.time() < deadline:
        records = [json.loads(x) for x in metrics.read_text().splitlines()] if metrics.is_file() else []
        if any(r["kind"] == "step" and r["epoch"] == 1 for r in records):
            break
        time.sleep(0.05)
    interrupted.send_signal(signal.SIGKILL)
    interrupted.wait()
    assert reference.wait() == 0, reference.stderr.read().decode()
    assert not (tmp_path / "killed" / "arch.yaml").exists()
    resumed = run_cli("search", "--resume", tmp_path / "killed", env=one_thread)
    assert resumed.wait() == 0, resumed.stderr.read().decode()
    for name in ("arch.yaml",):
        assert (tmp_path / "killed" / name).read_text() == (tmp_path / "reference" / name).read_text()
    expected, actual = final_logits(tmp_path / "reference"), final_logits(tmp_path / "killed")
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[k], actual[k]) for k in expected)
    epochs = [json.loads(x) for x in metrics.read_text().splitlines() if '"kind": "epoch"' in x]
    assert [r["epoch"] for r in epochs] == [0, 1, 2]


@pytest.mark.slow
def test_kills_at_five_random_moments_then_resume_equals_uninterrupted(tmp_path: Path):
    args = [*TINY, "--set", "epochs=4", "--set", "batch_size=64", "--opt", "gdas", "--seed", 5]
    one_thread = {"OMP_NUM_THREADS": "1"}
    reference = run_cli("search", *args, "--out", tmp_path / "reference", env=one_thread)
    killed = tmp_path / "killed"
    moments = random.Random(2026).sample([x / 10 for x in range(15, 60)], 5)  # seconds after start
    process = run_cli("search", *args, "--out", killed, env=one_thread)
    for moment in moments:
        time.sleep(moment)
        process.send_signal(signal.SIGKILL)
        process.wait()
        if (killed / "config.yaml").is_file():
            process = run_cli("search", "--resume", killed, env=one_thread)
        else:  # killed before the run directory was written: start it again
            process = run_cli("search", *args, "--out", killed, env=one_thread)
    assert process.wait() == 0, process.stderr.read().decode()
    assert reference.wait() == 0, reference.stderr.read().decode()
    assert (killed / "arch.yaml").read_text() == (tmp_path / "reference" / "arch.yaml").read_text()
    expected, actual = final_logits(tmp_path / "reference"), final_logits(killed)
    assert all(torch.equal(expected[k], actual[k]) for k in expected)
    epochs = [json.loads(x) for x in (killed / "metrics.jsonl").read_text().splitlines() if '"epoch"' in x]
    assert [r["epoch"] for r in epochs if r["kind"] == "epoch"] == [0, 1, 2, 3]
    assert not list(killed.glob(".*.tmp"))  # no half-written checkpoint left behind


@pytest.mark.slow
def test_wandb_is_never_required(monkeypatch, tmp_path: Path):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if wandb were not installed
    plain = invoke("search", *TINY, "--set", "epochs=1", "--out", tmp_path / "plain")
    assert plain.exit_code == 0, plain.output
    asked = invoke("search", *TINY, "--set", "epochs=1", "--out", tmp_path / "asked", "--wandb")
    assert asked.exit_code == 2 and len(lines(asked.output)) == 1 and "wandb" in asked.output


def test_resume_before_the_first_checkpoint_starts_again(tmp_path: Path):
    run = tmp_path / "run"
    assert invoke("search", *TINY, "--set", "epochs=1", "--out", run).exit_code == 0
    (run / "checkpoint.pt").unlink()  # as if killed during the first epoch
    result = invoke("search", "--resume", run)
    assert result.exit_code == 0, result.output
    epochs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"epoch"' in x]
    assert [r["epoch"] for r in epochs if r["kind"] == "epoch"] == [0]


def test_resume_of_a_corrupt_checkpoint_is_one_line(tmp_path: Path):
    run = tmp_path / "run"
    assert invoke("search", *TINY, "--set", "epochs=1", "--out", run).exit_code == 0
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    result = invoke("search", "--resume", run)
    assert result.exit_code == 2 and len(lines(result.output)) == 1 and "checkpoint" in result.output
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
