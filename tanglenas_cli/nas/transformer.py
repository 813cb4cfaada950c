"""Entangled transformer layers: embeddings, LayerNorm, self-attention over head counts, depth mixing.

All of them superpose prefix slices of one super tensor with the :class:`Superposition` primitive and
follow the contract of :class:`EntangledLayer`: a mixture path at the largest width (narrower candidates
zero-padded), and a direct path that runs the one selected candidate at its own width.

Attention keeps q, k and v as three separate blocks ``[q_c | 0][k_c | 0][v_c | 0]`` of one
``(3, heads * head_dim, embed)`` weight, so candidate (e, h) reads exactly the rows that its standalone
network uses, in the mixture path as well as the direct one (the original code interleaved or
concatenated them, so the sub-network trained in superposition was not the derived one).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tanglenas_cli.layers.relative_position import RelativePosition2D
from tanglenas_cli.nas.choices import Mixing, WeightSource
from tanglenas_cli.nas.entangled import EntangledLayer, EntangledLinear, per_candidate
from tanglenas_cli.nas.superposition import SlicedDim, Superposition


def _superposition(
    shape: Sequence[int], dims: Sequence[tuple[int, tuple[int, ...]]], count: int
) -> Superposition:
    sliced = [SlicedDim(dim, sizes) for dim, sizes in dims if len(set(sizes)) > 1]
    if not sliced:  # no dimension varies: still weight the tensor by sum(w)
        sliced = [SlicedDim(0, (shape[0],) * count)]
    return Superposition(shape, sliced)


class EntangledLayerNorm(EntangledLayer):
    """LayerNorm over the first ``e`` features; gamma and beta are prefixes of one super vector.

    The mixture path is ``sum_e w_e * pad(LN_e(x[..., :e]))`` with each width's weight summed over the
    candidates of that width: one cheap normalisation per distinct width. The original normalised over
    all ``max(e)`` features instead, which differs from every narrower candidate's own LayerNorm even
    under one-hot weights. The direct path is exactly ``nn.LayerNorm(e)`` on ``x[..., :e]``.
    """

    def __init__(
        self, source: WeightSource, sizes: int | Sequence[int], eps: float = 1e-5, bias: bool = True
    ) -> None:
        super().__init__(source)
        self.sizes = per_candidate(sizes, len(source), "sizes")
        width = max(self.sizes)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width)) if bias else None
        self.widths = sorted(set(self.sizes))
        members = torch.tensor([[float(size == width) for width in self.widths] for size in self.sizes])
        self.register_buffer("members", members, persistent=False)  # candidate -> its width

    def forward_mixture(self, x: Tensor, weights: Tensor) -> Tensor:
        width_weights = weights.to(x.dtype) @ self.members.to(x.dtype)
        full = self.weight.shape[0]
        total: Tensor | None = None
        for weight, size in zip(width_weights, self.widths, strict=True):
            bias = None if self.bias is None else self.bias[:size]
            normed = F.layer_norm(x[..., :size], (size,), self.weight[:size], bias, self.eps)
            term = F.pad(normed, (0, full - size)) * weight
            total = term if total is None else total + term
        assert total is not None
        return total

    def forward_candidate(self, x: Tensor, index: int, scale: Tensor | float = 1.0) -> Tensor:
        size = self.sizes[index]
        bias = None if self.bias is None else self.bias[:size] * scale
        return F.layer_norm(x[..., :size], (size,), self.weight[:size] * scale, bias, self.eps)

    def export(self, index: int) -> nn.LayerNorm:
        """Return a standalone ``nn.LayerNorm`` with candidate ``index``'s parameters."""
        size = self.sizes[index]
        norm = nn.LayerNorm(size, eps=self.eps, bias=self.bias is not None)
        with torch.no_grad():
            norm.weight.copy_(self.weight[:size])
            if self.bias is not None:
                norm.bias.copy_(self.bias[:size])
        return norm


class EntangledEmbedding(EntangledLayer):
    """Embedding table whose candidates are the first ``e`` columns (token or position embeddings)."""

    def __init__(self, source: WeightSource, num_embeddings: int, sizes: int | Sequence[int]) -> None:
        super().__init__(source)
        self.sizes = per_candidate(sizes, len(source), "sizes")
        self.weight = nn.Parameter(torch.randn(num_embeddings, max(self.sizes)) * 0.02)
        # a lookup commutes with the column mask: lookup(sum_i w_i pad(E[:, :e_i])) = lookup(E) * mask
        self.superposition = _superposition((max(self.sizes),), [(0, self.sizes)], len(self.sizes))

    def forward_mixture(self, x: Tensor, weights: Tensor) -> Tensor:
        return F.embedding(x, self.weight) * self.superposition.mask(weights.to(self.weight.dtype))

    def forward_candidate(self, x: Tensor, index: int, scale: Tensor | float = 1.0) -> Tensor:
        return F.embedding(x, self.weight[:, : self.sizes[index]]) * scale


class EntangledSelfAttention(nn.Module):
    """Multi-head self-attention whose candidates choose the embedding width e and the head count h.

    Head dimension is fixed (AutoFormer: 64). ``source`` is usually the joint choice embed x heads;
    ``embed`` and ``heads`` give each of its candidates' e and h. q, k, v are three separate blocks of
    one ``(3, H * head_dim, E)`` weight; candidate (e, h) uses ``[:, :h * head_dim, :e]``. The output
    projection is an :class:`EntangledLinear` (in h * head_dim, out e) on the same source.

    Under soft weights the q, k, v of head j carry the total weight ``m_j`` of the candidates that have
    head j (from the superposed weight), once. ``remask_heads`` multiplies them by ``m_j`` once more, as
    the original's ``HeadMaskAttnMixture`` does after its superposed qkv projection: q, k, v then carry
    ``m_j ** 2``, no longer a superposition ``sum_c w_c pad(slice_c W)`` of the weights. The two agree
    exactly under one-hot weights (``m_j`` is 0 or 1).
    """

    def __init__(
        self,
        source: WeightSource,
        embed: int | Sequence[int],
        heads: int | Sequence[int],
        head_dim: int = 64,
        *,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        causal: bool = False,
        relative_position: int | None = None,
        remask_heads: bool = False,
    ) -> None:
        super().__init__()
        self._source = [source]
        count = len(source)
        self.embed = per_candidate(embed, count, "embed")
        self.heads = per_candidate(heads, count, "heads")
        self.head_dim, self.causal = head_dim, causal
        inner = tuple(h * head_dim for h in self.heads)
        shape = (3, max(inner), max(self.embed))
        self.remask_heads = remask_heads
        rows = torch.tensor([[float(row < size) for row in range(shape[1])] for size in inner])
        self.register_buffer("head_rows", rows, persistent=False)  # candidate -> the q/k/v rows of its heads
        self.qkv_weight = nn.Parameter(torch.empty(shape))
        self.qkv_bias = nn.Parameter(torch.zeros(shape[:2])) if qkv_bias else None
        self.qkv_superposition = _superposition(shape, [(1, inner), (2, self.embed)], count)
        self.bias_superposition = _superposition(shape[:2], [(1, inner)], count)
        self.proj = EntangledLinear(source, inner, self.embed, bias=proj_bias)
        nn.init.trunc_normal_(self.qkv_weight, std=0.02)
        # relative_position = max distance of AutoFormer's 2-D relative positions for keys and values
        self.relative_keys = self.relative_values = None
        if relative_position is not None:
            self.relative_keys = RelativePosition2D(head_dim, relative_position)
            self.relative_values = RelativePosition2D(head_dim, relative_position)

    @property
    def source(self) -> WeightSource:
        """The weight source of this layer's candidates."""
        return self._source[0]

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, heads: int) -> Tensor:
        batch, length = q.shape[:2]
        q, k, v = (t.reshape(batch, length, heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        scale = self.head_dim**-0.5
        if self.relative_keys is None or self.relative_values is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal, scale=scale)
        else:
            scores = q @ k.transpose(-2, -1)
            scores = scores + torch.einsum("bhid,ijd->bhij", q, self.relative_keys(length, q.device))
            scores = scores * scale
            if self.causal:
                future = torch.ones(length, length, dtype=torch.bool, device=q.device).triu(1)
                scores = scores.masked_fill(future, float("-inf"))
            attention = scores.softmax(-1)
            out = attention @ v + torch.einsum(
                "bhij,ijd->bhid", attention, self.relative_values(length, q.device)
            )
        return out.transpose(1, 2).reshape(batch, length, heads * self.head_dim)

    def forward(self, x: Tensor) -> Tensor:
        mixing: Mixing = self.source.mixing()
        if mixing.index is not None:
            return self.forward_candidate(x, mixing.index, mixing.weights[mixing.index])
        weights = mixing.weights.to(self.qkv_weight.dtype)
        weight = self.qkv_superposition.superpose(self.qkv_weight, weights)
        bias = None if self.qkv_bias is None else self.bias_superposition.superpose(self.qkv_bias, weights)
        if self.remask_heads:  # scaling a row of the weight and bias scales that output of q, k or v
            head_mask = weights @ self.head_rows.to(weights.dtype)
            weight = weight * head_mask[:, None]
            bias = None if bias is None else bias * head_mask
        q, k, v = (F.linear(x, weight[j], None if bias is None else bias[j]) for j in range(3))
        # padded heads have q = k = v = 0 and contribute exactly zero output
        return self.proj(self._attend(q, k, v, self.qkv_weight.shape[1] // self.head_dim))

    def forward_candidate(self, x: Tensor, index: int, scale: Tensor | float = 1.0) -> Tensor:
        """Candidate ``index`` at its own width and head count (qkv weights scaled by ``scale``)."""
        embed, heads = self.embed[index], self.heads[index]
        inner = heads * self.head_dim
        x = x[..., :embed]
        weight = self.qkv_weight[:, :inner, :embed] * scale
        bias = None if self.qkv_bias is None else self.qkv_bias[:, :inner] * scale
        q, k, v = (F.linear(x, weight[j], None if bias is None else bias[j]) for j in range(3))
        return self.proj.forward_candidate(self._attend(q, k, v, heads), index)

    def candidate_qkv(self, index: int) -> tuple[Tensor, Tensor | None]:
        """Return candidate ``index``'s qkv weight ``(3 * h * head_dim, e)`` (rows: q, k, v) and bias."""
        inner, embed = self.heads[index] * self.head_dim, self.embed[index]
        weight = self.qkv_weight[:, :inner, :embed].reshape(3 * inner, embed)
        bias = None if self.qkv_bias is None else self.qkv_bias[:, :inner].reshape(-1)
        return weight, bias


class EntangledWidthAttention(nn.Module):
    """Causal multi-head attention whose candidates choose the width e and the head count h, with head
    dimension e / h (nanoGPT). q, k, v are three separate ``(E, E)`` blocks; candidate (e, h) uses
    ``[:e, :e]`` of each and splits its e features into h heads of e / h.

    Mixture path, for each head count h (one attention call per h): q, k and v of the candidates (e, h)
    are superposed head by head, each head zero-padded from e / h to E / h features, with weights
    ``w(e | h) = w(e, h) / sum_e' w(e', h)`` (q pre-scaled by ``(e / h) ** -0.5``, so padding never
    changes the softmax temperature). The output of candidate (e, h) is the first e / h features of each
    head, laid out as its own e features, weighted by ``w(e, h)``. One-hot weights therefore give
    exactly the standalone attention of (e, h), in the mixture path too.
    """

    def __init__(self, source: WeightSource, embed: int | Sequence[int], heads: int | Sequence[int], *,
                 bias: bool = False, causal: bool = True) -> None:  # fmt: skip
        super().__init__()
        self._source = [source]
        count = len(source)
        self.embed = per_candidate(embed, count, "embed")
        self.heads = per_candidate(heads, count, "heads")
        if any(e % h for e, h in zip(self.embed, self.heads, strict=True)):
            raise ValueError(
                f"every width must divide by its head count: {list(zip(self.embed, self.heads, strict=True))}"
            )
        width = max(self.embed)
        if any(width % h for h in self.heads):
            raise ValueError(f"the largest width {width} must divide by every head count {set(self.heads)}")
        self.causal = causal
        self.qkv_weight = nn.Parameter(torch.empty(3, width, width))
        self.qkv_bias = nn.Parameter(torch.zeros(3, width)) if bias else None
        nn.init.normal_(self.qkv_weight, std=0.02)
        self.proj = EntangledLinear(source, self.embed, self.embed, bias=bias)

    @property
    def source(self) -> WeightSource:
        """The weight source of this layer's candidates."""
        return self._source[0]

    def _qkv(self, x: Tensor, embed: int) -> tuple[Tensor, Tensor, Tensor]:
        weight = self.qkv_weight[:, :embed, :embed]
        bias = None if self.qkv_bias is None else self.qkv_bias[:, :embed]
        x = x[..., :embed]
        q, k, v = (F.linear(x, weight[j], None if bias is None else bias[j]) for j in range(3))
        return q, k, v

    def _split(self, t: Tensor, heads: int, head_width: int) -> Tensor:
        batch, length, features = t.shape
        t = t.reshape(batch, length, heads, features // heads)
        return F.pad(t, (0, head_width - features // heads)).transpose(1, 2)

    def forward_candidate(self, x: Tensor, index: int, scale: Tensor | float = 1.0) -> Tensor:
        """Candidate ``index`` at its own width and head count (output scaled by ``scale``)."""
        embed, heads = self.embed[index], self.heads[index]
        q, k, v = self._qkv(x, embed)
        q, k, v = (self._split(t, heads, embed // heads) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        out = out.transpose(1, 2).reshape(x.shape[0], x.shape[1], embed) * scale
        return self.proj.forward_candidate(out, index)

    def forward(self, x: Tensor) -> Tensor:
        mixing = self.source.mixing()
        if mixing.index is not None:
            return self.forward_candidate(x, mixing.index, mixing.weights[mixing.index])
        weights = mixing.weights.to(x.dtype)
        width = max(self.embed)
        batch, length = x.shape[:2]
        total: Tensor | None = None
        for heads in sorted(set(self.heads)):
            members = [i for i, h in enumerate(self.heads) if h == heads]
            mass = sum(weights[i] for i in members)
            head_width = width // heads
            mixed = [torch.zeros(()), torch.zeros(()), torch.zeros(())]
            for i in members:
                conditional = weights[i] / mass.clamp_min(1e-12)
                q, k, v = self._qkv(x, self.embed[i])
                q = q * (self.embed[i] // heads) ** -0.5
                for slot, t in enumerate((q, k, v)):
                    mixed[slot] = mixed[slot] + conditional * self._split(t, heads, head_width)
            out = F.scaled_dot_product_attention(*mixed, is_causal=self.causal, scale=1.0)
            for i in members:
                own = out[..., : self.embed[i] // heads].transpose(1, 2).reshape(batch, length, self.embed[i])
                term = F.pad(own, (0, width - self.embed[i])) * weights[i]
                total = term if total is None else total + term
        assert total is not None
        return self.proj(total)


def mix_depths(outputs: Sequence[Tensor], mixing: Mixing, depths: Sequence[int]) -> Tensor:
    """Mix the outputs taken after each candidate depth (``outputs[i]`` after ``depths[i]`` blocks)."""
    if len(outputs) != len(depths):
        raise ValueError(f"{len(outputs)} outputs for {len(depths)} candidate depths")
    if mixing.index is not None:
        return outputs[mixing.index] * mixing.weights[mixing.index]
    return sum(
        (w * out for w, out in zip(mixing.weights, outputs, strict=True)), torch.zeros_like(outputs[-1])
    )


def run_blocks(blocks: Sequence[nn.Module], x: Tensor, mixing: Mixing, depths: Sequence[int]) -> Tensor:
    """Run ``blocks`` under a depth choice: only the chosen depth's blocks for a one-hot choice, else all
    of them with the outputs after each candidate depth mixed (:func:`mix_depths`)."""
    if mixing.index is not None:
        for block in blocks[: depths[mixing.index]]:
            x = block(x)
        return x * mixing.weights[mixing.index]
    outputs = []
    for number, block in enumerate(blocks, start=1):
        x = block(x)
        if number in depths:
            outputs.append(x)
    return mix_depths(outputs, mixing, depths)


__all__ = [
    "EntangledEmbedding",
    "EntangledLayerNorm",
    "EntangledSelfAttention",
    "mix_depths",
    "run_blocks",
]
