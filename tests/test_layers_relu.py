"""SharedReLU: one output per input tensor, the same numbers and gradients as separate ReLUs."""

from __future__ import annotations

import torch
from torch import nn

from tanglenas_cli.layers.relu import SharedReLU, shared_relu


def test_relus_of_one_input_share_one_output_and_sum_their_gradients():
    torch.manual_seed(0)
    leaf = torch.randn(2, 3, 4, 4, requires_grad=True)
    x = leaf * 1.5  # a non-leaf, like a cell state
    first, second = SharedReLU(), SharedReLU()
    a, b = first(x), second(x)
    assert a is b
    torch.testing.assert_close(a, x.relu())
    (a * 2 + b * 3).sum().backward()
    torch.testing.assert_close(leaf.grad, 1.5 * 5 * (x > 0).to(x.dtype))


def test_a_changed_input_or_grad_mode_gets_a_new_output():
    x = torch.randn(5) * 1.0
    out = shared_relu(x)
    assert shared_relu(x) is out
    with torch.no_grad():
        assert shared_relu(x) is not out
    out = shared_relu(x)
    assert out.requires_grad == x.requires_grad
    x.add_(1.0)
    fresh = shared_relu(x)
    assert fresh is not out
    torch.testing.assert_close(fresh, x.relu())
    fresh.mul_(0.0)  # a consumer changed the shared output in place: it is not handed out again
    torch.testing.assert_close(shared_relu(x), x.relu())


def test_a_leaf_that_requires_grad_is_not_memoised():
    leaf = torch.randn(3, requires_grad=True)
    assert shared_relu(leaf) is not shared_relu(leaf)


def test_shared_relu_is_an_nn_relu_without_state():
    relu = SharedReLU()
    assert isinstance(relu, nn.ReLU) and not relu.inplace and not relu.state_dict()


def test_inference_tensors_get_a_plain_relu():
    with torch.inference_mode():
        x = torch.randn(4) * 1.0
        torch.testing.assert_close(shared_relu(x), x.relu())


def test_the_shared_output_is_freed_with_its_input():
    import gc
    import weakref

    x = torch.randn(3, requires_grad=True) * 2.0
    output = weakref.ref(shared_relu(x))
    del x
    gc.collect()
    assert output() is None
