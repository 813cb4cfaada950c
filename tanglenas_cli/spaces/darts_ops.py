"""DARTS-style cell operations (separable and dilated convs), discrete and entangled.

Entangled versions superpose the 3x3 and 5x5 candidates in ONE 5x5 depthwise kernel (centre
slice for 3x3); pointwise convs and batch norms are shared by the pair (reference §1.4).
"""

from __future__ import annotations

from torch import Tensor, nn

from tanglenas_cli.layers.conv import Conv2d
from tanglenas_cli.nas.choices import WeightSource
from tanglenas_cli.nas.entangled import EntangledConv2d


class SepConv(nn.Sequential):
    """ReLU - depthwise k x k (stride) - 1x1 - BN - ReLU - depthwise k x k - 1x1 - BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, affine: bool = False) -> None:
        pad = kernel // 2
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride, pad, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_in, 1, bias=False),
            nn.BatchNorm2d(c_in, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, 1, pad, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU - dilated (2) depthwise k x k (stride) - 1x1 - BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, affine: bool = False) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            Conv2d(c_in, c_in, kernel, stride, 2 * (kernel // 2), dilation=2, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class EntangledSepConv(nn.Module):
    """SepConv over kernel candidates (e.g. [3, 5]): both depthwise convs superposed, rest shared."""

    def __init__(
        self,
        source: WeightSource,
        c_in: int,
        c_out: int,
        kernels: list[int],
        stride: int,
        affine: bool = False,
    ) -> None:
        super().__init__()
        self.first = EntangledConv2d(source, c_in, c_in, kernels, stride=stride, groups=c_in)
        self.pointwise1 = nn.Conv2d(c_in, c_in, 1, bias=False)
        self.norm1 = nn.BatchNorm2d(c_in, affine=affine)
        self.second = EntangledConv2d(source, c_in, c_in, kernels, groups=c_in)
        self.pointwise2 = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: Tensor) -> Tensor:
        x = self.norm1(self.pointwise1(self.first(x.relu())))
        return self.norm2(self.pointwise2(self.second(x.relu())))


class EntangledDilConv(nn.Module):
    """DilConv (dilation 2) over kernel candidates: one superposed depthwise conv, rest shared."""

    def __init__(
        self,
        source: WeightSource,
        c_in: int,
        c_out: int,
        kernels: list[int],
        stride: int,
        affine: bool = False,
    ) -> None:
        super().__init__()
        self.depthwise = EntangledConv2d(source, c_in, c_in, kernels, stride=stride, dilation=2, groups=c_in)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.norm = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.pointwise(self.depthwise(x.relu())))
