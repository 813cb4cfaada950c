"""conv2d with stride == dilation computed on the subsampled input equals F.conv2d exactly."""

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from tanglenas_cli.layers import conv
from tanglenas_cli.layers.conv import Conv2d, conv2d


@pytest.mark.parametrize("size", [(16, 16), (15, 9), (7, 8)])
@pytest.mark.parametrize("kernel, stride, dilation, groups", [
    (3, 2, 2, 4), (5, 2, 2, 4), (3, 3, 3, 1), (5, 1, 1, 4), (3, 2, 1, 1), (3, 1, 2, 4),
    (1, 2, 1, 1), (1, 3, 1, 2),
])  # fmt: skip
def test_conv2d_equals_torch(size, kernel, stride, dilation, groups):
    x = torch.randn(2, 4, *size, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(4, 4 // groups, kernel, kernel, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(4, dtype=torch.float64, requires_grad=True)
    padding = dilation * (kernel - 1) // 2
    expected = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    actual = conv2d(x, weight, bias, stride, padding, dilation, groups)
    torch.testing.assert_close(actual, expected)
    upstream = torch.randn_like(expected)
    grads = torch.autograd.grad(actual, (x, weight, bias), upstream)
    for got, want in zip(grads, torch.autograd.grad(expected, (x, weight, bias), upstream), strict=True):
        torch.testing.assert_close(got, want)


def test_conv2d_module_keeps_the_state_dict_and_numbers():
    fast = Conv2d(4, 4, 5, 2, 4, dilation=2, groups=4, bias=False)
    plain = torch.nn.Conv2d(4, 4, 5, 2, 4, dilation=2, groups=4, bias=False)
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(2, 4, 11, 11)
    torch.testing.assert_close(fast(x), plain(x))


def test_channels_last_strided_1x1_conv_does_not_corrupt_memory():
    # torch 2.14's oneDNN weight gradient of this exact conv corrupts the heap (abort); ours subsamples.
    script = """
import torch
from tanglenas_cli.layers.conv import Conv2d
conv = Conv2d(4, 4, 1, stride=2, bias=False).to(memory_format=torch.channels_last)
for _ in range(20):
    x = torch.randn(47, 4, 16, 16).contiguous(memory_format=torch.channels_last).requires_grad_()
    conv(x).square().sum().backward()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-500:]


@pytest.mark.parametrize("kernel, dilation", [(3, 1), (5, 1), (3, 2), (5, 2)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_same_depthwise_conv_backward_is_the_flipped_kernel_conv(kernel, dilation, channels_last):
    x = torch.randn(2, 3, 7, 8, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 1, kernel, kernel, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, dtype=torch.float64, requires_grad=True)
    padding = dilation * (kernel - 1) // 2
    inputs = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    output = conv2d(inputs, weight, bias, 1, padding, dilation, 3)
    assert type(output.grad_fn).__name__ == "_SameDepthwiseBackward"  # the fast input gradient is used
    same = lambda a, w, b: conv2d(a, w, b, 1, padding, dilation, 3)  # noqa: E731
    assert torch.autograd.gradcheck(same, (x, weight, bias))


def test_same_depthwise_conv_under_cpu_autocast_is_torchs_own():
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    weight = torch.randn(3, 1, 5, 5, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = conv2d(x, weight, None, 1, 4, 2, 3)
    assert output.dtype == torch.bfloat16 and type(output.grad_fn).__name__ != "_SameDepthwiseBackward"
    output.float().sum().backward()  # bf16 output gradient, fp32 weights: no dtype mismatch
    assert x.grad.dtype == torch.float32 and weight.grad.dtype == torch.float32


@pytest.mark.parametrize("kernel, dilation", [(3, 1), (5, 1), (5, 2)])
@pytest.mark.parametrize("size", [(21, 23), (6, 5)])
def test_depthwise_weight_grad_per_tap_equals_atens(kernel, dilation, size, monkeypatch):
    """Above PER_TAP_PIXELS the weight gradient is the per-tap sum; it equals ATen's (float64)."""
    torch.manual_seed(0)
    x = torch.randn(3, 4, *size, dtype=torch.float64)
    grad = torch.randn_like(x)
    padding = dilation * (kernel // 2)
    weight = torch.randn(4, 1, kernel, kernel, dtype=torch.float64)
    ours = conv.depthwise_weight_grad(grad, x, kernel, padding, dilation)
    aten = torch.ops.aten.convolution_backward(
        grad, x, weight, None, [1, 1], [padding, padding], [dilation, dilation], False, [0, 0], 4,
        [False, True, False],
    )[1]  # fmt: skip
    torch.testing.assert_close(ours, aten)
    monkeypatch.setattr(conv, "PER_TAP_PIXELS", 0)  # the module's backward takes the per-tap path
    leaf = x.clone().requires_grad_()
    weight.requires_grad_()
    output = conv2d(leaf, weight, None, 1, padding, dilation, 4)
    assert type(output.grad_fn).__name__ == "_SameDepthwiseBackward"
    assert torch.autograd.gradcheck(lambda a, w: conv2d(a, w, None, 1, padding, dilation, 4), (leaf, weight))
