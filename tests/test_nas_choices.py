"""Choices, subsets, joint choices, and arch/weight parameter separation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tanglenas_cli.nas.choices import Choice, JointChoice, arch_parameters, find_choices, weight_parameters
from tanglenas_cli.nas.entangled import EntangledLinear
from tanglenas_cli.nas.samplers import DartsSampler, SPOSSampler


def test_joint_choice_outer_product_row_major():
    a, b, c = Choice("a", [1, 2]), Choice("b", ["x", "y", "z"]), Choice("c", [True, False])
    a.set_mixing(torch.tensor([0.25, 0.75]))
    b.set_mixing(torch.tensor([0.1, 0.2, 0.7]))
    c.set_mixing(torch.tensor([0.4, 0.6]))
    joint = JointChoice([a, b, c])
    assert joint.candidates[:3] == [(1, "x", True), (1, "x", False), (1, "y", True)]
    expected = torch.einsum("i,j,k->ijk", a.mixing().weights, b.mixing().weights, c.mixing().weights).reshape(
        -1
    )
    torch.testing.assert_close(joint.mixing().weights, expected)
    assert joint.mixing().index is None


def test_joint_one_hot_index_and_gradient_reaches_both():
    a, b = Choice("a", [1, 2, 3]), Choice("b", [4, 5])
    a.set_mixing(torch.tensor([0.0, 1.0, 0.0]), 1)
    b.set_mixing(torch.tensor([0.0, 1.0]), 1)
    joint = JointChoice([a, b])
    assert joint.mixing().index == 3 and joint.candidates[3] == (2, 5)


def test_subset_and_cache_follow_resampling():
    choice = Choice("edge", ["none", "skip", "conv3", "conv1", "pool"])
    group = choice.subset([2, 3])
    choice.set_mixing(torch.tensor([0.1, 0.2, 0.3, 0.15, 0.25]))
    torch.testing.assert_close(group.mixing().weights, torch.tensor([0.3, 0.15]))
    choice.set_mixing(torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0]), 3)
    assert group.mixing().index == 1
    choice.set_mixing(torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0]), 1)
    assert group.mixing().index is None and group.mixing().weights.sum() == 0


def test_layers_sharing_a_choice_share_its_subset_and_their_mask(monkeypatch):
    """Cells that share their choices (NB201) compute a group's weights and a kernel mask once per sample,
    and again after a new sample, an in-place change or a change of grad mode."""
    from tanglenas_cli.nas import superposition
    from tanglenas_cli.nas.entangled import EntangledConv2d

    choice = Choice("edge", ["none", "skip", "conv3", "conv1", "pool"])
    assert choice.subset([2, 3]) is choice.subset([2, 3])
    assert choice.subset([2, 3]) is not choice.subset([2, 3], normalized=True)
    convs = [EntangledConv2d(choice.subset([2, 3]), 4, 4, [3, 1]) for _ in range(3)]
    computed = []
    compute = superposition.Superposition._mask
    monkeypatch.setattr(
        superposition.Superposition, "_mask", lambda self, w: computed.append(1) or compute(self, w)
    )
    x = torch.randn(2, 4, 5, 5)

    def run_all() -> list[torch.Tensor]:
        return [conv(x) for conv in convs]

    choice.set_mixing(torch.softmax(torch.randn(5), 0).requires_grad_())
    outputs = run_all()
    assert len(computed) == 1
    for conv, out in zip(convs, outputs, strict=True):  # each layer still gets its own kernel's output
        weights = choice.mixing().weights[2:4]
        kernel = conv.weight * weights[0] + F.pad(conv.weight[:, :, 1:2, 1:2] * weights[1], (1, 1, 1, 1))
        torch.testing.assert_close(out, F.conv2d(x, kernel, conv.bias, padding=1))
    sum(o.sum() for o in outputs).backward()  # one mask, three users: its gradient accumulates
    with torch.no_grad():
        run_all()
    assert len(computed) == 2
    choice.set_mixing(torch.softmax(torch.randn(5), 0))
    run_all()
    assert len(computed) == 3
    with torch.no_grad():
        run_all()  # the grad mode changed
        assert len(computed) == 4
        convs[0].source.mixing().weights.mul_(0.5)  # an in-place change of the weights
        run_all()
    assert len(computed) == 5
    # an entry goes with its weights (kept across steps, small masks fragment the heap)
    assert all(ref() is not None for ref, _, _ in superposition._MASKS.values())
    assert sum(key[0] == convs[0].weight.shape for key in superposition._MASKS) == 1


def test_mixing_before_sampling_is_an_error():
    with pytest.raises(RuntimeError, match="sampler"):
        Choice("x", [1, 2]).mixing()


class SharedChoiceNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.width = Choice("width", [2, 4])
        self.first = EntangledLinear(self.width, 3, [2, 4])
        self.second = EntangledLinear(self.width, [2, 4], 1)

    def forward(self, x):
        return self.second(torch.relu(self.first(x)))


def test_arch_and_weight_parameters_separate_by_identity():
    net = SharedChoiceNet()
    assert find_choices(net) == [net.width]
    arch = arch_parameters(net)
    assert len(arch) == 1 and arch[0] is net.width.arch_logits
    weights = weight_parameters(net)
    assert all(p is not net.width.arch_logits for p in weights)
    assert len(weights) == 4  # two weights, two biases
    # the shared choice appears once in the state dict (layers hold it without registering it)
    assert [k for k in net.state_dict() if "arch_logits" in k] == ["width.arch_logits"]


@pytest.mark.parametrize("sampler", [DartsSampler(), SPOSSampler()])
def test_shared_choice_drives_both_layers(sampler):
    net = SharedChoiceNet()
    sampler.sample(find_choices(net))
    out = net(torch.randn(5, 3))
    assert out.shape == (5, 1)
