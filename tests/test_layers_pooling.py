"""BoxAvgPool2d equals nn.AvgPool2d(k, stride, k // 2, count_include_pad=False), values and gradients."""

import pytest
import torch
from torch import nn

from tanglenas_cli.layers.pooling import BoxAvgPool2d, MaxPool2d


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


@pytest.mark.parametrize("channels_last", [False, True])
def test_skip_pool_mix_equals_weighted_sum(channels_last):
    from tanglenas_cli.layers.pooling import SkipPoolSource, skip_pool_mix

    x = torch.randn(2, 4, 9, 8, dtype=torch.float64)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    x.requires_grad_()
    weights = torch.tensor([0.3, -0.7], dtype=torch.float64, requires_grad=True)
    pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    expected = weights[0] * x + weights[1] * pool(x)
    actual = skip_pool_mix([SkipPoolSource(x, weights[0], weights[1], BoxAvgPool2d(3))])
    torch.testing.assert_close(actual, expected)
    upstream = torch.randn_like(expected)
    grads_expected = torch.autograd.grad(expected, (x, weights), upstream)
    grads_actual = torch.autograd.grad(actual, (x, weights), upstream)
    for got, want in zip(grads_actual, grads_expected, strict=True):
        torch.testing.assert_close(got, want)


def test_mixed_op_fuses_skip_and_pool_without_changing_results():
    from tanglenas_cli.nas.choices import Choice
    from tanglenas_cli.nas.mixed_op import MixedOp, Zero

    choice = Choice("edge", ["none", "skip", "pool", "conv"])
    conv = nn.Conv2d(3, 3, 3, padding=1)
    op = MixedOp(choice, [Zero(), nn.Identity(), BoxAvgPool2d(3), conv])
    assert op._skip_pool == (1, 2)
    weights = torch.softmax(torch.randn(4), 0).requires_grad_()
    choice.set_mixing(weights)
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    expected = weights[1] * x + weights[2] * pool(x) + weights[3] * conv(x)
    actual = op(x)
    torch.testing.assert_close(actual, expected)
    grads_expected = torch.autograd.grad(expected.square().sum(), (x, weights, conv.weight))
    grads_actual = torch.autograd.grad(actual.square().sum(), (x, weights, conv.weight))
    for got, want in zip(grads_actual, grads_expected, strict=True):
        torch.testing.assert_close(got, want)


def test_skip_pool_mix_adds_its_addends_and_passes_them_the_gradient():
    from tanglenas_cli.layers.pooling import SkipPoolSource, skip_pool_mix

    x = torch.randn(2, 4, 7, 6, dtype=torch.float64, requires_grad=True)
    a, b = (torch.randn_like(x).requires_grad_() for _ in range(2))
    weights = torch.tensor([0.6, 0.25], dtype=torch.float64, requires_grad=True)
    pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    expected = weights[0] * x + weights[1] * pool(x) + a + b
    actual = skip_pool_mix([SkipPoolSource(x, weights[0], weights[1], BoxAvgPool2d(3))], a, b)
    torch.testing.assert_close(actual, expected)
    upstream = torch.randn_like(expected)
    inputs = (x, weights, a, b)
    for got, want in zip(torch.autograd.grad(actual, inputs, upstream),
                         torch.autograd.grad(expected, inputs, upstream), strict=True):  # fmt: skip
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("channels_last", [False, True])
def test_skip_pool_mix_of_several_sources_shares_one_pool(channels_last, monkeypatch):
    import tanglenas_cli.layers.pooling as pooling
    from tanglenas_cli.layers.pooling import SkipPoolSource, skip_pool_mix

    torch.manual_seed(0)
    xs = [torch.randn(2, 4, 7, 6, dtype=torch.float64) for _ in range(3)]
    if channels_last:
        xs = [x.to(memory_format=torch.channels_last) for x in xs]
    xs = [x.requires_grad_() for x in xs]
    addend = torch.randn(2, 4, 7, 6, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    expected = sum(w[0] * x + w[1] * pool(x) for x, w in zip(xs, weights, strict=True)) + addend
    sources = [SkipPoolSource(x, w[0], w[1], BoxAvgPool2d(3)) for x, w in zip(xs, weights, strict=True)]
    sources[0].pool.inverse_counts(xs[0])  # cached: not counted below
    calls, box_sum = [], pooling.box_sum
    monkeypatch.setattr(pooling, "box_sum", lambda *args: calls.append(1) or box_sum(*args))
    actual = skip_pool_mix(sources, addend)
    torch.testing.assert_close(actual, expected)
    upstream = torch.randn_like(expected)
    inputs = (*xs, weights, addend)
    for got, want in zip(torch.autograd.grad(actual, inputs, upstream),
                         torch.autograd.grad(expected, inputs, upstream), strict=True):  # fmt: skip
        torch.testing.assert_close(got, want)
    assert len(calls) == 2  # one box sum forward, one backward, for all three sources


def test_skip_pool_mix_refuses_pools_it_cannot_share():
    from tanglenas_cli.layers.pooling import SkipPoolSource, skip_pool_mix

    x, w = torch.randn(1, 2, 5, 5), torch.tensor(0.5)
    with pytest.raises(ValueError, match="one kernel size"):
        skip_pool_mix([SkipPoolSource(x, w, w, BoxAvgPool2d(3)), SkipPoolSource(x, w, w, BoxAvgPool2d(5))])
    with pytest.raises(ValueError, match="stride-1"):
        skip_pool_mix([SkipPoolSource(x, w, w, BoxAvgPool2d(3, 2))])


@pytest.mark.parametrize("one_hot", [False, True])
def test_mixed_op_into_adds_the_given_sum(one_hot):
    from tanglenas_cli.nas.choices import Choice
    from tanglenas_cli.nas.mixed_op import MixedOp, Zero

    choice = Choice("edge", ["none", "skip", "pool", "conv"])
    op = MixedOp(choice, [Zero(), nn.Identity(), BoxAvgPool2d(3), nn.Conv2d(3, 3, 3, padding=1)])
    weights = torch.softmax(torch.randn(4), 0).requires_grad_()
    if one_hot:  # the direct path: only the selected candidate runs
        choice.set_mixing(torch.eye(4)[3].requires_grad_(), index=3)
    else:
        choice.set_mixing(weights)
    x, before = torch.randn(2, 3, 6, 6), torch.randn(2, 3, 6, 6, requires_grad=True)
    expected = before + op(x)
    actual = op(x, into=before)
    torch.testing.assert_close(actual, expected)
    grad = torch.autograd.grad(actual.square().sum(), before)[0]
    torch.testing.assert_close(grad, torch.autograd.grad(expected.square().sum(), before)[0])


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("shape", [(3, 5, 9, 9), (2, 4, 8, 7)])
def test_max_pool_equals_torch_forward_and_backward(stride, shape):
    torch.manual_seed(0)
    x = torch.randn(*shape, requires_grad=True)
    ours, reference = MaxPool2d(3, stride=stride, padding=1), nn.MaxPool2d(3, stride=stride, padding=1)
    out = ours(x)
    expected = reference(x)
    assert torch.equal(out, expected) and out.is_contiguous()  # channels-first in, channels-first out
    grad = torch.randn_like(out)
    (ours_grad,) = torch.autograd.grad(out, x, grad)
    (expected_grad,) = torch.autograd.grad(expected, x, grad)
    assert torch.equal(ours_grad, expected_grad)
    channels_last = x.detach().contiguous(memory_format=torch.channels_last)
    assert torch.equal(ours(channels_last), reference(channels_last))
    assert ours.state_dict() == {} and repr(ours) == repr(reference)


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("shape", [(3, 5, 9, 9), (2, 4, 8, 7), (1, 2, 2, 3)])
def test_max_pool_without_gradient_is_the_separable_max(kernel, shape):
    from tanglenas_cli.layers.pooling import separable_max

    torch.manual_seed(0)
    x = torch.randn(*shape) - 3.0  # all negative: the -inf padding must never win
    reference = nn.MaxPool2d(kernel, stride=1, padding=kernel // 2)
    assert torch.equal(separable_max(x, kernel), reference(x))
    with torch.no_grad():
        assert torch.equal(MaxPool2d(kernel, stride=1, padding=kernel // 2)(x.requires_grad_()), reference(x))
