"""Fixtures shared by the test modules (helpers that are plain functions live in ``support.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from jpeg_cifar import extract_jpeg_cifar

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs TEST_WORKERS processes: share the cores
    THREADS = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))  # and the CLI processes the tests start
    torch.set_num_threads(THREADS)

JPEG_PER_CLASS = 20  # images per class and split of the shared JPEG CIFAR-10 subset


@pytest.fixture(scope="module")
def cifar_jpg_subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """JPEG_PER_CLASS images per class and split of the shared JPEG CIFAR-10, in a temporary folder."""
    return extract_jpeg_cifar(tmp_path_factory.mktemp("cifar10jpg"), JPEG_PER_CLASS)
