"""The files of a run directory and how they are written (atomically, or appended as JSON lines)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tanglenas_cli.yamlio import read_yaml_mapping, write_yaml_atomic

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
TRAJECTORY = "trajectory.jsonl"
CHECKPOINT = "checkpoint.pt"
ARCH = "arch.yaml"
SUMMARY = "summary.json"
PLOT = "mixing_weights.png"
MODEL = "model.pt"


def write_json_atomic(data: Mapping[str, Any], path: Path) -> None:
    """Write ``data`` as indented JSON via a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def append_jsonl(path: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON object as a line to ``path``."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=str) + "\n")
        handle.flush()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Return the JSON objects of a JSON-lines file (a torn last line is ignored)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def file_size(path: Path) -> int:
    """Return the size of ``path`` in bytes (0 when missing)."""
    return path.stat().st_size if path.is_file() else 0


def truncate(path: Path, size: int) -> None:
    """Cut ``path`` back to ``size`` bytes (drops lines written after the last checkpoint)."""
    if path.is_file() and path.stat().st_size > size:
        with path.open("r+b") as handle:
            handle.truncate(size)


def write_arch(path: Path, space: str, arch: Mapping[str, Any], key: str | None, **extra: Any) -> None:
    """Write an ``arch.yaml``: the space, the architecture and its benchmark key."""
    data: dict[str, Any] = {"space": space, "architecture": dict(arch)}
    if key is not None:
        data["benchmark_key"] = key
    data.update(extra)
    write_yaml_atomic(data, path, "# tanglenas architecture\n")


def read_arch(path: Path) -> dict[str, Any]:
    """Return the mapping stored in an ``arch.yaml`` (UserError if missing or malformed)."""
    from tanglenas_cli.errors import UserError

    data = read_yaml_mapping(path, "architecture file")
    if "space" not in data or "architecture" not in data:
        raise UserError(f"architecture file {path} needs the keys 'space' and 'architecture'")
    return data
