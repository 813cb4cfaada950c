"""NAS-Bench-201 / NATS-Bench look-ups: compact tables, official files, bench-query, prepare-data."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support import SHARED_DATA, invoke, one_line_error

from tanglenas_cli.benchmarks import NB201Benchmark, default_benchmark_path, load_benchmark
from tanglenas_cli.benchmarks.nb201_keys import (
    NATS_SSS_BENCHMARK,
    NB201_BENCHMARK,
    NB201_COLUMNS,
    check_key,
    nb201_benchmark_of_key,
)
from tanglenas_cli.benchmarks.prepare import prepare_nb201_benchmark
from tanglenas_cli.engine.bench_query import resolve_target, run_bench_query
from tanglenas_cli.errors import UserError
from tanglenas_cli.spaces.nb201 import NB201Space

SHARED = SHARED_DATA
NB201_CSV = SHARED / "nb201" / "nats_bench_200ep_test.csv"
NATS_TSS = SHARED / "nats_fake" / "NATS-tss-v1_0-3ffb9-simple"
NATS_SSS = SHARED / "nats_fake" / "NATS-sss-v1_0-50262-simple"

# The CIFAR-100 optimum of NB201; on CIFAR-10 it is third (94.36), behind two architectures tied at 94.37.
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
CIFAR10_BEST = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|",
)
IMAGENET_BEST = (
    "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)
# Index 11 of the NATS fixture: CIFAR-10 (hp=200) test accuracy 91.79 / 91.76 / 91.20 (seeds 777 / 888 / 999).
TSS_11 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|"
SSS_KEYS = ["8:8:8:8:8", "8:8:8:16:32", "8:8:40:32:40"]


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data missing: {path}")
    return path


def _need_nats_bench() -> Any:
    return pytest.importorskip(
        "nats_bench", reason="nats_bench not installed (pip install 'tanglenas[nb201]')"
    )


@pytest.fixture(scope="module")
def nb201() -> NB201Benchmark:
    started = time.perf_counter()
    table = load_benchmark(_need(NB201_CSV))
    seconds = time.perf_counter() - started
    print(f"\nloaded {NB201_CSV.name} ({len(table):,} architectures) in {seconds:.3f} s")
    assert isinstance(table, NB201Benchmark)
    return table


def _write_compact(path: Path, rows: dict[str, dict[str, float]], columns: tuple[str, ...]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["arch", *columns])
        for key, row in rows.items():
            writer.writerow([key, *(row.get(column, "") for column in columns)])
    return path


# --- the shared third-party CSV -----------------------------------------------------------------------------


def test_shared_csv_loads(nb201: NB201Benchmark, record_property: Any) -> None:
    started = time.perf_counter()
    load_benchmark(NB201_CSV)
    record_property("nb201_csv_load_seconds", round(time.perf_counter() - started, 3))
    assert len(nb201) == 15_625
    assert nb201.name == NB201_BENCHMARK
    assert nb201.datasets == ("cifar10", "cifar100", "imagenet16-120")
    assert nb201.metrics() == ["cifar10_test", "cifar100_test", "imagenet16-120_test"]
    maxima = [nb201.optimum(dataset)[1] for dataset in nb201.datasets]
    assert maxima == pytest.approx([94.37, 73.51, 47.31], abs=0.005)
    assert all(type(value) is float for value in nb201.query(ARCH).values())


def test_ranks_and_optima(nb201: NB201Benchmark) -> None:
    assert nb201.rank(ARCH, "cifar100_test")[:2] == (1, 15_625)
    assert nb201.rank(ARCH, "cifar10_test")[:2] == (3, 15_625)
    for best in CIFAR10_BEST:
        assert nb201.rank(best, "cifar10_test") == (1, 15_625, pytest.approx(100 * 15_623 / 15_625))
    assert nb201.optimum("cifar10")[0] in CIFAR10_BEST
    assert nb201.optimum("cifar100")[0] == ARCH
    assert nb201.optimum("imagenet16-120")[0] == IMAGENET_BEST
    report = nb201.report(ARCH, dataset="cifar100")
    assert report["dataset"] == "cifar100" and report["rank"] == "1 / 15625"
    assert report["test_acc"] == report["best_test_acc"] == pytest.approx(73.5133, abs=1e-4)
    assert report["cifar10_test"] == pytest.approx(94.3633, abs=1e-4)
    assert report["cifar10_best"] == pytest.approx(94.3733, abs=1e-4)
    assert report["imagenet16-120_rank"] == "26 / 15625"
    assert nb201.report(ARCH)["dataset"] == "cifar10"


def test_query_strips_blanks(nb201: NB201Benchmark) -> None:
    assert nb201.query(f"  {ARCH}\n") == nb201.query(ARCH)
    assert f" {ARCH} " in nb201


@pytest.mark.parametrize(
    "key, fragment",
    [
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|", "2 node group(s)"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|", "has 2 edge(s)"),
        (ARCH.replace("nor_conv_3x3~1|+", "conv_3x3~1|+"), "edge 'conv_3x3~1'"),
        (ARCH.replace("skip_connect~0", "skip_connect~1"), "must read from node 0"),
        (ARCH.replace("skip_connect~0", "skip_connect"), "is not op~input"),
        (ARCH.strip("|"), "must start and end with '|'"),
        ("Genotype(normal=[])", "node group"),
        ("", "node group"),
    ],
)
def test_malformed_strings(nb201: NB201Benchmark, key: str, fragment: str) -> None:
    with pytest.raises(UserError) as info:
        nb201.query(key)
    message = str(info.value)
    assert "\n" not in message and fragment in message
    assert "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|" in message and "avg_pool_3x3" in message


def test_unknown_string(tmp_path: Path, nb201: NB201Benchmark) -> None:
    rows = {key: nb201.query(key) for key in (ARCH, *CIFAR10_BEST)}
    small = load_benchmark(_write_compact(tmp_path / "small.csv", rows, ("cifar10_test", "cifar100_test")))
    assert len(small) == 3 and small.name == NB201_BENCHMARK
    with pytest.raises(
        UserError, match="well-formed NAS-Bench-201 string, but this table holds only 3 of 15,625"
    ) as info:
        small.query(IMAGENET_BEST)
    assert "\n" not in str(info.value)
    assert IMAGENET_BEST not in small


def test_key_helpers() -> None:
    assert nb201_benchmark_of_key(ARCH) == NB201_BENCHMARK
    assert nb201_benchmark_of_key("8:16:32:64:64") == NATS_SSS_BENCHMARK
    assert nb201_benchmark_of_key("[[8, 16], [3, 3]]") is None
    assert check_key(NATS_SSS_BENCHMARK, " 8:16:32:64:64 ") == "8:16:32:64:64"
    for bad in ("8:16:32:64", "8:16:32:64:65", "8:16:32:64:064", "a:b:c:d:e"):
        with pytest.raises(UserError, match="expected the NATS size form c1:c2:c3:c4:c5"):
            check_key(NATS_SSS_BENCHMARK, bad)


def test_loading_csv_imports_nothing_heavy() -> None:
    code = (
        "import sys; from tanglenas_cli.benchmarks import load_benchmark; "
        f"load_benchmark({str(_need(NB201_CSV))!r}); "
        "print(sorted(m for m in ('torch', 'pandas', 'pyarrow', 'nats_bench') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- malformed tables ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("arch,cifar10_test\nresnet18,1.0\n", "neither an NB201 string"),
        ("arch,cifar10_test\n|none~0|,1.0\n", "row 2: malformed NB201"),
        (f"arch,cifar10_test\n{ARCH},93.1\n|none~0|+|none~0|none~1|,1.0\n", "row 3: malformed NB201"),
        (f"arch,cifar10_test\n{ARCH},high\n", "row 2: cifar10_test is 'high', not a number"),
        (f"arch,cifar10_test\n{ARCH},93.1\n{ARCH},93.2\n", "appears more than once"),
        ("arch,cifar10_test\n", "holds no architectures"),
        ("arch\n", "no metric columns"),
        ("", "is not a benchmark table"),
        ("key,acc\nx,1\n", "supported formats: .pkl"),
        ("ArchitectureString,CIFAR10TestAccuracy200Epochs\n", "without the column(s) CIFAR100Test"),
    ],
)
def test_bad_tables(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "bench.csv"
    path.write_text(content)
    with pytest.raises(UserError) as info:
        load_benchmark(path)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_not_a_nats_folder(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a NATS-Bench 'simple' folder"):
        load_benchmark(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        load_benchmark(tmp_path / "NAS-Bench-201-v1_0-e61699.pth")


def test_parquet_table(tmp_path: Path, nb201: NB201Benchmark) -> None:
    pandas = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    keys = list(nb201.entries)
    frame = pandas.DataFrame(
        {"arch": keys, **{column: [nb201.entries[key][column] for key in keys] for column in nb201.metrics()}}
    )
    frame.to_parquet(tmp_path / "nb201.parquet")
    assert load_benchmark(tmp_path / "nb201.parquet").entries == nb201.entries
    third_party = pandas.read_csv(NB201_CSV)
    third_party.to_parquet(tmp_path / "third_party.parquet")
    assert load_benchmark(tmp_path / "third_party.parquet").entries == nb201.entries


# --- bench-query --------------------------------------------------------------------------------------------


def test_cli_bench_query(nb201: NB201Benchmark) -> None:
    started = time.perf_counter()
    result = invoke("bench-query", "--space", "nb201", ARCH, "--benchmark", NB201_CSV)
    print(f"\nbench-query in-process: {time.perf_counter() - started:.3f} s")
    assert result.exit_code == 0, result.output
    for shown in ("94.36", "73.51", "46.34", "3 / 15625", "1 / 15625", "26 / 15625", "94.37", "47.31"):
        assert shown in result.stdout


def test_cli_bench_query_json() -> None:
    result = invoke("bench-query", ARCH, "--benchmark", _need(NB201_CSV), "--json", "--dataset", "cifar100")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["space"] == "nb201" and report["key"] == ARCH and report["dataset"] == "cifar100"
    assert report["rank"] == "1 / 15625" and report["percentile"] == pytest.approx(99.99)
    assert report["cifar10_test"] == pytest.approx(94.3633, abs=1e-4)
    assert report["cifar100_test"] == pytest.approx(73.5133, abs=1e-4)
    assert report["imagenet16-120_test"] == pytest.approx(46.3444, abs=1e-4)
    assert report["imagenet16-120_best"] == pytest.approx(47.3111, abs=1e-4)


def test_cli_bench_query_errors() -> None:
    _need(NB201_CSV)
    one_line_error(invoke("bench-query", "|none~0|", "--benchmark", NB201_CSV), "malformed NB201")
    one_line_error(
        invoke("bench-query", ARCH, "--benchmark", NB201_CSV, "--dataset", "digits"),
        "no dataset 'digits'",
        "cifar10, cifar100, imagenet16-120",
    )
    one_line_error(
        invoke("bench-query", ARCH, "--benchmark", NB201_CSV, "--space", "toy_cell"),
        "benchmark of space 'nb201', not 'toy_cell'",
    )
    one_line_error(
        invoke("bench-query", "8:16:32:64:64", "--benchmark", NB201_CSV),
        "benchmark of space 'nb201', not 'nats_sss'",
    )


class _FakeNB201Space(NB201Space):
    """The nb201 space, but its benchmark key is the stored string (the arch.yaml holds only that)."""

    def benchmark_key(self, arch: dict[str, Any]) -> str:
        return arch["arch_str"]


def _run_dir(path: Path, dataset: str | None, with_config: str | None = None) -> Path:
    path.mkdir(parents=True)
    text = f"space: nb201\narchitecture:\n  arch_str: '{ARCH}'\n"
    if dataset is not None:
        text += f"dataset: {dataset}\n"
    (path / "arch.yaml").write_text(text)
    if with_config is not None:
        (path / "config.yaml").write_text(f"dataset: {with_config}\n")
    return path


def test_run_directory_picks_its_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tanglenas_cli.spaces as spaces

    monkeypatch.setitem(spaces._SPACES._entries, "nb201", _FakeNB201Space)
    run = _run_dir(tmp_path / "run", "cifar100")
    assert resolve_target(run) == ("nb201", ARCH, "cifar100")
    report = run_bench_query(run, _need(NB201_CSV))
    assert report["dataset"] == "cifar100" and report["rank"] == "1 / 15625"
    assert run_bench_query(run / "arch.yaml", NB201_CSV, dataset="imagenet16-120")["rank"] == "26 / 15625"
    # dataset only in config.yaml beside arch.yaml
    assert (
        resolve_target(_run_dir(tmp_path / "run2", None, with_config="imagenet16-120"))[2] == "imagenet16-120"
    )
    # a run on a dataset the benchmark lacks: cifar10, with a note
    report = run_bench_query(_run_dir(tmp_path / "run3", "synthetic"), NB201_CSV)
    assert report["dataset"] == "cifar10" and "synthetic" in report["dataset_note"]


def test_benchmark_lookup(nb201: NB201Benchmark) -> None:
    from tanglenas_cli.engine.lookup import BenchmarkLookup

    lookup = BenchmarkLookup(nb201, dataset="cifar100")
    entry = lookup.query(ARCH)
    assert entry is not None
    assert entry["test_acc"] == entry["cifar100_test"] and (entry["rank"], entry["total"]) == (1, 15_625)
    assert lookup.query("|none~0|") is None and lookup.query(None) is None


# --- prepare-data nb201-bench -------------------------------------------------------------------------------


def test_prepare_from_shared_csv(tmp_path: Path, nb201: NB201Benchmark) -> None:
    data_root = tmp_path / "data"
    assert default_benchmark_path(NB201_BENCHMARK, data_root) is None
    result = invoke("prepare-data", "nb201-bench", "--from", NB201_CSV, "--data-root", data_root)
    assert result.exit_code == 0, result.output
    assert "15,625 architectures" in result.stdout
    target = default_benchmark_path(NB201_BENCHMARK, data_root)
    assert target == data_root / "benchmarks" / "nb201.csv"
    assert [path.name for path in target.parent.iterdir()] == ["nb201.csv"]
    assert target.read_text().splitlines()[0] == "arch,cifar10_test,cifar100_test,imagenet16-120_test"
    prepared = load_benchmark(target)
    assert prepared.name == NB201_BENCHMARK and prepared.entries == nb201.entries
    # converting the compact table again gives the same file
    before = target.read_bytes()
    prepare_nb201_benchmark(data_root, target)
    assert target.read_bytes() == before


def test_prepare_needs_a_source(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nb201-bench needs --from PATH"):
        prepare_nb201_benchmark(tmp_path, None)
    bad = tmp_path / "bad.csv"
    bad.write_text(f"arch,cifar10_test\n{ARCH},93.1\n{ARCH},93.2\n")
    with pytest.raises(UserError, match="appears more than once"):
        prepare_nb201_benchmark(tmp_path / "data", bad)
    assert not any((tmp_path / "data" / "benchmarks").iterdir())  # no half-written table


# --- official files: NATS-Bench folders and the NB201 .pth (optional packages) ------------------------------


def test_nats_tss_folder(tmp_path: Path, nb201: NB201Benchmark) -> None:
    nats_bench = _need_nats_bench()
    table = load_benchmark(_need(NATS_TSS))
    assert isinstance(table, NB201Benchmark) and table.name == NB201_BENCHMARK and len(table) == 3
    assert set(table.metrics()) == set(NB201_COLUMNS)
    row = table.query(TSS_11)
    assert row["cifar10_test"] == pytest.approx(91.5833, abs=1e-4)  # mean of 91.79, 91.76, 91.20
    assert row["cifar100_valid"] == pytest.approx(67.4533, abs=1e-4)
    assert row["cifar10_valid"] == pytest.approx(87.94, abs=1e-4)  # the separate cifar10-valid runs
    api = nats_bench.create(str(NATS_TSS), "tss", fast_mode=True, verbose=False)
    seed_888 = api.get_more_info(11, "cifar10", hp="200", is_random=888)["test-accuracy"]
    assert seed_888 == pytest.approx(91.76)
    # the fixture's values agree with the third-party CSV (both are means over seeds)
    for key in table.entries:
        for column in nb201.metrics():
            assert table.entries[key][column] == pytest.approx(nb201.entries[key][column], abs=1e-9)
    summary = prepare_nb201_benchmark(tmp_path, NATS_TSS)
    assert "3 architectures" in summary and "tss" in summary
    prepared = load_benchmark(default_benchmark_path(NB201_BENCHMARK, tmp_path))
    assert len(prepared) == 3 and prepared.entries == table.entries


def test_nats_sss_folder(tmp_path: Path) -> None:
    _need_nats_bench()
    table = load_benchmark(_need(NATS_SSS))
    assert table.name == NATS_SSS_BENCHMARK and sorted(table.entries) == sorted(SSS_KEYS)
    assert table.query("8:8:8:8:8")["cifar10_test"] == pytest.approx(79.79)  # hp=90
    result = invoke("prepare-data", "nb201-bench", "--from", NATS_SSS, "--data-root", tmp_path)
    assert result.exit_code == 0, result.output
    target = default_benchmark_path(NATS_SSS_BENCHMARK, tmp_path)
    assert target == tmp_path / "benchmarks" / "nats_sss.csv"
    assert default_benchmark_path(NB201_BENCHMARK, tmp_path) is None
    prepared = load_benchmark(target)
    assert len(prepared) == 3 and prepared.entries == table.entries
    result = invoke("bench-query", "8:8:40:32:40", "--benchmark", target, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["space"] == "nats_sss" and report["rank"] == "1 / 3" and report["test_acc"] == 89.51
    one_line_error(invoke("bench-query", "8:8:8:8", "--benchmark", target), "malformed NATS size")
    one_line_error(invoke("bench-query", "8:8:8:8:16", "--benchmark", target), "holds only 3 of 32,768")


def test_nb201_pth_file(tmp_path: Path) -> None:
    _need_nats_bench()
    pytest.importorskip("nas_201_api", reason="nas-bench-201 not installed")
    torch = pytest.importorskip("torch")
    from nats_bench.api_utils import pickle_load

    # A small .pth in the official layout, built from the NATS fixture's own per-architecture results.
    api = __import__("nats_bench").create(str(_need(NATS_TSS)), "tss", fast_mode=True, verbose=False)
    infos = {}
    for index in (0, 11, 284):
        results = pickle_load(str(NATS_TSS / f"{index:06d}.pickle"))
        infos[index] = {"less": results["12"], "full": results["200"]}
    pth = tmp_path / "NAS-Bench-201-fake.pth"
    torch.save(
        {"meta_archs": list(api.meta_archs), "arch2infos": infos, "evaluated_indexes": [0, 11, 284]}, pth
    )
    table = load_benchmark(pth)
    assert table.name == NB201_BENCHMARK and len(table) == 3
    assert table.entries == load_benchmark(NATS_TSS).entries
    prepare_nb201_benchmark(tmp_path / "data", pth)
    assert len(load_benchmark(tmp_path / "data" / "benchmarks" / "nb201.csv")) == 3
    (tmp_path / "broken.pth").write_bytes(b"not a torch file")
    with pytest.raises(UserError, match=r"cannot load .*broken\.pth as a NAS-Bench-201 \.pth file"):
        load_benchmark(tmp_path / "broken.pth")


def test_missing_optional_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nats_bench", None)
    monkeypatch.setitem(sys.modules, "nas_201_api", None)
    with pytest.raises(UserError, match=r"needs the nats_bench package: pip install 'tanglenas\[nb201\]'"):
        load_benchmark(_need(NATS_TSS))
    (tmp_path / "NAS-Bench-201-v1_0-e61699.pth").write_bytes(b"")
    with pytest.raises(UserError, match="needs the nas-bench-201 package"):
        prepare_nb201_benchmark(tmp_path, tmp_path / "NAS-Bench-201-v1_0-e61699.pth")
