"""`make gpu-check` without a GPU: one line and exit 0; its plan runs on the CPU with --smoke."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu_check.py"


def test_without_a_gpu_it_says_so_in_one_line(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: `make gpu-check` measures it")
    done = subprocess.run(
        [sys.executable, SCRIPT, "--out", tmp_path], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and done.stdout.strip().splitlines() == [
        "gpu-check: no GPU here (torch.cuda.is_available() is False); nothing to measure"
    ]
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_smoke_plan_writes_both_tables(tmp_path: Path) -> None:
    command = [sys.executable, SCRIPT, "--smoke", "--out", tmp_path]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    profile = list(csv.DictReader((tmp_path / "gpu-profile.csv").open()))
    assert [r["mode"] for r in profile] == ["we", "ws", "largest"] and {r["status"] for r in profile} == {
        "ok"
    }
    assert float(profile[-1]["time_ratio"]) == 1.0 and float(profile[0]["step_s"]) > 0
    (run,) = csv.DictReader((tmp_path / "gpu-runs.csv").open())
    assert (run["mixed_precision"], run["status"]) == ("bf16", "ok") and float(run["final_valid_acc"]) >= 0


def test_a_part_past_the_budget_is_stopped_and_says_so() -> None:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    done = gpu_check.tanglenas("profile", "--space", "darts", "--steps", "50", timeout=0.5)
    assert gpu_check.failure(done) == "rc 124: stopped after 0 s: the check's time budget"
