"""`tanglenas prepare-data toy-benchmarks | nb201-bench`: put benchmark files into the data root, verified.

`toy-benchmarks` copies or downloads the two toy benchmark pickles; `nb201-bench` converts NAS-Bench-201 /
NATS-Bench results (official files or a CSV) into the compact table `benchmarks/nb201.csv` (`nats_sss.csv`).
"""

from __future__ import annotations

import contextlib
import csv
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

from tanglenas_cli.errors import UserError

from .nb201 import load_nb201_benchmark, open_table_source
from .nb201_keys import KEY_COLUMN, NB201_TABLE_FILES
from .toy import load_toy_benchmark
from .toy_keys import TOY_BENCHMARK_SIZES

TOY_BENCHMARK_URL = "https://raw.githubusercontent.com/automl/TangleNAS/main/toy_benchmarks/{file_name}"
DOWNLOAD_TIMEOUT_S = 60.0
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
_CHUNK_BYTES = 1 << 16


def benchmarks_dir(data_root: Path) -> Path:
    """Return the folder of prepared benchmark files under `data_root`."""
    return Path(data_root) / "benchmarks"


def verify_toy_benchmark(path: Path, expected_entries: int) -> int:
    """Load `path` with the safe loader and check it holds `expected_entries` architectures; return it."""
    count = len(load_toy_benchmark(path))
    if count != expected_entries:
        raise UserError(f"{path} holds {count:,} architectures, expected {expected_entries:,}")
    return count


def prepare_toy_benchmarks(data_root: Path, source: Path | None) -> str:
    """Copy (from `source`) or download the toy benchmarks into `data_root/benchmarks/`; return a summary."""
    target_dir = benchmarks_dir(data_root)
    if source is not None:
        how = f"copied from {source}"
        staged = _stage_from_folder(Path(source), target_dir)
    else:
        how = "downloaded"
        if all(_is_valid(target_dir / name, size) for name, size in TOY_BENCHMARK_SIZES.items()):
            return f"toy benchmarks already present in {target_dir}: {_listing()}"
        staged = _stage_downloads(target_dir)
    for file_name, temporary in staged.items():
        os.replace(temporary, target_dir / file_name)
    return f"toy benchmarks {how} into {target_dir}: {_listing()}"


def _listing() -> str:
    """Return 'file (N architectures), ...' for the toy benchmark files."""
    return ", ".join(f"{name} ({size:,} architectures)" for name, size in TOY_BENCHMARK_SIZES.items())


def _is_valid(path: Path, expected_entries: int) -> bool:
    """Return whether `path` is already a complete, safely loadable toy benchmark."""
    if not path.is_file():
        return False
    try:
        verify_toy_benchmark(path, expected_entries)
    except UserError:
        return False
    return True


def _make_readable(path: Path) -> None:
    """Give a staged temporary file (created 0600) the permissions of a normally created file."""
    umask = os.umask(0)
    os.umask(umask)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o666 & ~umask)


def _make_target_dir(target_dir: Path) -> None:
    """Create `target_dir`; UserError if that is impossible."""
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create benchmark folder {target_dir}: {error.strerror or error}") from None


def _staged(target_dir: Path, fill: Callable[[str, BinaryIO], None]) -> dict[str, Path]:
    """Write every toy benchmark into a verified temporary file via `fill`; remove them all on any failure."""
    _make_target_dir(target_dir)
    staged: dict[str, Path] = {}
    try:
        for file_name, expected_entries in TOY_BENCHMARK_SIZES.items():
            # The temporary file sits next to its final name, so os.replace stays on one filesystem.
            try:
                with tempfile.NamedTemporaryFile(
                    dir=target_dir, prefix=f".{file_name}.", suffix=".part", delete=False
                ) as handle:
                    temporary = staged[file_name] = Path(handle.name)
                    fill(file_name, handle)
                _make_readable(temporary)
            except OSError as error:
                raise UserError(f"cannot write into {target_dir}: {error.strerror or error}") from None
            try:
                verify_toy_benchmark(temporary, expected_entries)
            except UserError as error:
                raise UserError(f"{file_name} is not a valid toy benchmark: {error}") from None
    except BaseException:
        for temporary in staged.values():
            with contextlib.suppress(OSError):
                temporary.unlink()
        raise
    return staged


def _stage_from_folder(source: Path, target_dir: Path) -> dict[str, Path]:
    """Check `source` holds both toy benchmark files and stage verified copies of them."""
    wanted = " and ".join(TOY_BENCHMARK_SIZES)
    if not source.is_dir():
        raise UserError(f"--from {source} is not a folder; pass a folder holding {wanted}")
    missing = [name for name in TOY_BENCHMARK_SIZES if not (source / name).is_file()]
    if missing:
        raise UserError(f"--from {source} lacks {', '.join(missing)} (it must hold {wanted})")
    for file_name, expected_entries in TOY_BENCHMARK_SIZES.items():
        verify_toy_benchmark(source / file_name, expected_entries)

    def copy_from_source(file_name: str, handle: BinaryIO) -> None:
        try:
            with (source / file_name).open("rb") as original:
                shutil.copyfileobj(original, handle)
        except OSError as error:
            raise UserError(f"cannot copy {source / file_name}: {error.strerror or error}") from None

    return _staged(target_dir, copy_from_source)


def _stage_downloads(target_dir: Path) -> dict[str, Path]:
    """Download both toy benchmark files from the original repository into verified temporary files."""

    def download(file_name: str, handle: BinaryIO) -> None:
        url = TOY_BENCHMARK_URL.format(file_name=file_name)
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                received = 0
                while chunk := response.read(_CHUNK_BYTES):
                    received += len(chunk)
                    if received > MAX_DOWNLOAD_BYTES:
                        raise UserError(f"{url} sent more than {MAX_DOWNLOAD_BYTES:,} bytes; refusing it")
                    handle.write(chunk)
        except (OSError, http.client.HTTPException, ValueError) as error:
            reason = error.reason if isinstance(error, urllib.error.URLError) else error
            raise UserError(
                f"could not download {url} ({reason}); on a machine without internet pass --from DIR "
                f"with {' and '.join(TOY_BENCHMARK_SIZES)}"
            ) from None

    return _staged(target_dir, download)


# --- prepare-data nb201-bench -------------------------------------------------------------------------------

NB201_SOURCES = (
    "a NATS-Bench 'simple' folder (NATS-tss-v1_0-3ffb9-simple/ or NATS-sss-v1_0-50262-simple/), "
    "the NAS-Bench-201 .pth file, or a .csv/.parquet table such as nats_bench_200ep_test.csv"
)


def prepare_nb201_benchmark(data_root: Path, source: Path | None) -> str:
    """Convert `source` into the table `data_root/benchmarks/nb201.csv` (`nats_sss.csv`); return a summary.

    Rows are read and written one architecture at a time into a temporary file next to the target, which is
    checked by loading it and then renamed over the target, so a failure leaves any earlier table untouched.
    Official files are Python pickles (loading runs code they hold): convert only files you trust.
    """
    if source is None:
        raise UserError(f"nb201-bench needs --from PATH: {NB201_SOURCES} (nothing is downloaded)")
    source = Path(source)
    if not source.exists():
        raise UserError(f"--from path not found: {source}")
    rows = open_table_source(source)
    target_dir = benchmarks_dir(data_root)
    _make_target_dir(target_dir)
    target = target_dir / NB201_TABLE_FILES[rows.benchmark]
    temporary: Path | None = None
    try:
        try:
            with tempfile.NamedTemporaryFile(
                "w",
                dir=target_dir,
                prefix=f".{target.stem}.",
                suffix=".part.csv",
                delete=False,
                newline="",
                encoding="utf-8",
            ) as handle:
                temporary = Path(handle.name)
                count = _write_table(handle, rows.columns, rows.rows, source)
        except OSError as error:
            raise UserError(f"cannot write into {target_dir}: {error.strerror or error}") from None
        if count == 0:
            raise UserError(f"{source} holds no architectures")
        loaded = len(load_nb201_benchmark(temporary))
        if loaded != count:
            raise UserError(f"the table written from {source} reads back {loaded:,} rows, not {count:,}")
        _make_readable(temporary)
        os.replace(temporary, target)
    except BaseException:
        if temporary is not None:
            with contextlib.suppress(OSError):
                temporary.unlink()
        raise
    return (
        f"{target.stem} benchmark table written to {target}: {count:,} architectures from {rows.about} "
        f"({source}); columns {', '.join(rows.columns)}"
    )


def _write_table(
    handle: Any, columns: tuple[str, ...], rows: Iterable[tuple[str, dict[str, float]]], source: Path
) -> int:
    """Write the header and every row (floats at full precision, missing ones empty); return the count."""
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow([KEY_COLUMN, *columns])
    seen: set[str] = set()
    for key, row in rows:
        if key in seen:
            raise UserError(f"{source}: architecture {key!r} appears more than once")
        seen.add(key)
        writer.writerow([key, *(repr(row[column]) if column in row else "" for column in columns)])
    return len(seen)


# `tanglenas prepare-data NAME` steps that fetch benchmark files rather than a dataset.
BENCHMARK_PREPARE_STEPS: dict[str, Callable[[Path, Path | None], str]] = {
    "toy-benchmarks": prepare_toy_benchmarks,
    "nb201-bench": prepare_nb201_benchmark,
}
