"""The transformer spaces start and train as their references do: nanoGPT's and AutoFormer's initialisation
(supernets and discrete networks), and which parameters their weight optimizers exempt from weight decay.

The initialisation checks are statistical on tensors of 10^4 to 10^6 entries drawn with fixed seeds: the
tolerances are many standard errors wide, and the draws are the same on every run.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tanglenas_cli.layers.relative_position import RelativePosition2D
from tanglenas_cli.nas.entangled import EntangledLinear
from tanglenas_cli.nas.transformer import (
    EntangledEmbedding,
    EntangledLayerNorm,
    EntangledSelfAttention,
    EntangledWidthAttention,
)
from tanglenas_cli.spaces import create_space
from tanglenas_cli.spaces.base import DataShape

GPT_ARCH = {"embed_dim": 384, "num_layers": 5, "num_heads": [6, 8, 12, 6, 8], "mlp_ratio": [4, 3, 2, 4, 4]}
AUTOFORMER_ARCH = {"embed_dim": 192, "depth": 12, "num_heads": [3, 4] * 6, "mlp_ratio": [3.5, 4.0] * 6}


def joined(tensors) -> torch.Tensor:
    return torch.cat([t.detach().flatten().double() for t in tensors])


def assert_normal(values: torch.Tensor, std: float, what: str) -> None:
    """``values`` look drawn from N(0, std): std within 3%, mean near 0, and normal (not uniform) tails."""
    assert values.numel() >= 10_000, what
    measured = float(values.std())
    assert abs(measured / std - 1) < 0.03, f"{what}: std {measured:.5f}, expected {std:.5f}"
    assert abs(float(values.mean())) < 0.05 * std, what
    beyond = float((values.abs() > 2 * std).double().mean())  # 4.55% for a normal law, 0 for a uniform one
    assert 0.035 < beyond < 0.056, f"{what}: {beyond:.4f} of the entries beyond 2 std"


def gpt(shape=DataShape(2000, (32,))):
    return create_space("nanogpt", shape, {"dropout": 0.0})


def autoformer():
    return create_space("autoformer", DataShape(10, (3, 32, 32)), {"patch_size": 4})


def modules(model: nn.Module, kind: type) -> list:
    return [m for m in model.modules() if isinstance(m, kind)]


def test_nanogpt_initialises_like_nanogpt_with_scaled_residual_projections():
    space = gpt()
    torch.manual_seed(0)
    supernet = space.build_supernet()
    torch.manual_seed(1)
    network = space.build_network(GPT_ARCH)
    for model, layers in ((supernet, 7), (network, 5)):  # n_layer: the largest depth / the architecture's
        residual = [w for block in model.blocks for w in (block.attention.proj.weight, block.fc2.weight)]
        assert_normal(joined(residual), 0.02 / math.sqrt(2 * layers), f"residual, {layers} layers")
        assert_normal(joined(block.fc1.weight for block in model.blocks), 0.02, "MLP fc1")
        assert_normal(joined(m.qkv_weight for m in modules(model, EntangledWidthAttention)), 0.02, "q/k/v")
        assert_normal(model.tokens.weight.detach().flatten().double(), 0.02, "token embedding = head")
        assert_normal(model.positions.weight.detach().flatten().double(), 0.02, "position embedding")
        assert len(modules(model, EntangledEmbedding)) == 2
        assert all(m.bias is None for m in modules(model, EntangledLinear))  # nanoGPT: bias=False
        assert all(bool((m.weight == 1).all()) and m.bias is None for m in modules(model, EntangledLayerNorm))


def test_autoformer_initialises_like_autoformer():
    space = autoformer()
    torch.manual_seed(0)
    supernet = space.build_supernet()
    torch.manual_seed(1)
    network = space.build_network(AUTOFORMER_ARCH)
    for model in (supernet, network):
        linears = modules(model, EntangledLinear)  # attention proj, fc1, fc2 per block, and the classifier
        assert len(linears) == 3 * len(model.blocks) + 1
        for name in ("fc1", "fc2"):
            assert_normal(joined(getattr(block, name).weight for block in model.blocks), 0.02, name)
        assert_normal(joined(block.attention.proj.weight for block in model.blocks), 0.02, "attention proj")
        assert_normal(joined(m.qkv_weight for m in modules(model, EntangledSelfAttention)), 0.02, "q/k/v")
        head = model.head.weight.detach().double()  # 10 x 240: too few entries for the tail test
        assert abs(float(head.std()) / 0.02 - 1) < 0.1 and float(head.abs().max()) < 0.1
        biases = [m.bias for m in linears] + [m.qkv_bias for m in modules(model, EntangledSelfAttention)]
        assert all(bool((b == 0).all()) for b in biases)
        norms = modules(model, EntangledLayerNorm)
        assert all(bool((m.weight == 1).all()) and bool((m.bias == 0).all()) for m in norms)
        tables = [p for m in modules(model, RelativePosition2D) for p in (m.vertical, m.horizontal)]
        assert_normal(joined(tables), 0.02, "relative-position tables")
        assert_normal(joined([model.pos_embed]), 0.02, "pos_embed")
        assert abs(float(model.cls_token.detach().std()) / 0.02 - 1) < 0.2
        # the patch embedding keeps nn.Conv2d's default: uniform(+-1/sqrt(fan_in)), fan_in = 3 * 4 * 4
        patch = model.patch_embed.weight.detach().double()
        bound = 1 / math.sqrt(48)
        assert float(patch.abs().max()) <= bound
        assert abs(float(patch.std()) / (bound / math.sqrt(3)) - 1) < 0.05


def decay_groups(space, model: nn.Module, overrides=()) -> tuple[set[str], set[str]]:
    """Return (names with weight decay, names without) in the weight optimizer search / train build."""
    from tanglenas_cli.config import build_config
    from tanglenas_cli.engine.factory import make_space_weight_optimizer

    overrides = ["weight_optimizer.name=adamw", "weight_optimizer.weight_decay=0.1", *overrides]
    cfg = build_config(flags={"space": space.name, "dataset": space.default_dataset}, overrides=overrides)
    names = {id(p): name for name, p in model.named_parameters()}
    decayed: set[str] = set()
    free: set[str] = set()
    for group in make_space_weight_optimizer(cfg, space, model).param_groups:
        (decayed if group["weight_decay"] > 0 else free).update(names[id(p)] for p in group["params"])
    assert not decayed & free
    return decayed, free


def test_nanogpt_decays_linear_weights_only():
    space = create_space("nanogpt", DataShape(30, (8,)), {"variant": "tiny", "vocab_multiple": 1})
    arch = {"num_layers": 2, "embed_dim": 12, "num_heads": [2, 3], "mlp_ratio": [3, 2]}
    for model in (space.build_supernet(), space.build_network(arch)):
        kinds = ("attention.qkv_weight", "attention.proj.weight", "fc1.weight", "fc2.weight")
        linear = {f"blocks.{i}.{kind}" for i in range(len(model.blocks)) for kind in kinds}
        logits = {name for name, _ in model.named_parameters() if name.endswith("arch_logits")}
        assert len(logits) == (6 if hasattr(model, "choices") else 0)
        for no_decay_1d in ("true", "false"):  # the reference's rule, whatever the 1-d switch says
            decayed, free = decay_groups(space, model, [f"weight_optimizer.no_decay_1d={no_decay_1d}"])
            assert decayed == linear
            assert {"tokens.weight", "positions.weight", "norm.weight"} <= free  # tokens: also the head
            assert decayed | free == {name for name, _ in model.named_parameters()} - logits


def test_autoformer_exempts_tokens_positions_and_relative_tables():
    space = create_space("autoformer", DataShape(10, (3, 16, 16)), {"variant": "tiny", "patch_size": 4,
                                                                       "head_dim": 8})  # fmt: skip
    arch = {"embed_dim": 16, "depth": 2, "num_heads": [2, 1], "mlp_ratio": [3.0, 2.0]}
    for model in (space.build_supernet(), space.build_network(arch)):
        named = dict(model.named_parameters())
        logits = {name for name in named if name.endswith("arch_logits")}
        tables = {f"blocks.{i}.attention.relative_{kind}.{axis}" for i in range(2)
                  for kind in ("keys", "values") for axis in ("vertical", "horizontal")}  # fmt: skip
        exempt = {"cls_token", "pos_embed", *tables}
        assert all(named[name].dim() > 1 for name in exempt)  # none of them is caught by the 1-d rule
        one_d = {name for name, p in named.items() if p.dim() <= 1} - logits
        decayed, free = decay_groups(space, model, ["weight_optimizer.no_decay_1d=true"])
        assert free == exempt | one_d and decayed == set(named) - logits - free
        decayed, free = decay_groups(space, model, ["weight_optimizer.no_decay_1d=false"])
        assert free == exempt and decayed == set(named) - logits - exempt
