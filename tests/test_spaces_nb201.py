"""The NAS-Bench-201 space: supernets under every sampler, derivation, arch strings, discrete network."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tanglenas_cli.errors import UserError
from tanglenas_cli.nas import make_sampler
from tanglenas_cli.spaces.base import DataShape, choices_by_name
from tanglenas_cli.spaces.nb201 import EDGE_NAMES, OPS, NB201Space, parse_arch_string

TABLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "nb201" / "nats_bench_200ep_test.csv"
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def small(**options) -> NB201Space:
    return NB201Space(DataShape(10, (3, 16, 16)), {"C": 4, "N": 1, **options})


def test_derive_string_round_trip_and_training_step():
    space = small(affine=True)
    model = space.build_supernet(True)
    arch = space.derive(choices_by_name(model))
    key = space.benchmark_key(arch)
    assert parse_arch_string(key) == arch
    assert space.benchmark_key(parse_arch_string(BEST)) == BEST
    network = space.build_network(BEST)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
    loss = F.cross_entropy(network(torch.randn(4, 3, 16, 16)), torch.randint(0, 10, (4,)))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)


def test_discrete_network_matches_nb201_parameter_count():
    space = NB201Space(DataShape(10, (3, 32, 32)), {"affine": True})
    params = sum(p.numel() for p in space.build_network(BEST).parameters())
    assert params == 1_288_506  # NAS-Bench-201 reports 1.289 MB for this CIFAR-10 network


@pytest.mark.parametrize("bad", ["", "|nor_conv_3x3~0|", BEST.replace("skip_connect", "conv_7x7")])
def test_bad_arch_strings(bad):
    with pytest.raises(UserError, match="NB201 architecture string"):
        parse_arch_string(bad)


def test_every_architecture_is_in_the_benchmark_table():
    space = small()
    keys = {space.benchmark_key(arch) for arch in space.all_architectures()}
    assert len(keys) == 5**6
    if not TABLE.is_file():
        pytest.skip(f"table not found: {TABLE}")
    with TABLE.open() as handle:
        listed = {row["ArchitectureString"] for row in csv.DictReader(handle)}
    assert keys == listed


def test_one_hot_supernet_equals_discrete_network():
    torch.manual_seed(0)
    space = small()
    supernet = space.build_supernet(True)
    make_sampler("darts_v1").sample(choices_by_name(supernet).values())
    supernet(torch.randn(8, 3, 16, 16))  # non-trivial running statistics
    supernet.eval()
    arch = parse_arch_string(
        "|nor_conv_1x1~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
    )
    for name, choice in choices_by_name(supernet).items():
        index = OPS.index(arch["edges"][name])
        choice.set_mixing(F.one_hot(torch.tensor(index), len(OPS)).float(), index)
    network = space.build_network(arch).eval()
    with torch.no_grad():
        network.stem.load_state_dict(supernet.stem.state_dict())
        network.head.load_state_dict(supernet.head.state_dict())
        for super_layer, layer in zip(supernet.layers, network.layers, strict=True):
            if not hasattr(layer, "edges"):
                layer.load_state_dict(super_layer.state_dict())
                continue
            for name, super_edge, edge in zip(EDGE_NAMES, super_layer.edges, layer.edges, strict=True):
                op = arch["edges"][name]
                if op.startswith("nor_conv"):
                    group = super_edge.groups[0]
                    slot = 0 if op == "nor_conv_3x3" else 1
                    edge[1].weight.copy_(group.conv.candidate_weight(slot))
                    edge[1].bias.copy_(group.conv.bias)
                    edge[2].load_state_dict(group.norm.state_dict())
    x = torch.randn(3, 3, 16, 16)
    torch.testing.assert_close(supernet(x), network(x), atol=1e-5, rtol=1e-5)
