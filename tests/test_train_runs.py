"""Training runs: checkpoints every epoch, exact resume after SIGKILL, one process per folder."""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest
import torch
from support import invoke, one_line_error, run_cli

from tanglenas_cli.engine import run_dir as files
from tanglenas_cli.engine.lock import RunLock
from tanglenas_cli.spaces import create_space

SETTINGS = ["--space", "toy_cell", "--dataset", "digits", "--set", "dataset_options.size=12",
            "--set", "space_options.C=4", "--set", "batch_size=32", "--set", "logging.progress=false",
            "--seed", "3"]  # fmt: skip


@pytest.fixture
def arch_file(tmp_path: Path) -> Path:
    """A toy-cell architecture file with no search run beside it."""
    space = create_space("toy_cell")
    arch = space.largest_architecture()
    path = tmp_path / "arch" / "arch.yaml"
    path.parent.mkdir()
    files.write_arch(path, "toy_cell", arch, space.benchmark_key(arch))
    return path


def epochs_of(folder: Path) -> list[dict]:
    records = [json.loads(line) for line in (folder / files.METRICS).read_text().splitlines()]
    return [r for r in records if r["kind"] == "epoch"]


def test_train_checkpoints_then_model_and_refuses_a_folder_in_use(arch_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "trained"
    lock = RunLock(out)
    lock.acquire()  # another process training in this folder
    one_line_error(invoke("train", arch_file, *SETTINGS, "--set", "epochs=1", "--out", out), "in use")
    search = invoke("search", *SETTINGS, "--set", "epochs=1", "--out", out)
    one_line_error(search, "in use")  # search takes the same lock
    lock.release()
    result = invoke("train", arch_file, *SETTINGS, "--set", "epochs=2", "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / files.MODEL).is_file() and not (out / files.CHECKPOINT).exists()
    assert (out / files.ARCH).is_file() and [r["epoch"] for r in epochs_of(out)] == [0, 1]
    one_line_error(invoke("train", "--resume", out), "already holds a trained model")
    one_line_error(invoke("train", arch_file, "--resume", out), "drop TARGET")
    one_line_error(invoke("train", "--resume", tmp_path / "nowhere"), "run directory to resume not found")


def test_an_unfinished_training_run_asks_for_resume(arch_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "trained"
    assert invoke("train", arch_file, *SETTINGS, "--set", "epochs=1", "--out", out).exit_code == 0
    (out / files.MODEL).unlink()
    (out / files.CHECKPOINT).write_bytes(b"")  # as if the run were still going
    one_line_error(invoke("train", arch_file, *SETTINGS, "--out", out), "--resume")
    one_line_error(invoke("train", "--resume", out), "cannot load checkpoint")  # the file is no checkpoint


@pytest.mark.slow
def test_train_killed_at_random_moments_resumes_exactly(arch_file: Path, tmp_path: Path) -> None:
    args = [arch_file, *SETTINGS, "--set", "epochs=4"]
    one_thread = {"OMP_NUM_THREADS": "1"}  # two runs side by side on a 2-core machine
    reference = run_cli("train", *args, "--out", tmp_path / "reference", env=one_thread)
    killed = tmp_path / "killed"
    process = run_cli("train", *args, "--out", killed, env=one_thread)
    for moment in random.Random(7).sample([x / 10 for x in range(10, 40)], 4):  # seconds after each start
        time.sleep(moment)
        process.send_signal(signal.SIGKILL)
        process.wait()
        if (killed / files.CHECKPOINT).is_file():
            process = run_cli("train", "--resume", killed, env=one_thread)
        else:  # killed before its first checkpoint: start again
            process = run_cli("train", *args, "--out", killed, env=one_thread)
    assert process.wait() == 0, process.stderr.read().decode()
    assert reference.wait() == 0, reference.stderr.read().decode()
    expected = torch.load(tmp_path / "reference" / files.MODEL, weights_only=True)["model"]
    actual = torch.load(killed / files.MODEL, weights_only=True)["model"]
    assert all(torch.equal(expected[k], actual[k]) for k in expected)
    assert [r["epoch"] for r in epochs_of(killed)] == [0, 1, 2, 3]
    drop = ("lr",)
    for got, want in zip(epochs_of(killed), epochs_of(tmp_path / "reference"), strict=True):
        assert {k: v for k, v in got.items() if k not in drop} == {
            k: v for k, v in want.items() if k not in drop
        }
    assert not list(killed.glob(".*.tmp"))


def test_a_training_checkpoint_holds_the_loss_scale_and_the_stream(arch_file: Path, tmp_path: Path) -> None:
    from tanglenas_cli.config import build_config
    from tanglenas_cli.engine.train import TrainRun

    flags = {"space": "toy_cell", "dataset": "digits", "out_dir": tmp_path / "t", "epochs": 1,
             "dataset_options": {"size": 12}, "space_options": {"C": 4}}  # fmt: skip
    run = TrainRun(arch_file, build_config(flags=flags))
    state = torch.load(tmp_path / "t" / files.CHECKPOINT, weights_only=True)  # written before epoch 1
    assert state["epoch"] == 0 and set(state["step_guard"]) == {"skipped_total", "scaler"}
    assert {"model", "optimizer", "weight_stream", "rng", "metrics_size"} <= set(state)
    run.lock.release()
