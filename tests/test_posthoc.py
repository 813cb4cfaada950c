"""SPOS second stage after the fact: `derive RUN --strategy random|evolution` over the trained supernet."""

from __future__ import annotations

import random
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from support import invoke
from torch import nn

from tanglenas_cli.engine.flops import count_flops
from tanglenas_cli.engine.posthoc import (
    EvolutionSettings,
    SupernetScorer,
    evolution,
    random_genome,
    random_search,
)
from tanglenas_cli.errors import UserError
from tanglenas_cli.spaces import create_space
from tanglenas_cli.spaces.base import DataShape, choices_by_name

TINY = [
    "--space", "toy_cell", "--dataset", "digits", "--set", "dataset_options.size=12",
    "--set", "space_options.C=4", "--set", "epochs=1", "--set", "batch_size=128",
    "--set", "logging.progress=false",
]  # fmt: skip


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
    rng = random.Random(0)
    random_best = random_search(SumScorer(), lambda: tuple(rng.randrange(4) for _ in sizes), 20)
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
    space = create_space("toy_cell", DataShape(10, (1, 12, 12)), {"C": 4})
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
    assert impossible.exit_code == 2 and "parameter/FLOPs limits" in impossible.output
    assert len(impossible.output.strip().splitlines()) == 1
    for option, low, high in (("flops", "2e6", "1e6"), ("params", "2000", "1000")):
        swapped = invoke(
            "derive", spos_run, "--strategy", "random", f"--min-{option}", low, f"--max-{option}", high
        )
        assert swapped.exit_code == 2 and len(swapped.output.strip().splitlines()) == 1, swapped.output
        assert f"--min-{option}" in swapped.output and f"--max-{option}" in swapped.output
    not_positive = invoke("derive", spos_run, "--strategy", "random", "--max-flops", "0")
    assert not_positive.exit_code == 2 and "--max-flops" in not_positive.output


def image_space(channels: int, side: int) -> SimpleNamespace:
    return SimpleNamespace(data=DataShape(10, (channels, side, side)), task="classification")


def test_count_flops_is_twice_the_multiply_adds():
    linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 7))
    assert count_flops(image_space(3, 4), linear) == 2 * 48 * 7
    conv = nn.Sequential(nn.Conv2d(2, 5, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 6 * 6, 10))
    conv.train()
    macs = 5 * 6 * 6 * 2 * 3 * 3 + 5 * 6 * 6 * 10  # conv outputs x (in channels x kernel), then the head
    assert count_flops(image_space(2, 6), conv) == 2 * macs
    assert conv.training  # the mode is restored


def test_average_pooling_counts_no_multiply_adds():
    """Pooling is free, as NAS-Bench-201, NATS-Bench and PyTorch's count of nn.AvgPool2d have it: the box
    convolution that runs an average pool here is not counted (it was 9 multiply-adds per output)."""
    from tanglenas_cli.layers.pooling import BoxAvgPool2d

    head = 2 * 6 * 6 * 10
    for pool in (BoxAvgPool2d(3), nn.AvgPool2d(3, 1, 1, count_include_pad=False), nn.MaxPool2d(3, 1, 1)):
        pooled = nn.Sequential(pool, nn.Flatten(), nn.Linear(72, 10))
        assert count_flops(image_space(2, 6), pooled) == 2 * head
    strided = nn.Sequential(BoxAvgPool2d(3, stride=2), nn.Flatten(), nn.Linear(2 * 3 * 3, 10))
    assert count_flops(image_space(2, 6), strided) == 2 * 2 * 3 * 3 * 10

    nb201 = create_space("nb201", DataShape(10, (3, 16, 16)), {"C": 4, "N": 1})
    cell = "|{0}~0|+|nor_conv_3x3~0|{0}~1|+|skip_connect~0|nor_conv_1x1~1|{0}~2|"
    counts = {op: count_flops(nb201, nb201.build_network(cell.format(op)))
              for op in ("avg_pool_3x3", "none", "skip_connect")}  # fmt: skip
    assert len(set(counts.values())) == 1, counts

    darts = create_space("darts", DataShape(10, (3, 16, 16)), {"C": 4, "layers": 3})
    normal = [["sep_conv_3x3", 0], ["{}", 1], ["sep_conv_3x3", 0], ["{}", 1],
              ["dil_conv_3x3", 1], ["skip_connect", 0], ["{}", 0], ["dil_conv_3x3", 2]]  # fmt: skip

    def genotype(pool: str) -> dict:
        cells = [[name.format(pool), state] for name, state in normal]
        return {"normal": cells, "reduce": cells}  # the pools have stride 2 in the reduction cells

    assert count_flops(darts, darts.build_network(genotype("avg_pool_3x3"))) == count_flops(
        darts, darts.build_network(genotype("max_pool_3x3"))
    )


def test_count_flops_of_a_tiny_nanogpt_grows_with_the_embedding():
    space = create_space("nanogpt", DataShape(num_classes=257, input_shape=(16,)), {"variant": "tiny"})
    arch = space.largest_architecture()
    small, large = (count_flops(space, space.build_network({**arch, "embed_dim": e})) for e in (12, 24))
    assert 0 < small < large


@pytest.mark.parametrize("strategy, extra", [
    ("random", ["--samples", "4"]), ("evolution", ["--population", "4", "--generations", "1"]),
])  # fmt: skip
@pytest.mark.slow
def test_derive_with_a_flops_cap_stays_within_it(spos_run: Path, tmp_path: Path, strategy, extra):
    target = tmp_path / "arch.yaml"
    space = create_space("toy_cell", DataShape(10, (1, 12, 12)), {"C": 4})
    cap = 1e5  # toy_cell C=4 on 12x12 digits: about 0.56e5 .. 1.38e5 FLOPs
    result = invoke("derive", spos_run, "--strategy", strategy, *extra, "--batches", "1", "--max-flops", cap,
                    "--min-params", 1, "--out", target)  # fmt: skip
    assert result.exit_code == 0, result.output
    stored = yaml.safe_load(target.read_text())
    assert "within parameters >= 1, FLOPs <= 1e+05" in stored["derived_by"]
    network = space.build_network(space.validate(stored["architecture"]))
    flops, params = count_flops(space, network), sum(p.numel() for p in network.parameters())
    assert flops <= cap
    assert re.search(rf"^\s*flops\s+{flops}\s*$", result.output, re.MULTILINE), result.output
    assert re.search(rf"^\s*params\s+{params}\s*$", result.output, re.MULTILINE), result.output


def test_scorer_flops_limits_and_cache():
    space = create_space("toy_cell", DataShape(10, (1, 12, 12)), {"C": 4})
    choices = choices_by_name(space.build_supernet())
    rng = random.Random(0)

    def draw() -> tuple:
        return tuple(rng.randrange(len(c)) for c in choices.values())

    def scorer(**limits) -> SupernetScorer:
        return SupernetScorer(nn.Identity(), space, choices, [], [], torch.device("cpu"), **limits)

    unlimited = scorer()
    genome = random_genome(draw, unlimited.allowed)
    assert not unlimited.params and not unlimited.flops  # nothing measured without limits
    params, flops = unlimited.measure(genome)
    assert flops == count_flops(space, space.build_network(unlimited.architecture(genome)))
    assert unlimited.measure(genome) == (params, flops)
    assert unlimited.measure(genome, flops=False) == (params, None)
    assert scorer(max_flops=flops).allowed(genome) and not scorer(max_flops=flops - 1).allowed(genome)
    assert scorer(min_flops=flops).allowed(genome) and not scorer(min_flops=flops + 1).allowed(genome)
    capped = scorer(max_params=params - 1, max_flops=flops)
    assert not capped.allowed(genome) and genome not in capped.flops  # FLOPs skipped once params fail
    with pytest.raises(UserError, match="no architecture within the parameter/FLOPs limits"):
        random_genome(draw, scorer(max_flops=1).allowed, tries=5)


@pytest.mark.slow
def test_spos_search_and_derive_pick_with_the_same_scorer(spos_run: Path, tmp_path: Path):
    """The end of a SPOS search and `derive --strategy random` are one scorer: same defaults, same pick."""
    searched = yaml.safe_load((spos_run / "arch.yaml").read_text())
    assert "batch norm recalibrated on 2 training batches" in searched["derived_by"]
    result = invoke("derive", spos_run, "--strategy", "random", "--out", tmp_path / "arch.yaml")
    assert result.exit_code == 0, result.output
    derived = yaml.safe_load((tmp_path / "arch.yaml").read_text())
    assert "on 4 arch-split batches" in derived["derived_by"]
    assert derived["architecture"] == searched["architecture"]


def test_spos_without_an_arch_split_is_refused(tmp_path: Path):
    out = tmp_path / "spos-all"
    result = invoke("search", *TINY, "--opt", "spos", "--set", "train_portion=1.0", "--out", out)
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and "train_portion below 1" in result.output
    assert not out.exists()


def test_derive_strategy_never_scores_on_the_test_split(tmp_path: Path):
    out = tmp_path / "simultaneous"
    flags = ["--set", "search_strategy=simultaneous", "--set", "train_portion=1.0"]
    assert invoke("search", *TINY, *flags, "--out", out).exit_code == 0
    derived_by = yaml.safe_load((out / "arch.yaml").read_text())["derived_by"]
    assert derived_by == "argmax of the architecture logits"
    for strategy in ("random", "evolution"):
        result = invoke("derive", out, "--strategy", strategy, "--samples", "2", "--out", tmp_path / "a.yaml")
        assert result.exit_code == 2, result.output
        assert len(result.output.strip().splitlines()) == 1 and "test split" in result.output
        assert not (tmp_path / "a.yaml").exists()
