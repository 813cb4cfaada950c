"""benchmarks/search_quality.py: the grid, its cache, its reports, and the random baseline."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from support import synthetic_benchmark

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "search_quality.py"


def load_script():
    spec = importlib.util.spec_from_file_location("search_quality", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["search_quality"] = module  # its dataclasses look their module up
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def run_script(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_expected_best_of_k_random():
    script = load_script()
    assert script.expected_best_of([1.0, 2.0], 1) == pytest.approx(1.5)
    assert script.expected_best_of([1.0, 2.0], 2) == pytest.approx(1 * 0.25 + 2 * 0.75)
    assert script.expected_best_of([3.0, 1.0, 2.0], 50) == pytest.approx(3.0, abs=1e-6)


def test_default_grid_and_its_selections():
    script = load_script()
    cells = script.grid_cells("reduced", None, None, None, None)
    drnas = [c for c in cells if c.optimizer == "drnas" and c.space in ("toy_cell", "nb201")]
    assert len(drnas) == 18 and {c.mode for c in drnas} == set(script.MODES)
    others = [c for c in cells if c.space == "toy_cell" and c.optimizer != "drnas"]
    # SPOS trains one-hot paths, where scaled groups are the original ones exactly: no we-scaled cell
    assert len(others) == 8 and not [c for c in others if c.optimizer == "spos" and c.mode == "we-scaled"]
    assert [c.seed for c in cells[:6]] == [0] * 6  # first seeds first
    narrowed = script.grid_cells("reduced", ["nb201"], None, ["ws"], [5])
    assert [(c.space, c.mode, c.seed) for c in narrowed] == [("nb201", "ws", 5)]
    # WE and WS get identical settings; the arch learning rate is scaled by the paper's arch steps
    we, ws = (script.search_command(script.Cell("nb201", "drnas", m, 0), "reduced", Path("o")) for m in
              ("we-original", "ws"))  # fmt: skip
    assert [t for t in ws if t != "--ws"] == we
    lr = next(t for t in we if t.startswith("arch_optimizer.lr="))
    assert float(lr.split("=")[1]) == pytest.approx(3e-4 * (100 * 391) / (8 * 79), rel=1e-4)


def test_help_documents_the_grid():
    shown = run_script("--help")
    assert shown.returncode == 0
    for word in ("--spaces", "--optimizers", "--modes", "--seeds", "--protocol", "reduced", "paper", "cache"):
        assert word in shown.stdout


@pytest.mark.slow
def test_smoke_grid_runs_and_resumes(tmp_path: Path):
    data_root = tmp_path / "data"
    (data_root / "benchmarks").mkdir(parents=True)
    synthetic_benchmark("toy_cell", {"C": 4}, data_root / "benchmarks")
    results, runs = tmp_path / "results", tmp_path / "runs"
    done = run_script("--smoke", "--results", results, "--runs", runs, "--data-root", data_root)
    assert done.returncode == 0, done.stdout + done.stderr
    with (results / "search_quality_smoke.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["optimizer"], r["mode"]) for r in rows] == [("drnas", "we-scaled"), ("spos", "ws")]
    for row in rows:
        assert 0 <= float(row["percentile"]) <= 100
        assert float(row["regret"]) == pytest.approx(float(row["best_test_acc"]) - float(row["test_acc"]))
        assert float(row["peak_memory_mb"]) > 0 and "tanglenas search --preset" in row["command"]
    assert rows[1]["evaluations"] == "8" and float(rows[1]["random_expected_best"]) > float(
        rows[1]["benchmark_mean"]
    )
    assert rows[0]["anytime_test_acc"].count(",") == 1  # two epochs
    table = (results / "search_quality_smoke.md").read_text()
    assert "| smoke | toy_cell | drnas | we-scaled | 1 |" in table
    assert (results / "search_quality_smoke.png").stat().st_size > 0
    again = run_script("--smoke", "--results", results, "--runs", runs, "--data-root", data_root)
    assert again.returncode == 0 and "2 already in" in again.stdout


def test_reports_show_spos_and_an_undefined_tau(tmp_path: Path):
    """SPOS has no anytime curve and a best-of-K baseline; a constant-score supernet has no tau."""
    script = load_script()
    base = {"protocol": "reduced", "space": "toy_cell", "seed": "0", "test_acc": "88.0", "percentile": "15",
            "regret": "3.6", "best_test_acc": "91.6", "benchmark_mean": "90.0", "top_k_overlap": "0.1",
            "search_seconds": "60", "peak_memory_mb": "1000", "epochs": "8",
            "command": "tanglenas search"}  # fmt: skip
    rows = [
        {**base, "optimizer": "spos", "mode": "ws", "evaluations": "100", "random_expected_best": "91.4",
         "kendall_tau": "0.07", "anytime_test_acc": "[]"},
        {**base, "optimizer": "drnas", "mode": "ws", "evaluations": "1", "random_expected_best": "90.0",
         "kendall_tau": "", "anytime_test_acc": "[89.0, 88.5, 88.0]"},
    ]  # fmt: skip
    script.write_reports(rows, tmp_path, "report", None)
    table = (tmp_path / "report.md").read_text()
    assert "| reduced | toy_cell | spos | ws | 1 | 88.00 | 15.0 | 3.60 | 0.070 |" in table
    assert "| 90.00 / 91.40 (100) |" in table
    assert "| reduced | toy_cell | drnas | ws | 1 | 88.00 | 15.0 | 3.60 | - |" in table
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert script._number(None) == "undefined" and script._number(0.1234) == "0.123"
