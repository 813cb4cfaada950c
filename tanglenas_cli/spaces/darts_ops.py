"""DARTS-style cell operations (separable and dilated convs), discrete and entangled.

Entangled versions (built with a ``source``) superpose the 3x3 and 5x5 candidates in ONE 5x5 depthwise
kernel (centre slice for 3x3); pointwise convs and batch norms are shared by the pair (reference §1.4).
"""

from __future__ import annotations

from torch import nn

from tanglenas_cli.layers.conv import Conv2d
from tanglenas_cli.layers.relu import SharedReLU
from tanglenas_cli.nas.choices import WeightSource
from tanglenas_cli.nas.entangled import EntangledConv2d

Kernels = int | list[int]


def depthwise(
    channels: int, kernel: Kernels, stride: int, dilation: int, source: WeightSource | None
) -> nn.Module:
    """Return a depthwise conv: one k x k kernel, or with ``source`` the ``kernel`` list superposed."""
    if source is None:
        padding = dilation * (kernel // 2)  # type: ignore[operator]
        return Conv2d(
            channels, channels, kernel, stride, padding, dilation=dilation, groups=channels, bias=False
        )
    return EntangledConv2d(
        source, channels, channels, kernel, stride=stride, dilation=dilation, groups=channels
    )


class SepConv(nn.Sequential):
    """ReLU - depthwise k x k (stride) - 1x1 - BN - ReLU - depthwise k x k - 1x1 - BN."""

    def __init__(self, c_in: int, c_out: int, kernel: Kernels, stride: int, affine: bool = False,
                 source: WeightSource | None = None) -> None:  # fmt: skip
        super().__init__(
            SharedReLU(),  # the edge's other ops on this input share its output
            depthwise(c_in, kernel, stride, 1, source),
            nn.Conv2d(c_in, c_in, 1, bias=False),
            nn.BatchNorm2d(c_in, affine=affine),
            nn.ReLU(),
            depthwise(c_in, kernel, 1, 1, source),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU - dilated (2) depthwise k x k (stride) - 1x1 - BN."""

    def __init__(self, c_in: int, c_out: int, kernel: Kernels, stride: int, affine: bool = False,
                 source: WeightSource | None = None) -> None:  # fmt: skip
        super().__init__(
            SharedReLU(),
            depthwise(c_in, kernel, stride, 2, source),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )
