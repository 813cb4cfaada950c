"""File steps of prepare-data: staging folders, safe tar extraction, and swapping a finished folder in."""

from __future__ import annotations

import contextlib
import shutil
import tarfile
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from tanglenas_cli.errors import UserError


def one_line(error: BaseException, limit: int = 200) -> str:
    """Return the message of `error` on one line, cut to `limit` characters."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def ensure_dir(folder: Path) -> Path:
    """Create `folder` (and parents) if needed; UserError if that is impossible."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create folder {folder}: {one_line(error)}") from None
    return folder


@contextlib.contextmanager
def staging_dir(parent: Path) -> Iterator[Path]:
    """Yield a fresh hidden folder inside `parent` (same file system: renames are atomic); removed after.

    A `parent` created here and left empty (a failed step) is removed as well.
    """
    created = not parent.exists()
    ensure_dir(parent)
    folder = Path(tempfile.mkdtemp(prefix=".prepare-", dir=parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                parent.rmdir()  # only succeeds when empty


def replace_dir(new: Path, target: Path) -> None:
    """Move folder `new` to `target`, replacing any old `target` only once `new` is complete."""
    ensure_dir(target.parent)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        target.rename(old)
    try:
        new.rename(target)
    except OSError:
        if old is not None:
            old.rename(target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _check_member(archive: Path, member: tarfile.TarInfo) -> None:
    path = PurePosixPath(member.name)
    if path.is_absolute() or member.name.startswith(("/", "\\")) or ".." in path.parts:
        raise UserError(f"refusing to extract {archive}: member {member.name!r} has an absolute path or '..'")
    if not (member.isfile() or member.isdir()):
        raise UserError(
            f"refusing to extract {archive}: member {member.name!r} is not a plain file or folder"
        )


def safe_extract_tar(archive: Path, destination: Path) -> None:
    """Extract tar archive `archive` (any compression) into `destination`; UserError on unsafe members."""
    try:
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                _check_member(archive, member)
                if hasattr(tarfile, "data_filter"):
                    tar.extract(member, destination, filter="data")
                else:  # pragma: no cover - Python < 3.11.4
                    tar.extract(member, destination)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise UserError(f"cannot extract {archive}: {one_line(error)}") from None


def is_tar_archive(path: Path) -> bool:
    """Return True if `path` is a file that tarfile can read."""
    try:
        return path.is_file() and tarfile.is_tarfile(path)
    except OSError:
        return False


def copy_tree(source: Path, destination: Path) -> None:
    """Copy folder `source` to `destination` (which must not exist); UserError on failure."""
    try:
        shutil.copytree(source, destination)
    except (OSError, shutil.Error) as error:
        raise UserError(f"cannot copy {source} to {destination}: {one_line(error)}") from None


def unpack(source: Path, staging: Path, find: Callable[[Path], Path | None]) -> Path | None:
    """Return the folder ``find`` picks in ``source`` (a folder: copied; a tar: extracted) in ``staging``.

    None when ``source`` is neither, or ``find`` picks nothing in it.
    """
    unpacked = staging / "unpacked"
    if source.is_dir():
        found = find(source)
        if found is not None:
            copy_tree(found, unpacked)
            return unpacked
    elif is_tar_archive(source):
        safe_extract_tar(source, unpacked)
        return find(unpacked)
    return None
