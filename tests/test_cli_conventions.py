"""CLI conventions: completion, --json summaries, Ctrl-C (130), plain progress lines and run.log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import invoke

TINY = ["--space", "toy_cell", "--dataset", "digits", "--set", "dataset_options.size=12",
        "--set", "space_options.C=4", "--set", "train_subset=256", "--seed", "1"]  # fmt: skip


def test_completion_is_offered() -> None:
    assert "--install-completion" in invoke("--help").stdout
    command = [sys.executable, "-m", "tanglenas_cli", "--show-completion", "bash"]
    # typer guesses the shell from the parent process; this variable lets it take one by name instead
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    script = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    assert script.returncode == 0 and "complete" in script.stdout, script.stderr


def test_json_summaries_of_search_derive_train_and_prepare(tmp_path: Path) -> None:
    run = tmp_path / "run"
    searched = invoke("search", *TINY, "--set", "epochs=1", "--set", "logging.progress=false", "--out", run,
                      "--json")  # fmt: skip
    assert searched.exit_code == 0, searched.output
    assert json.loads(searched.stdout)["run_dir"] == str(run)
    derived = json.loads(invoke("derive", run, "--json").stdout)
    assert derived["space"] == "toy_cell"
    trained = invoke("train", run, "--set", "epochs=1", "--set", "logging.progress=false", "--json")
    assert json.loads(trained.stdout)["checkpoint"].endswith("model.pt"), trained.output
    prepared = json.loads(invoke("prepare-data", "digits", "--data-root", tmp_path / "data", "--json").stdout)
    assert prepared["prepared"] == "digits" and "scikit-learn" in prepared["summary"]
    log = (run / "run.log").read_text()
    assert "started; 1 epochs" in log and "epoch 1/1 |" in log and f"run_dir: {run}" in log


@pytest.mark.slow
def test_ctrl_c_exits_130_and_the_run_resumes(tmp_path: Path) -> None:
    """Without a terminal, progress is plain lines; Ctrl-C stops the run and says how to go on."""
    run = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "tanglenas_cli",
        "search",
        *TINY,
        "--set",
        "epochs=30",
        "--out",
        str(run),
    ]
    # a shell's background job ignores SIGINT, and so would its children: give the run the default
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    log, deadline = run / "run.log", time.time() + 120
    while time.time() < deadline and not (log.is_file() and "epoch 1/30 |" in log.read_text()):
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert f"tanglenas search --resume {run}" in stderr and "Traceback" not in stderr
    assert "epoch 1/30 |" in stderr and "━" not in stderr  # plain lines, no bar: stderr is no terminal
    assert "interrupted" in log.read_text()
    resumed = invoke("search", "--resume", run, "--set", "epochs=2", "--set", "logging.progress=false")
    assert resumed.exit_code == 0, resumed.output
    assert (run / "arch.yaml").is_file()
