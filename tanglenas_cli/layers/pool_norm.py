"""A pool followed by an affine-free batch norm (DARTS' search-time pooling ops), weighted lean.

In a supernet edge a pooling op enters the mixture as ``w * BN(pool(x))``. Autograd keeps three
tensors of that term for the backward pass: the pool's own (a max pool's indices, int64, twice the size
of ``x``), the BN input and the BN output (for the gradient of ``w``). :meth:`PoolNorm.weighted` keeps
none of them, only ``x`` (which the edge's other ops keep anyway): the backward pass recomputes the pool
and its batch statistics from ``x``. The term is computed as a batch norm whose scale is ``w`` in every
channel, so ATen's fused batch-norm kernels give the weighted output in one pass and, in the backward,
the pooled input's gradient and ``w``'s (the sum of the scale's) in one more; no normalised copy,
product or dot. The running statistics are updated once, in the forward pass. On a
DARTS WE edge that is 5 of about 17 input-sized tensors.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.autograd import Function


def _norm_arguments(norm: nn.BatchNorm2d) -> tuple[Tensor | None, Tensor | None, bool, float]:
    """Return (running mean, running var, batch statistics?, momentum) as ``nn.BatchNorm2d`` passes them
    to ``F.batch_norm``, counting the batch in ``num_batches_tracked`` as it does."""
    momentum = 0.0 if norm.momentum is None else norm.momentum
    if norm.training and norm.track_running_stats and norm.num_batches_tracked is not None:
        norm.num_batches_tracked.add_(1)
        momentum = 1.0 / float(norm.num_batches_tracked) if norm.momentum is None else norm.momentum
    batch_stats = norm.training or (norm.running_mean is None and norm.running_var is None)
    keeps_running = not norm.training or norm.track_running_stats
    mean, var = (norm.running_mean, norm.running_var) if keeps_running else (None, None)
    return mean, var, batch_stats, momentum


class _WeightedPoolNorm(Function):
    """``w * BN(pool(x))`` as a batch norm whose scale is ``w`` in every channel: ATen's fused kernels
    give the output, and in the backward the gradients of the pooled input and of ``w`` at once."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, module: PoolNorm) -> Tensor:
        pool, norm = module
        pooled = pool(x)
        mean, var, batch_stats, momentum = _norm_arguments(norm)
        scale = weight.to(x.dtype).reshape(1).expand(x.shape[1]).contiguous()
        out, _, _ = torch.ops.aten.native_batch_norm(
            pooled, scale, None, mean, var, batch_stats, momentum, norm.eps
        )  # the running statistics are updated here, once
        # the batch statistics are recomputed in backward: kept, 2 x 112 small tensors per DARTS step
        # fragment the heap between the large ones (peak RSS +7% on the DARTS WE step)
        ctx.save_for_backward(x, weight)
        ctx.module, ctx.batch_stats = module, batch_stats
        # eval mode normalises with the running statistics: keep the ones this forward used
        ctx.running = None if batch_stats else (mean.clone(), var.clone())  # type: ignore[union-attr]
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        pool, norm = ctx.module
        need_x, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        with torch.set_grad_enabled(need_x):
            leaf = x.detach().requires_grad_(need_x)
            pooled = pool(leaf)
        scale = weight.to(x.dtype).reshape(1).expand(x.shape[1]).contiguous()
        mean, var = ctx.running or (None, None)
        save_mean = save_invstd = None
        if ctx.batch_stats:  # the forward's kernel, so exactly its statistics (var_mean is 3x slower)
            _, save_mean, save_invstd = torch.ops.aten.native_batch_norm(
                pooled.detach(), None, None, None, None, True, 0.0, norm.eps
            )
        grad_pooled, grad_scale, _ = torch.ops.aten.native_batch_norm_backward(
            grad.contiguous(), pooled.detach(), scale, mean, var, save_mean, save_invstd, ctx.batch_stats,
            norm.eps, [need_x, need_weight, False],
        )  # fmt: skip
        grad_weight = grad_scale.sum().reshape(weight.shape).to(weight.dtype) if need_weight else None
        grad_x = torch.autograd.grad(pooled, leaf, grad_pooled)[0] if need_x else None
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
