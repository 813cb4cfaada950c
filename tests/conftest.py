"""Fixtures shared by the test modules (helpers that are plain functions live in ``support.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from jpeg_cifar import extract_jpeg_cifar

JPEG_PER_CLASS = 20  # images per class and split of the shared JPEG CIFAR-10 subset


@pytest.fixture(scope="module")
def cifar_jpg_subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """JPEG_PER_CLASS images per class and split of the shared JPEG CIFAR-10, in a temporary folder."""
    return extract_jpeg_cifar(tmp_path_factory.mktemp("cifar10jpg"), JPEG_PER_CLASS)
