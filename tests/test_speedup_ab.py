"""The tried alternatives that `benchmarks/speedup_ab.py` times compute what the project's layers do."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from tanglenas_cli.layers.pooling import BoxAvgPool2d, SkipPoolSource, skip_pool_mix

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "speedup_ab.py"


@pytest.fixture(scope="module")
def speedup_ab():
    spec = importlib.util.spec_from_file_location("speedup_ab", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [(8, 8), (7, 9), (2, 5)])
@pytest.mark.parametrize("kernel", [3, 5])
def test_shifted_average_equals_avg_pool(speedup_ab, stride, size, kernel):
    x = torch.randn(2, 3, *size, dtype=torch.float64, requires_grad=True)
    expected = nn.AvgPool2d(kernel, stride, kernel // 2, count_include_pad=False)(x)
    actual = speedup_ab.shifted_average(x, kernel, stride)
    torch.testing.assert_close(actual, expected)
    upstream = torch.randn_like(expected)
    grad_expected = torch.autograd.grad(expected, x, upstream)[0]
    torch.testing.assert_close(torch.autograd.grad(actual, x, upstream)[0], grad_expected)


def test_shifted_skip_pool_mix_equals_the_fused_term(speedup_ab):
    torch.manual_seed(0)
    xs = [torch.randn(2, 4, 7, 6, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    addend = torch.randn(2, 4, 7, 6, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    inputs = (*xs, weights, addend)
    results = []
    for mix in (skip_pool_mix, speedup_ab.shifted_skip_pool_mix):
        sources = [SkipPoolSource(x, w[0], w[1], BoxAvgPool2d(3)) for x, w in zip(xs, weights, strict=True)]
        out = mix(sources, addend)
        results.append([out, *torch.autograd.grad(out, inputs, torch.ones_like(out))])
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want)
