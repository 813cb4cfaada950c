"""The toy conv-macro space of TangleNAS (CIFAR-10, 6,561 architectures; reference §1.5, §3.5).

Five convolutions; layers 1-4 each choose out channels and a kernel size (3, 5, 7). Layer l+1's
input width is layer l's channel choice. WE: one 7x7 super kernel per layer, candidates are the
product (in, out, kernel) -- 9 / 27 / 27 / 27 / 3 per layer -- superposed in one convolution.
WS: one separate convolution per joint candidate (all registered, all weighted, centred padding).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from tanglenas_cli.benchmarks.toy_keys import TOY_CONV_MACRO_BENCHMARK
from tanglenas_cli.errors import UserError
from tanglenas_cli.nas.choices import Choice, JointChoice, WeightSource
from tanglenas_cli.nas.entangled import EntangledConv2d
from tanglenas_cli.nas.mixed_op import MixedOp
from tanglenas_cli.spaces import register_space
from tanglenas_cli.spaces.base import CostUnit, SearchSpace, check_rate

CHANNELS = ((8, 16, 32), (16, 32, 64), (32, 64, 128), (64, 128, 256))
KERNELS = (3, 5, 7)
LAST_CHANNELS = 256
LAST_KERNEL, LAST_PADDING = 7, 2


class SliceInput(nn.Module):
    """Feeds the first ``channels`` input channels to ``module`` (WS candidates of narrower inputs)."""

    def __init__(self, module: nn.Module, channels: int) -> None:
        super().__init__()
        self.module = module
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x[:, : self.channels])


def shared_conv(
    source: WeightSource, ins: Sequence[int], outs: Sequence[int], kernels: Sequence[int], padding: int | None
) -> MixedOp:
    """Return a weight-sharing layer: one conv per joint candidate, outputs zero-padded and mixed."""
    ops = [
        SliceInput(nn.Conv2d(i, o, k, padding=k // 2 if padding is None else padding), i)
        for i, o, k in zip(ins, outs, kernels, strict=True)
    ]
    return MixedOp(source, ops, pad_dim=1)


class ConvMacroNetwork(nn.Module):
    """conv1-relu-conv2-relu-pool-conv3-relu-drop-relu-pool-conv4-relu-conv5-drop-MLP."""

    def __init__(self, convs: list[nn.Module], flat_features: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout2d(dropout)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat_features, 256),
            nn.ReLU(),
            nn.Linear(256, 128),
            nn.ReLU(),
            nn.Linear(128, 64),
            nn.ReLU(),
            nn.Linear(64, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        conv1, conv2, conv3, conv4, conv5 = self.convs
        x = self.pool(conv2(conv1(x).relu()).relu())
        x = self.pool(self.dropout(conv3(x).relu()).relu())
        x = self.dropout(conv5(conv4(x).relu()))
        return self.head(x)


@dataclass
class ConvMacroOptions:
    """Settings of the conv-macro space."""

    dropout: float = 0.5

    def check(self) -> None:
        check_rate("toy_conv_macro", "dropout", self.dropout)


@register_space("toy_conv_macro")
class ConvMacroSpace(SearchSpace):
    """TangleNAS toy conv-macro space (channels x kernels)."""

    benchmark = TOY_CONV_MACRO_BENCHMARK
    Options = ConvMacroOptions
    default_dataset = "cifar10"

    def _flat_features(self) -> int:
        height, width = (side // 4 + 2 * LAST_PADDING - LAST_KERNEL + 1 for side in self.data.input_shape[1:])
        if height < 1 or width < 1:
            raise UserError(
                f"toy_conv_macro needs inputs of at least 12x12 pixels, got {self.data.input_shape[1:]}"
            )
        return LAST_CHANNELS * height * width

    def _network(self, convs: list[nn.Module]) -> ConvMacroNetwork:
        return ConvMacroNetwork(convs, self._flat_features(), self.data.num_classes, self.options.dropout)

    def build_supernet(self, entangle: bool = True) -> nn.Module:
        channels = [Choice(f"channels{layer + 1}", CHANNELS[layer]) for layer in range(4)]
        kernels = [Choice(f"kernel{layer + 1}", KERNELS) for layer in range(4)]
        in_channels = self.data.input_shape[0]
        convs: list[nn.Module] = []
        for layer in range(4):
            sources = (
                [channels[layer], kernels[layer]]
                if layer == 0
                else [channels[layer - 1], channels[layer], kernels[layer]]
            )
            joint = JointChoice(sources)
            if layer == 0:
                ins = [in_channels] * len(joint)
                outs, ks = (list(v) for v in zip(*joint.candidates, strict=True))
            else:
                ins, outs, ks = (list(v) for v in zip(*joint.candidates, strict=True))
            if entangle:
                convs.append(EntangledConv2d(joint, ins, outs, ks, bias=True))
            else:
                convs.append(shared_conv(joint, ins, outs, ks, None))
        last_ins = list(CHANNELS[3])
        if entangle:
            convs.append(
                EntangledConv2d(
                    channels[3],
                    last_ins,
                    LAST_CHANNELS,
                    LAST_KERNEL,
                    padding=LAST_PADDING,
                    bias=True,
                    bias_weighted=False,
                )
            )
        else:
            convs.append(
                shared_conv(channels[3], last_ins, [LAST_CHANNELS] * 3, [LAST_KERNEL] * 3, LAST_PADDING)
            )
        network = self._network(convs)
        network.choices = nn.ModuleDict({c.name: c for c in channels + kernels})
        return network

    def arch_of(self, picks: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "channels": [picks[f"channels{layer + 1}"] for layer in range(4)],
            "kernels": [picks[f"kernel{layer + 1}"] for layer in range(4)],
        }

    def picks_of(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        arch = self.validate(arch)
        picks = {f"channels{layer + 1}": channels for layer, channels in enumerate(arch["channels"])}
        return picks | {f"kernel{layer + 1}": kernel for layer, kernel in enumerate(arch["kernels"])}

    def validate(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(arch, Mapping) or set(arch) != {"channels", "kernels"}:
            raise UserError("a toy_conv_macro architecture needs exactly the keys 'channels' and 'kernels'")
        channels, kernels = arch["channels"], arch["kernels"]
        if (
            not isinstance(channels, list)
            or len(channels) != 4
            or any(c not in allowed for c, allowed in zip(channels, CHANNELS, strict=False))
        ):
            raise UserError(
                f"toy_conv_macro channels must be 4 values from {[list(c) for c in CHANNELS]}, "
                f"got {channels!r}"
            )
        if not isinstance(kernels, list) or len(kernels) != 4 or any(k not in KERNELS for k in kernels):
            raise UserError(f"toy_conv_macro kernels must be 4 values from {list(KERNELS)}, got {kernels!r}")
        return {"channels": [int(c) for c in channels], "kernels": [int(k) for k in kernels]}

    def build_network(self, arch: Mapping[str, Any]) -> nn.Module:
        arch = self.validate(arch)
        widths = [self.data.input_shape[0], *arch["channels"]]
        convs: list[nn.Module] = [
            nn.Conv2d(widths[layer], widths[layer + 1], k, padding=k // 2)
            for layer, k in enumerate(arch["kernels"])
        ]
        convs.append(nn.Conv2d(widths[4], LAST_CHANNELS, LAST_KERNEL, padding=LAST_PADDING))
        return self._network(convs)

    def benchmark_key(self, arch: Mapping[str, Any]) -> str:
        arch = self.validate(arch)
        return str([arch["channels"], arch["kernels"]])

    def cost_units(self) -> list[CostUnit]:
        """The five convolutions: each on its input width (the previous layer's channel choice) and size."""
        c_in, height, width = self.data.input_shape
        sizes = [(height, width)] * 2 + [(height // 2, width // 2)] + [(height // 4, width // 4)] * 2
        units = []
        for layer in range(4):
            size = sizes[layer]
            names = (f"channels{layer + 1}", f"kernel{layer + 1}")
            if layer == 0:

                def first(c_out: int, kernel: int, size: tuple = size) -> tuple:
                    return nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2), torch.zeros(1, c_in, *size)

                units.append(CostUnit(names, first))
                continue

            def conv(c_prev: int, c_out: int, kernel: int, size: tuple = size) -> tuple:
                return nn.Conv2d(c_prev, c_out, kernel, padding=kernel // 2), torch.zeros(1, c_prev, *size)

            units.append(CostUnit((f"channels{layer}", *names), conv))

        def last(c_prev: int) -> tuple:
            module = nn.Conv2d(c_prev, LAST_CHANNELS, LAST_KERNEL, padding=LAST_PADDING)
            return module, torch.zeros(1, c_prev, *sizes[4])

        return [*units, CostUnit(("channels4",), last)]

    def largest_architecture(self) -> dict[str, Any]:
        return {"channels": [max(c) for c in CHANNELS], "kernels": [max(KERNELS)] * 4}

    def all_architectures(self) -> list[dict[str, Any]]:
        return [
            {"channels": list(channels), "kernels": list(kernels)}
            for channels in itertools.product(*CHANNELS)
            for kernels in itertools.product(KERNELS, repeat=4)
        ]

    def describe(self, arch: Mapping[str, Any]) -> str:
        arch = self.validate(arch)
        return f"channels {arch['channels']}, kernels {arch['kernels']}"
