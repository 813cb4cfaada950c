"""AutoFormer vision-transformer spaces (reference §3.6): `autoformer` (T) and `autoformer_s` (S).

Choices: the embedding width (all layers), the depth, and per layer the head count and MLP ratio.
Head dimension is fixed (64), q/k/v have a bias, attention uses 2-D relative positions (max distance
14) and the classifier reads the mean of the patch tokens. Everything is weight-entangled: one
super tensor per layer, candidates as prefix slices (reference §1.6); depth candidates mix the
outputs after 12, 13 and 14 blocks of one pass. There is no weight-sharing (WS) variant; single-path
training is ``--opt spos``.

The discrete network of an architecture is built from the same layer classes at exactly one size each
(:class:`FixedChoice`), so it computes what the supernet's direct path computes for that candidate.
Both are initialised as AutoFormer's (:func:`init_weights`) and use its LayerNorm eps (1e-5).

Under soft weights every layer is a superposition ``f(x; sum_c w_c pad(slice_c W))``, each weight used
once. The original applies the head weights to q, k, v a second time inside attention and re-masks the
mean pool by the embedding weights, which makes those terms quadratic in the weights; both versions are
identical under one-hot weights. ``reference_remask=true`` reproduces the original; the default keeps
the single superposition (the contract every other entangled layer of the project follows).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import Tensor, nn

from tanglenas_cli.errors import UserError, check_name
from tanglenas_cli.layers.relative_position import RelativePosition2D
from tanglenas_cli.nas.choices import FixedChoice, WeightSource
from tanglenas_cli.nas.entangled import EntangledConv2d, EntangledLinear
from tanglenas_cli.nas.superposition import SlicedDim, Superposition
from tanglenas_cli.nas.transformer import EntangledLayerNorm, EntangledSelfAttention, run_blocks
from tanglenas_cli.spaces import register_space
from tanglenas_cli.spaces.base import CostUnit, DataShape, check_rate
from tanglenas_cli.spaces.transformer_space import (
    Layers,
    Piece,
    TransformerSpace,
    attention_candidates,
    entangled_mlp,
    init_transformer_weights,
)

LAYER_NORM_EPS = 1e-5  # AutoFormer's LayerNormSuper: PyTorch's default

VARIANTS: dict[str, dict[str, tuple]] = {
    "T": {"embed": (192, 216, 240), "depth": (12, 13, 14), "heads": (3, 4), "mlp_ratio": (3.5, 4.0)},
    "S": {"embed": (320, 384, 448), "depth": (12, 13, 14), "heads": (5, 6, 7), "mlp_ratio": (3.0, 3.5, 4.0)},
    # for tests and CPU smoke runs (use with a small head_dim)
    "tiny": {"embed": (16, 24), "depth": (1, 2), "heads": (1, 2), "mlp_ratio": (2.0, 3.0)},
}


@dataclass
class AutoFormerOptions:
    """Settings of the AutoFormer spaces (ImageNet: patch 16 at 224 px; CIFAR at 32 px: patch 4)."""

    variant: str = "T"
    patch_size: int = 16
    head_dim: int = 64
    relative_position: int = 14  # max relative distance; 0 = no relative positions
    drop_path: float = 0.1
    # soft weights only (identical under one-hot ones): as the original, weight q, k, v by the head weights
    # once more inside attention and re-mask the mean pool by the embedding weights; off: superposition
    reference_remask: bool = False

    def check(self) -> None:
        check_name("AutoFormer variant", self.variant, VARIANTS)
        if self.patch_size < 1 or self.head_dim < 1 or self.relative_position < 0:
            raise UserError("AutoFormer needs patch_size >= 1, head_dim >= 1 and relative_position >= 0")
        check_rate("AutoFormer", "drop_path", self.drop_path)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), x + fc2(gelu(fc1(LN(x)))), with drop-path."""

    def __init__(self, embed: WeightSource, heads: WeightSource, ratio: WeightSource,
                 options: AutoFormerOptions, drop_path: float) -> None:  # fmt: skip
        super().__init__()
        embeds = [int(e) for e in embed.candidates]
        self.norm1 = EntangledLayerNorm(embed, embeds, eps=LAYER_NORM_EPS)
        self.attention = EntangledSelfAttention(
            *attention_candidates(embed, heads), options.head_dim,
            relative_position=options.relative_position or None, remask_heads=options.reference_remask,
        )  # fmt: skip
        self.norm2 = EntangledLayerNorm(embed, embeds, eps=LAYER_NORM_EPS)
        self.fc1, self.fc2 = entangled_mlp(embed, ratio)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attention(self.norm1(x)))
        return x + self.drop_path(self.fc2(F.gelu(self.fc1(self.norm2(x)))))


class AutoFormerNetwork(nn.Module):
    """Patch embedding + class token + positions, blocks (depth-mixed), final LN, mean pool, classifier."""

    def __init__(self, embed: WeightSource, depth: WeightSource, blocks: list[Block], in_channels: int,
                 image_size: int, num_classes: int, options: AutoFormerOptions) -> None:  # fmt: skip
        super().__init__()
        self._sources = [embed, depth]
        self.embeds = [int(e) for e in embed.candidates]
        self.depths = [int(d) for d in depth.candidates]
        width, patch = max(self.embeds), options.patch_size
        self.patch_embed = EntangledConv2d(
            embed, in_channels, self.embeds, patch, stride=patch, padding=0, bias=True
        )
        tokens = (image_size // patch) ** 2 + 1
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, width))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        sliced = [SlicedDim(0, tuple(self.embeds))] if len(set(self.embeds)) > 1 else [SlicedDim(0, (width,))]
        self.token_superposition = Superposition((width,), sliced)
        self.blocks = nn.ModuleList(blocks)
        self.norm = EntangledLayerNorm(embed, self.embeds, eps=LAYER_NORM_EPS)
        self.head = EntangledLinear(embed, self.embeds, num_classes, bias=True, bias_weighted=False)
        self.remask_pool = options.reference_remask

    def _tokens(self, x: Tensor) -> Tensor:
        embed = self._sources[0].mixing()
        patches = self.patch_embed(x).flatten(2).transpose(1, 2)
        if embed.index is not None:
            width, scale = self.embeds[embed.index], embed.weights[embed.index]
            cls, pos = self.cls_token[..., :width] * scale, self.pos_embed[..., :width] * scale
        else:
            mask = self.token_superposition.mask(embed.weights.to(patches.dtype))
            cls, pos = self.cls_token * mask, self.pos_embed * mask
        return torch.cat([cls.expand(x.shape[0], -1, -1), patches], dim=1) + pos

    def forward(self, x: Tensor) -> Tensor:
        x = self._tokens(x)
        x = run_blocks(self.blocks, x, self._sources[1].mixing(), self.depths)
        return self.head(self.pool(self.norm(x)))

    def pool(self, x: Tensor) -> Tensor:
        """Return the mean of the patch tokens; with ``reference_remask`` and soft embedding weights, the
        original's weighted sum of masked means ``sum_e w_e pad(mean(x[..., :e]))`` (= mean * mask)."""
        pooled = x[:, 1:].mean(dim=1)
        embed = self._sources[0].mixing()
        if self.remask_pool and embed.index is None:
            pooled = pooled * self.token_superposition.mask(embed.weights.to(pooled.dtype))
        return pooled


def init_weights(network: AutoFormerNetwork) -> None:
    """Initialise ``network`` as AutoFormer's ``_init_weights`` does its supernet and subnets.

    Linear layers (q/k/v, attention projection, MLP, classifier): weights trunc_normal(std 0.02), biases
    0; LayerNorms: weight 1, bias 0. The class token, position embedding and relative-position tables
    are trunc_normal(0.02) when built (as timm's ViT); the patch embedding keeps ``nn.Conv2d``'s default,
    which the original's plain ``Conv2d`` also keeps. Prefix slices of a super tensor drawn this way have
    the same distribution as the discrete layer of that size, so supernet and subnets start alike.
    """
    init_transformer_weights(network, lambda weight: nn.init.trunc_normal_(weight, std=0.02))


class AutoFormerSpace(TransformerSpace):
    """AutoFormer (ViT) space; ``variant`` picks the choice lists (T, S, or tiny for tests)."""

    Options = AutoFormerOptions
    VARIANTS = VARIANTS
    default_dataset = "cifar10"
    profile_data = DataShape(num_classes=10, input_shape=(3, 224, 224))  # the paper's CIFAR runs: 224 px

    def _image_size(self) -> int:
        _, height, width = self.data.input_shape
        if height != width or height % self.options.patch_size:
            raise UserError(
                f"{self.name} needs square images divisible by patch_size={self.options.patch_size}, "
                f"got {height}x{width} (set space_options.patch_size)"
            )
        return height

    def no_weight_decay(self, model: nn.Module) -> set[str]:
        """AutoFormer's exemptions: the class token, the position embedding and the relative-position tables
        (1-d parameters follow ``weight_optimizer.no_decay_1d``, on in the presets, as the original)."""
        names = {"cls_token", "pos_embed"}
        for prefix, module in model.named_modules():
            if isinstance(module, RelativePosition2D):
                names.update(f"{prefix}.{name}" for name, _ in module.named_parameters())
        return names

    def _network(self, embed: WeightSource, depth: WeightSource, layers: Layers) -> nn.Module:
        rates = torch.linspace(0, self.options.drop_path, len(layers)).tolist() if layers else []
        blocks = [
            Block(embed, heads, ratio, self.options, rate)
            for (heads, ratio), rate in zip(layers, rates, strict=True)
        ]
        network = AutoFormerNetwork(embed, depth, blocks, self.data.input_shape[0], self._image_size(),
                                    self.data.num_classes, self.options)  # fmt: skip
        init_weights(network)
        return network

    def cost_units(self) -> list[CostUnit]:
        """Units: (embed) the network without blocks (patch embedding, class token, positions, final norm,
        classifier) on an image; per layer (embed, heads, MLP ratio) a block on the tokens, plus the depth
        for layers some depth leaves out. The relative-position tables are in their blocks."""
        image = self._image_size()
        tokens = (image // self.options.patch_size) ** 2 + 1

        def stem(embed: Any) -> Piece:
            network = self._network(FixedChoice(embed), FixedChoice(0), [])
            return network, torch.zeros(1, self.data.input_shape[0], image, image)

        def block(embed: Any, heads: Any, ratio: Any) -> Piece:
            fixed = (FixedChoice(embed), FixedChoice(heads), FixedChoice(ratio))
            return Block(*fixed, self.options, 0.0), torch.zeros(1, tokens, int(embed))

        return self.layer_cost_units(stem, block)


@register_space("autoformer")
class AutoFormerTSpace(AutoFormerSpace):
    """AutoFormer-T: embed {192, 216, 240}, depth {12, 13, 14}, heads {3, 4}, MLP ratio {3.5, 4}."""

    tiny_options: ClassVar[Mapping[str, Any]] = {"variant": "tiny", "patch_size": 4, "head_dim": 8}


@dataclass
class AutoFormerSOptions(AutoFormerOptions):
    """Settings of AutoFormer-S (the same as T but the S choice lists)."""

    variant: str = "S"


@register_space("autoformer_s")
class AutoFormerSSpace(AutoFormerSpace):
    """AutoFormer-S: embed {320, 384, 448}, depth {12, 13, 14}, heads {5, 6, 7}, MLP ratio {3, 3.5, 4}."""

    default_dataset = "imagefolder"  # an ImageNet image folder: the space of the paper's ImageNet results

    tiny_options: ClassVar[Mapping[str, Any]] = {
        "variant": "tiny",
        "patch_size": 4,
        "head_dim": 8,
        "relative_position": 0,
    }
    Options = AutoFormerSOptions
