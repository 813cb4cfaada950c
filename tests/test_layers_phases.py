"""The two pixel phases equal the padded, shifted, strided formula of DARTS' FactorizedReduce."""

import pytest
import torch
import torch.nn.functional as F

from tanglenas_cli.layers.phases import two_phases
from tanglenas_cli.spaces import darts_cells
from tanglenas_cli.spaces.darts_cells import FactorizedReduce


def reference_phases(x: torch.Tensor) -> torch.Tensor:
    shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
    return torch.cat([x[:, :, ::2, ::2], shifted[:, :, ::2, ::2]], dim=1)


@pytest.mark.parametrize("size", [(8, 8), (7, 9), (5, 4), (1, 1)])
def test_two_phases_and_gradient_equal_the_formula(size):
    torch.manual_seed(0)
    x = torch.randn(3, 4, *size, dtype=torch.float64, requires_grad=True)
    ours, reference = two_phases(x), reference_phases(x)
    assert torch.equal(ours, reference)
    grad = torch.randn_like(ours)
    (ours_grad,) = torch.autograd.grad(ours, x, grad)
    (reference_grad,) = torch.autograd.grad(reference, x, grad)
    assert torch.equal(ours_grad, reference_grad)


@pytest.mark.parametrize("size", [16, 15])
def test_factorized_reduce_equals_two_strided_convs(size, monkeypatch):
    torch.manual_seed(0)
    reduce = FactorizedReduce(6, 8, affine=True).double()
    x = torch.randn(4, 6, size, size, dtype=torch.float64, requires_grad=True)
    calls = []
    monkeypatch.setattr(darts_cells, "two_phases", lambda t: calls.append(t) or two_phases(t))
    out = reduce(x)
    assert len(calls) == 1  # the one-conv path ran
    relu = x.relu()
    shifted = F.pad(relu, (0, 1, 0, 1))[:, :, 1:, 1:]
    halves = [F.conv2d(relu, reduce.conv_1.weight, stride=2),
              F.conv2d(shifted, reduce.conv_2.weight, stride=2)]  # fmt: skip
    expected = F.batch_norm(torch.cat(halves, 1), None, None, reduce.bn.weight, reduce.bn.bias, True)
    torch.testing.assert_close(out, expected)
    grad = torch.randn_like(out)
    inputs = (x, reduce.conv_1.weight, reduce.conv_2.weight)
    ours, theirs = torch.autograd.grad(out, inputs, grad), torch.autograd.grad(expected, inputs, grad)
    for mine, reference in zip(ours, theirs, strict=True):
        torch.testing.assert_close(mine, reference)
