"""The nanoGPT language-model space (reference §3.8).

Choices: depth {5, 6, 7}, embedding width {384, 576, 768} (all layers), and per layer the head count
{6, 8, 12} (head dimension = width / heads) and the MLP ratio {2, 3, 4}. Block 224, GPT-2 vocabulary
(50,257 padded to 50,304: ``vocab_multiple``), no biases, GELU (tanh), dropout, token embedding tied
with the output head. Everything is weight-entangled; depth candidates mix the outputs after 5, 6
and 7 blocks.

Inputs are token ids ``(B, T)``; the network returns next-token logits ``(B, T, V)``. The discrete
network of an architecture uses the same layers at exactly one size (:class:`FixedChoice`). Both are
initialised as nanoGPT's (:func:`init_weights`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tanglenas_cli.errors import UserError, check_name
from tanglenas_cli.nas.choices import FixedChoice, WeightSource, arch_parameters
from tanglenas_cli.nas.entangled import EntangledLinear
from tanglenas_cli.nas.superposition import SlicedDim, Superposition
from tanglenas_cli.nas.transformer import (
    EntangledEmbedding,
    EntangledLayerNorm,
    EntangledWidthAttention,
    run_blocks,
)
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
    # the vocabulary is padded up to a multiple of this (GPT-2's 50,257 -> 50,304, as nanoGPT); 1: none
    vocab_multiple: int = 64

    def check(self) -> None:
        if self.vocab_multiple < 1:
            raise UserError(f"nanoGPT needs vocab_multiple >= 1, got {self.vocab_multiple}")
        check_name("nanoGPT variant", self.variant, VARIANTS)
        check_rate("nanoGPT", "dropout", self.dropout)


class GPTBlock(nn.Module):
    """x + attn(LN(x)), x + fc2(gelu(fc1(LN(x)))), with dropout on both branches."""

    def __init__(self, embed: WeightSource, heads: WeightSource, ratio: WeightSource, dropout: float) -> None:
        super().__init__()
        widths = [int(e) for e in embed.candidates]
        self.norm1 = EntangledLayerNorm(embed, widths, bias=False)
        self.attention = EntangledWidthAttention(*attention_candidates(embed, heads))
        self.norm2 = EntangledLayerNorm(embed, widths, bias=False)
        self.fc1, self.fc2 = entangled_mlp(embed, ratio, bias=False)
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
        x = run_blocks(self.blocks, x, self._sources[1].mixing(), self.depths)
        x = self.norm(x)
        embed = self._sources[0].mixing()
        if embed.index is not None:  # the head is the token table, tied
            return F.linear(x, self.tokens.weight[:, : self.widths[embed.index]])
        return F.linear(x, self.head_superposition.superpose(self.tokens.weight, embed.weights.to(x.dtype)))


def init_weights(network: GPTNetwork, layers: int) -> None:
    """Initialise ``network`` as nanoGPT does: every linear weight (q/k/v, MLP) and both embedding tables
    (the token table is also the tied head) from N(0, 0.02), biases 0, LayerNorm weights 1; the last
    linear layer of each residual branch (attention and MLP ``c_proj``) from N(0, 0.02 / sqrt(2 * layers)).

    ``layers`` is the depth the network is built for: the largest candidate depth for the supernet,
    the architecture's depth for a discrete network (nanoGPT's ``n_layer``).
    """
    init_transformer_weights(network, lambda weight: nn.init.normal_(weight, std=0.02))
    residual_std = 0.02 / math.sqrt(2 * layers)
    for block in network.blocks:
        nn.init.normal_(block.attention.proj.weight, std=residual_std)
        nn.init.normal_(block.fc2.weight, std=residual_std)


@register_space("nanogpt")
class NanoGPTSpace(TransformerSpace):
    """nanoGPT: depth, width, per-layer heads and MLP ratios of a GPT-2 style language model."""

    profile_data = DataShape(num_classes=50304, input_shape=(224,))  # GPT-2 vocabulary (padded), 224 tokens
    tiny_data = DataShape(num_classes=10, input_shape=(8,))  # vocabulary 10, block of 8 tokens
    tiny_options: ClassVar[Mapping[str, Any]] = {"variant": "tiny", "dropout": 0.0, "vocab_multiple": 1}
    Options = NanoGPTOptions
    VARIANTS = VARIANTS
    DEPTH_KEY = "num_layers"
    RATIO_TYPE = int
    default_dataset = "tinystories"
    task = "language_model"

    def no_weight_decay(self, model: nn.Module) -> set[str]:
        """nanoGPT decays the weights of its linear layers (q/k/v, projections, MLP) only: the token table
        (also the tied head), the position table and the LayerNorms get none, whatever ``no_decay_1d``."""
        decayed = {id(p) for p in arch_parameters(model)}  # logits are not weights at all
        for module in model.modules():
            if isinstance(module, EntangledLinear):
                decayed.add(id(module.weight))
            elif isinstance(module, EntangledWidthAttention):
                decayed.add(id(module.qkv_weight))
        return {name for name, parameter in model.named_parameters() if id(parameter) not in decayed}

    def _vocab(self) -> int:
        multiple = self.options.vocab_multiple
        return -(-self.data.num_classes // multiple) * multiple

    def _network(self, embed: WeightSource, depth: WeightSource, layers: Layers) -> nn.Module:
        blocks = [GPTBlock(embed, heads, ratio, self.options.dropout) for heads, ratio in layers]
        block_size = self.data.input_shape[0]
        network = GPTNetwork(embed, depth, blocks, self._vocab(), block_size, self.options.dropout)
        init_weights(network, max(int(d) for d in depth.candidates))
        return network

    def cost_units(self) -> list[CostUnit]:
        """Units: (embed) the network without blocks (token and position tables, final norm, the head tied
        to the token table) on a block of token ids; per layer (embed, heads, MLP ratio) a block on the
        hidden states, plus the depth for layers some depth leaves out."""
        block_size, dropout = self.data.input_shape[0], self.options.dropout

        def stem(embed: Any) -> Piece:
            network = GPTNetwork(FixedChoice(embed), FixedChoice(0), [], self._vocab(), block_size, dropout)
            return network, torch.zeros(1, block_size, dtype=torch.long)

        def block(embed: Any, heads: Any, ratio: Any) -> Piece:
            fixed = (FixedChoice(embed), FixedChoice(heads), FixedChoice(ratio))
            return GPTBlock(*fixed, dropout), torch.zeros(1, block_size, int(embed))

        return self.layer_cost_units(stem, block)
