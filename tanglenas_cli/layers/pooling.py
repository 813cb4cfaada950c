"""Faster average and max pools for cell spaces, and the fused skip + pool term of a mixed edge.

``nn.AvgPool2d(k, stride, k // 2, count_include_pad=False)`` is among the slowest ops of a cell supernet
step on CPU. The same numbers are a box sum (a depthwise convolution with a constant kernel) times the
inverse count of in-bounds pixels per window. Autograd's depthwise-convolution backward is several times
slower than its forward on CPU, so the backward here is written out: the adjoint of a box sum is a box
sum (stride 1) or a transposed box convolution (stride > 1).

:func:`skip_pool_mix` computes ``w_skip * x + w_pool * avgpool(x)`` plus any tensors to add (the edge's
other terms, the node's sum so far) as one autograd node that writes one new tensor and keeps only ``x``
for the backward pass (no pooled tensor, no weighted intermediates, no partial sums). That is what a
weight-entangled NB201 edge adds on top of its superposed convolution. The pool is linear, so the edges
into one node share it: ``sum_i w_pool_i * avgpool(x_i) = avgpool(sum_i w_pool_i * x_i)``, one box sum
forward and one backward for the node instead of one per edge.

:class:`MaxPool2d` is ``nn.MaxPool2d`` that, on CPU, pools a channels-first input in the channels-last
layout and hands the result back channels-first: the same numbers, and about 1.2x (32x32, 16 channels)
to 3x (8x8, 64 channels) faster forward and backward, conversions included (torch 2.14, oneDNN-less
ATen kernels). A DARTS supernet runs a max pool on each of its 112 edges.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd import Function


def _box(channels: int, kernel_size: int, like: Tensor) -> Tensor:
    return torch.ones(1, 1, 1, 1, dtype=like.dtype, device=like.device).expand(
        channels, 1, kernel_size, kernel_size
    )


def box_sum(x: Tensor, kernel_size: int, stride: int = 1) -> Tensor:
    """Return the sum over each ``kernel_size`` window of ``x`` (zero padding ``kernel_size // 2``)."""
    channels = x.shape[1]
    return F.conv2d(
        x, _box(channels, kernel_size, x), stride=stride, padding=kernel_size // 2, groups=channels
    )


def box_sum_adjoint(grad: Tensor, kernel_size: int, stride: int, input_size: tuple[int, int]) -> Tensor:
    """Return the adjoint of :func:`box_sum` applied to ``grad``, shaped like the box sum's input."""
    if stride == 1:
        return box_sum(grad, kernel_size)
    channels, padding = grad.shape[1], kernel_size // 2
    natural = [(n - 1) * stride - 2 * padding + kernel_size for n in grad.shape[-2:]]
    output_padding = [size - got for size, got in zip(input_size, natural, strict=True)]
    return F.conv_transpose2d(
        grad, _box(channels, kernel_size, grad), stride=stride, padding=padding,
        output_padding=output_padding, groups=channels,
    )  # fmt: skip


class _BoxAverage(Function):
    @staticmethod
    def forward(ctx, x: Tensor, inverse_counts: Tensor, kernel_size: int, stride: int) -> Tensor:
        ctx.save_for_backward(inverse_counts)
        ctx.kernel_size, ctx.stride, ctx.input_size = kernel_size, stride, tuple(x.shape[-2:])
        return box_sum(x, kernel_size, stride) * inverse_counts

    @staticmethod
    def backward(ctx, grad: Tensor):
        (inverse_counts,) = ctx.saved_tensors
        grad_x = box_sum_adjoint(grad * inverse_counts, ctx.kernel_size, ctx.stride, ctx.input_size)
        return grad_x, None, None, None


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Return sum(a * b) without the product tensor."""
    return torch.dot(a.reshape(-1), b.reshape(-1))


class SkipPoolSource(NamedTuple):
    """One edge's share of a fused skip + pool term: ``w_skip * x + w_pool * pool(x)``."""

    x: Tensor
    w_skip: Tensor
    w_pool: Tensor
    pool: BoxAvgPool2d


class _SkipPoolMix(Function):
    @staticmethod
    def forward(ctx, inverse_counts: Tensor, kernel_size: int, count: int, *tensors: Tensor) -> Tensor:
        xs, w_skips, w_pools = tensors[:count], tensors[count : 2 * count], tensors[2 * count : 3 * count]
        ctx.save_for_backward(inverse_counts, *xs, *w_skips, *w_pools)
        ctx.kernel_size, ctx.count, ctx.addends = kernel_size, count, len(tensors) - 3 * count
        if count == 1:  # the box sum is the only new tensor: every other term is added into it in place
            total = box_sum(xs[0], kernel_size)
            total.mul_(inverse_counts * w_pools[0].to(inverse_counts.dtype))
        else:  # the pool is linear: one box sum of the weighted sum of the sources
            mixed = xs[0] * w_pools[0].to(xs[0].dtype)
            for x, w_pool in zip(xs[1:], w_pools[1:], strict=True):
                mixed.addcmul_(x, w_pool.to(x.dtype))
            total = box_sum(mixed, kernel_size)
            del mixed
            total.mul_(inverse_counts)
        for x, w_skip in zip(xs, w_skips, strict=True):
            total.addcmul_(x, w_skip.to(x.dtype))
        for addend in tensors[3 * count :]:
            total.add_(addend)
        return total

    @staticmethod
    def backward(ctx, grad: Tensor):
        inverse_counts, *saved = ctx.saved_tensors
        count = ctx.count
        xs, w_skips, w_pools = saved[:count], saved[count : 2 * count], saved[2 * count :]
        needs = ctx.needs_input_grad[3:]
        # <grad, w_pool * B(x) / n> = <B(grad / n), x> * w_pool: B is self-adjoint at stride 1.
        pooled_grad = box_sum(grad * inverse_counts, ctx.kernel_size)
        grad_skips = [
            _dot(grad, x).reshape(w.shape).to(w.dtype) if needs[count + i] else None
            for i, (x, w) in enumerate(zip(xs, w_skips, strict=True))
        ]
        grad_pools = [
            _dot(pooled_grad, x).reshape(w.shape).to(w.dtype) if needs[2 * count + i] else None
            for i, (x, w) in enumerate(zip(xs, w_pools, strict=True))
        ]
        grad_xs: list[Tensor | None] = [None] * count
        last = max((i for i in range(count) if needs[i]), default=None)
        for i, (w_skip, w_pool) in enumerate(zip(w_skips, w_pools, strict=True)):
            if needs[i]:  # the last source's gradient is written into the pooled gradient itself
                scaled = (
                    pooled_grad.mul_(w_pool.to(grad.dtype))
                    if i == last
                    else pooled_grad * w_pool.to(grad.dtype)
                )
                grad_xs[i] = scaled.addcmul_(grad, w_skip.to(grad.dtype))
        return (None, None, None, *grad_xs, *grad_skips, *grad_pools, *([grad] * ctx.addends))


class BoxAvgPool2d(nn.Module):
    """Average over the in-bounds pixels of each k x k window ("same" padding, padding not counted)."""

    def __init__(self, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError("BoxAvgPool2d needs an odd kernel size")
        self.kernel_size, self.stride = kernel_size, stride
        self._counts: dict[tuple, Tensor] = {}

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"

    def inverse_counts(self, x: Tensor) -> Tensor:
        """Return 1 / (in-bounds pixels) of every output window, shaped (1, 1, H_out, W_out)."""
        if torch.compiler.is_compiling():  # a cache would make the compiler re-trace; it folds this anyway
            return self._compute_inverse_counts(x)
        key = (x.shape[-2], x.shape[-1], x.device, x.dtype)
        if key not in self._counts:
            self._counts[key] = self._compute_inverse_counts(x)
        return self._counts[key]

    def _compute_inverse_counts(self, x: Tensor) -> Tensor:
        ones = torch.ones(1, 1, *x.shape[-2:], device=x.device, dtype=x.dtype)
        return box_sum(ones, self.kernel_size, self.stride).reciprocal()

    def forward(self, x: Tensor) -> Tensor:
        return _BoxAverage.apply(x, self.inverse_counts(x), self.kernel_size, self.stride)


def skip_pool_mix(sources: Sequence[SkipPoolSource], *addends: Tensor) -> Tensor:
    """Return ``sum_i (w_skip_i * x_i + w_pool_i * pool_i(x_i)) + sum(addends)`` as one new tensor, saving
    only the ``x_i`` for backward. The sources (e.g. the edges into one node) share one box sum forward and
    one backward; their pools must be stride-1 with one kernel size, and every tensor has ``x``'s shape."""
    if not sources:
        raise ValueError("skip_pool_mix needs at least one source")
    pool = sources[0].pool
    if any(source.pool.stride != 1 or source.pool.kernel_size != pool.kernel_size for source in sources):
        raise ValueError("skip_pool_mix needs stride-1 pools of one kernel size")
    xs = [source.x for source in sources]
    tensors = (*xs, *(source.w_skip for source in sources), *(source.w_pool for source in sources), *addends)
    return _SkipPoolMix.apply(pool.inverse_counts(xs[0]), pool.kernel_size, len(sources), *tensors)


def separable_max(x: Tensor, kernel_size: int) -> Tensor:
    """Return the stride-1 "same" max pool of ``x`` (padding ``kernel_size // 2``) as a max over rows of a
    max over columns: exactly ``F.max_pool2d``'s values, without indices (so without a backward)."""
    pad, (height, width) = kernel_size // 2, x.shape[-2:]
    padded = F.pad(x, (pad, pad, pad, pad), value=float("-inf"))
    rows = padded[..., :, :width]
    for shift in range(1, kernel_size):
        rows = torch.maximum(rows, padded[..., :, shift : shift + width])
    pooled = rows[..., :height, :]
    for shift in range(1, kernel_size):
        pooled = torch.maximum(pooled, rows[..., shift : shift + height, :])
    return pooled


class MaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` (same arguments, no state) that pools a channels-first CPU input channels-last;
    a stride-1 "same" pool that needs no gradient is :func:`separable_max` (about 2-6x faster still)."""

    def forward(self, x: Tensor) -> Tensor:
        if (x.dim() != 4 or x.device.type != "cpu" or self.return_indices
                or x.is_contiguous(memory_format=torch.channels_last)):  # fmt: skip
            return super().forward(x)
        if self._separable() and not (torch.is_grad_enabled() and x.requires_grad):
            return separable_max(x, self.kernel_size)
        return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()

    def _separable(self) -> bool:
        k = self.kernel_size
        same = isinstance(k, int) and k % 2 == 1 and self.padding in (k // 2, (k // 2,) * 2)
        return same and self.stride in (1, (1, 1)) and self.dilation in (1, (1, 1)) and not self.ceil_mode
