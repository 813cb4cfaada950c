"""ImageNet16-120 from NB201-format batch files (generated here: the real ones are not shipped)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from tanglenas_cli.data.registry import build_datasets
from tanglenas_cli.data.registry import prepare_dataset as run_prepare
from tanglenas_cli.errors import UserError


def write_batches(folder: Path, per_batch: int = 6) -> None:
    """Write the 11 batch files; labels cycle through 1..200 so some exceed 120 and are dropped."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"train_data_batch_{i}" for i in range(1, 11)] + ["val_data"]
    for number, name in enumerate(names):
        labels = [(number * per_batch + i) * 23 % 200 + 1 for i in range(per_batch)]
        data = rng.integers(0, 256, size=(per_batch, 3 * 16 * 16), dtype=np.uint8)
        with (folder / name).open("wb") as handle:
            pickle.dump({"data": data, "labels": labels}, handle, protocol=2)


def test_prepare_and_load(tmp_path: Path):
    write_batches(tmp_path / "source")
    summary = run_prepare("imagenet16-120", tmp_path / "root", tmp_path / "source")
    assert "imagenet16-120" in summary
    train, test, info = build_datasets("imagenet16-120", tmp_path / "root", augment=True)
    assert info.num_classes == 120 and info.input_shape == (3, 16, 16)
    labels = [label for _, label in (train[i] for i in range(len(train)))]
    assert 0 < len(train) < 60 and all(0 <= label < 120 for label in labels)
    image, _ = test[0]
    assert tuple(image.shape) == (3, 16, 16)


def test_missing_files_are_named(tmp_path: Path):
    write_batches(tmp_path / "source")
    os.remove(tmp_path / "source" / "val_data")
    with pytest.raises(UserError, match="val_data"):
        run_prepare("imagenet16-120", tmp_path / "root", tmp_path / "source")
    with pytest.raises(UserError, match="prepare-data imagenet16-120"):
        build_datasets("imagenet16-120", tmp_path / "empty")


def test_a_batch_that_would_run_code_is_refused(tmp_path: Path):
    write_batches(tmp_path / "source")

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    with (tmp_path / "source" / "val_data").open("wb") as handle:
        pickle.dump({"data": Evil(), "labels": [1]}, handle)
    with pytest.raises(UserError, match="refused"):
        run_prepare("imagenet16-120", tmp_path / "root", tmp_path / "source")
    assert not (tmp_path / "pwned").exists()
