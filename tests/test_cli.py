"""The `tanglenas` command line: help, one-line errors with exit code 2, wiring of flags to the config."""

import importlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import invoke, one_line_error

from tanglenas_cli.config import RunConfig, build_config, write_config
from tanglenas_cli.presets import list_presets

SUBCOMMANDS = ("prepare-data", "search", "derive", "train", "eval", "export", "bench-query", "presets")
OPTIONS = {
    "prepare-data": ["DATASET", "--from", "--data-root"],
    "search": [
        "--space",
        "--opt",
        "--optimizer",
        "--dataset",
        "--preset",
        "--set",
        "--seed",
        "--out",
        "--ws",
        "--data-root",
        "--resume",
        "--benchmark",
        "--wandb",
        "--no-wandb",
        "--no-preset",
    ],
    "derive": ["RUN_DIR", "--out"],
    "export": ["MODEL_OR_DIR", "--format", "--out", "--image-size"],
    "train": [
        "ARCH_YAML_OR_RUN_DIR",
        "--space",
        "--dataset",
        "--preset",
        "--set",
        "--seed",
        "--out",
        "--wandb",
        "--resume",
        "--no-preset",
    ],
    "eval": ["CHECKPOINT", "--split", "--data-root", "--batch-size", "--json"],
    "bench-query": ["TARGET", "--benchmark", "--space", "--dataset", "--json"],
    "presets": ["--space", "--opt", "--json"],
}


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[tuple[tuple, dict]]]:
    """Return a function that replaces one engine function by a recorder and returns the list of its calls."""

    def install(module_name: str, function_name: str, result: Any = None) -> list[tuple[tuple, dict]]:
        calls: list[tuple[tuple, dict]] = []

        def function(*args: Any, **kwargs: Any) -> Any:
            calls.append((args, kwargs))
            return result

        monkeypatch.setattr(importlib.import_module(module_name), function_name, function)
        return calls

    return install


def make_run_dir(path: Path, space: str = "nb201", with_arch: bool = False) -> Path:
    """Write a run directory holding config.yaml (and arch.yaml)."""
    write_config(
        build_config(
            flags={"space": space, "dataset": "cifar10", "out_dir": path, "epochs": 7},
            overrides=["space_options.C=16"],
        ),
        path / "config.yaml",
    )
    if with_arch:
        (path / "arch.yaml").write_text("edges: [nor_conv_3x3]\n")
    return path


# ---------------------------------------------------------------------------------------------------
# Help


def test_app_help_lists_every_subcommand() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in SUBCOMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_subcommand_help_documents_its_options(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    assert f"tanglenas {command}" in result.stdout
    for option in OPTIONS[command]:
        assert option in result.stdout, f"{command} --help does not mention {option}"


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.startswith("tanglenas ")


def test_module_entry_point_lists_subcommands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tanglenas_cli", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    for command in SUBCOMMANDS:
        assert command in result.stdout


def test_module_entry_point_reports_user_errors_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tanglenas_cli", "search", "--space", "nonsense"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "nonsense" in result.stderr and "Traceback" not in result.stderr


def test_usage_errors_exit_2() -> None:
    assert invoke("search", "--seed", "abc").exit_code == 2
    assert invoke("no-such-command").exit_code == 2


# ---------------------------------------------------------------------------------------------------
# search


def test_search_unknown_space() -> None:
    one_line_error(invoke("search", "--space", "nonsense"), "unknown space 'nonsense'", "toy_cell")


def test_search_without_space_or_preset() -> None:
    one_line_error(invoke("search"), "--space or --preset")


def test_search_bad_override() -> None:
    one_line_error(invoke("search", "--preset", "quickstart", "--set", "epochz=3"), "'epochz'", "'epochs'")


def test_search_wrong_type() -> None:
    one_line_error(
        invoke("search", "--preset", "quickstart", "--set", "epochs=abc"), "'epochs'", "'abc'", "integer"
    )


def test_search_unknown_preset() -> None:
    one_line_error(invoke("search", "--preset", "no-such-preset"), "unknown preset 'no-such-preset'")


def test_search_passes_the_resolved_config(engine: Callable, tmp_path: Path) -> None:
    calls = engine("tanglenas_cli.engine.search", "run_search", {"run_dir": str(tmp_path / "run")})
    result = invoke(
        "search",
        "--preset",
        "nb201-cifar10-gdas",
        "--optimizer",
        "darts_v2",
        "--seed",
        "3",
        "--ws",
        "--out",
        tmp_path / "run",
        "--data-root",
        tmp_path / "data",
        "--wandb",
        "--set",
        "seed=4",
        "--set",
        "space_options.C=8",
    )
    assert result.exit_code == 0, result.output
    assert "run_dir" in result.stdout
    [(args, kwargs)] = calls
    cfg = args[0]
    assert isinstance(cfg, RunConfig)
    assert (cfg.space, cfg.optimizer, cfg.dataset, cfg.epochs) == ("nb201", "darts_v2", "cifar10", 250)
    assert cfg.seed == 4  # --set beats --seed
    assert cfg.entangle is False and cfg.logging.wandb is True
    assert cfg.out_dir == tmp_path / "run" and cfg.data_root == tmp_path / "data"
    assert cfg.space_options["C"] == 8 and cfg.space_options["N"] == 5
    assert kwargs == {"resume": None}


def test_search_resume_uses_the_run_config(engine: Callable, tmp_path: Path) -> None:
    calls = engine("tanglenas_cli.engine.search", "run_search")
    run_dir = make_run_dir(tmp_path / "run")
    result = invoke("search", "--resume", run_dir, "--set", "epochs=9")
    assert result.exit_code == 0, result.output
    [(args, kwargs)] = calls
    assert (args[0].space, args[0].epochs, args[0].space_options) == ("nb201", 9, {"C": 16})
    assert args[0].out_dir == run_dir and kwargs == {"resume": run_dir}


def test_search_resume_errors(tmp_path: Path) -> None:
    one_line_error(invoke("search", "--resume", tmp_path / "gone"), "run directory to resume not found")
    run_dir = make_run_dir(tmp_path / "run")
    one_line_error(invoke("search", "--resume", run_dir, "--preset", "quickstart"), "drop --preset")
    one_line_error(invoke("search", "--resume", run_dir, "--out", tmp_path / "other"), "differs from")


def test_search_missing_benchmark_file(tmp_path: Path) -> None:
    result = invoke("search", "--preset", "quickstart", "--benchmark", tmp_path / "missing.pkl")
    one_line_error(result, "benchmark file not found", "missing.pkl")


# ---------------------------------------------------------------------------------------------------
# derive, train, eval, bench-query, prepare-data


def test_derive_checks_its_inputs(tmp_path: Path) -> None:
    one_line_error(invoke("derive", tmp_path / "gone"), "run directory not found", "gone")
    (tmp_path / "empty").mkdir()
    one_line_error(invoke("derive", tmp_path / "empty"), "config file not found")


def test_derive_calls_the_engine(engine: Callable, tmp_path: Path) -> None:
    calls = engine("tanglenas_cli.engine.derive", "run_derive", tmp_path / "run" / "arch.yaml")
    result = invoke("derive", make_run_dir(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert calls == [((tmp_path / "run",), {"out": None, "epoch": None, "within_budget": False})]
    assert "arch.yaml" in result.stdout
    calls.clear()
    assert invoke("derive", tmp_path / "run", "--within-budget").exit_code == 0
    assert calls == [((tmp_path / "run",), {"out": None, "epoch": None, "within_budget": True})]


def test_train_checks_its_inputs(tmp_path: Path) -> None:
    one_line_error(invoke("train", tmp_path / "arch.yaml"), "architecture file not found")
    run_dir = make_run_dir(tmp_path / "run")
    one_line_error(invoke("train", run_dir), "architecture file not found", "arch.yaml")
    (tmp_path / "lone.yaml").write_text("edges: []\n")
    one_line_error(invoke("train", tmp_path / "lone.yaml"), "--space or --preset")


def test_train_takes_space_and_dataset_from_the_search_run(engine: Callable, tmp_path: Path) -> None:
    calls = engine("tanglenas_cli.engine.train", "run_train")
    run_dir = make_run_dir(tmp_path / "run", with_arch=True)
    result = invoke("train", run_dir, "--seed", "5", "--set", "epochs=2")
    assert result.exit_code == 0, result.output
    [(args, _)] = calls
    arch_file, cfg = args
    assert arch_file == run_dir / "arch.yaml"
    assert (cfg.space, cfg.dataset, cfg.seed, cfg.epochs) == ("nb201", "cifar10", 5, 2)
    assert cfg.space_options == {} and cfg.out_dir is None  # search-only settings are not inherited


def test_eval_checks_its_inputs(tmp_path: Path) -> None:
    one_line_error(invoke("eval", tmp_path / "model.pt"), "checkpoint not found", "model.pt")
    (tmp_path / "model.pt").write_bytes(b"")
    one_line_error(invoke("eval", tmp_path / "model.pt", "--split", "train"), "unknown split 'train'")
    one_line_error(invoke("eval", tmp_path / "model.pt", "--batch-size", "0"), "--batch-size")


def test_eval_prints_json(engine: Callable, tmp_path: Path) -> None:
    calls = engine("tanglenas_cli.engine.evaluate", "run_eval", {"top1": 91.5})
    (tmp_path / "model.pt").write_bytes(b"")
    result = invoke("eval", tmp_path / "model.pt", "--json", "--split", "valid")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"top1": 91.5}
    assert calls[0][1] == {"split": "valid", "data_root": None, "batch_size": None, "image_size": None}


def test_bench_query_checks_its_inputs(tmp_path: Path) -> None:
    one_line_error(invoke("bench-query", "|skip_connect~0|"), "needs --benchmark")
    missing = tmp_path / "bench.pkl"
    one_line_error(invoke("bench-query", "x", "--benchmark", missing), "benchmark file not found")
    missing.write_bytes(b"")
    one_line_error(
        invoke("bench-query", "x", "--benchmark", missing, "--space", "nb2O1"), "unknown space 'nb2O1'"
    )
    one_line_error(
        invoke("bench-query", tmp_path / "arch.yaml", "--benchmark", missing), "architecture file not found"
    )


def test_bench_query_passes_strings_and_paths(engine: Callable, tmp_path: Path) -> None:
    calls = engine("tanglenas_cli.engine.bench_query", "run_bench_query", {"test_acc": 93.76})
    bench = tmp_path / "bench.csv"
    bench.write_text("")
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    result = invoke("bench-query", arch, "--benchmark", bench, "--space", "nb201", "--dataset", "cifar10")
    assert result.exit_code == 0, result.output
    assert "93.76" in result.stdout
    assert calls[0] == ((arch,), {"benchmark": bench, "space": "nb201", "dataset": "cifar10"})
    run_dir = make_run_dir(tmp_path / "run", with_arch=True)
    assert invoke("bench-query", run_dir, "--benchmark", bench).exit_code == 0
    assert calls[1][0] == (run_dir,)


def test_prepare_data_checks_its_inputs(tmp_path: Path) -> None:
    one_line_error(invoke("prepare-data", "mnist"), "unknown dataset 'mnist'", "fashion_mnist")
    one_line_error(invoke("prepare-data", "cifar10", "--from", tmp_path / "gone.tar"), "gone.tar")


def test_prepare_data_calls_the_engine(
    engine: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = engine("tanglenas_cli.cli", "prepare_dataset")
    monkeypatch.setenv("TANGLENAS_DATA_ROOT", str(tmp_path / "data"))
    assert invoke("prepare-data", "digits").exit_code == 0
    assert calls == [(("digits",), {"data_root": tmp_path / "data", "source": None})]


def test_presets_command_lists_every_preset() -> None:
    result = invoke("presets")
    assert result.exit_code == 0
    listing = list_presets()
    assert len(listing) >= 21
    for preset in listing:
        assert preset.name in result.stdout


def test_long_values_are_printed_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from tanglenas_cli.console import print_result

    path = "/runs/" + "x" * 200 + "/arch.yaml"
    print_result({"written": path, "epochs": 2}, as_json=False)
    print_result(path, as_json=False)
    assert capsys.readouterr().out.splitlines() == [f"written  {path}", "epochs   2", path]
