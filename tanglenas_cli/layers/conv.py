"""Strided convolutions that only read every s-th pixel, computed on the subsampled input.

A dilated (d) convolution with stride d and padding a multiple of d only ever reads every d-th row
and column of its input, so it equals an undilated stride-1 convolution of ``x[..., ::d, ::d]`` with
padding ``p / d`` -- the same numbers, and on CPU (oneDNN) several times faster, its backward most of
all. DARTS-style reduction cells use exactly this op (``dil_conv`` with stride 2, dilation 2).

A stride-1 depthwise convolution with "same" padding has as input gradient the same convolution of the
output gradient with the kernel flipped. On CPU that forward kernel is far faster than ATen's backward:
for a dilated (2) 5x5 depthwise conv about 3x (14x14 pixels, 32 channels) to 50x (7x7, 64 channels),
and 4x for an undilated 5x5 at 28x28. :class:`_SameDepthwise` computes it so. On maps above
:data:`PER_TAP_PIXELS` its weight gradient is one reduction per kernel tap
(:func:`depthwise_weight_grad`), below that ATen's. DARTS-style cells (``sep_conv``, ``dil_conv``) are
made of such convolutions.

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
    if _is_same_depthwise(x, weight, stride, padding, dilation, groups):
        return _SameDepthwise.apply(x, weight, bias, padding, dilation)
    return F.conv2d(x, weight, bias, stride, padding, dilation, groups)


def _is_same_depthwise(x: Tensor, weight: Tensor, stride: int, padding: int, dilation: int,
                       groups: int) -> bool:  # fmt: skip
    """Whether the conv is a stride-1, "same"-padded, square depthwise one on CPU (eager mode)."""
    depthwise = groups == x.shape[1] == weight.shape[0] > 1 and weight.shape[1] == 1
    square = weight.shape[-1] == weight.shape[-2] > 1 and 2 * padding == dilation * (weight.shape[-1] - 1)
    # eager fp32 on CPU: under autocast the forward's dtype is autocast's choice, and compile has its own
    on_cpu = x.device.type == "cpu" and x.dim() == 4 and x.dtype == weight.dtype
    eager = not torch.compiler.is_compiling() and not torch.is_autocast_enabled("cpu")
    return stride == 1 and depthwise and square and on_cpu and eager


PER_TAP_PIXELS = 400
"""Above this many pixels a map's depthwise weight gradient is computed tap by tap (ATen's is 3x to 10x
slower at 24x24 and 32x32, as fast at 16x16 and below)."""


def depthwise_weight_grad(grad: Tensor, x: Tensor, kernel: int, padding: int, dilation: int) -> Tensor:
    """Return the weight gradient of a stride-1 depthwise conv: for each of the ``kernel**2`` taps, the
    per-channel sum of ``grad`` times the input shifted by that tap, on channel-major copies."""
    channels, height, width = x.shape[1], x.shape[-2], x.shape[-1]
    padded = F.pad(x, (padding,) * 4).transpose(0, 1).contiguous()
    grad_by_channel = grad.transpose(0, 1).contiguous()
    out = x.new_empty(channels, kernel, kernel)
    for i in range(kernel):
        rows = padded[:, :, dilation * i : dilation * i + height]
        for j in range(kernel):
            tap = rows[..., dilation * j : dilation * j + width]
            out[:, i, j] = (grad_by_channel * tap).sum((1, 2, 3))
    return out.unsqueeze(1)


class _SameDepthwise(torch.autograd.Function):
    """A stride-1, "same"-padded depthwise conv whose input gradient is the flipped-kernel conv."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, padding: int, dilation: int) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.dilation, ctx.has_bias = padding, dilation, bias is not None
        return F.conv2d(x, weight, bias, 1, padding, dilation, x.shape[1])

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        padding, dilation, channels = ctx.padding, ctx.dilation, x.shape[1]
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = F.conv2d(grad, weight.flip(-1, -2), None, 1, padding, dilation, channels)
        if ctx.needs_input_grad[1] and x.shape[-1] * x.shape[-2] > PER_TAP_PIXELS:
            grad_weight = depthwise_weight_grad(grad, x, weight.shape[-1], padding, dilation)
        elif ctx.needs_input_grad[1]:
            grad_weight = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [1, 1], [padding, padding], [dilation, dilation], False, [0, 0],
                channels, [False, True, False],
            )[1]  # fmt: skip
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum((0, 2, 3))
        return grad_x, grad_weight, grad_bias, None, None


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters and state dict) that uses :func:`conv2d`'s subsampling."""

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        square = all(len(set(v)) == 1 for v in (self.stride, self.dilation)) and isinstance(
            self.padding, tuple
        )
        if square and self.padding_mode == "zeros" and len(set(self.padding)) == 1:
            return conv2d(input, weight, bias, self.stride[0], self.padding[0], self.dilation[0], self.groups)
        return super()._conv_forward(input, weight, bias)
