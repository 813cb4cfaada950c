"""Entangled transformer layers: one-hot mixing reproduces the standalone discrete block exactly (in the
direct and in the mixture path), and soft mixing equals the explicit sum of zero-padded candidates."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tanglenas_cli.nas.choices import Choice, JointChoice
from tanglenas_cli.nas.entangled import EntangledLinear
from tanglenas_cli.nas.transformer import (
    EntangledEmbedding,
    EntangledLayerNorm,
    EntangledSelfAttention,
    mix_depths,
)

EMBEDS, HEADS, RATIOS, HEAD_DIM = (8, 12), (1, 2), (2.0, 3.0), 4


class Block(nn.Module):
    """A pre-norm transformer block over the joint choices of a tiny space."""

    def __init__(self, causal: bool = False) -> None:
        super().__init__()
        self.embed, self.heads, self.ratio = (
            Choice("embed", EMBEDS),
            Choice("heads", HEADS),
            Choice("mlp", RATIOS),
        )
        attention_source = JointChoice([self.embed, self.heads])
        mlp_source = JointChoice([self.embed, self.ratio])
        pairs = list(itertools.product(EMBEDS, HEADS))
        mlp_pairs = list(itertools.product(EMBEDS, RATIOS))
        hidden = [int(e * r) for e, r in mlp_pairs]
        self.norm1 = EntangledLayerNorm(self.embed, EMBEDS)
        self.attention = EntangledSelfAttention(
            attention_source, [e for e, _ in pairs], [h for _, h in pairs], HEAD_DIM, causal=causal
        )
        self.norm2 = EntangledLayerNorm(self.embed, EMBEDS)
        self.fc1 = EntangledLinear(mlp_source, [e for e, _ in mlp_pairs], hidden)
        self.fc2 = EntangledLinear(mlp_source, hidden, [e for e, _ in mlp_pairs])

    def forward(self, x):
        x = x + self.attention(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


def discrete_block(block: Block, e: int, h: int, r: float, x: torch.Tensor, causal: bool) -> torch.Tensor:
    """The standalone block of (e, h, r), built from plain layers with the supernet's slices."""
    a = EMBEDS.index(e) * len(HEADS) + HEADS.index(h)
    m = EMBEDS.index(e) * len(RATIOS) + RATIOS.index(r)
    qkv_weight, qkv_bias = block.attention.candidate_qkv(a)
    qkv = nn.Linear(e, 3 * h * HEAD_DIM)
    with torch.no_grad():
        qkv.weight.copy_(qkv_weight)
        qkv.bias.copy_(qkv_bias)
    proj, fc1, fc2 = block.attention.proj.export(a), block.fc1.export(m), block.fc2.export(m)
    norm1, norm2 = block.norm1.export(EMBEDS.index(e)), block.norm2.export(EMBEDS.index(e))
    x = x[..., :e]
    batch, length = x.shape[:2]
    q, k, v = qkv(norm1(x)).split(h * HEAD_DIM, dim=-1)
    q, k, v = (t.reshape(batch, length, h, HEAD_DIM).transpose(1, 2) for t in (q, k, v))
    attended = (
        F.scaled_dot_product_attention(q, k, v, is_causal=causal).transpose(1, 2).reshape(batch, length, -1)
    )
    x = x + proj(attended)
    return x + fc2(F.gelu(fc1(norm2(x))))


def one_hot(choice: Choice, value, direct: bool) -> None:
    index = choice.candidates.index(value)
    choice.set_mixing(F.one_hot(torch.tensor(index), len(choice)).float(), index if direct else None)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("direct", [True, False], ids=["direct", "mixture"])
def test_one_hot_reproduces_every_discrete_block(direct, causal):
    torch.manual_seed(0)
    block = Block(causal)
    for parameter in block.parameters():  # non-trivial norms and biases
        nn.init.normal_(parameter, std=0.3)
    x = torch.randn(2, 5, max(EMBEDS))
    for e, h, r in itertools.product(EMBEDS, HEADS, RATIOS):
        one_hot(block.embed, e, direct)
        one_hot(block.heads, h, direct)
        one_hot(block.ratio, r, direct)
        padded = torch.zeros_like(x)
        padded[..., :e] = x[..., :e]
        got = block(x[..., :e] if direct else padded)  # a direct-path network runs at width e throughout
        want = discrete_block(block, e, h, r, x, causal)
        torch.testing.assert_close(got[..., :e], want, atol=1e-5, rtol=1e-5)
        if not direct:  # features beyond e stay exactly zero in the mixture path
            assert torch.count_nonzero(got[..., e:]) == 0


def soft_attention_layer(**options) -> tuple[Choice, Choice, EntangledSelfAttention]:
    """An attention layer over embed x heads with non-zero q/k/v biases, under random soft weights."""
    torch.manual_seed(1)
    embed, heads = Choice("embed", EMBEDS), Choice("heads", HEADS)
    pairs = list(itertools.product(EMBEDS, HEADS))
    layer = EntangledSelfAttention(
        JointChoice([embed, heads]), [e for e, _ in pairs], [h for _, h in pairs], HEAD_DIM, **options
    )
    nn.init.normal_(layer.qkv_bias)
    embed.set_mixing(torch.softmax(torch.randn(2), 0))
    heads.set_mixing(torch.softmax(torch.randn(2), 0))
    return embed, heads, layer


def explicit_soft_attention(layer, x: torch.Tensor, head_scale: torch.Tensor | None = None) -> torch.Tensor:
    """sum_c w_c pad(slice_c W) for q, k and v, each block padded alone; q, k, v of head j then scaled
    by ``head_scale[j]`` if given."""
    weights = layer.source.mixing().weights
    pairs = list(itertools.product(EMBEDS, HEADS))
    inner = max(HEADS) * HEAD_DIM
    qkv = torch.zeros(3, inner, max(EMBEDS))
    bias = torch.zeros(3, inner)
    for w, (e, h) in zip(weights, pairs, strict=True):  # [q_c|0][k_c|0][v_c|0], each block padded alone
        qkv[:, : h * HEAD_DIM, :e] += w * layer.qkv_weight[:, : h * HEAD_DIM, :e]
        bias[:, : h * HEAD_DIM] += w * layer.qkv_bias[:, : h * HEAD_DIM]
    scale = torch.ones(inner) if head_scale is None else head_scale.repeat_interleave(HEAD_DIM)
    q, k, v = (
        (scale * F.linear(x, qkv[j], bias[j])).reshape(2, 5, max(HEADS), HEAD_DIM).transpose(1, 2)
        for j in range(3)
    )
    attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, 5, inner)
    return layer.proj(attended)


def test_soft_attention_equals_explicit_sum_of_padded_candidates():
    _, _, layer = soft_attention_layer()
    x = torch.randn(2, 5, max(EMBEDS))
    torch.testing.assert_close(layer(x), explicit_soft_attention(layer, x), atol=1e-5, rtol=1e-5)


def test_remask_heads_weights_q_k_v_by_the_head_weights_once_more_as_the_original():
    """The original's HeadMaskAttnMixture (``remask_heads``): after the superposed projection, q, k and v
    of head j are scaled again by m_j = sum_{h > j} w_h, so they carry m_j ** 2 (quadratic in the weights);
    under one-hot weights m_j is 0 or 1 and both versions compute the same, in the mixture path too."""
    embed, heads, layer = soft_attention_layer(remask_heads=True)
    plain = EntangledSelfAttention(layer.source, layer.embed, layer.heads, HEAD_DIM)
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(2, 5, max(EMBEDS))
    head_weights = heads.mixing().weights
    m = torch.stack(
        [sum(w for w, h in zip(head_weights, HEADS, strict=True) if h > j) for j in range(max(HEADS))]
    )
    assert 0 < float(m[-1]) < 1  # the second head is partly in
    torch.testing.assert_close(layer(x), explicit_soft_attention(layer, x, m), atol=1e-5, rtol=1e-5)
    assert (layer(x) - plain(x)).abs().max() > 1e-3
    for e, h in itertools.product(EMBEDS, HEADS):
        one_hot(embed, e, direct=False)
        one_hot(heads, h, direct=False)
        torch.testing.assert_close(layer(x), plain(x), atol=1e-6, rtol=1e-6)


def test_layer_norm_mixture_and_embedding_equal_their_definitions():
    torch.manual_seed(2)
    choice = Choice("embed", EMBEDS)
    norm, table = EntangledLayerNorm(choice, EMBEDS), EntangledEmbedding(choice, 20, EMBEDS)
    nn.init.normal_(norm.weight)
    nn.init.normal_(norm.bias)
    weights = torch.softmax(torch.randn(2), 0)
    choice.set_mixing(weights)
    x = torch.randn(3, max(EMBEDS))
    expected = sum(
        w * F.pad(F.layer_norm(x[:, :e], (e,), norm.weight[:e], norm.bias[:e]), (0, max(EMBEDS) - e))
        for w, e in zip(weights, EMBEDS, strict=True)
    )
    torch.testing.assert_close(norm(x), expected)
    tokens = torch.tensor([[1, 5, 19]])
    padded_tables = sum(
        w * F.pad(table.weight[:, :e], (0, max(EMBEDS) - e)) for w, e in zip(weights, EMBEDS, strict=True)
    )
    torch.testing.assert_close(table(tokens), F.embedding(tokens, padded_tables))


def test_mix_depths_is_the_weighted_sum_of_outputs():
    choice = Choice("depth", [1, 2, 3])
    outputs = [torch.full((2,), float(d)) for d in (1, 2, 3)]
    choice.set_mixing(torch.tensor([0.2, 0.3, 0.5]))
    torch.testing.assert_close(mix_depths(outputs, choice.mixing(), [1, 2, 3]), torch.full((2,), 2.3))
    choice.set_mixing(torch.tensor([0.0, 1.0, 0.0]), 1)
    torch.testing.assert_close(mix_depths(outputs, choice.mixing(), [1, 2, 3]), outputs[1])


GPT_EMBEDS, GPT_HEADS = (12, 24), (2, 3, 4)  # head dims e / h: 6, 4, 3, 12, 8, 6


def standalone_attention(layer, e: int, h: int, x: torch.Tensor) -> torch.Tensor:
    """Plain causal attention of width e with h heads of e / h, using the layer's [:e, :e] blocks."""
    index = GPT_EMBEDS.index(e) * len(GPT_HEADS) + GPT_HEADS.index(h)
    weight = layer.qkv_weight[:, :e, :e]
    q, k, v = (F.linear(x[..., :e], weight[j]) for j in range(3))
    q, k, v = (t.reshape(2, 5, h, e // h).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(2, 5, e)
    return layer.proj.export(index)(out)


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "mixture"])
def test_width_attention_one_hot_equals_standalone_for_every_pair(direct):
    from tanglenas_cli.nas.transformer import EntangledWidthAttention

    torch.manual_seed(3)
    embed, heads = Choice("embed", GPT_EMBEDS), Choice("heads", GPT_HEADS)
    pairs = list(itertools.product(GPT_EMBEDS, GPT_HEADS))
    layer = EntangledWidthAttention(JointChoice([embed, heads]), [e for e, _ in pairs], [h for _, h in pairs])
    x = torch.randn(2, 5, max(GPT_EMBEDS))
    for e, h in pairs:
        one_hot(embed, e, direct)
        one_hot(heads, h, direct)
        padded = torch.zeros_like(x)
        padded[..., :e] = x[..., :e]
        got = layer(x[..., :e] if direct else padded)
        torch.testing.assert_close(got[..., :e], standalone_attention(layer, e, h, x), atol=1e-5, rtol=1e-5)
        if not direct:
            assert torch.count_nonzero(got[..., e:]) == 0


def test_width_attention_soft_mixing_has_gradients_for_every_logit():
    from tanglenas_cli.nas.transformer import EntangledWidthAttention

    embed, heads = Choice("embed", GPT_EMBEDS), Choice("heads", GPT_HEADS)
    pairs = list(itertools.product(GPT_EMBEDS, GPT_HEADS))
    layer = EntangledWidthAttention(JointChoice([embed, heads]), [e for e, _ in pairs], [h for _, h in pairs])
    embed.set_mixing(torch.softmax(embed.arch_logits, 0))
    heads.set_mixing(torch.softmax(heads.arch_logits, 0))
    layer(torch.randn(2, 5, max(GPT_EMBEDS))).square().sum().backward()
    assert all(c.arch_logits.grad is not None and c.arch_logits.grad.abs().sum() > 0 for c in (embed, heads))
