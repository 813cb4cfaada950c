"""Entangled batch norm: channel-prefix candidates of one BatchNorm2d.

Batch norm undoes any per-channel scale of its input, so a channel mask applied before it (by a
superposed conv) would vanish. The mixture path therefore applies the superposed channel mask
after normalising: ``y = (x_hat * gamma + beta) * mask`` -- the same as superposing gamma and beta.
The direct (one-hot) path normalises the candidate's channels with their own slice of the running
statistics and scales by the selected weight.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from tanglenas_cli.nas.choices import WeightSource
from tanglenas_cli.nas.entangled import EntangledLayer, per_candidate
from tanglenas_cli.nas.superposition import SlicedDim, Superposition


class EntangledBatchNorm2d(EntangledLayer):
    """BatchNorm2d over the largest width; candidate ``i`` uses the first ``sizes[i]`` channels."""

    def __init__(
        self,
        source: WeightSource,
        sizes: int | Sequence[int],
        *,
        affine: bool = True,
        track_running_stats: bool = True,
        momentum: float = 0.1,
        eps: float = 1e-5,
    ) -> None:
        super().__init__(source)
        self.sizes = per_candidate(sizes, len(source), "channels")
        width = max(self.sizes)
        self.norm = nn.BatchNorm2d(
            width, eps=eps, momentum=momentum, affine=affine, track_running_stats=track_running_stats
        )
        self.channel_superposition = Superposition((width,), [SlicedDim(0, self.sizes)])

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}"

    def forward_mixture(self, x: Tensor, weights: Tensor) -> Tensor:
        mask = self.channel_superposition.mask(weights.to(x.dtype))
        return self.norm(x) * mask.view(1, -1, 1, 1)

    def forward_candidate(self, x: Tensor, index: int, scale: Tensor | float = 1.0) -> Tensor:
        channels = self.sizes[index]
        x = x[:, :channels]
        norm = self.norm
        use_batch_stats = norm.training or norm.running_mean is None
        factor = norm.momentum if norm.momentum is not None else 0.0
        if norm.training and norm.num_batches_tracked is not None:
            norm.num_batches_tracked.add_(1)
            if norm.momentum is None:  # a cumulative average, as nn.BatchNorm2d (BN recalibration)
                factor = 1.0 / float(norm.num_batches_tracked)
        output = F.batch_norm(
            x,
            None if norm.running_mean is None else norm.running_mean[:channels],
            None if norm.running_var is None else norm.running_var[:channels],
            None if norm.weight is None else norm.weight[:channels],
            None if norm.bias is None else norm.bias[:channels],
            use_batch_stats,
            factor,
            norm.eps,
        )
        return output * scale

    def export(self, index: int) -> nn.BatchNorm2d:
        """Return a standalone ``nn.BatchNorm2d`` with candidate ``index``'s parameters and statistics."""
        channels = self.sizes[index]
        norm = nn.BatchNorm2d(
            channels, eps=self.norm.eps, momentum=self.norm.momentum, affine=self.norm.affine,
            track_running_stats=self.norm.track_running_stats,
        )  # fmt: skip
        state = {k: (v[:channels] if v.dim() == 1 else v) for k, v in self.norm.state_dict().items()}
        norm.load_state_dict(state)
        return norm
