"""The two toy spaces: supernets (WE and WS) under every sampler, derivation, discrete networks, keys."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from support import TOY_BENCHMARKS, copy_conv_group

from tanglenas_cli.benchmarks import KNOWN_TOY_BENCHMARKS, load_benchmark
from tanglenas_cli.errors import UserError
from tanglenas_cli.nas.samplers import make_sampler
from tanglenas_cli.spaces import list_spaces
from tanglenas_cli.spaces.base import DataShape, choices_by_name
from tanglenas_cli.spaces.toy_cell import ToyCellSpace
from tanglenas_cli.spaces.toy_conv_macro import ConvMacroSpace

BENCHMARKS = TOY_BENCHMARKS
SPACES = {
    "toy_cell": (ToyCellSpace, DataShape(10, (1, 16, 16)), {"C": 4}),
    "toy_conv_macro": (ConvMacroSpace, DataShape(10, (3, 16, 16)), {}),
}


def make(name: str):
    space_type, shape, options = SPACES[name]
    return space_type(shape, options)


def test_spaces_are_registered():
    assert {"toy_cell", "toy_conv_macro"} <= set(list_spaces())


def test_invalid_architectures_are_user_errors():
    with pytest.raises(UserError):
        make("toy_cell").validate({"normal": [["conv_9x9", 0]] * 3, "reduce": [["sep_conv_3x3", 0]] * 3})
    with pytest.raises(UserError):
        make("toy_conv_macro").validate({"channels": [8, 16, 32, 99], "kernels": [3, 3, 3, 3]})
    with pytest.raises(UserError):
        SPACES["toy_cell"][0](SPACES["toy_cell"][1], {"C": "wide"})
    with pytest.raises(UserError):
        SPACES["toy_cell"][0](SPACES["toy_cell"][1], {"depth": 3})


@pytest.mark.parametrize("name, size", [("toy_cell", 4096), ("toy_conv_macro", 6561)])
def test_every_architecture_maps_to_a_benchmark_key(name, size):
    space = make(name)
    keys = [space.benchmark_key(arch) for arch in space.all_architectures()]
    assert len(keys) == len(set(keys)) == size
    path = BENCHMARKS / KNOWN_TOY_BENCHMARKS[space.benchmark]
    if not path.is_file():
        pytest.skip(f"benchmark file not found: {path}")
    benchmark = load_benchmark(path)
    assert all(key in benchmark for key in keys)


def test_toy_cell_network_is_the_benchmark_network():
    """Parameter counts equal the benchmark's num_params, which the original code computed with the
    normal and reduce genotypes swapped (its get_num_params bug): a check of every layer's shape."""
    path = BENCHMARKS / "entangled_cell_ss_benchmark.pkl"
    if not path.is_file():
        pytest.skip(f"benchmark file not found: {path}")
    benchmark = load_benchmark(path)
    space = ToyCellSpace(DataShape(10, (1, 28, 28)), {"C": 32})
    for arch in random.Random(0).sample(space.all_architectures(), 12):
        swapped = {"normal": arch["reduce"], "reduce": arch["normal"]}
        params = sum(p.numel() for p in space.build_network(swapped).parameters())
        assert params == benchmark.query(space.benchmark_key(arch))["num_params"]


def one_hot_everywhere(choices, arch_indices):
    for name, choice in choices.items():
        index = arch_indices[name]
        choice.set_mixing(F.one_hot(torch.tensor(index), len(choice)).float(), index)


def test_conv_macro_one_hot_supernet_equals_discrete_network():
    torch.manual_seed(0)
    space = make("toy_conv_macro")
    supernet = space.build_supernet(True).eval()
    choices = choices_by_name(supernet)
    arch = {"channels": [16, 16, 128, 64], "kernels": [7, 3, 5, 3]}
    indices = {
        f"channels{i + 1}": choices[f"channels{i + 1}"].candidates.index(c)
        for i, c in enumerate(arch["channels"])
    }
    indices.update(
        {
            f"kernel{i + 1}": choices[f"kernel{i + 1}"].candidates.index(k)
            for i, k in enumerate(arch["kernels"])
        }
    )
    one_hot_everywhere(choices, indices)
    network = space.build_network(arch).eval()
    with torch.no_grad():
        for super_conv, conv in zip(supernet.convs, network.convs, strict=True):
            exported = super_conv.export(super_conv.source.mixing().index)
            conv.load_state_dict(exported.state_dict())
        network.head.load_state_dict(supernet.head.state_dict())
    x = torch.randn(3, 3, 16, 16)
    torch.testing.assert_close(supernet(x), network(x), atol=1e-5, rtol=1e-5)


def copy_toy_cell_weights(supernet, network, arch, ops):
    """Copy the selected candidates' slices of the supernet into the discrete network."""
    plan = ["reduce", "normal", "reduce"]
    for cell_type, super_cell, cell in zip(plan, supernet.cells, network.cells, strict=True):
        cell.preprocess.load_state_dict(super_cell.preprocess.state_dict())
        for edge, (super_edge, op) in enumerate(zip(super_cell.edges, cell.edges, strict=True)):
            name = arch[cell_type][edge][0]
            index = ops.index(name)
            group = super_edge.groups[0 if name.startswith("sep") else 1]
            slot = index % 2
            copy_conv_group(group, op, slot)
    network.head.load_state_dict(supernet.head.state_dict())


def test_toy_cell_one_hot_supernet_equals_discrete_network():
    from tanglenas_cli.spaces.toy_cell import OPS

    torch.manual_seed(0)
    space = make("toy_cell")
    supernet = space.build_supernet(True)
    # give the batch norms non-trivial running statistics first
    make_sampler("darts_v1").sample(choices_by_name(supernet).values())
    supernet(torch.randn(16, 1, 16, 16))
    supernet.eval()
    arch = {
        "normal": [["dil_conv_5x5", 0], ["sep_conv_3x3", 0], ["sep_conv_5x5", 1]],
        "reduce": [["sep_conv_3x3", 0], ["dil_conv_3x3", 0], ["dil_conv_5x5", 1]],
    }
    choices = choices_by_name(supernet)
    one_hot_everywhere(choices, {f"{t}.edge{e}": OPS.index(arch[t][e][0]) for t in arch for e in range(3)})
    network = space.build_network(arch).eval()
    with torch.no_grad():
        copy_toy_cell_weights(supernet, network, arch, list(OPS))
    x = torch.randn(3, 1, 16, 16)
    torch.testing.assert_close(supernet(x), network(x), atol=1e-5, rtol=1e-5)
