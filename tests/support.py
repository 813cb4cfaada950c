"""Helpers shared by the test modules: the CLI runner, one-line error checks, shared data, tiny spaces."""

from __future__ import annotations

import csv
import itertools
import json
import os
import pickle
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from tanglenas_cli.benchmarks import KNOWN_TOY_BENCHMARKS
from tanglenas_cli.cli import app
from tanglenas_cli.spaces import create_space, space_class
from tanglenas_cli.spaces.base import DataShape, SearchSpace, choices_by_name

# Real data shipped beside the repository (``../shared/data``); tests that need a file skip without it.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TOY_BENCHMARKS = SHARED_DATA / "toy_benchmarks"
NB201_CSV = SHARED_DATA / "nb201" / "nats_bench_200ep_test.csv"
SHAKESPEARE = SHARED_DATA / "text" / "tinyshakespeare.txt"


def need(path: Path) -> Path:
    """Return ``path``, or skip the test when the shared file is missing."""
    if not path.exists():
        pytest.skip(f"shared data missing: {path}")
    return path


def invoke(*args: object) -> Any:
    """Run the ``tanglenas`` CLI in-process with ``args`` (each turned into a string)."""
    return CliRunner().invoke(app, [str(arg) for arg in args])


def run_cli(*args: object, env: dict | None = None) -> subprocess.Popen:
    """Start the ``tanglenas`` CLI in its own process (stdout discarded, stderr piped)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tanglenas_cli", *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


def one_line_error(result: Any, *fragments: str) -> str:
    """Check exit code 2, no traceback, nothing on stdout and one ``error:`` line holding every fragment."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def records(path: Path) -> list[dict]:
    """Return the JSON objects of a JSON-lines file."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------------
# Spaces at their tiny settings


def tiny_space(name: str) -> SearchSpace:
    """Return space ``name`` at its tiny test settings (``tiny_data``, ``tiny_options`` of its class)."""
    space_type = space_class(name)
    return create_space(name, space_type.tiny_data, space_type.tiny_options)


def batch(space: SearchSpace, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets for a space: images and labels, or token ids and next tokens."""
    if space.task == "language_model":
        tokens = torch.randint(0, 10, (size, space.data.input_shape[0] + 1))
        return tokens[:, :-1], tokens[:, 1:]
    return torch.randn(size, *space.data.input_shape), torch.randint(0, 10, (size,))


def loss_of(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of class logits (B, C) or next-token logits (B, T, V)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def set_one_hot(choices, picks: dict, direct: bool) -> None:
    """Give each named choice a one-hot on the picked candidate (direct path, or mixture path if not)."""
    for name, value in picks.items():
        index = choices[name].candidates.index(value)
        weights = F.one_hot(torch.tensor(index), len(choices[name])).float()
        choices[name].set_mixing(weights, index if direct else None)


def one_hot_outputs(space: SearchSpace, arch: dict, inputs: torch.Tensor, direct: bool):
    """Return (supernet output, one-hot on ``space.picks_of(arch)``; output of ``arch``'s discrete network
    that inherited the supernet's weights), both in eval mode, for the exactness tests of each space."""
    supernet = space.build_supernet().eval()
    network = space.build_network(arch).eval()
    space.inherit_weights(supernet.state_dict(), network)
    set_one_hot(choices_by_name(supernet), space.picks_of(arch), direct)
    return supernet(inputs), network(inputs)


def search_then_inherit(tmp_path: Path, space: str, settings: list[str]) -> tuple[dict, dict]:
    """Search ``space`` on digits, then `train --inherit` its derived subnet at lr 1e-12 (weights stay
    the supernet's); return (the supernet's state dict, the trained checkpoint)."""
    common = [part for setting in settings for part in ("--set", setting)]
    run = tmp_path / "run"
    searched = invoke("search", "--space", space, "--dataset", "digits", *common, "--out", run)
    assert searched.exit_code == 0, searched.output
    frozen = ["--set", "weight_optimizer.lr=1e-12", "--set", "weight_optimizer.weight_decay=0"]
    trained = invoke("train", run, *common, "--inherit", run, "--out", tmp_path / "fine", *frozen)
    assert trained.exit_code == 0, trained.output
    supernet = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    return supernet, torch.load(tmp_path / "fine" / "model.pt", weights_only=True)


def synthetic_benchmark(space_name: str, options: dict, folder: Path) -> Path:
    """A benchmark holding every architecture of the space, with a random test accuracy each."""
    space = create_space(space_name, DataShape(10, (1, 12, 12)), options)
    choices = choices_by_name(space.build_supernet(entangle=True))
    rng = random.Random(0)
    keys = []
    for genome in itertools.product(*(range(len(c)) for c in choices.values())):
        picks = {n: c.candidates[i] for (n, c), i in zip(choices.items(), genome, strict=True)}
        keys.append(space.benchmark_key(space.arch_of(picks)))
    if space.benchmark in KNOWN_TOY_BENCHMARKS:
        path = folder / KNOWN_TOY_BENCHMARKS[space.benchmark]
        path.write_bytes(pickle.dumps({k: {"test_acc": rng.uniform(80, 95)} for k in keys}))
        return path
    path = folder / f"{space_name}.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["arch", "cifar10_test"])
        writer.writerows([key, round(rng.uniform(80, 95), 3)] for key in keys)
    return path


def copy_conv_group(group, op, slot: int) -> None:
    """Copy candidate ``slot`` of an entangled SepConv/DilConv ``group`` into the discrete ``op``.

    Both are the same layers at the same indices; only the depthwise kernels are sliced.
    """
    for layer, source in zip(op, group, strict=True):
        if hasattr(source, "candidate_weight"):
            layer.weight.data.copy_(source.candidate_weight(slot))
        else:
            layer.load_state_dict(source.state_dict())
