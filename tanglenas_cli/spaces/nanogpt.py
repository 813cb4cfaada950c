"""The nanoGPT language-model space (reference §3.8).

Choices: depth {5, 6, 7}, embedding width {384, 576, 768} (all layers), and per layer the head count
{6, 8, 12} (head dimension = width / heads) and the MLP ratio {2, 3, 4}. Block 224, GPT-2 vocabulary
(50,257 padded to 50,304), no biases, GELU (tanh), dropout, token embedding tied with the output head.
Everything is weight-entangled; depth candidates mix the outputs after 5, 6 and 7 blocks.

Inputs are token ids ``(B, T)``; the network returns next-token logits ``(B, T, V)``. The discrete
network of an architecture uses the same layers at exactly one size (:class:`FixedChoice`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tanglenas_cli.errors import UserError
from tanglenas_cli.nas import (
    Choice,
    EntangledEmbedding,
    EntangledLayerNorm,
    EntangledLinear,
    FixedChoice,
    JointChoice,
    WeightSource,
    mix_depths,
)
from tanglenas_cli.nas.superposition import SlicedDim, Superposition
from tanglenas_cli.nas.transformer import EntangledWidthAttention
from tanglenas_cli.spaces import register_space
from tanglenas_cli.spaces.base import SearchSpace, inherit_prefix_slices

VARIANTS: dict[str, dict[str, tuple]] = {
    "paper": {"embed": (384, 576, 768), "depth": (5, 6, 7), "heads": (6, 8, 12), "mlp_ratio": (2, 3, 4)},
    "tiny": {
        "embed": (12, 24),
        "depth": (1, 2),
        "heads": (2, 3),
        "mlp_ratio": (2, 3),
    },  # tests, CPU smoke runs
}


@dataclass
class NanoGPTOptions:
    """Settings of the nanoGPT space (the block size and vocabulary come from the data)."""

    variant: str = "paper"
    dropout: float = 0.2

    def check(self) -> None:
        if self.variant not in VARIANTS:
            raise UserError(f"unknown nanoGPT variant {self.variant!r}; choose from {', '.join(VARIANTS)}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"nanoGPT needs 0 <= dropout < 1, got {self.dropout}")


def _joint(*sources: WeightSource) -> WeightSource:
    if all(isinstance(s, FixedChoice) for s in sources):
        return FixedChoice(tuple(s.candidates[0] for s in sources))
    return JointChoice(list(sources))


class GPTBlock(nn.Module):
    """x + attn(LN(x)), x + fc2(gelu(fc1(LN(x)))), with dropout on both branches."""

    def __init__(self, embed: WeightSource, heads: WeightSource, ratio: WeightSource, dropout: float) -> None:
        super().__init__()
        widths = [int(e) for e in embed.candidates]
        attention = list(itertools.product(embed.candidates, heads.candidates))
        mlp = list(itertools.product(embed.candidates, ratio.candidates))
        hidden = [int(e * r) for e, r in mlp]
        self.norm1 = EntangledLayerNorm(embed, widths, bias=False)
        self.attention = EntangledWidthAttention(
            _joint(embed, heads), [e for e, _ in attention], [h for _, h in attention]
        )
        self.norm2 = EntangledLayerNorm(embed, widths, bias=False)
        source = _joint(embed, ratio)
        self.fc1 = EntangledLinear(source, [e for e, _ in mlp], hidden, bias=False)
        self.fc2 = EntangledLinear(source, hidden, [e for e, _ in mlp], bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.dropout(self.attention(self.norm1(x)))
        return x + self.dropout(self.fc2(F.gelu(self.fc1(self.norm2(x)), approximate="tanh")))


class GPTNetwork(nn.Module):
    """Token + position embeddings, blocks (depth-mixed), final LN, head tied to the token embedding."""

    def __init__(self, embed: WeightSource, depth: WeightSource, blocks: list[GPTBlock], vocab: int,
                 block_size: int, dropout: float) -> None:  # fmt: skip
        super().__init__()
        self._sources = [embed, depth]
        self.widths = [int(e) for e in embed.candidates]
        self.depths = [int(d) for d in depth.candidates]
        self.block_size = block_size
        self.tokens = EntangledEmbedding(embed, vocab, self.widths)
        self.positions = EntangledEmbedding(embed, block_size, self.widths)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(blocks)
        self.norm = EntangledLayerNorm(embed, self.widths, bias=False)
        width = max(self.widths)
        sliced = SlicedDim(1, tuple(self.widths)) if len(set(self.widths)) > 1 else SlicedDim(0, (vocab,))
        self.head_superposition = Superposition((vocab, width), [sliced])

    def forward(self, idx: Tensor) -> Tensor:
        if idx.shape[1] > self.block_size:
            raise ValueError(f"sequence of {idx.shape[1]} tokens exceeds the block size {self.block_size}")
        positions = torch.arange(idx.shape[1], device=idx.device)
        x = self.dropout(self.tokens(idx) + self.positions(positions))
        depth = self._sources[1].mixing()
        if depth.index is not None:
            for block in self.blocks[: self.depths[depth.index]]:
                x = block(x)
            x = x * depth.weights[depth.index]
        else:
            outputs = []
            for number, block in enumerate(self.blocks, start=1):
                x = block(x)
                if number in self.depths:
                    outputs.append(x)
            x = mix_depths(outputs, depth, self.depths)
        x = self.norm(x)
        embed = self._sources[0].mixing()
        if embed.index is not None:  # the head is the token table, tied
            return F.linear(x, self.tokens.weight[:, : self.widths[embed.index]])
        return F.linear(x, self.head_superposition.superpose(self.tokens.weight, embed.weights.to(x.dtype)))


@register_space("nanogpt")
class NanoGPTSpace(SearchSpace):
    """nanoGPT: depth, width, per-layer heads and MLP ratios of a GPT-2 style language model."""

    name = "nanogpt"
    Options = NanoGPTOptions
    default_dataset = "tinystories"
    supports_ws = False
    task = "language_model"

    @property
    def table(self) -> dict[str, tuple]:
        """The choice lists of this space's variant."""
        return VARIANTS[self.options.variant]

    def _network(
        self, embed: WeightSource, depth: WeightSource, layers: list[tuple[WeightSource, WeightSource]]
    ):
        blocks = [GPTBlock(embed, heads, ratio, self.options.dropout) for heads, ratio in layers]
        vocab, block_size = self.data.num_classes, self.data.input_shape[0]
        return GPTNetwork(embed, depth, blocks, vocab, block_size, self.options.dropout)

    def build_supernet(self, entangle: bool = True) -> nn.Module:
        if not entangle:
            raise UserError("nanogpt has weight entanglement only (no --ws); --opt spos trains single paths")
        table = self.table
        embed, depth = Choice("embed", table["embed"]), Choice("depth", table["depth"])
        layers = [
            (Choice(f"layer{i}.heads", table["heads"]), Choice(f"layer{i}.mlp_ratio", table["mlp_ratio"]))
            for i in range(max(table["depth"]))
        ]
        network = self._network(embed, depth, layers)
        choices = [embed, depth, *(c for pair in layers for c in pair)]
        network.choices = nn.ModuleDict({c.name.replace(".", "_"): c for c in choices})
        return network

    def derive(self, choices: Mapping[str, Choice]) -> dict[str, Any]:
        depth = int(choices["depth"].derive())
        return {
            "num_layers": depth,
            "embed_dim": int(choices["embed"].derive()),
            "num_heads": [int(choices[f"layer{i}.heads"].derive()) for i in range(depth)],
            "mlp_ratio": [int(choices[f"layer{i}.mlp_ratio"].derive()) for i in range(depth)],
        }

    def validate(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        table = self.table
        keys = {"num_layers", "embed_dim", "num_heads", "mlp_ratio"}
        if not isinstance(arch, Mapping) or set(arch) != keys:
            raise UserError(f"a nanogpt architecture needs exactly {', '.join(sorted(keys))}")
        depth, embed, heads, ratios = (
            arch["num_layers"],
            arch["embed_dim"],
            arch["num_heads"],
            arch["mlp_ratio"],
        )
        if embed not in table["embed"] or depth not in table["depth"]:
            raise UserError(
                f"embed_dim must be one of {table['embed']} and num_layers one of {table['depth']}"
            )
        if (
            not isinstance(heads, list)
            or not isinstance(ratios, list)
            or len(heads) != depth
            or len(ratios) != depth
        ):
            raise UserError(f"num_heads and mlp_ratio must be lists of {depth} values (one per layer)")
        if any(h not in table["heads"] for h in heads) or any(r not in table["mlp_ratio"] for r in ratios):
            raise UserError(f"heads must be in {table['heads']} and mlp ratios in {table['mlp_ratio']}")
        return {"num_layers": int(depth), "embed_dim": int(embed), "num_heads": [int(h) for h in heads],
                "mlp_ratio": [int(r) for r in ratios]}  # fmt: skip

    def build_network(self, arch: Mapping[str, Any]) -> nn.Module:
        arch = self.validate(arch)
        layers = [
            (FixedChoice(h), FixedChoice(r))
            for h, r in zip(arch["num_heads"], arch["mlp_ratio"], strict=True)
        ]
        return self._network(FixedChoice(arch["embed_dim"]), FixedChoice(arch["num_layers"]), layers)

    def inherit_weights(self, supernet_state: Mapping[str, Any], network: nn.Module) -> None:
        inherit_prefix_slices(supernet_state, network)

    def largest_architecture(self) -> dict[str, Any]:
        table = self.table
        depth = max(table["depth"])
        return {"num_layers": depth, "embed_dim": max(table["embed"]),
                "num_heads": [max(table["heads"])] * depth,
                "mlp_ratio": [max(table["mlp_ratio"])] * depth}  # fmt: skip

    def describe(self, arch: Mapping[str, Any]) -> str:
        arch = self.validate(arch)
        return (f"{arch['num_layers']} layers, embed {arch['embed_dim']}, heads {arch['num_heads']}, "
                f"mlp {arch['mlp_ratio']}")  # fmt: skip
