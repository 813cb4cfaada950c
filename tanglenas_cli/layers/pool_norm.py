"""A pool followed by an affine-free batch norm (DARTS' search-time pooling ops), weighted lean.

In a supernet edge a pooling op enters the mixture as ``w * BN(pool(x))``. Autograd keeps three
tensors of that term for the backward pass: the pool's own (a max pool's indices, int64, twice the size
of ``x``), the BN input and the BN output (for the gradient of ``w``). :meth:`PoolNorm.weighted` keeps
none of them, only ``x`` (which the edge's other ops keep anyway): the backward pass recomputes the pool
and the normalisation from ``x`` and back-propagates through them. The normalisation uses the same
batch statistics (or the running ones, in eval mode); the running statistics are updated once, in the
forward pass. On a DARTS WE edge that is 5 of about 17 input-sized tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd import Function


def _normalize(norm: nn.BatchNorm2d, pooled: Tensor) -> Tensor:
    """Return ``norm(pooled)`` without touching its running statistics."""
    batch_stats = norm.training or not norm.track_running_stats
    mean, var = (None, None) if batch_stats else (norm.running_mean, norm.running_var)
    return F.batch_norm(pooled, mean, var, None, None, batch_stats, 0.0, norm.eps)


class _WeightedPoolNorm(Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, module: PoolNorm) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.module = module
        return module(x).mul_(weight.to(x.dtype))  # the BN updates its running statistics here, once

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        pool, norm = ctx.module
        need_x, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(need_x)
            normalized = _normalize(norm, pool(leaf))
        grad_weight = None
        if need_weight:
            grad_weight = torch.dot(grad.reshape(-1), normalized.detach().reshape(-1))
            grad_weight = grad_weight.reshape(weight.shape).to(weight.dtype)
        grad_x = None
        if need_x:
            (grad_x,) = torch.autograd.grad(normalized, leaf, grad * weight.to(grad.dtype))
        return grad_x, grad_weight, None


class PoolNorm(nn.Sequential):
    """``pool`` then ``BatchNorm2d(affine=False)``: an ``nn.Sequential`` of the two (same state dict)."""

    def __init__(self, pool: nn.Module, norm: nn.BatchNorm2d) -> None:
        if norm.affine:
            raise ValueError("PoolNorm needs a batch norm without affine parameters")
        super().__init__(pool, norm)

    def weighted(self, x: Tensor, weight: Tensor) -> Tensor:
        """Return ``weight * self(x)``, keeping only ``x`` and ``weight`` for the backward pass."""
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
        eager = not torch.compiler.is_compiling() and not torch.is_autocast_enabled(x.device.type)
        if not (needs_grad and eager):
            return weight * self(x)
        return _WeightedPoolNorm.apply(x, weight, self)
