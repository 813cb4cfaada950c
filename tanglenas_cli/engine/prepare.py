"""``tanglenas prepare-data``: datasets (data package) and the toy benchmarks (benchmarks package)."""

from __future__ import annotations

from pathlib import Path

from tanglenas_cli.benchmarks.prepare import prepare_toy_benchmarks
from tanglenas_cli.data import run_prepare as prepare_dataset


def run_prepare(dataset: str, data_root: Path, source: Path | None = None) -> str:
    """Prepare ``dataset`` (or ``toy-benchmarks``) under ``data_root``; return a one-line summary."""
    if dataset == "toy-benchmarks":
        return prepare_toy_benchmarks(data_root, source)
    return prepare_dataset(dataset, data_root, source)
