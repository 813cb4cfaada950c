"""NAS-Bench-201 / NATS-Bench look-ups: a compact table, one row per architecture, behind `TabularBenchmark`.

The compact table (written by `tanglenas prepare-data nb201-bench`) is a CSV (or parquet) file with the
column `arch` (the NB201 string `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`, or the NATS size string
`8:16:32:64:64`) and one column per dataset and split, in percent: `cifar10_train`, `cifar10_valid`,
`cifar10_test`, `cifar100_train`, `cifar100_valid`, `cifar100_test`, `imagenet16-120_train`,
`imagenet16-120_valid`, `imagenet16-120_test`. An empty cell means the source had no such value. Values are
the mean over the seeds the benchmark trained.

The third-party CSV `nats_bench_200ep_test.csv` (columns `ArchitectureString`,
`CIFAR10TestAccuracy200Epochs`, `CIFAR100TestAccuracy200Epochs`, `ImageNetTestAccuracy200Epochs`) is read
directly as well; it only has the test accuracies. The official files (NATS-Bench `simple` folders, the
NB201 `.pth`) are read by `nb201_official`.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tanglenas_cli.errors import UserError

from .nb201_keys import (
    KEY_COLUMN,
    NATS_SSS_BENCHMARK,
    NB201_BENCHMARK,
    NB201_DATASETS,
    NB201_OPS,
    check_key,
    column_name,
    nb201_benchmark_of_key,
)
from .tabular import TabularBenchmark

# The third-party CSV: its columns -> the compact table's columns.
THIRD_PARTY_KEY_COLUMN = "ArchitectureString"
THIRD_PARTY_COLUMNS: dict[str, str] = {
    "CIFAR10TestAccuracy200Epochs": "cifar10_test",
    "CIFAR100TestAccuracy200Epochs": "cifar100_test",
    "ImageNetTestAccuracy200Epochs": "imagenet16-120_test",
}

# Number of architectures in each complete space.
BENCHMARK_SIZES: dict[str, int] = {NB201_BENCHMARK: 15_625, NATS_SSS_BENCHMARK: 32_768}

_DECIMALS = 4
_OP = "|".join(re.escape(op) for op in NB201_OPS)
_FAST_NB201_KEY = re.compile(
    rf"^\|({_OP})~0\|\+\|({_OP})~0\|({_OP})~1\|\+\|({_OP})~0\|({_OP})~1\|({_OP})~2\|$"
)
_FAST_SSS_KEY = re.compile(r"^(8|16|24|32|40|48|56|64)(:(8|16|24|32|40|48|56|64)){4}$")

Row = tuple[str, dict[str, float]]


@dataclass
class RowSource:
    """An NB201 / NATS table read one architecture at a time (so converting never holds the source whole)."""

    benchmark: str  # NB201_BENCHMARK or NATS_SSS_BENCHMARK
    columns: tuple[str, ...]
    rows: Iterator[Row]
    about: str


def _valid_key(benchmark: str, key: str) -> bool:
    """Return whether `key` is a well-formed key of `benchmark` (a fast path for loading whole tables)."""
    pattern = _FAST_SSS_KEY if benchmark == NATS_SSS_BENCHMARK else _FAST_NB201_KEY
    return pattern.match(key) is not None


class NB201Benchmark(TabularBenchmark):
    """NAS-Bench-201 or NATS size accuracies per dataset and split.

    `name` is NB201_BENCHMARK or NATS_SSS_BENCHMARK.

    Keys are the official architecture strings; a malformed one is a UserError that says the expected form.
    Metrics are the columns `{dataset}_{split}` (see the module docstring), all in percent, higher is better.
    """

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.strip() in self.entries

    @property
    def datasets(self) -> tuple[str, ...]:
        """Return the datasets that have a test accuracy column (order: cifar10, cifar100, imagenet16-120)."""
        metrics = set(self.metrics())
        return tuple(dataset for dataset in NB201_DATASETS if column_name(dataset, "test") in metrics)

    def check_key(self, key: str) -> str:
        """Return `key` stripped if it is a well-formed key of this benchmark; UserError otherwise."""
        return check_key(self.name, key)

    def query(self, key: str) -> dict[str, Any]:
        """Return a copy of the accuracies of architecture `key` (validated first); UserError if missing."""
        return super().query(self.check_key(key))

    def headline_dataset(self, requested: str | None, run_dataset: str | None = None) -> str:
        """Return the dataset whose rank leads a report.

        `requested` (from --dataset) must be one of `datasets`; `run_dataset` (the dataset a run searched
        on) is used when it is one of them; otherwise the first dataset (cifar10 when present).
        """
        available = self.datasets
        if not available:
            raise UserError(
                f"benchmark {self.path} has no test accuracy column of {', '.join(NB201_DATASETS)}"
            )
        if requested is not None:
            if requested not in available:
                raise UserError(
                    f"benchmark {self.path} has no dataset {requested!r} (one of: {', '.join(available)})"
                )
            return requested
        if run_dataset in available:
            return str(run_dataset)
        return available[0]

    def dataset_report(self, key: str, dataset: str) -> dict[str, Any]:
        """Return `{dataset}_{train,valid,test}` of `key` (where present), its test rank, percentile, best."""
        entry = self.query(key)
        report: dict[str, Any] = {}
        for split in ("train", "valid", "test"):
            value = entry.get(column_name(dataset, split))
            if isinstance(value, float) and not math.isnan(value):
                report[column_name(dataset, split)] = round(value, _DECIMALS)
        test_column = column_name(dataset, "test")
        if test_column in report:
            rank, total, percentile = self.rank(key, test_column)
            report[f"{dataset}_rank"] = f"{rank} / {total}"
            report[f"{dataset}_percentile"] = round(percentile, 2)
        report[f"{dataset}_best"] = round(self.optimum(dataset)[1], _DECIMALS)
        return report

    def optimum(self, dataset: str) -> tuple[str, float]:
        """Return (key, test accuracy) of the best on `dataset` (first in table order on ties)."""
        column = column_name(dataset, "test")
        best_key, row = self.best(column)
        return best_key, float(row[column])

    def report(self, key: str, dataset: str | None = None, run_dataset: str | None = None) -> dict[str, Any]:
        """Return what `bench-query` prints: the headline dataset's test accuracy, rank and optimum, then all.

        Headline keys (`test_acc`, `rank`, `percentile`, `best_test_acc`) match those of the toy benchmarks;
        then every dataset's `{dataset}_{train,valid,test}`, `{dataset}_rank`, `{dataset}_percentile` and
        `{dataset}_best`.
        """
        key = self.check_key(key)
        headline = self.headline_dataset(dataset, run_dataset)
        per_dataset = {name: self.dataset_report(key, name) for name in self.datasets}
        chosen = per_dataset[headline]
        result: dict[str, Any] = {"dataset": headline}
        if run_dataset is not None and dataset is None and run_dataset != headline:
            result["dataset_note"] = f"the run's dataset {run_dataset!r} is not in this benchmark"
        result["test_acc"] = chosen.get(column_name(headline, "test"))
        if column_name(headline, "train") in chosen:
            result["train_acc"] = chosen[column_name(headline, "train")]
        result["rank"] = chosen.get(f"{headline}_rank")
        result["percentile"] = chosen.get(f"{headline}_percentile")
        result["best_test_acc"] = chosen[f"{headline}_best"]
        for values in per_dataset.values():
            result.update(values)
        return result

    def _missing_hint(self, key: str) -> str:
        """Explain a well-formed key that is absent: the table covers only part of the space."""
        full = BENCHMARK_SIZES.get(self.name)
        if full is not None and len(self) < full:
            held = f"{len(self):,} of {full:,}"
            return f"; it is a well-formed {self.name} string, but this table holds only {held}"
        return f"; it is a well-formed {self.name} string, but the table lacks it"


# --- reading tables -----------------------------------------------------------------------------------------


def supported_table_formats() -> str:
    """Return the human description of the NB201 / NATS inputs, for error messages."""
    return (
        f".csv/.parquet NB201 or NATS size tables (column '{KEY_COLUMN}' + "
        f"{column_name('cifar10', 'test')}, ...; or the NATS-Bench CSV with '{THIRD_PARTY_KEY_COLUMN}')"
    )


def load_nb201_benchmark(path: Path) -> NB201Benchmark:
    """Load an NB201 / NATS size table: compact CSV or parquet, the third-party CSV, or an official file."""
    path = Path(path)
    source = open_table_source(path)
    entries: dict[str, dict[str, float]] = {}
    for key, row in source.rows:
        if key in entries:
            raise UserError(f"{path}: architecture {key!r} appears more than once")
        entries[key] = row
    if not entries:
        raise UserError(f"{path} holds no architectures")
    return NB201Benchmark(source.benchmark, path, entries)


def open_table_source(path: Path) -> RowSource:
    """Return the rows of `path`: a folder or .pth (official files), else a .csv or .parquet table."""
    path = Path(path)
    if path.is_dir() or path.suffix.lower() == ".pth":
        from .nb201_official import open_official_source

        return open_official_source(path)
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise UserError(f"benchmark file {path} {what}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _csv_source(path)
    if suffix == ".parquet":
        return _parquet_source(path)
    raise UserError(f"unsupported NB201 table {path} (expected {supported_table_formats()})")


THIRD_PARTY_ABOUT = "NATS-Bench 200-epoch test CSV"
COMPACT_ABOUT = "compact NB201 table"


def _column_plan(header: list[str], path: Path) -> tuple[int, list[tuple[int, str]], str]:
    """Return (key column index, [(column index, metric name)], THIRD_PARTY_ABOUT or COMPACT_ABOUT)."""
    names = [name.strip() for name in header]
    if THIRD_PARTY_KEY_COLUMN in names:
        missing = [name for name in THIRD_PARTY_COLUMNS if name not in names]
        if missing:
            raise UserError(f"{path}: NATS-Bench CSV without the column(s) {', '.join(missing)}")
        plan = [(names.index(name), metric) for name, metric in THIRD_PARTY_COLUMNS.items()]
        return names.index(THIRD_PARTY_KEY_COLUMN), plan, THIRD_PARTY_ABOUT
    if KEY_COLUMN in names:
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise UserError(f"{path}: column(s) {', '.join(duplicated)} appear more than once")
        plan = [(index, name) for index, name in enumerate(names) if name != KEY_COLUMN and name]
        if not plan:
            raise UserError(f"{path}: no metric columns besides '{KEY_COLUMN}'")
        return names.index(KEY_COLUMN), plan, COMPACT_ABOUT
    from . import supported_formats

    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    raise UserError(
        f"{path} is not a benchmark table: its header ({shown or 'empty'}) has no '{KEY_COLUMN}' or "
        f"'{THIRD_PARTY_KEY_COLUMN}' column (supported formats: {supported_formats()})"
    )


def _read_csv_head(path: Path) -> tuple[list[str], list[str]]:
    """Return the first two rows of the CSV `path` ([] where missing); UserError if it cannot be read."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            return next(reader, []), next(reader, [])
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"{path} is not a readable CSV file: {error}") from None


def _parse_row(
    path: Path, line: int, benchmark: str, key: str, values: list[tuple[str, Any]]
) -> tuple[str, dict[str, float]]:
    """Validate one row's key and turn its metric cells into floats (empty or None cells are skipped)."""
    key = key.strip()
    if not _valid_key(benchmark, key):
        try:
            check_key(benchmark, key)
        except UserError as error:
            raise UserError(f"{path} row {line}: {error}") from None
    row: dict[str, float] = {}
    for metric, cell in values:
        if cell is None:
            continue
        if isinstance(cell, str):
            cell = cell.strip()
            if not cell:
                continue
        try:
            value = float(cell)
        except (TypeError, ValueError):
            raise UserError(f"{path} row {line}: {metric} is {cell!r}, not a number") from None
        if not math.isnan(value):
            row[metric] = value
    return key, row


def _table_benchmark(path: Path, about: str, first_key: str) -> str:
    """Return the benchmark of a table from its kind and first key; else UserError."""
    key = first_key.strip()
    if about == THIRD_PARTY_ABOUT or not key:
        return NB201_BENCHMARK  # the third-party CSV only covers NB201; an empty table fails later
    benchmark = nb201_benchmark_of_key(key)
    if benchmark is None:
        raise UserError(
            f"{path}: the first architecture {key[:200]!r} is neither an NB201 string (|op~0|+|...|) "
            "nor a NATS size string (c1:c2:c3:c4:c5)"
        )
    return benchmark


def _csv_source(path: Path) -> RowSource:
    """Return the rows of a compact or third-party CSV table."""
    header, first_row = _read_csv_head(path)
    key_index, plan, about = _column_plan(header, path)
    benchmark = _table_benchmark(path, about, first_row[key_index] if len(first_row) > key_index else "")
    width = max([key_index, *(index for index, _ in plan)]) + 1

    def rows() -> Iterator[Row]:
        try:
            with path.open(newline="", encoding="utf-8") as handle:
                reader = csv.reader(handle)
                next(reader, None)
                for line, cells in enumerate(reader, start=2):
                    if not cells:
                        continue
                    if len(cells) < width:
                        raise UserError(f"{path} row {line}: {len(cells)} cells, expected at least {width}")
                    yield _parse_row(
                        path,
                        line,
                        benchmark,
                        cells[key_index],
                        [(metric, cells[index]) for index, metric in plan],
                    )
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise UserError(f"cannot read {path}: {error}") from None

    return RowSource(benchmark, tuple(metric for _, metric in plan), rows(), about)


def _parquet_source(path: Path) -> RowSource:
    """Return the rows of a compact or third-party table stored as parquet (needs pyarrow)."""
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise UserError(f"reading {path} needs pyarrow (pip install pyarrow), or use a .csv table") from None
    try:
        header = list(parquet.read_schema(path).names)
    except Exception as error:  # pyarrow raises its own error types for corrupt files
        raise UserError(f"{path} is not a readable parquet file: {' '.join(str(error).split())}") from None
    key_index, plan, about = _column_plan(header, path)
    wanted = [header[key_index], *(header[index] for index, _ in plan)]
    try:
        columns = parquet.read_table(path, columns=wanted).to_pydict()
    except Exception as error:
        raise UserError(f"cannot read {path}: {' '.join(str(error).split())}") from None
    keys = [str(key) for key in columns[header[key_index]]]
    benchmark = _table_benchmark(path, about, keys[0] if keys else "")

    def rows() -> Iterator[Row]:
        for position, key in enumerate(keys):
            cells = [(metric, columns[header[index]][position]) for index, metric in plan]
            yield _parse_row(path, position + 1, benchmark, key, cells)

    return RowSource(benchmark, tuple(metric for _, metric in plan), rows(), about)
