"""A dataset held as two in-memory tensors: images (N, C, H, W) and integer labels (N,)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset


class InMemoryDataset(Dataset):
    """Images and labels already in memory; an item is (float32 image tensor C x H x W, int label)."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        if images.ndim != 4 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"need images (N, C, H, W) and labels (N,), got {tuple(images.shape)}, {tuple(labels.shape)}"
            )
        self.images = images.to(torch.float32).contiguous()
        self.labels = labels.to(torch.int64).contiguous()

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[index], int(self.labels[index])

    @property
    def targets(self) -> list[int]:
        """Return all labels as a list of ints (like torchvision datasets)."""
        return self.labels.tolist()
