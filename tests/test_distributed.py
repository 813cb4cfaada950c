"""Data-parallel search over 2 CPU processes (gloo, via torchrun, which Accelerate picks up)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HELPERS = Path(__file__).parent / "helpers"
TINY = [
    "--space", "toy_cell", "--dataset", "digits", "--set", "dataset_options.size=12",
    "--set", "space_options.C=4", "--set", "epochs=2", "--set", "logging.progress=false", "--seed", "3",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun(*args: object, processes: int = 2) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), *map(str, args)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)


def single(*args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "tanglenas_cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)


def epochs(run: Path) -> list[dict]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["kind"] == "epoch"]


def logits(run: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    return {k: v for k, v in state.items() if k.endswith("arch_logits")}


def test_gradient_average_weights_unequal_shards(tmp_path: Path):
    out = tmp_path / "grads.pt"
    done = torchrun(HELPERS / "average_gradients.py", out)
    assert done.returncode == 0, done.stderr[-2000:]
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    averaged = torch.load(out, weights_only=True)
    for name, param in model.named_parameters():
        torch.testing.assert_close(averaged[name], param.grad, atol=1e-6, rtol=1e-5)


@pytest.mark.slow
def test_two_processes_stay_in_sync_and_match_one_process(tmp_path: Path):
    parallel, alone = tmp_path / "parallel", tmp_path / "alone"
    done = torchrun("-m", "tanglenas_cli", "search", *TINY, "--opt", "drnas", "--set", "batch_size=64",
                    "--out", parallel)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("run_dir") == 1  # only the first process prints
    records = epochs(parallel)
    # every epoch record exists only after the logits were compared bit for bit across processes
    assert [r["processes"] for r in records] == [2, 2]
    reference = single("search", *TINY, "--opt", "drnas", "--set", "batch_size=128", "--out", alone)
    assert reference.returncode == 0, reference.stderr[-2000:]
    # same global batch (2 x 64 vs 128): equal up to per-process batch-norm statistics
    for got, want in zip(records, epochs(alone), strict=True):
        assert abs(got["train_loss"] - want["train_loss"]) < 0.02 * want["train_loss"]
    for name, value in logits(alone).items():
        torch.testing.assert_close(logits(parallel)[name], value, atol=5e-3, rtol=0)


@pytest.mark.slow
def test_two_process_gdas_with_unused_paths_and_a_budget(tmp_path: Path):
    budget = ["--set", "cost.metric=params", "--set", "cost.target=1500"]
    done = torchrun("-m", "tanglenas_cli", "search", *TINY, "--opt", "gdas", "--set", "epochs=1", *budget,
                    "--out", tmp_path / "run")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    # the logits (moved by the budget's penalty too) were compared bit for bit across the processes
    [record] = epochs(tmp_path / "run")
    assert record["processes"] == 2 and record["argmax_params"] > 0


@pytest.mark.slow
def test_two_process_training_matches_one_process_and_only_the_first_writes(tmp_path: Path):
    from tanglenas_cli.engine import run_dir as files
    from tanglenas_cli.spaces import create_space

    space = create_space("toy_cell")
    arch = space.largest_architecture()
    arch_file = tmp_path / "arch.yaml"
    files.write_arch(arch_file, "toy_cell", arch, space.benchmark_key(arch))
    train = ["train", arch_file, *TINY, "--set", "epochs=2"]
    parallel, alone = tmp_path / "parallel", tmp_path / "alone"
    done = torchrun("-m", "tanglenas_cli", *train, "--set", "batch_size=32", "--out", parallel)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("train_seconds") == 1  # one summary: only the first process prints
    records = epochs(parallel)
    assert [r["processes"] for r in records] == [2, 2]
    assert sorted(p.name for p in parallel.iterdir()) == sorted(
        [".lock", "arch.yaml", "config.yaml", "metrics.jsonl", "model.pt", "run.log", "summary.json"]
    )
    reference = single(*train, "--set", "batch_size=64", "--out", alone)
    assert reference.returncode == 0, reference.stderr[-2000:]
    # same global batch (2 x 32 vs 64): equal up to per-process batch-norm statistics
    for got, want in zip(records, epochs(alone), strict=True):
        assert abs(got["train_loss"] - want["train_loss"]) < 0.03 * want["train_loss"]
    summary = json.loads((parallel / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["test_acc"] == records[-1]["test_acc"]
