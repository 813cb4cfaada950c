"""The NATS size space: entangled widths, derivation, size strings, discrete network."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tanglenas_cli.errors import UserError
from tanglenas_cli.nas.entangled import EntangledConv2d, EntangledLinear
from tanglenas_cli.nas.entangled_norm import EntangledBatchNorm2d
from tanglenas_cli.nas.samplers import make_sampler
from tanglenas_cli.spaces.base import DataShape, choices_by_name
from tanglenas_cli.spaces.nats_sss import WIDTHS, NATSSizeSpace

SPACE = NATSSizeSpace(DataShape(10, (3, 16, 16)))


def test_derive_key_and_training_step():
    model = SPACE.build_supernet(True)
    arch = SPACE.derive(choices_by_name(model))
    key = SPACE.benchmark_key(arch)
    assert SPACE.validate(key) == arch and len(key.split(":")) == 5
    network = SPACE.build_network("8:16:24:64:32")
    loss = F.cross_entropy(network(torch.randn(4, 3, 16, 16)), torch.randint(0, 10, (4,)))
    loss.backward()
    torch.optim.SGD(network.parameters(), lr=0.1).step()
    assert len(SPACE.all_architectures()) == len(WIDTHS) ** 5
    with pytest.raises(UserError):
        SPACE.validate("8:16:24")


def test_skip_edge_between_two_widths_is_conv_bn_without_relu():
    """NATS-Bench's skip edge between different widths is a 1x1 conv + BN (xautodl's FactorizedReduce at
    stride 1), no ReLU before it; equal widths keep the identity."""
    network = SPACE.build_network("16:32:24:24:40")  # cells: 16 -> 16, 32 -> 24, 24 -> 40
    skips = [cell.edges[3] for cell in (network.layers[0], network.layers[2], network.layers[4])]
    assert isinstance(skips[0], torch.nn.Identity)
    for skip, (c_in, c_out) in zip(skips[1:], [(32, 24), (24, 40)], strict=True):
        assert len(skip) == 2 and isinstance(skip[0], torch.nn.Conv2d), skip
        assert isinstance(skip[1], torch.nn.BatchNorm2d), skip
        assert (skip[0].in_channels, skip[0].out_channels, skip[0].kernel_size) == (c_in, c_out, (1, 1))
    for entangle in (True, False):
        supernet = SPACE.build_supernet(entangle)
        for cell in (supernet.layers[2], supernet.layers[4]):
            assert not any(isinstance(m, torch.nn.ReLU) for m in cell.edges[3].modules())
        assert isinstance(supernet.layers[0].edges[3], torch.nn.Identity)  # one choice: equal widths


def test_discrete_network_is_the_benchmarks_by_default():
    """BN affine everywhere (NATS-Bench's network), whatever the search's settings; network=supernet
    keeps the supernet's cell BN (no affine by default)."""
    for options in ({}, {"affine": False, "track_running_stats": False}):
        network = NATSSizeSpace(DataShape(10, (3, 16, 16)), options).build_network("16:32:24:24:40")
        norms = [m for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert all(m.affine and m.track_running_stats for m in norms)
    searched = NATSSizeSpace(DataShape(10, (3, 16, 16)), {"network": "supernet"}).build_network("8:8:8:8:8")
    assert sum(not m.affine for m in searched.modules() if isinstance(m, torch.nn.BatchNorm2d)) == 3 * 5
    with pytest.raises(UserError, match=r"nats_sss space_options\.network 'x'"):
        NATSSizeSpace(DataShape(10, (3, 16, 16)), {"network": "x"})


def test_one_hot_supernet_equals_discrete_network():
    torch.manual_seed(0)
    supernet = SPACE.build_supernet(True)
    choices = choices_by_name(supernet)
    make_sampler("darts_v1").sample(choices.values())
    supernet(torch.randn(8, 3, 16, 16))  # running statistics
    supernet.eval()
    arch = {"channels": [16, 32, 24, 48, 40]}  # neighbouring widths differ, as the skip edges assume
    for i, width in enumerate(arch["channels"]):
        index = WIDTHS.index(width)
        choices[f"channels{i}"].set_mixing(F.one_hot(torch.tensor(index), len(WIDTHS)).float(), index)
    searched = NATSSizeSpace(SPACE.data, {"network": "supernet"})  # the supernet's cell BN
    network = searched.build_network(arch).eval()
    with torch.no_grad():
        for name, module in supernet.named_modules():
            if isinstance(module, EntangledConv2d | EntangledBatchNorm2d | EntangledLinear):
                exported = module.export(module.source.mixing().index)
                network.get_submodule(name).load_state_dict(exported.state_dict())
    x = torch.randn(3, 3, 16, 16)
    torch.testing.assert_close(supernet(x), network(x), atol=1e-5, rtol=1e-5)


def test_entangled_batch_norm_mixture_is_the_masked_norm():
    from tanglenas_cli.nas.choices import Choice

    choice = Choice("width", [2, 4])
    norm = EntangledBatchNorm2d(choice, [2, 4], affine=False)
    choice.set_mixing(torch.tensor([0.3, 0.7]))
    x = torch.randn(5, 4, 3, 3)
    expected = F.batch_norm(x, None, None, training=True) * torch.tensor([1.0, 1.0, 0.7, 0.7]).view(
        1, 4, 1, 1
    )
    torch.testing.assert_close(norm(x), expected)


def test_entangled_batch_norm_direct_path_averages_cumulatively_without_momentum():
    """momentum=None (the BN recalibration of the post-hoc search) is a plain mean, as in nn.BatchNorm2d."""
    from tanglenas_cli.nas.choices import Choice

    choice = Choice("width", [2, 4])
    norm = EntangledBatchNorm2d(choice, [2, 4], affine=False)
    norm.norm.reset_running_stats()
    norm.norm.momentum = None
    choice.set_mixing(torch.tensor([1.0, 0.0]), 0)
    batches = [torch.randn(6, 4, 3, 3) + shift for shift in (0.0, 2.0, 5.0)]
    for x in batches:
        norm(x)
    means = torch.stack([x[:, :2].mean((0, 2, 3)) for x in batches]).mean(0)
    torch.testing.assert_close(norm.norm.running_mean[:2], means)
    assert torch.equal(norm.norm.running_mean[2:], torch.zeros(2))
