"""benchmarks/latency_check.py's report and the README block writer the benchmark scripts share."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_the_table_shows_min_median_max_per_space_and_batch():
    script = load("latency_check")
    row = {"space": "toy_cell", "batch_size": "1", "threads": "2", "benchmark_spearman": "0.25",
           "whole_networks_mean_relative_error": "0.2",
           "command": "tanglenas latency-table --space toy_cell"}  # fmt: skip
    rows = [
        {**row, "repeat": str(i), "whole_networks_spearman": str(rho)}
        for i, rho in enumerate((0.5, 0.9, 0.6))
    ]
    rows.append(
        {
            **rows[0],
            "space": "nb201",
            "benchmark_spearman": "",
            "command": "tanglenas latency-table --space nb201",
        }
    )
    text = script.markdown(rows)
    assert "| toy_cell | 1 | 3 | 0.50 / 0.60 / 0.90 | 0.20 / 0.20 / 0.20 | 0.25 / 0.25 / 0.25 |" in text
    assert "| nb201 | 1 | 1 | 0.50 / 0.50 / 0.50 | 0.20 / 0.20 / 0.20 | - |" in text
    assert "2 CPU threads" in text and "- `tanglenas latency-table --space nb201`" in text


def test_fill_block_replaces_only_between_its_markers(tmp_path: Path):
    fill_block = load("readme_block").fill_block
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- x:start -->\nold\n<!-- x:end -->\nb\n<!-- y:start -->\nkeep\n<!-- y:end -->\n")
    assert fill_block(readme, "x", "new\n")
    assert (
        readme.read_text()
        == "a\n<!-- x:start -->\nnew\n<!-- x:end -->\nb\n<!-- y:start -->\nkeep\n<!-- y:end -->\n"
    )
    assert not fill_block(readme, "z", "text") and not fill_block(tmp_path / "absent.md", "x", "text")


def test_bad_arguments_exit_2_and_write_nothing(tmp_path: Path, capsys):
    script = load("latency_check")
    for bad in (["--batch-sizes", "0"], ["--repeats", "-1"], ["--spaces", "darts"]):
        try:
            script.main([*bad, "--results", str(tmp_path)])
        except SystemExit as stop:
            assert stop.code == 2
        else:
            raise AssertionError(f"{bad} was accepted")
        assert "error: argument" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not list(tmp_path.iterdir())
