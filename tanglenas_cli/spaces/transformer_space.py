"""What the transformer spaces (AutoFormer, nanoGPT) share: choices of embedding width, depth and per-layer
head count and MLP ratio; derivation, validation and discrete networks from the same layers at one size.

A subclass sets ``VARIANTS`` (choice lists per ``options.variant``), the architecture's key for the depth
(``DEPTH_KEY``), the type of MLP ratios (``RATIO_TYPE``) and builds its network in :meth:`_network`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from torch import Tensor, nn

from tanglenas_cli.errors import UserError
from tanglenas_cli.nas.choices import Choice, FixedChoice, JointChoice, WeightSource
from tanglenas_cli.nas.entangled import EntangledLinear
from tanglenas_cli.nas.transformer import (
    EntangledEmbedding,
    EntangledLayerNorm,
    EntangledSelfAttention,
    EntangledWidthAttention,
)
from tanglenas_cli.spaces.base import CostUnit, SearchSpace, inherit_prefix_slices

Layers = list[tuple[WeightSource, WeightSource]]  # (heads, mlp ratio) per layer
Piece = tuple[nn.Module, Tensor]  # a cost unit's module and its input batch of one


def joint(*sources: WeightSource) -> WeightSource:
    """Return the joint source of ``sources`` (a FixedChoice of the tuple when all are fixed)."""
    if all(isinstance(s, FixedChoice) for s in sources):
        return FixedChoice(tuple(s.candidates[0] for s in sources))
    return JointChoice(list(sources))


def attention_candidates(
    embed: WeightSource, heads: WeightSource
) -> tuple[WeightSource, list[int], list[int]]:
    """Return an attention layer's joint (embed x heads) source, its candidates' widths and head counts."""
    pairs = list(itertools.product(embed.candidates, heads.candidates))
    return joint(embed, heads), [int(e) for e, _ in pairs], [int(h) for _, h in pairs]


def entangled_mlp(embed: WeightSource, ratio: WeightSource, bias: bool = True) -> tuple[nn.Module, nn.Module]:
    """Return fc1 and fc2 of a block's MLP over the joint (embed x ratio) candidates (hidden: e * r)."""
    pairs = list(itertools.product(embed.candidates, ratio.candidates))
    widths, hidden = [int(e) for e, _ in pairs], [int(e * r) for e, r in pairs]
    source = joint(embed, ratio)
    return EntangledLinear(source, widths, hidden, bias=bias), EntangledLinear(
        source, hidden, widths, bias=bias
    )


class Picked(nn.Module):
    """A cost unit's module labelled by its picks: the entangled layers do not all print their sizes, and
    the cost model measures modules of equal repr on equal inputs once."""

    def __init__(self, module: nn.Module, picks: tuple[Any, ...]) -> None:
        super().__init__()
        self.module, self.picks = module, picks

    def extra_repr(self) -> str:
        return f"picks={self.picks}"

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x)


class TransformerSpace(SearchSpace):
    """Embedding width, depth, and per layer the head count and MLP ratio; weight entanglement only."""

    VARIANTS: ClassVar[dict[str, dict[str, tuple]]] = {}
    DEPTH_KEY: ClassVar[str] = "depth"
    RATIO_TYPE: ClassVar[type] = float
    supports_ws = False

    @property
    def table(self) -> dict[str, tuple]:
        """The choice lists of this space's variant."""
        return self.VARIANTS[self.options.variant]

    def _network(self, embed: WeightSource, depth: WeightSource, layers: Layers) -> nn.Module:
        raise NotImplementedError

    def build_supernet(self, entangle: bool = True) -> nn.Module:
        if not entangle:
            raise UserError(
                f"{self.name} has weight entanglement only (no --ws); --opt spos trains single paths"
            )
        table = self.table
        embed, depth = Choice("embed", table["embed"]), Choice("depth", table["depth"])
        layers: Layers = [
            (Choice(f"layer{i}.heads", table["heads"]), Choice(f"layer{i}.mlp_ratio", table["mlp_ratio"]))
            for i in range(max(table["depth"]))
        ]
        network = self._network(embed, depth, layers)
        choices = [embed, depth, *(c for pair in layers for c in pair)]
        network.choices = nn.ModuleDict({c.name.replace(".", "_"): c for c in choices})
        return network

    def _arch(self, embed: Any, depth: Any, heads: list, ratios: list) -> dict[str, Any]:
        return {"embed_dim": int(embed), self.DEPTH_KEY: int(depth), "num_heads": [int(h) for h in heads],
                "mlp_ratio": [self.RATIO_TYPE(r) for r in ratios]}  # fmt: skip

    def arch_of(self, picks: Mapping[str, Any]) -> dict[str, Any]:
        depth = int(picks["depth"])
        heads = [picks[f"layer{i}.heads"] for i in range(depth)]
        ratios = [picks[f"layer{i}.mlp_ratio"] for i in range(depth)]
        return self._arch(picks["embed"], depth, heads, ratios)

    def picks_of(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        arch, table = self.validate(arch), self.table
        depth = arch[self.DEPTH_KEY]
        picks: dict[str, Any] = {"embed": arch["embed_dim"], "depth": depth}
        for i in range(max(table["depth"])):
            picks[f"layer{i}.heads"] = arch["num_heads"][i] if i < depth else table["heads"][0]
            picks[f"layer{i}.mlp_ratio"] = arch["mlp_ratio"][i] if i < depth else table["mlp_ratio"][0]
        return picks

    def validate(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        table, depth_key = self.table, self.DEPTH_KEY
        keys = {"embed_dim", depth_key, "num_heads", "mlp_ratio"}
        if not isinstance(arch, Mapping) or set(arch) != keys:
            raise UserError(f"a {self.name} architecture needs exactly {', '.join(sorted(keys))}")
        embed, depth, heads, ratios = arch["embed_dim"], arch[depth_key], arch["num_heads"], arch["mlp_ratio"]
        if embed not in table["embed"] or depth not in table["depth"]:
            raise UserError(
                f"embed_dim must be one of {table['embed']} and {depth_key} one of {table['depth']}"
            )
        if not (isinstance(heads, list) and isinstance(ratios, list) and len(heads) == len(ratios) == depth):
            raise UserError(f"num_heads and mlp_ratio must be lists of {depth} values (one per layer)")
        if any(h not in table["heads"] for h in heads) or any(r not in table["mlp_ratio"] for r in ratios):
            raise UserError(f"heads must be in {table['heads']} and mlp ratios in {table['mlp_ratio']}")
        return self._arch(embed, depth, heads, ratios)

    def build_network(self, arch: Mapping[str, Any]) -> nn.Module:
        arch = self.validate(arch)
        layers: Layers = [
            (FixedChoice(h), FixedChoice(r))
            for h, r in zip(arch["num_heads"], arch["mlp_ratio"], strict=True)
        ]
        return self._network(FixedChoice(arch["embed_dim"]), FixedChoice(arch[self.DEPTH_KEY]), layers)

    def inherit_weights(self, supernet_state: Mapping[str, Any], network: nn.Module) -> None:
        inherit_prefix_slices(supernet_state, network)

    def layer_cost_units(
        self, stem: Callable[[Any], Piece], block: Callable[[Any, Any, Any], Piece]
    ) -> list[CostUnit]:
        """Return the units of a transformer: ``stem(embed)`` (the network without blocks) and per layer i
        ``block(embed, heads_i, ratio_i)``; a layer some candidate depth leaves out also reads the depth."""

        def labelled(make: Callable[..., Piece], *picks: Any) -> Piece:
            module, inputs = make(*picks)
            return Picked(module, picks), inputs

        def build_block(embed: Any, heads: Any, ratio: Any) -> Piece:
            return labelled(block, embed, heads, ratio)

        depths = self.table["depth"]
        units = [CostUnit(("embed",), lambda embed: labelled(stem, embed))]
        for i in range(max(depths)):
            names = ("embed", f"layer{i}.heads", f"layer{i}.mlp_ratio")
            if i < min(depths):
                units.append(CostUnit(names, build_block))
                continue

            def build(depth: Any, *picks: Any, i: int = i) -> Piece | None:
                return build_block(*picks) if i < int(depth) else None

            units.append(CostUnit(("depth", *names), build))
        return units

    def largest_architecture(self) -> dict[str, Any]:
        table = self.table
        depth = max(table["depth"])
        heads, ratios = [max(table["heads"])] * depth, [max(table["mlp_ratio"])] * depth
        return self._arch(max(table["embed"]), depth, heads, ratios)

    def describe(self, arch: Mapping[str, Any]) -> str:
        arch = self.validate(arch)
        depth = f"{self.DEPTH_KEY} {arch[self.DEPTH_KEY]}"
        return f"embed {arch['embed_dim']}, {depth}, heads {arch['num_heads']}, mlp {arch['mlp_ratio']}"


def init_transformer_weights(network: nn.Module, draw: Callable[[Tensor], Any]) -> None:
    """Draw the weights of every linear layer, q/k/v projection and embedding table of ``network`` with
    ``draw`` (in place); biases 0, LayerNorm weights 1 and biases 0."""
    for module in network.modules():
        if isinstance(module, EntangledLinear | EntangledEmbedding):
            draw(module.weight)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, EntangledSelfAttention | EntangledWidthAttention):
            draw(module.qkv_weight)
            if module.qkv_bias is not None:
                nn.init.zeros_(module.qkv_bias)
        elif isinstance(module, EntangledLayerNorm):
            nn.init.ones_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
