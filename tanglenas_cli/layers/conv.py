"""Strided convolutions that only read every s-th pixel, computed on the subsampled input.

A dilated (d) convolution with stride d and padding a multiple of d only ever reads every d-th row
and column of its input, so it equals an undilated stride-1 convolution of ``x[..., ::d, ::d]`` with
padding ``p / d`` -- the same numbers, and on CPU (oneDNN) several times faster, its backward most of
all. DARTS-style reduction cells use exactly this op (``dil_conv`` with stride 2, dilation 2).

An unpadded 1x1 convolution with stride s is likewise a 1x1 convolution of ``x[..., ::s, ::s]``.
Computing it that way also avoids a oneDNN fault of torch 2.14 on CPU: the weight gradient of a
channels-last 1x1 stride-2 convolution corrupts the heap for some shapes (e.g. 16x16 inputs, 4-16
channels, odd batch sizes), which aborts DARTS searches (``FactorizedReduce``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int = 1, padding: int = 0,
           dilation: int = 1, groups: int = 1) -> Tensor:  # fmt: skip
    """``F.conv2d`` with int stride/padding/dilation, subsampling first when stride == dilation > 1."""
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        weight = weight.contiguous(memory_format=torch.channels_last)
    if stride > 1 and padding == 0 and weight.shape[-2:] == (1, 1):
        return F.conv2d(x[:, :, ::stride, ::stride], weight, bias, 1, 0, 1, groups)
    if stride == dilation > 1 and padding % dilation == 0:
        return F.conv2d(x[:, :, ::stride, ::stride], weight, bias, 1, padding // dilation, 1, groups)
    return F.conv2d(x, weight, bias, stride, padding, dilation, groups)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters and state dict) that uses :func:`conv2d`'s subsampling."""

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        square = all(len(set(v)) == 1 for v in (self.stride, self.dilation)) and isinstance(
            self.padding, tuple
        )
        if square and self.padding_mode == "zeros" and len(set(self.padding)) == 1:
            return conv2d(input, weight, bias, self.stride[0], self.padding[0], self.dilation[0], self.groups)
        return super()._conv_forward(input, weight, bias)
