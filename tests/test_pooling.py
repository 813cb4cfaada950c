"""BoxAvgPool2d equals nn.AvgPool2d(k, stride, k // 2, count_include_pad=False), values and gradients."""

import pytest
import torch
from torch import nn

from tanglenas_cli.spaces.pooling import BoxAvgPool2d


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [(32, 32), (7, 9), (15, 16)])
@pytest.mark.parametrize("kernel", [3, 5])
def test_box_pool_equals_avg_pool(stride, size, kernel):
    x = torch.randn(3, 5, *size, requires_grad=True)
    expected = nn.AvgPool2d(kernel, stride, kernel // 2, count_include_pad=False)(x)
    actual = BoxAvgPool2d(kernel, stride)(x)
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-5)
    grad_expected = torch.autograd.grad(expected.square().sum(), x)[0]
    grad_actual = torch.autograd.grad(actual.square().sum(), x)[0]
    torch.testing.assert_close(grad_actual, grad_expected, atol=1e-5, rtol=1e-5)
