"""Cutout: zero a square patch of a normalised image tensor, centred on a uniformly random pixel."""

from __future__ import annotations

import torch
from torch import Tensor


class Cutout:
    """Zero a `length` x `length` square (clipped at the borders) around a random pixel of a CxHxW tensor."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __call__(self, image: Tensor) -> Tensor:
        height, width = image.shape[-2], image.shape[-1]
        centre_y = int(torch.randint(height, (1,)))
        centre_x = int(torch.randint(width, (1,)))
        half = self.length // 2
        top, bottom = max(centre_y - half, 0), min(centre_y + half, height)
        left, right = max(centre_x - half, 0), min(centre_x + half, width)
        image = image.clone()
        image[..., top:bottom, left:right] = 0
        return image

    def __repr__(self) -> str:
        return f"{type(self).__name__}(length={self.length})"
