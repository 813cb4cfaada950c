"""benchmarks/benchmark_structure.py: the additive model of a tabular benchmark."""

from __future__ import annotations

import importlib.util
import itertools
import json
import pickle
import random
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "benchmark_structure.py"
OPS = ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3")


def load_script():
    spec = importlib.util.spec_from_file_location("benchmark_structure", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def genotype(ops: tuple[str, ...]) -> str:
    normal = [(ops[0], 0), (ops[1], 0), (ops[2], 1)]
    return f"Genotype(normal={normal}, normal_concat=range(1, 3))"


def test_edge_choices_read_both_key_formats():
    script = load_script()
    assert script.edge_choices(genotype(("a", "b", "c"))) == ["a", "b", "c"]
    assert script.edge_choices("|nor_conv_3x3~0|+|none~0|skip_connect~1|") == [
        "nor_conv_3x3",
        "none",
        "skip_connect",
    ]
    assert script.edge_choices("[[3, 64], [5, 32]]") == ["3", "64", "5", "32"]


def test_an_additive_table_is_explained_exactly_and_its_best_is_picked():
    script = load_script()
    effect = {op: i * 0.5 for i, op in enumerate(OPS)}
    keys, values = [], []
    for ops in itertools.product(OPS, repeat=3):
        keys.append(genotype(ops))
        values.append(90 + sum(effect[o] * (edge + 1) for edge, o in enumerate(ops)))
    fit = script.additive_fit(keys, values)
    assert fit["r2_additive"] == 1.0 and fit["kendall_tau_all"] > 0.95  # ties in the table
    assert fit["additive_pick"]["value"] == max(values) and fit["additive_pick"]["percentile"] > 96
    assert fit["largest_effects"][0] == {
        "edge": 2,
        "choice": "sep_conv_3x3",
        "effect": -3.0,
        "versus": "dil_conv_3x3",  # the first choice in sorted order is the reference
    }


def test_noise_is_not_explained(tmp_path: Path):
    rng = random.Random(0)
    table = {genotype(ops): {"test_acc": rng.uniform(80, 95)} for ops in itertools.product(OPS, repeat=3)}
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "entangled_cell_ss_benchmark.pkl").write_bytes(pickle.dumps(table))
    command = [sys.executable, str(SCRIPT), "--data-root", tmp_path, "--results", tmp_path / "out"]
    done = subprocess.run(command,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "out" / "benchmark_structure.json").read_text())["toy_cell"]
    assert result["architectures"] == 27 and result["r2_additive"] < 0.6
    assert "| toy_cell | 27 |" in (tmp_path / "out" / "benchmark_structure.md").read_text()


def test_missing_or_corrupt_benchmarks_are_one_line_exit_2(tmp_path: Path):
    def run(*args: object) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)

    out = tmp_path / "out"
    missing = run("--data-root", tmp_path, "--results", out)
    assert missing.returncode == 2 and "prepare-data" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "entangled_cell_ss_benchmark.pkl").write_text("not a pickle")
    corrupt = run("--data-root", tmp_path, "--results", out)
    assert corrupt.returncode == 2 and "entangled_cell_ss_benchmark.pkl" in corrupt.stderr
    assert len(corrupt.stderr.strip().splitlines()) == 1
    assert not out.exists()  # nothing written
