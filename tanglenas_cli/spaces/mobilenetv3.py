"""The MobileNetV3 / Once-for-All space (reference §1.7, §3.7), weight-entangled.

Fixed parts: 3x3 stride-2 conv -> 16 + BN + h-swish; MBConv k3 e1 16 -> 16 (residual); then five searchable
stages of widths 24, 40, 80, 112, 160 (strides 2, 2, 2, 1, 2; activations relu, relu, h-swish x 3;
squeeze-and-excitation in stages 2, 4, 5), up to four blocks each (the first has the stride and no
residual, the others are residual); 1x1 conv -> 960 + BN + h-swish, global
average pool, 1x1 conv -> 1280 + h-swish (no BN, no bias, as OFA), dropout, linear classifier. Widths are
``make_divisible(width * width_mult, 8)``. The ``tiny`` variant (tests, CPU smoke runs on 32 px) has
narrow widths, kernels {3, 5}, expand ratios {3, 4}, depths {1, 2} and a total stride of 8.

Choices: per block a kernel size {3, 5, 7} and an expand ratio {3, 4, 6} (20 blocks each), per stage a
depth {2, 3, 4}. Every block is an :class:`EntangledMBConv`: mid widths are channel prefixes, the
depthwise conv superposes the joint (expand x kernel) candidates with OFA's kernel transforms; depth mixes
the outputs after 2, 3 and 4 blocks of one pass. Weight entanglement only (no WS variant).

Architecture: ``{"kernel_size": [[k per block] per stage], "expand_ratio": [[e ...] ...], "depth": [d ...]}``
with the maximum number of blocks listed per stage (blocks beyond a stage's depth are ignored).

The discrete network uses the same layer classes at exactly one size (:class:`FixedChoice`); its depthwise
convs hold plain k x k kernels. ``inherit_weights`` derives them from the supernet's largest kernels through
the transform matrices (the supernet's own computation), so an inherited network computes exactly the
supernet's sub-network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tanglenas_cli.errors import UserError, check_name
from tanglenas_cli.layers.channels import make_divisible
from tanglenas_cli.layers.conv import Conv2d
from tanglenas_cli.layers.kernel_transform import transformed_kernel
from tanglenas_cli.nas.choices import Choice, FixedChoice, WeightSource
from tanglenas_cli.nas.ofa import EntangledMBConv, TransformedKernelConv2d
from tanglenas_cli.nas.transformer import run_blocks
from tanglenas_cli.spaces import register_space
from tanglenas_cli.spaces.base import CostUnit, DataShape, SearchSpace, check_rate, inherit_prefix_slices

STAGES = 5
STAGE_ACTIVATIONS = ("relu", "relu", "h_swish", "h_swish", "h_swish")
STAGE_SE = (False, True, False, True, True)

VARIANTS: dict[str, dict[str, Any]] = {
    "paper": {
        "stem": 16, "first_block": 16, "widths": (24, 40, 80, 112, 160), "final_expand": 960, "last": 1280,
        "kernel_size": (3, 5, 7), "expand_ratio": (3, 4, 6), "depth": (2, 3, 4), "strides": (2, 2, 2, 1, 2),
    },
    # tests and CPU smoke runs on 32 px: a forward/backward of 2 x 3 x 32 x 32 takes milliseconds; total
    # stride 8 (not 32) so that the last maps are 4 x 4 and a 5 x 5 kernel still differs from a 3 x 3 one
    "tiny": {
        "stem": 8, "first_block": 8, "widths": (8, 16, 16, 24, 32), "final_expand": 64, "last": 128,
        "kernel_size": (3, 5), "expand_ratio": (3, 4), "depth": (1, 2), "strides": (1, 2, 1, 2, 1),
    },
}  # fmt: skip
ARCH_KEYS = ("kernel_size", "expand_ratio", "depth")


@dataclass
class MobileNetV3Options:
    """Settings of the MobileNetV3 space."""

    variant: str = "paper"
    dropout: float = 0.1
    width_mult: float = 1.0

    def check(self) -> None:
        check_name("mobilenetv3 variant", self.variant, VARIANTS)
        check_rate("mobilenetv3", "dropout", self.dropout)
        if not self.width_mult > 0:
            raise UserError(f"mobilenetv3 needs width_mult > 0, got {self.width_mult}")


class Stage(nn.Module):
    """Up to ``max(depths)`` MBConv blocks; the depth source mixes the outputs after each candidate depth."""

    def __init__(self, depth: WeightSource, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        self._depth = [depth]  # a list keeps the Choice out of this module's state_dict
        self.depths = [int(d) for d in depth.candidates]
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> Tensor:
        return run_blocks(self.blocks, x, self._depth[0].mixing(), self.depths)


class MobileNetV3(nn.Module):
    """Stem, first block, five stages, final expand, pool, feature mix, dropout, classifier."""

    def __init__(self, in_channels: int, widths: Mapping[str, Any], stages: Sequence[Stage],
                 first_block: nn.Module, num_classes: int, dropout: float) -> None:  # fmt: skip
        super().__init__()
        stem, last_stage = widths["stem"], widths["widths"][-1]
        self.stem = Conv2d(in_channels, stem, 3, stride=2, padding=1, bias=False)
        self.stem_norm = nn.BatchNorm2d(stem)
        self.first_block = first_block
        self.stages = nn.ModuleList(stages)
        self.final_expand = Conv2d(last_stage, widths["final_expand"], 1, bias=False)
        self.final_norm = nn.BatchNorm2d(widths["final_expand"])
        self.feature_mix = Conv2d(widths["final_expand"], widths["last"], 1, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(widths["last"], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.hardswish(self.stem_norm(self.stem(x)))
        x = self.first_block(x)
        for stage in self.stages:
            x = stage(x)
        x = F.hardswish(self.final_norm(self.final_expand(x)))
        x = F.hardswish(self.feature_mix(x.mean(dim=(2, 3), keepdim=True)))
        return self.classifier(self.dropout(x.flatten(1)))


def _name(stage: int, block: int | None, what: str) -> str:
    return f"stage{stage}.{what}" if block is None else f"stage{stage}.block{block}.{what}"


@register_space("mobilenetv3")
class MobileNetV3Space(SearchSpace):
    """MobileNetV3 (OFA): per block kernel size and expand ratio, per stage depth."""

    profile_data = DataShape(num_classes=1000, input_shape=(3, 224, 224))  # ImageNet
    tiny_data = DataShape(num_classes=10, input_shape=(3, 32, 32))
    tiny_options: ClassVar[Mapping[str, Any]] = {"variant": "tiny"}
    Options = MobileNetV3Options
    default_dataset = "imagenet"
    supports_ws = False

    @property
    def table(self) -> dict[str, Any]:
        """The variant's choice lists."""
        return VARIANTS[self.options.variant]

    @property
    def widths(self) -> dict[str, Any]:
        """The variant's widths times ``width_mult``, made divisible by 8."""
        table, mult = self.table, self.options.width_mult
        scaled = {
            key: make_divisible(table[key] * mult) for key in ("stem", "first_block", "final_expand", "last")
        }
        scaled["widths"] = tuple(make_divisible(w * mult) for w in table["widths"])
        return scaled

    @property
    def max_depth(self) -> int:
        return max(self.table["depth"])

    # -- networks ------------------------------------------------------------------------------
    def _network(
        self, depths: Sequence[WeightSource], blocks: Sequence[Sequence[tuple[WeightSource, WeightSource]]]
    ) -> nn.Module:
        widths = self.widths
        first = widths["first_block"]
        first_block = EntangledMBConv(
            FixedChoice(1), FixedChoice(3), widths["stem"], first, activation="relu"
        )
        stages, in_channels = [], first
        for s, (depth, stage_blocks) in enumerate(zip(depths, blocks, strict=True)):
            out_channels, modules = widths["widths"][s], []
            for b, (kernel, expand) in enumerate(stage_blocks):
                modules.append(self._block(s, b, in_channels, kernel, expand))
                in_channels = out_channels
            stages.append(Stage(depth, modules))
        return MobileNetV3(self.data.input_shape[0], widths, stages, first_block, self.data.num_classes,
                           self.options.dropout)  # fmt: skip

    def _block(
        self, s: int, b: int, in_channels: int, kernel: WeightSource, expand: WeightSource
    ) -> nn.Module:
        """Return block ``b`` of stage ``s`` (the first has the stride and no residual)."""
        return EntangledMBConv(
            expand,
            kernel,
            in_channels,
            self.widths["widths"][s],
            stride=self.table["strides"][s] if b == 0 else 1,
            activation=STAGE_ACTIVATIONS[s],
            use_se=STAGE_SE[s],
            residual=b > 0,
        )

    def build_supernet(self, entangle: bool = True) -> nn.Module:
        if not entangle:
            raise UserError(
                "mobilenetv3 has weight entanglement only (no --ws); --opt spos trains single paths"
            )
        table, choices = self.table, []
        depths, blocks = [], []
        for s in range(STAGES):
            depth = Choice(_name(s, None, "depth"), table["depth"])
            stage_blocks = []
            for b in range(self.max_depth):
                kernel = Choice(_name(s, b, "kernel_size"), table["kernel_size"])
                expand = Choice(_name(s, b, "expand_ratio"), table["expand_ratio"])
                stage_blocks.append((kernel, expand))
                choices += [kernel, expand]
            choices.append(depth)
            depths.append(depth)
            blocks.append(stage_blocks)
        network = self._network(depths, blocks)
        network.choices = nn.ModuleDict({c.name.replace(".", "_"): c for c in choices})
        return network

    def build_network(self, arch: Mapping[str, Any]) -> nn.Module:
        arch = self.validate(arch)
        depths = [FixedChoice(d) for d in arch["depth"]]
        blocks = [
            [(FixedChoice(k), FixedChoice(e)) for k, e in zip(ks[:d], es[:d], strict=True)]
            for ks, es, d in zip(arch["kernel_size"], arch["expand_ratio"], arch["depth"], strict=True)
        ]
        return self._network(depths, blocks)

    def load_pretrained(self, supernet: nn.Module, path: Any) -> dict[str, Any]:
        """Initialise the supernet from a released OFA MobileNetV3 checkpoint (paper variant, width 1.0)."""
        from tanglenas_cli.spaces.ofa_checkpoint import load_ofa_checkpoint

        return load_ofa_checkpoint(supernet, path)

    def inherit_weights(self, supernet_state: Mapping[str, Any], network: nn.Module) -> None:
        """Prefix slices of every tensor; depthwise kernels derived through the supernet's transforms."""
        state = dict(supernet_state)
        with torch.no_grad():
            for name, module in network.named_modules():
                if not isinstance(module, TransformedKernelConv2d):
                    continue
                key, prefix = f"{name}.weight", f"{name}.transforms."
                weight = supernet_state.get(key)
                if weight is None:
                    raise UserError(f"the supernet checkpoint has no tensor {key!r} for this architecture")
                transforms = {k[len(prefix) :]: v for k, v in supernet_state.items() if k.startswith(prefix)}
                try:
                    state[key] = transformed_kernel(weight, transforms, module.max_kernel)
                except KeyError as error:
                    size = module.max_kernel
                    raise UserError(
                        f"{key!r}: cannot derive a {size}x{size} kernel: {error.args[0]}"
                    ) from None
        inherit_prefix_slices(state, network)

    def cost_units(self) -> list[CostUnit]:
        """Every block of every stage on its input: picks (kernel size, expand ratio, stage depth); a block
        at an index >= the depth is left out. Stem, first block, final expand and head are constant."""
        widths, (_, height, width) = self.widths, self.data.input_shape
        height, width = (height + 1) // 2, (width + 1) // 2  # the stride-2 stem (3x3, padding 1)
        in_channels, units = widths["first_block"], []
        for s in range(STAGES):
            for b in range(self.max_depth):
                shape = (1, in_channels, height, width)

                def build(kernel: int, expand: float, depth: int, s: int = s, b: int = b,
                          shape: tuple[int, ...] = shape) -> tuple[nn.Module, Tensor] | None:  # fmt: skip
                    if b >= depth:
                        return None
                    block = self._block(s, b, shape[1], FixedChoice(kernel), FixedChoice(expand))
                    return block, torch.zeros(shape)

                names = (_name(s, b, "kernel_size"), _name(s, b, "expand_ratio"), _name(s, None, "depth"))
                units.append(CostUnit(names, build))
                in_channels = widths["widths"][s]
                if b == 0:  # the first block's stride-s "same" depthwise conv: n -> ceil(n / s)
                    stride = self.table["strides"][s]
                    height, width = -(-height // stride), -(-width // stride)
        return units

    # -- architectures ---------------------------------------------------------------------------
    def arch_of(self, picks: Mapping[str, Any]) -> dict[str, Any]:
        def per_block(key: str) -> list[list[Any]]:
            return [[picks[_name(s, b, key)] for b in range(self.max_depth)] for s in range(STAGES)]

        depth = [picks[_name(s, None, "depth")] for s in range(STAGES)]
        return self.validate(
            {
                "kernel_size": per_block("kernel_size"),
                "expand_ratio": per_block("expand_ratio"),
                "depth": depth,
            }
        )

    def picks_of(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        arch = self.validate(arch)
        picks = {_name(s, None, "depth"): arch["depth"][s] for s in range(STAGES)}
        for key in ("kernel_size", "expand_ratio"):
            picks.update(
                {_name(s, b, key): arch[key][s][b] for s in range(STAGES) for b in range(self.max_depth)}
            )
        return picks

    def _value(self, key: str, value: Any, where: str) -> Any:
        allowed = self.table[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value not in allowed:
            raise UserError(f"mobilenetv3 {where}: {key} {value!r} is not one of {list(allowed)}")
        return allowed[allowed.index(value)]

    def validate(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        """Check and normalise: per stage a depth and up to ``max depth`` kernel sizes / expand ratios (at
        least depth many); missing trailing blocks (beyond the depth) get the smallest candidates."""
        table, most = self.table, self.max_depth
        shape = (f"a mobilenetv3 architecture needs exactly {', '.join(ARCH_KEYS)}: depth a list of {STAGES} "
                 f"values from {list(table['depth'])}, kernel_size and expand_ratio {STAGES} lists of up to "
                 f"{most} values (one per block)")  # fmt: skip
        if not isinstance(arch, Mapping) or set(arch) != set(ARCH_KEYS):
            raise UserError(shape)
        depth, kernels, ratios = arch["depth"], arch["kernel_size"], arch["expand_ratio"]
        if not all(isinstance(v, list | tuple) and len(v) == STAGES for v in (depth, kernels, ratios)):
            raise UserError(shape)
        result: dict[str, Any] = {"kernel_size": [], "expand_ratio": [], "depth": []}
        for s in range(STAGES):
            d = self._value("depth", depth[s], f"stage {s + 1}")
            result["depth"].append(d)
            for key, values in (("kernel_size", kernels[s]), ("expand_ratio", ratios[s])):
                if not isinstance(values, list | tuple) or not d <= len(values) <= most:
                    raise UserError(
                        f"mobilenetv3 stage {s + 1}: {key} needs {d} to {most} values (depth {d}): {values!r}"
                    )
                checked = [self._value(key, v, f"stage {s + 1} block {b + 1}") for b, v in enumerate(values)]
                result[key].append(checked + [table[key][0]] * (most - len(checked)))
        return result

    def largest_architecture(self) -> dict[str, Any]:
        table, most = self.table, self.max_depth
        return {"kernel_size": [[max(table["kernel_size"])] * most for _ in range(STAGES)],
                "expand_ratio": [[max(table["expand_ratio"])] * most for _ in range(STAGES)],
                "depth": [most] * STAGES}  # fmt: skip

    def smallest_architecture(self) -> dict[str, Any]:
        """Return the cheapest architecture: smallest kernel, expand ratio and depth everywhere."""
        table, most = self.table, self.max_depth
        return {"kernel_size": [[min(table["kernel_size"])] * most for _ in range(STAGES)],
                "expand_ratio": [[min(table["expand_ratio"])] * most for _ in range(STAGES)],
                "depth": [min(table["depth"])] * STAGES}  # fmt: skip

    def describe(self, arch: Mapping[str, Any]) -> str:
        """``d 4,3,2,4,3 | k 7557 355 37 7777 355 | e 6436 ...`` -- per stage only the blocks in use."""
        arch = self.validate(arch)

        def stages(key: str) -> str:
            parts = []
            for values, d in zip(arch[key], arch["depth"], strict=True):
                shown = [f"{v:g}" for v in values[:d]]
                parts.append(("" if all(len(v) == 1 for v in shown) else ",").join(shown))
            return " ".join(parts)

        depth = ",".join(str(d) for d in arch["depth"])
        return f"d {depth} | k {stages('kernel_size')} | e {stages('expand_ratio')}"
