"""Once-for-All's kernel transforms: a smaller depthwise kernel from the centre of the next larger one."""

from __future__ import annotations

import math
from collections.abc import Mapping

from torch import Tensor


def transform_name(source: int, target: int) -> str:
    """Return the key of the ``source -> target`` kernel transform matrix (e.g. ``7to5``)."""
    return f"{source}to{target}"


def centre(kernel: Tensor, size: int) -> Tensor:
    """Return the centred ``size x size`` window of ``kernel`` (..., K, K)."""
    start = (kernel.shape[-1] - size) // 2
    return kernel[..., start : start + size, start : start + size]


def transformed_kernel(weight: Tensor, transforms: Mapping[str, Tensor], kernel_size: int) -> Tensor:
    """Return the ``kernel_size`` kernel derived from the largest kernel ``weight`` (C, 1, K, K).

    Walks down the chain of transform matrices (``K to k1``, ``k1 to k2``, ...): each step takes the centre
    of the current kernel, flattened per channel, times the step's matrix (``flat @ M.T``).
    """
    current = weight
    while current.shape[-1] > kernel_size:
        size = current.shape[-1]
        steps = [key for key in transforms if key.startswith(f"{size}to")]
        if len(steps) != 1:
            raise KeyError(f"no single kernel transform from {size} (have {sorted(transforms)})")
        matrix = transforms[steps[0]]
        target = math.isqrt(matrix.shape[0])
        if target < kernel_size:
            raise KeyError(f"the kernel transforms skip kernel size {kernel_size} ({sorted(transforms)})")
        window = centre(current, target)
        flat = window.reshape(-1, target * target) @ matrix.t()
        current = flat.reshape(*window.shape)
    return current
