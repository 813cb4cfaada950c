"""``tanglenas bench-query``: an architecture's entry in a tabular benchmark, with its rank."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tanglenas_cli.benchmarks import NB201Benchmark, check_benchmark_key
from tanglenas_cli.engine import run_dir as files
from tanglenas_cli.engine.lookup import guess_space_of_key, load_space_benchmark, space_of_table
from tanglenas_cli.errors import UserError
from tanglenas_cli.spaces import create_space, space_class
from tanglenas_cli.yamlio import read_yaml_mapping


def _run_dataset(arch_file: Path, stored: dict[str, Any]) -> str | None:
    """Return the dataset a run searched on: from arch.yaml, else from the config.yaml beside it."""
    dataset = stored.get("dataset")
    if isinstance(dataset, str):
        return dataset
    config_file = arch_file.parent / files.CONFIG
    if config_file.is_file():
        dataset = read_yaml_mapping(config_file, "config file").get("dataset")
        if isinstance(dataset, str):
            return dataset
    return None


def resolve_target(target: Path | str, space: str | None = None) -> tuple[str | None, str, str | None]:
    """Return (space, benchmark key, the run's dataset or None) for a run directory, an arch.yaml or a string.

    A string is checked for the form of its space's keys here, before any benchmark is loaded.
    """
    if isinstance(target, Path):
        arch_file = target / files.ARCH if target.is_dir() else target
        stored = files.read_arch(arch_file)
        name = stored["space"]
        try:
            key = create_space(name, options=stored.get("space_options") or {}).benchmark_key(
                stored["architecture"]
            )
        except UserError as error:
            raise UserError(f"{arch_file}: {error}") from None
        if key is None:
            raise UserError(f"space {name!r} has no tabular benchmark")
        return name, key, _run_dataset(arch_file, stored)
    name = space or guess_space_of_key(target)
    key = check_benchmark_key(space_class(name).benchmark if name else None, target)
    return name, key, None


def run_bench_query(
    target: Path | str, benchmark: Path, space: str | None = None, dataset: str | None = None
) -> dict[str, Any]:
    """Return the benchmark's metrics of ``target`` plus its rank and percentile by test accuracy.

    For NB201 / NATS size tables: every dataset's train / valid / test accuracy (where the table has it), its
    rank, percentile and the dataset's optimum; ``dataset`` (default: the run's dataset for a run directory or
    arch.yaml, else cifar10) picks the headline ``test_acc`` / ``rank`` / ``percentile`` / ``best_test_acc``.
    """
    name, key, run_dataset = resolve_target(target, space)
    table = load_space_benchmark(benchmark, name)
    result: dict[str, Any] = {"benchmark": str(benchmark), "space": space_of_table(table) or table.name,
                              "key": key}  # fmt: skip
    if isinstance(table, NB201Benchmark):
        table.query(key)  # a missing architecture fails here, before any ranking
        result.update(table.report(key, dataset=dataset, run_dataset=run_dataset))
        return result
    entry = table.query(key)
    result.update(entry)
    if "test_acc" in entry:
        rank, total, percentile = table.rank(key, "test_acc")
        _, best = table.best("test_acc")
        result.update(
            rank=f"{rank} / {total}",
            percentile=round(percentile, 2),
            best_test_acc=best["test_acc"],
        )
    return result
