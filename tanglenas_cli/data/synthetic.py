"""Generated images for unit tests: a smooth random pattern per class plus Gaussian noise (learnable)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from tanglenas_cli.data.info import DatasetInfo
from tanglenas_cli.data.memory import InMemoryDataset
from tanglenas_cli.data.options import int_option, read_options

NAME = "synthetic"
DEFAULTS: dict[str, Any] = {
    "num_classes": 10,
    "size": 28,
    "channels": 1,
    "train_size": 256,
    "test_size": 64,
    "seed": 0,
}
PATTERN_RESOLUTION = 4  # class patterns are drawn at 4x4 and upsampled, so they are smooth
NOISE_STD = 1.0


def _draw(
    patterns: torch.Tensor, count: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    num_classes = patterns.shape[0]
    labels = torch.arange(count) % num_classes
    labels = labels[torch.randperm(count, generator=generator)]
    noise = torch.randn((count, *patterns.shape[1:]), generator=generator) * NOISE_STD
    return patterns[labels] + noise, labels


def build_synthetic(
    data_root: Path | None = None, options: Mapping[str, Any] | None = None, augment: bool = False
) -> tuple[InMemoryDataset, InMemoryDataset, DatasetInfo]:
    """Return (train, test, info) of generated, class-balanced, learnable images; deterministic per `seed`.

    Generated in memory and not augmented: `data_root` and `augment` are not used.
    """
    settings = read_options(NAME, options, DEFAULTS)
    num_classes = int_option(NAME, "num_classes", settings["num_classes"], minimum=2)
    size = int_option(NAME, "size", settings["size"], minimum=1)
    channels = int_option(NAME, "channels", settings["channels"], minimum=1)
    train_size = int_option(NAME, "train_size", settings["train_size"], minimum=1)
    test_size = int_option(NAME, "test_size", settings["test_size"], minimum=1)
    seed = int_option(NAME, "seed", settings["seed"], minimum=0)
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randn((num_classes, channels, PATTERN_RESOLUTION, PATTERN_RESOLUTION), generator=generator)
    patterns = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    train = InMemoryDataset(*_draw(patterns, train_size, generator))
    test = InMemoryDataset(*_draw(patterns, test_size, generator))
    info = DatasetInfo(NAME, num_classes, (channels, size, size), (0.0,) * channels, (1.0,) * channels)
    return train, test, info
