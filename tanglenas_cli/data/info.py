"""What a model needs to know about a dataset: classes, input shape, normalisation constants."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    """Name, number of classes, input shape (C, H, W) and per-channel mean / std of a dataset."""

    name: str
    num_classes: int
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
