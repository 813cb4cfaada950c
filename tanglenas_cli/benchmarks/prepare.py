"""`tanglenas prepare-data toy-benchmarks`: put the two toy benchmark pickles into the data root, verified."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from tanglenas_cli.errors import UserError

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
