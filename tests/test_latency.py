"""Latency tables: every unit timed, the table read back as the `latency` metric, and its bad inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from support import invoke, one_line_error, records

from tanglenas_cli.engine.cost import cost_model
from tanglenas_cli.engine.latency import time_call
from tanglenas_cli.spaces import create_space
from tanglenas_cli.spaces.base import DataShape

TINY_SHAPE = ["--input-shape", "1,12,12", "--classes", "10", "--set", "space_options.C=4"]


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("latency") / "toy.json"
    result = invoke(
        "latency-table", "--space", "toy_cell", *TINY_SHAPE, "--check", "4", "--out", out, "--json"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["units_timed"] > 0 and summary["whole_networks_architectures"] == 4
    assert -1 <= summary["whole_networks_spearman"] <= 1
    return out


def test_time_call_is_the_median_of_samples():
    calls = []
    assert time_call(lambda: calls.append(1), __import__("torch").device("cpu"), samples=3) >= 0
    assert len(calls) >= 3 + 1 + 3


def test_the_latency_of_an_architecture_is_its_units_from_the_table(table: Path):
    content = json.loads(table.read_text())
    space = create_space("toy_cell", DataShape(10, (1, 12, 12)), {"C": 4})
    model = cost_model(space, "latency", table=table)
    assert model.base == content["base_ms"]
    largest = space.picks_of(space.largest_architecture())
    by_hand = model.base + sum(float(t[tuple(model.candidates[n].index(largest[n]) for n in names)])
                               for names, t in model.tables.items())  # fmt: skip
    assert model.of_picks(largest) == pytest.approx(by_hand)
    assert all(value > 0 for value in content["units"].values())


def test_a_search_with_a_latency_budget(table: Path, tmp_path: Path):
    run = tmp_path / "run"
    settings = ["dataset_options.size=12", "space_options.C=4", "epochs=1", "steps_per_epoch=2",
                "batch_size=128", "logging.progress=false", "cost.metric=latency", "cost.target=1e3",
                f"cost.table={table}"]  # fmt: skip
    flags = [part for setting in settings for part in ("--set", setting)]
    result = invoke("search", "--space", "toy_cell", "--dataset", "digits", *flags, "--out", run)
    assert result.exit_code == 0, result.output
    epoch = next(r for r in records(run / "metrics.jsonl") if r["kind"] == "epoch")
    arch = yaml.safe_load((run / "arch.yaml").read_text())["architecture"]
    space = create_space("toy_cell", DataShape(10, (1, 12, 12)), {"C": 4})
    assert epoch["argmax_latency"] == cost_model(space, "latency", table=table).of_architecture(arch)
    assert math.isfinite(epoch["expected_latency"])


def test_a_table_of_other_settings_is_refused(table: Path):
    other = create_space("toy_cell", DataShape(10, (1, 12, 12)), {"C": 8})
    with pytest.raises(Exception, match="was timed for space_options"):
        cost_model(other, "latency", table=table)


def test_bad_latency_inputs_are_one_line(table: Path, tmp_path: Path):
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{")
    search = ["search", "--space", "toy_cell", "--dataset", "digits", "--set", "cost.metric=latency",
              "--set", "cost.target=5", "--out", tmp_path / "run"]  # fmt: skip
    one_line_error(invoke(*search, "--set", f"cost.table={corrupt}"), "no latency table")
    one_line_error(invoke(*search, "--set", f"cost.table={table}"), "was timed for")
    one_line_error(invoke("latency-table", "--space", "toy_cell", "--input-shape", "1,x"), "--input-shape")
    one_line_error(invoke("latency-table", "--space", "toy_cel"), "unknown space")
    assert (
        invoke("latency-table", "--space", "toy_cell", "--benchmark", tmp_path / "missing.pkl").exit_code == 2
    )
