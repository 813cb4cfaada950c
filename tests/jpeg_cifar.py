"""A small image folder cut from the shared JPEG CIFAR-10 (``../shared/data/cifar10-jpg.tar.gz``)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from support import SHARED_DATA

CIFAR_JPG_TAR = SHARED_DATA / "cifar10-jpg.tar.gz"


def extract_jpeg_cifar(destination: Path, per_class: int, test_name: str = "test") -> Path:
    """Extract ``per_class`` images per class of ``train/`` and ``test/`` (renamed ``test_name``)."""
    if not CIFAR_JPG_TAR.is_file():
        pytest.skip(f"{CIFAR_JPG_TAR} not found (shared test data)")
    taken: dict[tuple[str, str], int] = {}
    with tarfile.open(CIFAR_JPG_TAR, mode="r|gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 3 or parts[0] not in ("train", "test"):
                continue
            key = (parts[0], parts[1])
            if taken.get(key, 0) < per_class:
                taken[key] = taken.get(key, 0) + 1
                member.name = "/".join([test_name if parts[0] == "test" else "train", *parts[1:]])
                tar.extract(member, destination, filter="data")
            if len(taken) == 20 and min(taken.values()) == per_class:
                break  # every class of both splits is complete
    return destination
