"""``tanglenas prepare-data``: datasets (data package), toy benchmarks and NB201 tables (benchmarks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tanglenas_cli.benchmarks.prepare import prepare_nb201_benchmark, prepare_toy_benchmarks
from tanglenas_cli.errors import UserError


def run_prepare(dataset: str, data_root: Path, source: Path | None = None, **text_options: Any) -> str:
    """Prepare ``dataset`` (or ``toy-benchmarks`` / ``nb201-bench``) under ``data_root``; return a summary.

    ``text_options`` (name, tokenizer, tokenizer_file, val_portion) apply to ``text``; all but ``name``
    apply to ``tinystories``.
    """
    if dataset == "text":
        from tanglenas_cli.data.text import prepare_text

        return prepare_text(Path(data_root).expanduser(), source, **text_options)
    if dataset == "tinystories":
        from tanglenas_cli.data.tinystories import prepare_tinystories

        options = dict(text_options)
        if options.pop("name", None) is not None:
            raise UserError("--name applies to text corpora only; tinystories goes to DATA_ROOT/tinystories")
        return prepare_tinystories(Path(data_root).expanduser(), source, **options)
    if dataset == "toy-benchmarks":
        return prepare_toy_benchmarks(data_root, source)
    if dataset == "nb201-bench":
        return prepare_nb201_benchmark(data_root, source)
    # Imported here: the data package imports torch, which the benchmark steps do not need.
    from tanglenas_cli.data import run_prepare as prepare_dataset

    return prepare_dataset(dataset, data_root, source)
