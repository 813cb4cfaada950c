"""`tanglenas profile`: the three modes, each measured in its own process, and their ratios."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tanglenas_cli.cli import app


def test_profile_reports_three_modes_and_ratios():
    args = ["profile", "--space", "toy_cell", "--set", "space_options.C=4", "--batch-size", "8",
            "--steps", "2", "--warmup", "1", "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report["modes"]) == {"we", "ws", "largest"}
    for numbers in report["modes"].values():
        assert numbers["step_s"] > 0 and numbers["params"] > 0
    assert (
        report["modes"]["ws"]["params"]
        > report["modes"]["we"]["params"]
        > report["modes"]["largest"]["params"]
    )
    assert report["we_time_ratio"] > 0 and report["ws_memory_ratio"] >= 0
    # the times come from one process that interleaves the modes, two measured steps per round
    assert report["timing"] == "interleaved in one process"
    assert all(numbers["steps"] == 2 for numbers in report["modes"].values())
    low, high = report["we_time_ratio_rounds"]
    assert 0 < low <= high


def test_profile_rejects_settings_other_than_space_options():
    result = CliRunner().invoke(app, ["profile", "--space", "toy_cell", "--set", "epochs=3"])
    assert result.exit_code == 2 and "space_options" in result.output
