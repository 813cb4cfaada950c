"""The discrete networks against the reference implementations that install from PyPI.

NAS-Bench-201 (xautodl's ``TinyNetwork``), the NATS-Bench size space (xautodl's ``infer.shape.tiny``) and
Once-for-All's MobileNetV3 subnets (``ofa``): the same parameter count, the same multiply-adds, and the
same logits in eval mode once this project's weights (and batch-norm statistics) are copied into the
reference network. The weights are copied in state-dict order, each tensor checked for its shape: both
sides register their layers in forward order.

The references are dev-only (xautodl pins numpy<=1.19.5, so neither is a dependency); ``make install``
adds them without their dependencies. Each test skips, saying so, where its package is missing.
"""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from tanglenas_cli.engine.flops import count_flops
from tanglenas_cli.spaces import create_space
from tanglenas_cli.spaces.base import DataShape

INSTALL = "pip install --no-deps xautodl==1.0.0 ofa==0.1.0.post202307202001 (part of `make install`)"
CIFAR = DataShape(10, (3, 32, 32))
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
NB201_ARCHS = [
    BEST,
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|",
    "|skip_connect~0|+|none~0|avg_pool_3x3~1|+|nor_conv_1x1~0|none~1|skip_connect~2|",
    "|none~0|+|none~0|none~1|+|avg_pool_3x3~0|skip_connect~1|none~2|",  # nodes 1 and 2 are zero
]
# NATS size strings: equal widths, and different widths on the cells' skip edges (layers 0 -> 2 -> 4)
NATS_WIDTHS = [
    "64:64:64:64:64", "8:8:8:8:8", "8:16:24:32:40", "16:32:24:48:40", "64:8:64:8:64", "40:24:56:56:16",
]  # fmt: skip


def reference(module: str):
    return pytest.importorskip(module, reason=f"reference implementation {module!r} not installed: {INSTALL}")


def params_of(network: nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


def calibrated(network: nn.Module, shape: tuple[int, ...], seed: int = 0) -> nn.Module:
    """Return ``network`` in eval mode with random BN scales / shifts and BN statistics of random batches
    (not the initial ones, and bounded activations, so that the comparison of logits means something)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = None  # a plain mean over the calibration batches
                if module.affine:
                    module.weight.copy_(1 + 0.2 * torch.randn(module.weight.shape, generator=generator))
                    module.bias.copy_(0.2 * torch.randn(module.bias.shape, generator=generator))
        network.train()
        network(torch.randn(4, *shape, generator=generator))
    return network.eval()


def copy_in_order(source: nn.Module, target: nn.Module) -> None:
    """Copy every tensor of ``source``'s state dict into ``target``'s tensor at the same position."""
    ours, theirs = list(source.state_dict().items()), list(target.state_dict().items())
    assert len(ours) == len(theirs), (len(ours), len(theirs))
    with torch.no_grad():
        for (name, tensor), (their_name, their_tensor) in zip(ours, theirs, strict=True):
            assert tensor.shape == their_tensor.shape, (name, their_name, tensor.shape, their_tensor.shape)
            their_tensor.copy_(tensor)


def assert_same_logits(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    scale = ours.abs().max().item()
    assert scale > 1e-3  # a meaningful comparison, not two near-zero outputs
    torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=1e-5 * scale)


def xautodl_macs(network: nn.Module, shape: tuple[int, ...], classes: int) -> int:
    """xautodl's FLOP count (its unit: multiply-adds; it adds one per output of a bias, which here only the
    classifier has), less the classifier's bias additions, in this project's convention."""
    from xautodl.utils import get_model_infos

    flops_in_millions, _ = get_model_infos(network, (1, *shape))
    return round(flops_in_millions * 1e6) - classes


@pytest.mark.parametrize("arch", NB201_ARCHS)
def test_nb201_network_equals_xautodl_tiny_network(arch: str):
    reference("xautodl")
    from xautodl.models.cell_infers.tiny_network import TinyNetwork
    from xautodl.models.cell_searchs.genotypes import Structure

    torch.manual_seed(0)
    space = create_space("nb201", CIFAR, {})
    ours = calibrated(space.build_network(arch), CIFAR.input_shape)
    theirs = TinyNetwork(16, 5, Structure.str2structure(arch), CIFAR.num_classes).eval()
    assert params_of(ours) == params_of(theirs)
    if arch == BEST:
        assert params_of(ours) == 1_288_506  # NAS-Bench-201's 1.289 MB
    assert count_flops(space, ours) // 2 == xautodl_macs(theirs, CIFAR.input_shape, CIFAR.num_classes)
    copy_in_order(ours, theirs)
    x = torch.randn(2, *CIFAR.input_shape)
    with torch.no_grad():
        assert_same_logits(ours(x), theirs(x)[1])


@pytest.mark.parametrize("widths", NATS_WIDTHS)
def test_nats_size_network_equals_xautodl_shape_tiny_net(widths: str):
    reference("xautodl")
    from xautodl.models import get_cell_based_tiny_net

    torch.manual_seed(0)
    space = create_space("nats_sss", CIFAR, {})
    ours = calibrated(space.build_network(widths), CIFAR.input_shape)
    config = {"name": "infer.shape.tiny", "channels": widths, "genotype": BEST, "num_classes": 10}
    theirs = get_cell_based_tiny_net(config).eval()
    assert params_of(ours) == params_of(theirs)
    assert count_flops(space, ours) // 2 == xautodl_macs(theirs, CIFAR.input_shape, CIFAR.num_classes)
    copy_in_order(ours, theirs)
    x = torch.randn(2, *CIFAR.input_shape)
    with torch.no_grad():
        assert_same_logits(ours(x), theirs(x)[1])


def mobilenet_architectures() -> list[dict]:
    space = create_space("mobilenetv3", DataShape(1000, (3, 224, 224)), {})
    rng = random.Random(0)
    drawn = [
        {
            "kernel_size": [[rng.choice([3, 5, 7]) for _ in range(4)] for _ in range(5)],
            "expand_ratio": [[rng.choice([3, 4, 6]) for _ in range(4)] for _ in range(5)],
            "depth": [rng.choice([2, 3, 4]) for _ in range(5)],
        }
        for _ in range(2)
    ]
    return [space.largest_architecture(), space.smallest_architecture(), *drawn]


@pytest.fixture(scope="module")
def ofa_supernet():
    reference("ofa")
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3

    torch.manual_seed(0)
    return OFAMobileNetV3(n_classes=1000, dropout_rate=0.1, width_mult=1.0, ks_list=[3, 5, 7],
                          expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])  # fmt: skip


@pytest.mark.parametrize("arch", mobilenet_architectures(), ids=["largest", "smallest", "random0", "random1"])
def test_mobilenetv3_network_equals_ofa_subnet(arch: dict, ofa_supernet):
    from ofa.utils.pytorch_utils import count_net_flops

    space = create_space("mobilenetv3", DataShape(1000, (3, 224, 224)), {})
    ours = calibrated(space.build_network(arch), (3, 64, 64))
    ofa_supernet.set_active_subnet(
        ks=[k for stage in arch["kernel_size"] for k in stage],
        e=[e for stage in arch["expand_ratio"] for e in stage],
        d=arch["depth"],
    )
    theirs = ofa_supernet.get_active_subnet(preserve_weight=True).eval()
    assert params_of(ours) == params_of(theirs)
    # OFA sums its multiply-adds in float32 (exact to about 1e-7)
    assert count_flops(space, ours) // 2 == pytest.approx(count_net_flops(theirs, (1, 3, 224, 224)), rel=1e-6)
    copy_in_order(ours, theirs)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert_same_logits(ours(x), theirs(x))
