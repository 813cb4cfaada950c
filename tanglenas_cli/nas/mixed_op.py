"""Weight sharing (DARTS' MixedOp): separate candidate modules whose outputs are summed with the
mixing weights. Used for ops that cannot entangle (zero, skip, pooling) and for the WS baseline."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tanglenas_cli.layers.pool_norm import PoolNorm
from tanglenas_cli.layers.pooling import BoxAvgPool2d, SkipPoolSource, skip_pool_mix
from tanglenas_cli.nas.choices import WeightSource


class Zero(nn.Module):
    """The ``none`` operation: zeros of the output shape (spatial stride, optional channel count)."""

    def __init__(self, stride: int = 1, out_channels: int | None = None) -> None:
        super().__init__()
        self.stride = stride
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        shape = list(x.shape)
        if self.out_channels is not None:
            shape[1] = self.out_channels
        return x.new_zeros(shape)


def add_padded(total: Tensor | None, term: Tensor, pad_dim: int | None) -> Tensor:
    """Return ``total + term``, zero-padding the narrower of the two along ``pad_dim`` if widths differ."""
    if total is None:
        return term
    if pad_dim is not None and total.shape[pad_dim] != term.shape[pad_dim]:
        width = max(total.shape[pad_dim], term.shape[pad_dim])
        total, term = (_pad_to(t, pad_dim, width) for t in (total, term))
    return total + term


def _pad_to(tensor: Tensor, dim: int, width: int) -> Tensor:
    missing = width - tensor.shape[dim]
    if missing == 0:
        return tensor
    dim = dim % tensor.dim()
    padding = [0, 0] * (tensor.dim() - dim - 1) + [0, missing]
    return F.pad(tensor, padding)


class MixedOp(nn.Module):
    """``sum_o w_o * op_o(x)`` over separate candidate modules, with optional entangled groups.

    ``candidates[i]`` is candidate ``i``'s module, or None when candidate ``i`` belongs to one of
    ``groups``: ``(indices, module)`` pairs whose module reads its weights from a subset of the same
    source (``choice.subset(indices)``), runs once for the whole group and weights its own output.
    ``Zero`` candidates are skipped in the mixture (they add exactly zero to output and gradients), and
    an identity plus a stride-1 average pool are computed as one fused term that stores only ``x``.
    With ``pad_dim`` set, outputs of different widths are zero-padded to the widest before summing.

    ``scale_groups``: each group's output is multiplied by its total weight ``s = sum_{i in group} w_i``;
    build the group's layers on ``choice.subset(indices, normalized=True)`` so that they see ``w_i / s``.
    A group ending in batch norm otherwise ignores ``s`` (the norm divides out the scale of its
    superposed weight), so the edge could hardly trade the group against its other candidates.

    Without groups (weight sharing) the one-hot path returns ``h_k * op_k(x) + sum_{j != k} h_j``, as
    the original weight-sharing GDAS code does: the added terms are exactly zero but pass a gradient to
    every straight-through weight ``h_j``, not only to the selected one. With groups (entanglement) it
    returns the selected candidate's output alone, as the original entangled code.
    """

    def __init__(
        self,
        source: WeightSource,
        candidates: Sequence[nn.Module | None],
        groups: Sequence[tuple[Sequence[int], nn.Module]] = (),
        pad_dim: int | None = None,
        scale_groups: bool = False,
    ) -> None:
        super().__init__()
        if len(candidates) != len(source):
            raise ValueError(f"{len(candidates)} candidate modules for a source of {len(source)} candidates")
        self._source = [source]
        self.pad_dim = pad_dim
        self.candidates = nn.ModuleList([op if op is not None else nn.Identity() for op in candidates])
        self._is_plain = [op is not None for op in candidates]
        self.groups = nn.ModuleList([module for _, module in groups])
        self.scale_groups = scale_groups
        self.straight_through_all = not groups
        self._group_indices = [torch.tensor(list(indices)) for indices, _ in groups]
        self._group_of: dict[int, int] = {}
        for number, (indices, _) in enumerate(groups):
            for index in indices:
                if self._is_plain[index] or index in self._group_of:
                    raise ValueError(f"candidate {index} is claimed twice")
                self._group_of[index] = number
        self._skip_pool = _skip_and_pool(self.candidates, self._is_plain)
        missing = [i for i, plain in enumerate(self._is_plain) if not plain and i not in self._group_of]
        if missing:
            raise ValueError(f"candidates {missing} have neither a module nor a group")

    @property
    def source(self) -> WeightSource:
        """The weight source of this op's candidates."""
        return self._source[0]

    def forward(self, x: Tensor, into: Tensor | None = None) -> Tensor:
        """Return the mixed output; with ``into`` (e.g. the node's sum so far), ``into`` + the output."""
        mixing = self.source.mixing()
        weights = mixing.weights
        if mixing.index is not None:
            index = mixing.index
            if self._is_plain[index]:
                output = _weighted(self.candidates[index], x, weights[index])
            else:
                output = self._group_output(self._group_of[index], x, weights)
            if self.straight_through_all and weights.requires_grad:
                output = output + (weights.sum() - weights[index])  # = 0, with a gradient to every h_j
            return output if into is None else add_padded(into, output, self.pad_dim)
        source, rest = self._split(x, weights)
        if source is None:
            return rest if into is None else add_padded(into, rest, self.pad_dim)
        addends = [t for t in (rest, into) if t is not None]
        if all(t.shape == x.shape for t in addends):
            return skip_pool_mix([source], *addends)  # adds the other terms into its own new tensor
        total = add_padded(rest, skip_pool_mix([source]), self.pad_dim)
        return total if into is None else add_padded(into, total, self.pad_dim)

    def split_skip_pool(self, x: Tensor) -> tuple[SkipPoolSource | None, Tensor | None]:
        """Return this edge's fused skip + pool term, to be summed with other edges' (see
        :func:`skip_pool_mix`), and the sum of its other terms. Without such a term (a one-hot mixing, no
        identity + stride-1 average pool pair, or other terms shaped unlike ``x``) the first is None and
        the second is the whole output."""
        mixing = self.source.mixing()
        if mixing.index is not None:
            return None, self(x)
        return self._split(x, mixing.weights)

    def _split(self, x: Tensor, weights: Tensor) -> tuple[SkipPoolSource | None, Tensor | None]:
        """The continuous mixture: (the skip + pool term or None, the sum of the other terms)."""
        total: Tensor | None = None
        fused = self._skip_pool or ()
        for index, op in enumerate(self.candidates):
            if self._is_plain[index] and not isinstance(op, Zero) and index not in fused:
                total = add_padded(total, _weighted(op, x, weights[index]), self.pad_dim)
        for number in range(len(self.groups)):
            total = add_padded(total, self._group_output(number, x, weights), self.pad_dim)
        if self._skip_pool is not None:
            skip, pool = self._skip_pool
            source = SkipPoolSource(x, weights[skip], weights[pool], self.candidates[pool])
            if total is None or total.shape == x.shape:
                return source, total
            return None, add_padded(total, skip_pool_mix([source]), self.pad_dim)
        if total is None:  # every candidate is Zero
            zero_index = self._is_plain.index(True)
            total = self.candidates[zero_index](x) * weights.sum()
        return None, total

    def _group_output(self, number: int, x: Tensor, weights: Tensor) -> Tensor:
        output = self.groups[number](x)
        if not self.scale_groups:
            return output
        indices = self._group_indices[number].to(weights.device)
        return output * weights.index_select(0, indices).sum().to(output.dtype)


def _weighted(op: nn.Module, x: Tensor, weight: Tensor) -> Tensor:
    """Return ``weight * op(x)`` (a pool + norm keeps only ``x`` for its backward pass)."""
    return op.weighted(x, weight) if isinstance(op, PoolNorm) else weight * op(x)


def _skip_and_pool(candidates: nn.ModuleList, is_plain: list[bool]) -> tuple[int, int] | None:
    """Return the indices of an identity and a stride-1 box average pool among the plain candidates."""
    skips = [i for i, op in enumerate(candidates) if is_plain[i] and type(op) is nn.Identity]
    pools = [
        i
        for i, op in enumerate(candidates)
        if is_plain[i] and isinstance(op, BoxAvgPool2d) and op.stride == 1
    ]
    return (skips[0], pools[0]) if skips and pools else None
