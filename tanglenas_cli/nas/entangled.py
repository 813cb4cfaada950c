"""Entangled layers: one super weight, candidates as slices, one superposed convolution / matmul.

Each layer reads its mixing weights from a weight source (a Choice, a subset of one, or a joint
choice). Candidate ``i`` is described by one size per sliceable attribute (channels, kernel size,
features); attributes given as an int are the same for every candidate.

* Mixture path (soft weights): ``f(x; sum_i w_i pad(slice_i W))`` -- a single call of the op.
* Direct path (one-hot weights): ``f(x; w_i * slice_i W)`` at the candidate's own width and padding,
  so straight-through gradients still reach the logits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tanglenas_cli.layers.conv import conv2d
from tanglenas_cli.nas.choices import WeightSource
from tanglenas_cli.nas.superposition import SlicedDim, Superposition


def per_candidate(value: int | Sequence[int], count: int, what: str) -> tuple[int, ...]:
    """Return ``value`` as one int per candidate (an int is repeated)."""
    if isinstance(value, int):
        return (value,) * count
    sizes = tuple(int(v) for v in value)
    if len(sizes) != count:
        raise ValueError(f"{what}: expected {count} per-candidate values, got {len(sizes)}")
    return sizes


class EntangledLayer(nn.Module):
    """Base of entangled layers: holds the weight source without registering it as a submodule."""

    def __init__(self, source: WeightSource) -> None:
        super().__init__()
        self._source = [source]  # a list keeps a shared Choice out of this module's state_dict

    @property
    def source(self) -> WeightSource:
        """The weight source this layer reads its mixing weights from."""
        return self._source[0]

    def forward(self, x: Tensor) -> Tensor:
        mixing = self.source.mixing()
        if mixing.index is not None:
            return self.forward_candidate(x, mixing.index, mixing.weights[mixing.index])
        return self.forward_mixture(x, mixing.weights)

    def forward_mixture(self, x: Tensor, weights: Tensor) -> Tensor:
        """Return the output of the superposed layer under ``weights``."""
        raise NotImplementedError

    def forward_candidate(self, x: Tensor, index: int, scale: Tensor | float = 1.0) -> Tensor:
        """Return candidate ``index``'s output at its own width, its weight scaled by ``scale``."""
        raise NotImplementedError


def _sliced(dim: int, sizes: tuple[int, ...], centred: bool = False) -> list[SlicedDim]:
    return [SlicedDim(dim, sizes, centred)] if len(set(sizes)) > 1 else []


def _out_dim_superposition(shape: Sequence[int], out_sizes: tuple[int, ...]) -> Superposition:
    # Always slice dim 0 so that a candidate-independent tensor still gets weighted by sum(w).
    return Superposition(shape, [SlicedDim(0, out_sizes)])


class EntangledConv2d(EntangledLayer):
    """Conv2d whose candidates are centred kernel windows and/or channel prefixes of one super kernel.

    ``padding`` is the padding of the largest kernel ("same" if None); a smaller kernel ``k`` uses
    ``padding - dilation * (K - k) / 2``, which makes the centred slice exactly equivalent.
    Depthwise convs (``groups == in == out``) may slice channels; other grouped convs may not.
    """

    def __init__(
        self,
        source: WeightSource,
        in_channels: int | Sequence[int],
        out_channels: int | Sequence[int],
        kernel_size: int | Sequence[int],
        *,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = False,
        bias_weighted: bool = True,
    ) -> None:
        super().__init__(source)
        count = len(source)
        self.in_sizes = per_candidate(in_channels, count, "in_channels")
        self.out_sizes = per_candidate(out_channels, count, "out_channels")
        self.kernel_sizes = per_candidate(kernel_size, count, "kernel_size")
        self.max_in, self.max_out, self.max_kernel = (
            max(self.in_sizes),
            max(self.out_sizes),
            max(self.kernel_sizes),
        )
        self.stride, self.dilation, self.groups = stride, dilation, groups
        self.depthwise = groups > 1 and groups == self.max_in == self.max_out
        if groups > 1 and not self.depthwise and len(set(self.in_sizes)) * len(set(self.out_sizes)) > 1:
            raise ValueError("only depthwise grouped convolutions may have channel candidates")
        if self.depthwise and self.in_sizes != self.out_sizes:
            raise ValueError("a depthwise convolution needs equal in/out channel candidates")
        self.padding = dilation * (self.max_kernel - 1) // 2 if padding is None else padding
        self.candidate_padding = tuple(
            self.padding - dilation * (self.max_kernel - k) // 2 for k in self.kernel_sizes
        )
        if min(self.candidate_padding) < 0 or any((self.max_kernel - k) % 2 for k in self.kernel_sizes):
            raise ValueError(
                f"kernel sizes {self.kernel_sizes} cannot be centred with padding {self.padding}"
            )
        in_per_group = 1 if self.depthwise else self.max_in // groups
        shape = (self.max_out, in_per_group, self.max_kernel, self.max_kernel)
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.empty(self.max_out)) if bias else None
        self.bias_weighted = bias_weighted
        sliced = (
            _sliced(0, self.out_sizes)
            + _sliced(2, self.kernel_sizes, True)
            + _sliced(3, self.kernel_sizes, True)
        )
        if not self.depthwise:
            sliced += _sliced(1, self.in_sizes)
        if not any(d.dim == 0 for d in sliced):
            sliced.insert(0, SlicedDim(0, self.out_sizes))
        self.weight_superposition = Superposition(shape, sliced)
        self.bias_superposition = _out_dim_superposition((self.max_out,), self.out_sizes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise like ``nn.Conv2d``."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.weight.shape[2] * self.weight.shape[3]
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        return (
            f"in={self.in_sizes}, out={self.out_sizes}, kernel={self.kernel_sizes}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
            f"bias={self.bias is not None}"
        )

    def _mixture_bias(self, weights: Tensor) -> Tensor | None:
        if self.bias is None or not self.bias_weighted:
            return self.bias
        return self.bias_superposition.superpose(self.bias, weights)

    def forward_mixture(self, x: Tensor, weights: Tensor) -> Tensor:
        superposed_weight = self.weight_superposition.superpose(self.weight, weights)
        return conv2d(
            x,
            superposed_weight,
            self._mixture_bias(weights),
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )

    def candidate_weight(self, index: int) -> Tensor:
        """Return candidate ``index``'s slice of the super kernel (no padding, no scaling)."""
        return self.weight_superposition.select(self.weight, index)

    def candidate_groups(self, index: int) -> int:
        """Return the group count candidate ``index`` convolves with."""
        return self.in_sizes[index] if self.depthwise else self.groups

    def forward_candidate(self, x: Tensor, index: int, scale: Tensor | float = 1.0) -> Tensor:
        in_channels = self.in_sizes[index]
        if x.shape[1] > in_channels:
            x = x[:, :in_channels]
        weight = self.candidate_weight(index) * scale
        bias = None
        if self.bias is not None:
            bias = self.bias[: self.out_sizes[index]]
            if self.bias_weighted:
                bias = bias * scale
        padding = self.candidate_padding[index]
        return conv2d(x, weight, bias, self.stride, padding, self.dilation, self.candidate_groups(index))

    def export(self, index: int) -> nn.Conv2d:
        """Return a standalone ``nn.Conv2d`` holding a copy of candidate ``index``'s weights."""
        conv = nn.Conv2d(
            self.in_sizes[index],
            self.out_sizes[index],
            self.kernel_sizes[index],
            stride=self.stride,
            padding=self.candidate_padding[index],
            dilation=self.dilation,
            groups=self.candidate_groups(index),
            bias=self.bias is not None,
        )
        with torch.no_grad():
            conv.weight.copy_(self.candidate_weight(index))
            if self.bias is not None:
                conv.bias.copy_(self.bias[: self.out_sizes[index]])
        return conv


class EntangledLinear(EntangledLayer):
    """Linear layer whose candidates are prefix slices of the in and/or out features (jointly)."""

    def __init__(
        self,
        source: WeightSource,
        in_features: int | Sequence[int],
        out_features: int | Sequence[int],
        *,
        bias: bool = True,
        bias_weighted: bool = True,
    ) -> None:
        super().__init__(source)
        count = len(source)
        self.in_sizes = per_candidate(in_features, count, "in_features")
        self.out_sizes = per_candidate(out_features, count, "out_features")
        shape = (max(self.out_sizes), max(self.in_sizes))
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.empty(shape[0])) if bias else None
        self.bias_weighted = bias_weighted
        sliced = _sliced(0, self.out_sizes) + _sliced(1, self.in_sizes)
        if not any(d.dim == 0 for d in sliced):
            sliced.insert(0, SlicedDim(0, self.out_sizes))
        self.weight_superposition = Superposition(shape, sliced)
        self.bias_superposition = _out_dim_superposition((shape[0],), self.out_sizes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise like ``nn.Linear``."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight.shape[1])
            nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        return f"in={self.in_sizes}, out={self.out_sizes}, bias={self.bias is not None}"

    def forward_mixture(self, x: Tensor, weights: Tensor) -> Tensor:
        superposed_weight = self.weight_superposition.superpose(self.weight, weights)
        bias = self.bias
        if bias is not None and self.bias_weighted:
            bias = self.bias_superposition.superpose(bias, weights)
        return F.linear(x, superposed_weight, bias)

    def candidate_weight(self, index: int) -> Tensor:
        """Return candidate ``index``'s slice of the super weight."""
        return self.weight_superposition.select(self.weight, index)

    def forward_candidate(self, x: Tensor, index: int, scale: Tensor | float = 1.0) -> Tensor:
        in_features = self.in_sizes[index]
        if x.shape[-1] > in_features:
            x = x[..., :in_features]
        bias = None
        if self.bias is not None:
            bias = self.bias[: self.out_sizes[index]]
            if self.bias_weighted:
                bias = bias * scale
        return F.linear(x, self.candidate_weight(index) * scale, bias)

    def export(self, index: int) -> nn.Linear:
        """Return a standalone ``nn.Linear`` holding a copy of candidate ``index``'s weights."""
        linear = nn.Linear(self.in_sizes[index], self.out_sizes[index], bias=self.bias is not None)
        with torch.no_grad():
            linear.weight.copy_(self.candidate_weight(index))
            if self.bias is not None:
                linear.bias.copy_(self.bias[: self.out_sizes[index]])
        return linear
