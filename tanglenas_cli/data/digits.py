"""scikit-learn's bundled 8x8 handwritten digits as in-memory tensors (real data, no download)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tanglenas_cli.data.info import DatasetInfo
from tanglenas_cli.data.memory import InMemoryDataset
from tanglenas_cli.data.options import int_option, read_options

NAME = "digits"
DEFAULTS: dict[str, Any] = {"size": 28, "channels": 1}
TRAIN_FRACTION = 0.8
SPLIT_SEED = 0
# Mean and std of the 1,437 training images at their native 8x8, values scaled to [0, 1].
MEAN = 0.3054
STD = 0.3759


@functools.lru_cache(maxsize=1)
def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # imported here: scikit-learn takes about a second to import

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)
    images.setflags(write=False)
    labels = bunch.target.astype(np.int64)
    labels.setflags(write=False)
    return images, labels


def _to_tensor(images: np.ndarray, size: int, channels: int) -> torch.Tensor:
    batch = torch.tensor(images, dtype=torch.float32).unsqueeze(1)
    if size != batch.shape[-1]:
        batch = F.interpolate(batch, size=(size, size), mode="bilinear", align_corners=False)
    batch = (batch - MEAN) / STD
    return batch.repeat(1, channels, 1, 1).contiguous()


def build_digits(
    data_root: Path | None = None, options: Mapping[str, Any] | None = None, augment: bool = False
) -> tuple[InMemoryDataset, InMemoryDataset, DatasetInfo]:
    """Return (train, test, info) for the digits: fixed 80/20 split, resized to `size`, `channels` copies.

    They ship with scikit-learn and are not augmented: `data_root` and `augment` are not used.
    """
    settings = read_options(NAME, options, DEFAULTS)
    size = int_option(NAME, "size", settings["size"], minimum=1)
    channels = int_option(NAME, "channels", settings["channels"], minimum=1)
    images, labels = _raw_digits()
    order = np.random.RandomState(SPLIT_SEED).permutation(len(labels))
    train_count = int(TRAIN_FRACTION * len(labels))
    train_idx, test_idx = order[:train_count], order[train_count:]
    train = InMemoryDataset(
        _to_tensor(images[train_idx], size, channels), torch.from_numpy(labels[train_idx])
    )
    test = InMemoryDataset(_to_tensor(images[test_idx], size, channels), torch.from_numpy(labels[test_idx]))
    info = DatasetInfo(NAME, 10, (channels, size, size), (MEAN,) * channels, (STD,) * channels)
    return train, test, info
