"""AutoFormer's 2-D relative position tables (reference §1.6)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class RelativePosition2D(nn.Module):
    """AutoFormer's 2-D relative positions for a class token plus a square grid of patch tokens.

    Returns ``(N, N, head_dim)``: the sum of a vertical and a horizontal table indexed by the clipped
    row / column distance between tokens (``max_distance`` each way); pairs with the class token use
    row 0 of both tables. Head dimension is fixed, so the tables need no entanglement.
    """

    def __init__(self, head_dim: int, max_distance: int = 14) -> None:
        super().__init__()
        self.max_distance = max_distance
        self.vertical = nn.Parameter(torch.zeros(2 * max_distance + 2, head_dim))
        self.horizontal = nn.Parameter(torch.zeros(2 * max_distance + 2, head_dim))
        nn.init.trunc_normal_(self.vertical, std=0.02)
        nn.init.trunc_normal_(self.horizontal, std=0.02)
        self._indices: dict[tuple[int, torch.device], tuple[Tensor, Tensor]] = {}

    def _index(self, length: int, device: torch.device) -> tuple[Tensor, Tensor]:
        key = (length, device)
        if key not in self._indices:
            side = math.isqrt(length - 1)
            if side * side != length - 1:
                raise ValueError(f"relative positions need 1 + a square number of tokens, got {length}")
            grid = torch.arange(side * side, device=device)
            rows, cols = grid // side, grid % side
            found = []
            for coordinate in (rows, cols):
                distance = (coordinate[None, :] - coordinate[:, None]).clamp(
                    -self.max_distance, self.max_distance
                )
                found.append(F.pad(distance + self.max_distance + 1, (1, 0, 1, 0)))  # class token -> row 0
            self._indices[key] = (found[0], found[1])
        return self._indices[key]

    def forward(self, length: int, device: torch.device) -> Tensor:
        vertical, horizontal = self._index(length, device)
        return self.vertical[vertical] + self.horizontal[horizontal]
