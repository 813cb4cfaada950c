"""PoolNorm.weighted: the same output, gradients and running statistics as ``w * BN(pool(x))``."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from tanglenas_cli.layers.pool_norm import PoolNorm
from tanglenas_cli.layers.pooling import BoxAvgPool2d, MaxPool2d


def _pools(stride: int) -> list[nn.Module]:
    return [MaxPool2d(3, stride=stride, padding=1), BoxAvgPool2d(3, stride=stride)]


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kind", [0, 1])
@pytest.mark.parametrize("training", [True, False])
def test_weighted_equals_autograd_of_the_plain_modules(stride, kind, training):
    torch.manual_seed(0)
    lean = PoolNorm(_pools(stride)[kind], nn.BatchNorm2d(6, affine=False))
    lean.train(training)
    if not training:
        lean[1].running_mean.uniform_(-1, 1)
        lean[1].running_var.uniform_(0.5, 2)
    plain = nn.Sequential(*copy.deepcopy(list(lean)))
    x = torch.randn(4, 6, 9, 9, dtype=torch.float64)
    weights = torch.rand(3, dtype=torch.float64)
    lean.double(), plain.double()
    results = []
    for module in (lean, plain):
        xx, w = x.clone().requires_grad_(), weights.clone().requires_grad_()
        out = module.weighted(xx, w[1]) if module is lean else w[1] * module(xx)
        grad = torch.randn_like(out, generator=torch.Generator().manual_seed(1))
        out.backward(grad)
        norm = module[1]
        stats = (norm.running_mean.clone(), norm.running_var.clone(), int(norm.num_batches_tracked))
        results.append((out.detach(), xx.grad, w.grad, *stats))
    for ours, reference in zip(*results, strict=True):
        if isinstance(ours, int):
            assert ours == reference
        else:
            torch.testing.assert_close(ours, reference)


def test_weighted_keeps_only_its_input_for_backward():
    """The saved tensors of the lean term are x and w; no pool output, indices or normalised copy."""
    lean = PoolNorm(MaxPool2d(3, stride=1, padding=1), nn.BatchNorm2d(4, affine=False))
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    w = torch.rand(2, requires_grad=True)
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = lean.weighted(x, w[0]).sum()
    out.backward()  # its recomputation saves tensors of its own, freed right away
    assert sum(t.numel() for t in saved) <= x.numel() + 1
    assert x.grad is not None and w.grad is not None


def test_weighted_without_gradients_is_the_plain_product():
    lean = PoolNorm(BoxAvgPool2d(3), nn.BatchNorm2d(3, affine=False)).eval()
    x, w = torch.randn(2, 3, 5, 5), torch.tensor(0.25)
    with torch.no_grad():
        torch.testing.assert_close(lean.weighted(x, w), w * lean(x))


def test_pool_norm_refuses_an_affine_norm():
    with pytest.raises(ValueError, match="without affine"):
        PoolNorm(BoxAvgPool2d(3), nn.BatchNorm2d(3))
