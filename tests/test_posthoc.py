"""SPOS second stage after the fact: `derive RUN --strategy random|evolution` over the trained supernet."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tanglenas_cli.cli import app
from tanglenas_cli.engine.posthoc import EvolutionSettings, evolution, random_search
from tanglenas_cli.spaces import SPACE_REGISTRY
from tanglenas_cli.spaces.base import DataShape

TINY = [
    "--space", "toy_cell", "--dataset", "digits", "--set", "dataset_options.size=12",
    "--set", "space_options.C=4", "--set", "epochs=1", "--set", "batch_size=128",
    "--set", "logging.progress=false",
]  # fmt: skip


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


class SumScorer:
    """Fitness = sum of the genes; genomes whose first gene is 3 are not allowed."""

    def __init__(self) -> None:
        self.calls: dict[tuple, float] = {}

    def allowed(self, genome: tuple) -> bool:
        return genome[0] != 3

    def __call__(self, genome: tuple) -> float:
        self.calls[genome] = float(sum(genome))
        return self.calls[genome]


def test_evolution_beats_its_random_start_and_respects_the_limits():
    sizes = [4] * 8
    scorer = SumScorer()
    best = evolution(scorer, sizes, EvolutionSettings(population=10, select=3, mutation=6, crossover=6,
                                                      generations=15), random.Random(0))  # fmt: skip
    start = max(float(sum(g)) for g in list(scorer.calls)[:10])
    assert scorer(best) > start and best[0] != 3
    assert all(g[0] != 3 for g in scorer.calls)
    random_best = random_search(SumScorer(), sizes, 20, random.Random(0))
    assert random_best[0] != 3


@pytest.fixture(scope="module")
def spos_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "spos"
    result = invoke("search", *TINY, "--opt", "spos", "--out", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("strategy, extra", [
    ("random", ["--samples", "4"]), ("evolution", ["--population", "4", "--generations", "2"]),
])  # fmt: skip
def test_derive_with_a_strategy_writes_a_valid_architecture(spos_run: Path, tmp_path: Path, strategy, extra):
    target = tmp_path / "arch.yaml"
    space = SPACE_REGISTRY["toy_cell"](DataShape(10, (1, 12, 12)), {"C": 4})
    cap = sum(p.numel() for p in space.build_network(space.largest_architecture()).parameters()) - 1
    result = invoke("derive", spos_run, "--strategy", strategy, *extra, "--batches", "1", "--max-params", cap,
                    "--out", target)  # fmt: skip
    assert result.exit_code == 0, result.output
    stored = yaml.safe_load(target.read_text())
    assert stored["derived_by"].startswith(f"{strategy} over the trained supernet")
    arch = space.validate(stored["architecture"])
    assert sum(p.numel() for p in space.build_network(arch).parameters()) <= cap


def test_strategy_errors_are_one_line(spos_run: Path):
    bad = invoke("derive", spos_run, "--strategy", "annealing")
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1
    both = invoke("derive", spos_run, "--strategy", "random", "--epoch", "1")
    assert both.exit_code == 2 and "--epoch" in both.output
    impossible = invoke("derive", spos_run, "--strategy", "random", "--max-params", "1")
    assert impossible.exit_code == 2 and "parameter limits" in impossible.output
