"""`--space/--opt` find the paper's preset; `presets` filters and lists as JSON."""

from __future__ import annotations

import importlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from support import invoke, one_line_error

from tanglenas_cli.config import RunConfig
from tanglenas_cli.data.registry import list_datasets
from tanglenas_cli.presets import list_presets, paper_preset
from tanglenas_cli.spaces import list_spaces, space_class


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[RunConfig]:
    """Replace run_search and run_train by recorders of the config they get."""
    configs: list[RunConfig] = []
    search = importlib.import_module("tanglenas_cli.engine.search")
    train = importlib.import_module("tanglenas_cli.engine.train")
    monkeypatch.setattr(search, "run_search", lambda cfg, resume=None: configs.append(cfg))
    monkeypatch.setattr(train, "run_train", lambda arch_file, cfg, inherit=None: configs.append(cfg))
    return configs


def test_each_paper_run_has_one_preset_and_each_space_one_default_dataset() -> None:
    papers = [p for p in list_presets() if not p.smoke]
    runs = Counter((p.command, p.space, p.dataset, p.optimizer) for p in papers)
    assert [run for run, count in runs.items() if count > 1] == []
    assert {p.command for p in list_presets()} == {"search", "train"}
    for name in list_spaces():
        default = space_class(name).default_dataset
        assert default in list_datasets(), name
        assert paper_preset("search", name, None, "drnas") is not None, (
            name
        )  # every space: DrNAS on its own data
        assert paper_preset("search", name, "digits", "drnas") is None  # smoke presets are never picked


@pytest.mark.parametrize(
    ("args", "preset", "dataset"),
    [
        (["--space", "autoformer", "--opt", "drnas"], "autoformer-cifar10-drnas", "cifar10"),
        (["--space", "autoformer", "--dataset", "cifar100"], "autoformer-cifar100-drnas", "cifar100"),
        (["--space", "darts", "--opt", "darts_v2"], "darts-cifar10-darts_v2", "cifar10"),
        (["--space", "toy_cell", "--opt", "spos"], "toy-cell-fmnist-spos", "fashion_mnist"),
        (["--space", "autoformer", "--opt", "gdas"], None, "cifar10"),  # no such preset: the defaults
        (["--space", "nb201", "--dataset", "digits"], None, "digits"),
        (["--space", "nb201", "--no-preset"], None, "cifar10"),
        (["--space", "nb201", "--preset", "quickstart"], "quickstart", "digits"),  # the preset's dataset
    ],
)
def test_search_space_and_opt_start_from_the_paper_preset(
    captured: list[RunConfig], tmp_path: Path, args: list[str], preset: str | None, dataset: str
) -> None:
    result = invoke("search", *args, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    (cfg,) = captured
    assert (cfg.preset, cfg.dataset) == (preset, dataset)
    announced = preset is not None and "--preset" not in args
    assert (f"preset {preset}: " in result.output) == announced, result.output
    if preset == "autoformer-cifar10-drnas":  # the paper's recipe, not the generic defaults
        assert (cfg.epochs, cfg.batch_size, cfg.weight_optimizer.name) == (500, 512, "adamw")
    if preset is None:
        assert cfg.epochs == RunConfig.model_fields["epochs"].default


def test_train_space_starts_from_the_paper_training_preset(captured: list[RunConfig], tmp_path: Path) -> None:
    result = invoke("train", "darts:arch_rs_spos", "--out", tmp_path / "a")
    assert result.exit_code == 0, result.output
    assert "preset darts-cifar10-train: " in result.output
    assert (captured[-1].preset, captured[-1].epochs, captured[-1].dataset) == (
        "darts-cifar10-train",
        600,
        "cifar10",
    )
    for extra in (["--no-preset"], ["--dataset", "digits"]):
        out = tmp_path / "-".join(extra)
        assert invoke("train", "darts:arch_rs_spos", *extra, "--out", out).exit_code == 0
        assert captured[-1].preset is None
    assert captured[-1].dataset == "digits"


def test_presets_filters_and_json() -> None:
    result = invoke("presets", "--space", "nb201", "--json")
    listed: list[dict[str, Any]] = json.loads(result.stdout)
    assert listed and {p["space"] for p in listed} == {"nb201"}
    assert {p["command"] for p in listed} == {"search", "train"}
    spos = json.loads(invoke("presets", "--opt", "spos", "--json").stdout)
    assert spos and {p["optimizer"] for p in spos} == {"spos"}
    table = invoke("presets", "--space", "toy_cell", "--opt", "gdas")
    assert "toy-cell-fmnist-gdas" in table.stdout and "toy-cell-fmnist-drnas" not in table.stdout
    one_line_error(invoke("presets", "--space", "nope"), "unknown space 'nope'")
    one_line_error(
        invoke("presets", "--space", "autoformer", "--opt", "gdas"), "no presets found for these filters"
    )
