"""Weight-sharing MixedOp, alone and with an entangled group on the same edge (NB201-style)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tanglenas_cli.nas.choices import Choice
from tanglenas_cli.nas.entangled import EntangledConv2d
from tanglenas_cli.nas.mixed_op import MixedOp, Zero


class Counting(nn.Module):
    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.module(x)


def nb201_edge(channels: int = 4):
    """none, skip, conv3x3+conv1x1 entangled, avg-pool -- one choice over five ops."""
    choice = Choice("edge", ["none", "skip_connect", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3"])
    conv = EntangledConv2d(choice.subset([2, 3]), channels, channels, [3, 1])
    pool = Counting(nn.AvgPool2d(3, 1, 1, count_include_pad=False))
    op = MixedOp(choice, [Zero(), nn.Identity(), None, None, pool], groups=[([2, 3], conv)])
    return choice, conv, pool, op


def test_edge_equals_explicit_sum_of_every_op():
    torch.manual_seed(0)
    choice, conv, pool, op = nb201_edge()
    x = torch.randn(2, 4, 6, 6)
    weights = torch.softmax(torch.randn(5), 0)
    choice.set_mixing(weights)
    conv1 = conv.weight[:, :, 1:2, 1:2]
    expected = (
        weights[1] * x
        + weights[2] * F.conv2d(x, conv.weight, padding=1)
        + weights[3] * F.conv2d(x, conv1, padding=0)
        + weights[4] * pool.module(x)
    )
    torch.testing.assert_close(op(x), expected, atol=1e-5, rtol=1e-5)


def test_one_hot_runs_only_the_selected_op():
    choice, conv, pool, op = nb201_edge()
    x = torch.randn(2, 4, 6, 6)
    choice.set_mixing(torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0]), 4)
    torch.testing.assert_close(op(x), pool.module(x))
    assert pool.calls == 1
    choice.set_mixing(torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0]), 3)
    torch.testing.assert_close(op(x), F.conv2d(x, conv.weight[:, :, 1:2, 1:2]))
    assert pool.calls == 1
    choice.set_mixing(torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0]), 0)
    out = op(x)
    assert out.shape == x.shape and torch.count_nonzero(out) == 0


def test_ws_outputs_of_different_widths_are_padded():
    choice = Choice("width", [2, 3])
    ops = [nn.Conv2d(1, 2, 1), nn.Conv2d(1, 3, 1)]
    op = MixedOp(choice, ops, pad_dim=1)
    x = torch.randn(1, 1, 2, 2)
    weights = torch.tensor([0.4, 0.6])
    choice.set_mixing(weights)
    expected = 0.6 * ops[1](x)
    expected[:, :2] += 0.4 * ops[0](x)
    torch.testing.assert_close(op(x), expected)


def test_all_zero_edge_and_strided_zero():
    choice = Choice("edge", ["none"])
    op = MixedOp(choice, [Zero(stride=2)])
    choice.set_mixing(torch.tensor([1.0]))
    out = op(torch.randn(2, 3, 8, 8))
    assert out.shape == (2, 3, 4, 4) and torch.count_nonzero(out) == 0


def test_weight_sharing_gdas_passes_a_gradient_to_every_straight_through_weight():
    """WS under GDAS is sum_j (h_j * op_j(x) if j == k else h_j), as the original code: every h_j learns."""
    from tanglenas_cli.nas.samplers import GDASSampler

    torch.manual_seed(0)
    choice = Choice("edge", ["a", "b", "c"])
    ops = [nn.Conv2d(2, 2, 3, padding=1) for _ in range(3)]
    op = MixedOp(choice, ops)
    x = torch.randn(2, 2, 5, 5)
    GDASSampler(seed=0, tau_max=1.0).sample([choice])
    mixing = choice.mixing()
    out = op(x)
    (out * torch.linspace(-1, 2, out.numel()).view_as(out)).sum().backward(retain_graph=True)
    got = choice.arch_logits.grad.clone()
    choice.arch_logits.grad = None
    hard, k = mixing.weights, mixing.index
    terms = [hard[j] * ops[j](x) if j == k else hard[j] for j in range(3)]
    expected = sum(terms[1:], terms[0])
    (expected * torch.linspace(-1, 2, out.numel()).view_as(out)).sum().backward(retain_graph=True)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(got, choice.arch_logits.grad)
    # the selected term alone (what the project did before) gives a different gradient
    choice.arch_logits.grad = None
    ((hard[k] * ops[k](x)) * torch.linspace(-1, 2, out.numel()).view_as(out)).sum().backward()
    assert not torch.allclose(got, choice.arch_logits.grad)


def test_entangled_edges_under_gdas_return_the_selected_candidate_alone():
    choice, conv, _, op = nb201_edge()
    weights = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0], requires_grad=True)
    choice.set_mixing(weights, 2)
    x = torch.randn(1, 4, 5, 5)
    torch.testing.assert_close(op(x), conv.forward_candidate(x, 0, weights[2]))
