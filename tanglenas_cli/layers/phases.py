"""The two diagonal pixel phases of a feature map, stacked along channels (DARTS' FactorizedReduce).

DARTS' ``FactorizedReduce`` concatenates a stride-2 1x1 conv of ``x`` and one of ``x`` shifted by one
pixel (zero-padded at the end). Those convs read only the (even, even) and the (odd, odd) pixels of
``x``. :func:`two_phases` copies exactly those into one ``(N, 2C, ceil(H/2), ceil(W/2))`` tensor (the odd
phase zero-padded where ``H`` or ``W`` is odd), so one 2-group 1x1 conv gives the concatenation. Its
backward writes both phases into one zero tensor; no padded copy of ``x`` is made or kept
(``benchmarks/speedup_ab.py --change two-phases`` times it in the DARTS step).
"""

from __future__ import annotations

from torch import Tensor
from torch.autograd import Function


class _TwoPhases(Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        ctx.input_shape = x.shape
        out = x.new_empty(batch, 2 * channels, (height + 1) // 2, (width + 1) // 2)
        out[:, :channels] = x[:, :, ::2, ::2]
        odd = out[:, channels:]
        if height % 2 or width % 2:
            odd.zero_()
        odd[:, :, : height // 2, : width // 2] = x[:, :, 1::2, 1::2]
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        batch, channels, height, width = ctx.input_shape
        grad_x = grad.new_zeros(batch, channels, height, width)
        grad_x[:, :, ::2, ::2] = grad[:, :channels]
        grad_x[:, :, 1::2, 1::2] = grad[:, channels:, : height // 2, : width // 2]
        return grad_x


def two_phases(x: Tensor) -> Tensor:
    """Return ``cat([x[..., ::2, ::2], pad(x, (0, 1, 0, 1))[..., 1::2, 1::2]], dim=1)`` (NCHW ``x``)."""
    return _TwoPhases.apply(x)
