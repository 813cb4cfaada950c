"""Once-for-All style entangled layers: the dynamic MBConv block of MobileNetV3 spaces (reference §1.7).

* :class:`TransformedKernelConv2d` -- a depthwise convolution whose candidates are (channels, kernel size)
  pairs. As in OFA, a smaller kernel is not the plain centre of the largest one: the centre ``k x k`` of the
  next larger kernel, flattened per channel, is multiplied by a learnable ``k^2 x k^2`` matrix (identity
  at initialisation): 7 -> 5 -> 3. The mixture path superposes ``sum_c w_c * pad(kernel_c)`` (channels and
  kernel zero-padded to the largest) and runs ONE convolution with the largest kernel's "same" padding.
* :class:`EntangledSqueezeExcite` -- squeeze-and-excitation whose reduce / expand 1x1 convolutions are
  channel-prefix candidates (bottleneck ``make_divisible(channels // 4, 8)``), ReLU inside, h-sigmoid gate.
* :class:`EntangledMBConv` -- inverted bottleneck 1x1 conv + BN + act, the depthwise conv (joint
  expand x kernel candidates) + BN + act, optional SE, point-linear 1x1 conv + BN, residual.

Every layer follows the :class:`EntangledLayer` contract: one-hot weights (``Mixing.index``) take the
direct path at the candidate's own width and kernel, scaled by the selected weight.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tanglenas_cli.layers.channels import expanded_channels, make_divisible, squeeze_channels
from tanglenas_cli.layers.conv import conv2d
from tanglenas_cli.layers.kernel_transform import transform_name, transformed_kernel
from tanglenas_cli.nas.choices import FixedChoice, JointChoice, WeightSource
from tanglenas_cli.nas.entangled import EntangledConv2d, EntangledLayer, per_candidate
from tanglenas_cli.nas.entangled_norm import EntangledBatchNorm2d
from tanglenas_cli.nas.superposition import SlicedDim, Superposition


class TransformedKernelConv2d(EntangledLayer):
    """Depthwise conv over (channels, kernel) candidates, smaller kernels derived by OFA's transforms.

    ``weight`` holds the largest kernel (C, 1, K, K) for the widest candidate; ``transforms`` one
    ``k^2 x k^2`` matrix per step between consecutive distinct kernel sizes. A layer with a single kernel
    size (discrete networks) has no transforms: its weight IS that kernel.
    """

    def __init__(
        self,
        source: WeightSource,
        channels: int | Sequence[int],
        kernel_size: int | Sequence[int],
        *,
        stride: int = 1,
    ) -> None:
        super().__init__(source)
        count = len(source)
        self.channel_sizes = per_candidate(channels, count, "channels")
        self.kernel_sizes = per_candidate(kernel_size, count, "kernel_size")
        self.max_channels, self.max_kernel = max(self.channel_sizes), max(self.kernel_sizes)
        self.stride = stride
        if any(k % 2 == 0 for k in self.kernel_sizes):
            raise ValueError(f"kernel sizes must be odd for 'same' padding, got {self.kernel_sizes}")
        self.kernels = sorted(set(self.kernel_sizes), reverse=True)  # largest first: the transform chain
        self.weight = nn.Parameter(torch.empty(self.max_channels, 1, self.max_kernel, self.max_kernel))
        self.transforms = nn.ParameterDict(
            {
                transform_name(a, b): nn.Parameter(torch.eye(b * b))
                for a, b in zip(self.kernels, self.kernels[1:], strict=False)
            }
        )
        # per distinct kernel size: its candidates (indices into the source) and their channel prefixes
        self.channel_superpositions = nn.ModuleList()
        for position, kernel in enumerate(self.kernels):
            members = [i for i, k in enumerate(self.kernel_sizes) if k == kernel]
            sizes = tuple(self.channel_sizes[i] for i in members)
            self.channel_superpositions.append(Superposition((self.max_channels,), [SlicedDim(0, sizes)]))
            self.register_buffer(f"members_{position}", torch.tensor(members), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise the kernel like ``nn.Conv2d``; transforms stay the identity."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def extra_repr(self) -> str:
        return (
            f"channels={self.channel_sizes}, kernel={self.kernel_sizes}, stride={self.stride}, "
            f"transforms={list(self.transforms)}"
        )

    def kernels_of(self, weight: Tensor) -> dict[int, Tensor]:
        """Return every distinct kernel size's kernel derived from ``weight`` (a channel slice of the
        super kernel): ``{K: weight, k1: T(centre(weight)), k2: T(centre(k1 kernel)), ...}``."""
        kernels = {self.max_kernel: weight}
        for larger, smaller in zip(self.kernels, self.kernels[1:], strict=False):
            matrix = self.transforms[transform_name(larger, smaller)]
            kernels[smaller] = transformed_kernel(
                kernels[larger], {transform_name(larger, smaller): matrix}, smaller
            )
        return kernels

    def superposed_weight(self, weights: Tensor) -> Tensor:
        """Return ``sum_c w_c * pad(kernel_c)``: each kernel zero-padded to K x K and to all channels."""
        weights = weights.to(self.weight.dtype)
        kernels = self.kernels_of(self.weight)
        total: Tensor | None = None
        for position, (kernel, superposition) in enumerate(
            zip(self.kernels, self.channel_superpositions, strict=True)
        ):
            members = getattr(self, f"members_{position}")
            mask = superposition.mask(weights.index_select(0, members))  # channel mask of this kernel size
            border = (self.max_kernel - kernel) // 2
            term = F.pad(kernels[kernel], (border,) * 4) * mask.view(-1, 1, 1, 1)
            total = term if total is None else total + term
        assert total is not None
        return total

    def forward_mixture(self, x: Tensor, weights: Tensor) -> Tensor:
        weight = self.superposed_weight(weights)
        return conv2d(x, weight, None, self.stride, self.max_kernel // 2, 1, self.max_channels)

    def candidate_weight(self, index: int) -> Tensor:
        """Return candidate ``index``'s kernel (channels, 1, k, k), no padding, no scaling."""
        channels, kernel = self.channel_sizes[index], self.kernel_sizes[index]
        weight = self.weight[:channels]
        if kernel == self.max_kernel:
            return weight
        return transformed_kernel(weight, dict(self.transforms.items()), kernel)

    def forward_candidate(self, x: Tensor, index: int, scale: Tensor | float = 1.0) -> Tensor:
        channels, kernel = self.channel_sizes[index], self.kernel_sizes[index]
        if x.shape[1] > channels:
            x = x[:, :channels]
        weight = self.candidate_weight(index) * scale
        return conv2d(x, weight, None, self.stride, kernel // 2, 1, channels)

    def export(self, index: int) -> nn.Conv2d:
        """Return a standalone depthwise ``nn.Conv2d`` holding candidate ``index``'s derived kernel."""
        channels, kernel = self.channel_sizes[index], self.kernel_sizes[index]
        conv = nn.Conv2d(channels, channels, kernel, self.stride, kernel // 2, groups=channels, bias=False)
        with torch.no_grad():
            conv.weight.copy_(self.candidate_weight(index))
        return conv


class EntangledSqueezeExcite(nn.Module):
    """``x * h_sigmoid(expand(relu(reduce(mean(x)))))`` with channel-prefix candidates on one source.

    Candidate ``i`` has ``channels[i]`` channels and a bottleneck of ``squeeze_channels(channels[i])``;
    reduce (bottleneck x channels) and expand (channels x bottleneck) are 1x1 convs with biases.
    """

    def __init__(self, source: WeightSource, channels: int | Sequence[int], reduction: int = 4) -> None:
        super().__init__()
        sizes = per_candidate(channels, len(source), "channels")
        bottleneck = [squeeze_channels(c, reduction) for c in sizes]
        self.reduce = EntangledConv2d(source, sizes, bottleneck, 1, bias=True)
        self.expand = EntangledConv2d(source, bottleneck, sizes, 1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        squeezed = x.mean(dim=(2, 3), keepdim=True)
        gate = F.hardsigmoid(self.expand(F.relu(self.reduce(squeezed))))
        return x * gate


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": F.relu, "h_swish": F.hardswish}


def joint_source(*sources: WeightSource) -> WeightSource:
    """Return the joint (row-major product) of ``sources``; a FixedChoice of the tuple when all are fixed."""
    if all(isinstance(s, FixedChoice) for s in sources):
        return FixedChoice(tuple(s.candidates[0] for s in sources))
    return JointChoice(list(sources))


class EntangledMBConv(nn.Module):
    """OFA's dynamic MBConv block over an expand-ratio source and a kernel-size source.

    Mid widths ``expanded_channels(in, e)`` are channel prefixes of the widest; the depthwise conv reads the
    joint (expand x kernel) source. Without any expand ratio other than 1 there is no inverted bottleneck
    (MobileNetV3's first block). ``residual`` defaults to ``stride == 1 and in == out``.
    """

    def __init__(
        self,
        expand: WeightSource,
        kernel: WeightSource,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        activation: str = "relu",
        use_se: bool = False,
        residual: bool | None = None,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}")
        self.activation_name = activation
        self.activation = ACTIVATIONS[activation]
        self.mid_channels = tuple(expanded_channels(in_channels, r) for r in expand.candidates)
        self.residual = (stride == 1 and in_channels == out_channels) if residual is None else residual
        if self.residual and (stride != 1 or in_channels != out_channels):
            raise ValueError("a residual MBConv block needs stride 1 and equal in/out channels")
        self.expand_conv: EntangledConv2d | None = None
        self.expand_norm: EntangledBatchNorm2d | None = None
        if any(r != 1 for r in expand.candidates):
            self.expand_conv = EntangledConv2d(expand, in_channels, self.mid_channels, 1)
            self.expand_norm = EntangledBatchNorm2d(expand, self.mid_channels)
        joint = joint_source(expand, kernel)
        pairs = [(i, k) for i in range(len(expand)) for k in kernel.candidates]  # row-major, expand slowest
        self.depthwise = TransformedKernelConv2d(
            joint, [self.mid_channels[i] for i, _ in pairs], [int(k) for _, k in pairs], stride=stride
        )
        self.depthwise_norm = EntangledBatchNorm2d(expand, self.mid_channels)
        self.se = EntangledSqueezeExcite(expand, self.mid_channels) if use_se else None
        self.project = EntangledConv2d(expand, self.mid_channels, out_channels, 1)
        self.project_norm = nn.BatchNorm2d(out_channels)

    def extra_repr(self) -> str:
        return f"mid={self.mid_channels}, activation={self.activation_name}, residual={self.residual}"

    def forward(self, x: Tensor) -> Tensor:
        out = x
        if self.expand_conv is not None and self.expand_norm is not None:
            out = self.activation(self.expand_norm(self.expand_conv(out)))
        out = self.activation(self.depthwise_norm(self.depthwise(out)))
        if self.se is not None:
            out = self.se(out)
        out = self.project_norm(self.project(out))
        return x + out if self.residual else out


__all__ = [
    "EntangledMBConv",
    "EntangledSqueezeExcite",
    "TransformedKernelConv2d",
    "expanded_channels",
    "make_divisible",
    "squeeze_channels",
    "transformed_kernel",
]
