"""Tests of tanglenas_cli.benchmarks: safe pickle loading, toy benchmark look-ups and prepare-data."""

from __future__ import annotations

import builtins
import io
import os
import pickle
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
from support import TOY_BENCHMARKS

from tanglenas_cli.benchmarks import (
    KNOWN_TOY_BENCHMARKS,
    TabularBenchmark,
    default_benchmark_path,
    load_benchmark,
)
from tanglenas_cli.benchmarks.nb201_keys import NB201_BENCHMARK
from tanglenas_cli.benchmarks.prepare import prepare_toy_benchmarks
from tanglenas_cli.benchmarks.safe_pickle import load_pickle
from tanglenas_cli.benchmarks.toy_keys import TOY_CELL_BENCHMARK, TOY_CONV_MACRO_BENCHMARK
from tanglenas_cli.errors import UserError

TOY_DIR = TOY_BENCHMARKS
CELL_FILE = TOY_DIR / "entangled_cell_ss_benchmark.pkl"
MACRO_FILE = TOY_DIR / "conv_macro_bench.pkl"

BEST_CELL_KEY = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 0), ('dil_conv_3x3', 1)], "
    "normal_concat=range(1, 3), "
    "reduce=[('sep_conv_3x3', 0), ('dil_conv_3x3', 0), ('sep_conv_3x3', 1)], "
    "reduce_concat=range(1, 3))"
)
BEST_MACRO_KEY = "[[32, 64, 128, 128], [3, 7, 5, 7]]"


def _need(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"shared data file missing: {path}")
    return path


@pytest.fixture(scope="module")
def cell_bench() -> TabularBenchmark:
    return load_benchmark(_need(CELL_FILE))


@pytest.fixture(scope="module")
def macro_bench() -> TabularBenchmark:
    return load_benchmark(_need(MACRO_FILE))


# --- the real toy benchmarks -------------------------------------------------------------------------------


def test_toy_cell_size_best_and_rank(cell_bench: TabularBenchmark) -> None:
    assert len(cell_bench) == 4096
    assert cell_bench.name == TOY_CELL_BENCHMARK
    key, row = cell_bench.best()
    assert key == BEST_CELL_KEY
    assert row["test_acc"] == pytest.approx(91.63)
    assert row["num_params"] == 191530.0
    rank, total, percentile = cell_bench.rank(BEST_CELL_KEY)
    assert (rank, total) == (1, 4096)
    assert percentile == pytest.approx(100.0 * 4095 / 4096)


def test_toy_cell_values_are_plain_python(cell_bench: TabularBenchmark) -> None:
    row = cell_bench.query(BEST_CELL_KEY)
    assert row["unit_gpu"] == "us" and row["unit_cpu"] == "ms"
    for entry in cell_bench.entries.values():
        for value in entry.values():
            assert type(value) in (float, str)
    assert type(row["test_acc"]) is float
    assert set(cell_bench.metrics()) == {
        "test_acc",
        "train_acc",
        "num_params",
        "latency_gpu_mean",
        "latency_gpu_std",
        "latency_cpu_mean",
        "latency_cpu_std",
    }


def test_toy_cell_uniform_architectures(cell_bench: TabularBenchmark) -> None:
    expected = {"sep_conv_3x3": 90.88, "sep_conv_5x5": 90.32, "dil_conv_3x3": 87.75, "dil_conv_5x5": 87.48}
    for op, test_acc in expected.items():
        edges = f"[('{op}', 0), ('{op}', 0), ('{op}', 1)]"
        concat = "range(1, 3)"
        key = f"Genotype(normal={edges}, normal_concat={concat}, reduce={edges}, reduce_concat={concat})"
        assert cell_bench.query(key)["test_acc"] == pytest.approx(test_acc)


def test_conv_macro_size_best_and_worst(macro_bench: TabularBenchmark) -> None:
    assert len(macro_bench) == 6561
    assert macro_bench.name == TOY_CONV_MACRO_BENCHMARK
    assert macro_bench.metrics() == ["test_acc", "train_acc"]
    row = macro_bench.query(BEST_MACRO_KEY)
    assert row["test_acc"] == pytest.approx(84.41)
    assert type(row["test_acc"]) is float
    assert macro_bench.best() == (BEST_MACRO_KEY, row)
    assert macro_bench.rank(BEST_MACRO_KEY)[:2] == (1, 6561)
    # 14 diverged architectures share the worst value 10.0: same rank, nothing strictly worse.
    worst_keys = [key for key, entry in macro_bench.entries.items() if entry["test_acc"] == 10.0]
    assert len(worst_keys) == 14
    for key in worst_keys:
        assert macro_bench.rank(key) == (6561 - 14 + 1, 6561, 0.0)


def test_worst_toy_cell_has_percentile_zero(cell_bench: TabularBenchmark) -> None:
    worst_key = min(cell_bench.entries, key=lambda key: cell_bench.entries[key]["test_acc"])
    assert cell_bench.entries[worst_key]["test_acc"] == pytest.approx(86.06)
    assert cell_bench.rank(worst_key) == (4096, 4096, 0.0)


def test_rank_lower_is_better(cell_bench: TabularBenchmark) -> None:
    fastest = min(cell_bench.entries, key=lambda key: cell_bench.entries[key]["latency_gpu_mean"])
    rank, total, _ = cell_bench.rank(fastest, metric="latency_gpu_mean", higher_is_better=False)
    assert (rank, total) == (1, 4096)
    assert cell_bench.best("latency_gpu_mean", higher_is_better=False)[0] == fastest


def test_missing_key_and_metric(cell_bench: TabularBenchmark, macro_bench: TabularBenchmark) -> None:
    with pytest.raises(UserError, match="is not in benchmark") as info:
        cell_bench.query("Genotype(normal=[])")
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="looks like a toy conv-macro architecture"):
        cell_bench.query(BEST_MACRO_KEY)
    with pytest.raises(UserError, match="looks like a toy cell architecture"):
        macro_bench.query(BEST_CELL_KEY)
    with pytest.raises(UserError, match="did you mean"):
        macro_bench.query("[[32,64,128,128],[3,7,5,7]]")
    with pytest.raises(UserError, match="unknown metric 'accuracy'"):
        macro_bench.rank(BEST_MACRO_KEY, metric="accuracy")
    with pytest.raises(UserError, match="is not in benchmark"):
        macro_bench.rank("[[1, 2, 3, 4], [3, 3, 3, 3]]")


def test_query_returns_a_copy(macro_bench: TabularBenchmark) -> None:
    macro_bench.query(BEST_MACRO_KEY)["test_acc"] = -1.0
    assert macro_bench.query(BEST_MACRO_KEY)["test_acc"] == pytest.approx(84.41)


def test_real_pickles_load_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_pickle(_need(CELL_FILE))
    assert isinstance(next(iter(data.values()))["test_acc"], np.float64)


# --- small in-memory benchmarks ----------------------------------------------------------------------------


def test_rank_ties_and_small_table(tmp_path: Path) -> None:
    entries = {"a": {"acc": 1.0}, "b": {"acc": 2}, "c": {"acc": np.float32(2.0)}, "d": {"acc": 3.0}}
    bench = TabularBenchmark("tiny", tmp_path / "tiny.pkl", entries)
    assert bench.rank("d", "acc") == (1, 4, 75.0)
    assert bench.rank("b", "acc") == (2, 4, 25.0)
    assert bench.rank("c", "acc") == (2, 4, 25.0)
    assert bench.rank("a", "acc") == (4, 4, 0.0)
    assert bench.rank("a", "acc", higher_is_better=False) == (1, 4, 75.0)
    assert bench.best("acc") == ("d", {"acc": 3.0})
    assert type(bench.entries["b"]["acc"]) is float


def test_load_benchmark_rejects_other_formats(tmp_path: Path) -> None:
    csv_file = tmp_path / "bench.csv"
    csv_file.write_text("a,b\n")
    with pytest.raises(UserError, match=r"supported formats: \.pkl"):
        load_benchmark(csv_file)
    with pytest.raises(UserError, match="does not exist"):
        load_benchmark(tmp_path / "missing.pkl")


@pytest.mark.parametrize(
    "payload, message",
    [
        ([1, 2, 3], "expected a dict"),
        ({}, "holds no architectures"),
        ({1: {"test_acc": 1.0}}, "expected a str"),
        ({"[[8]]": 1.0}, "expected a dict of metrics"),
        ({"[[8]]": {"test_acc": [1.0]}}, "unsupported type list"),
    ],
)
def test_toy_loader_validates_shape(tmp_path: Path, payload: object, message: str) -> None:
    path = tmp_path / "bench.pkl"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(UserError, match=message):
        load_benchmark(path)


def test_default_benchmark_path(tmp_path: Path) -> None:
    assert default_benchmark_path(TOY_CELL_BENCHMARK, tmp_path) is None
    assert default_benchmark_path(NB201_BENCHMARK, tmp_path) is None
    (tmp_path / "benchmarks").mkdir()
    target = tmp_path / "benchmarks" / KNOWN_TOY_BENCHMARKS[TOY_CONV_MACRO_BENCHMARK]
    target.write_bytes(b"")
    assert default_benchmark_path(TOY_CONV_MACRO_BENCHMARK, tmp_path) == target


def test_benchmarks_package_does_not_import_torch() -> None:
    code = "import sys, tanglenas_cli.benchmarks.prepare; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# --- safe loading -------------------------------------------------------------------------------------------


class _RunsShell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (self.command,)


class _Evaluates:
    def __init__(self, expression: str) -> None:
        self.expression = expression

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return builtins.eval, (self.expression,)


class _Spawns:
    def __reduce__(self) -> tuple[object, tuple[list[str]]]:
        return subprocess.Popen, (["true"],)


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_os_system_pickle_is_refused(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    payload = {"[[8, 16, 32, 64], [3, 3, 3, 3]]": {"test_acc": _RunsShell(f"echo pwned > {marker}")}}
    path.write_bytes(pickle.dumps(payload, protocol=protocol))
    with pytest.raises(UserError, match=r"refusing to load .*evil\.pkl.*'(posix|os|nt)\.system'") as info:
        load_benchmark(path)
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_builtins_eval_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    expression = f"open({str(marker)!r}, 'w').write('pwned')"
    path.write_bytes(pickle.dumps(_Evaluates(expression)))
    with pytest.raises(UserError, match=r"'builtins\.eval'"):
        load_pickle(path)
    assert not marker.exists()


def test_subprocess_popen_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps([_Spawns()]))
    with pytest.raises(UserError, match=r"'subprocess\.Popen'"):
        load_pickle(path)


def test_numpy_scalars_are_allowed(tmp_path: Path) -> None:
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps({"k": {"test_acc": np.float64(1.5), "n": np.int64(3)}}))
    assert load_pickle(path) == {"k": {"test_acc": 1.5, "n": 3}}


def test_numpy_arrays_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "array.pkl"
    path.write_bytes(pickle.dumps(np.arange(3)))
    with pytest.raises(UserError, match="refusing to load"):
        load_pickle(path)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"hello, this is not a pickle\n",
        b"\x80\x04\x95",
        pickle.dumps({"a": {"test_acc": 1.0}})[:-5],
        b"\x00\x01\x02\x03garbage",
    ],
    ids=["empty", "text", "header-only", "truncated", "binary-garbage"],
)
def test_corrupt_files_give_one_line_user_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pkl"
    path.write_bytes(content)
    with pytest.raises(UserError) as info:
        load_benchmark(path)
    assert "\n" not in str(info.value)
    assert "bad.pkl" in str(info.value)


def test_truncated_real_pickle(tmp_path: Path) -> None:
    data = _need(CELL_FILE).read_bytes()
    path = tmp_path / "entangled_cell_ss_benchmark.pkl"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated"):
        load_benchmark(path)


def test_missing_pickle_and_directory(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_pickle(tmp_path / "nope.pkl")
    with pytest.raises(UserError, match="is not a file"):
        load_pickle(tmp_path)


# --- prepare-data toy-benchmarks ----------------------------------------------------------------------------


def _copy_real_files(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for file_name in KNOWN_TOY_BENCHMARKS.values():
        shutil.copyfile(_need(TOY_DIR / file_name), folder / file_name)
    return folder


def _no_network(*args: object, **kwargs: object) -> object:
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


def test_prepare_from_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    source = _copy_real_files(tmp_path / "source")
    data_root = tmp_path / "data"
    summary = prepare_toy_benchmarks(data_root, source)
    assert "\n" not in summary and "4,096" in summary and "6,561" in summary
    prepared = sorted(path.name for path in (data_root / "benchmarks").iterdir())
    assert prepared == sorted(KNOWN_TOY_BENCHMARKS.values())
    for benchmark, size in ((TOY_CELL_BENCHMARK, 4096), (TOY_CONV_MACRO_BENCHMARK, 6561)):
        path = default_benchmark_path(benchmark, data_root)
        assert path is not None
        assert len(load_benchmark(path)) == size


def test_prepare_from_folder_missing_or_bad_file(tmp_path: Path) -> None:
    source = _copy_real_files(tmp_path / "source")
    (source / "conv_macro_bench.pkl").unlink()
    data_root = tmp_path / "data"
    with pytest.raises(UserError, match=r"lacks conv_macro_bench\.pkl"):
        prepare_toy_benchmarks(data_root, source)
    (source / "conv_macro_bench.pkl").write_bytes(pickle.dumps({"[[8]]": {"test_acc": 1.0}}))
    with pytest.raises(UserError, match="holds 1 architectures, expected 6,561"):
        prepare_toy_benchmarks(data_root, source)
    # Nothing half-written: not even the valid cell benchmark was copied.
    assert not (data_root / "benchmarks").exists() or not any((data_root / "benchmarks").iterdir())
    with pytest.raises(UserError, match="not a folder"):
        prepare_toy_benchmarks(data_root, source / "entangled_cell_ss_benchmark.pkl")


def test_prepare_offline_gives_one_line_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    data_root = tmp_path / "data"
    with pytest.raises(UserError, match="--from DIR") as info:
        prepare_toy_benchmarks(data_root, None)
    assert "\n" not in str(info.value)
    benchmarks = data_root / "benchmarks"
    assert not benchmarks.exists() or not any(benchmarks.iterdir())


def test_prepare_download_with_fake_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served = {name: _need(TOY_DIR / name).read_bytes() for name in KNOWN_TOY_BENCHMARKS.values()}
    requested: list[str] = []

    def fake_urlopen(url: str, timeout: float) -> io.BytesIO:
        assert timeout > 0
        assert url.startswith("https://raw.githubusercontent.com/automl/TangleNAS/main/toy_benchmarks/")
        requested.append(url)
        return io.BytesIO(served[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    data_root = tmp_path / "data"
    summary = prepare_toy_benchmarks(data_root, None)
    assert "downloaded" in summary
    assert len(requested) == 2
    assert len(load_benchmark(data_root / "benchmarks" / "conv_macro_bench.pkl")) == 6561
    assert not [p for p in (data_root / "benchmarks").iterdir() if p.name.endswith(".part")]

    # Already prepared: no network needed.
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    assert "already present" in prepare_toy_benchmarks(data_root, None)


def test_prepare_download_of_bad_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_urlopen(url: str, timeout: float) -> io.BytesIO:
        return io.BytesIO(b"<html>404: Not Found</html>")

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    data_root = tmp_path / "data"
    with pytest.raises(UserError, match=r"entangled_cell_ss_benchmark\.pkl is not a valid toy benchmark"):
        prepare_toy_benchmarks(data_root, None)
    assert not any((data_root / "benchmarks").iterdir())
