"""The NAS-Bench-201 space: supernets under every sampler, derivation, arch strings, discrete network."""

from __future__ import annotations

import csv

import pytest
import torch
import torch.nn.functional as F
from support import NB201_CSV

from tanglenas_cli.errors import UserError
from tanglenas_cli.nas.samplers import make_sampler
from tanglenas_cli.spaces.base import DataShape, choices_by_name
from tanglenas_cli.spaces.nb201 import EDGE_NAMES, OPS, NB201Space, parse_arch_string

TABLE = NB201_CSV
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


def params_of(network: torch.nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


def test_discrete_network_is_the_benchmarks_by_default_whatever_the_search_settings():
    """The search presets' settings (BN without affine) shape the supernet only: the discrete network is
    NAS-Bench-201's (BN affine with running statistics, convs without bias) unless network=supernet."""
    shape = DataShape(10, (3, 32, 32))
    for options in ({}, {"affine": False, "track_running_stats": False}):
        network = NB201Space(shape, options).build_network(BEST)
        assert params_of(network) == 1_288_506
        norms = [m for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert all(m.affine and m.track_running_stats for m in norms)
        convs = [m for m in network.modules() if isinstance(m, torch.nn.Conv2d)]
        assert all(m.bias is None for m in convs)
    searched = NB201Space(shape, {"network": "supernet"}).build_network(BEST)
    assert params_of(searched) == 1_285_706  # the old default: conv biases, cell BN without affine
    supernet_cells = NB201Space(shape, {"network": "supernet", "affine": False})
    assert params_of(supernet_cells.build_network(BEST)) == 1_285_706
    with pytest.raises(UserError, match=r"network 'trained'; choose one of: benchmark, supernet"):
        NB201Space(shape, {"network": "trained"})


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
    space = small(network="supernet")  # the discrete cells take the supernet's BN and conv biases
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


def test_search_derive_train_and_eval_use_the_benchmark_network(tmp_path):
    """Search with the search settings (cell BN without affine, untracked): summary.json's network_params,
    derive's --max-params / --max-flops measures and the trained network are all NAS-Bench-201's network
    (BN affine, convs without bias; pooling counts no multiply-adds)."""
    import json

    import yaml
    from typer.testing import CliRunner

    from tanglenas_cli.cli import app
    from tanglenas_cli.engine.derive import run_derive
    from tanglenas_cli.engine.flops import count_flops

    def invoke(*args: object):
        return CliRunner().invoke(app, [str(a) for a in args])

    common = ["--dataset", "digits", "--set", "dataset_options.size=12", "--set", "epochs=1",
              "--set", "batch_size=32", "--set", "logging.progress=false"]  # fmt: skip
    run = tmp_path / "run"
    searched = invoke("search", "--space", "nb201", *common, "--set", "train_subset=64",
                      "--set", "space_options.C=4", "--set", "space_options.N=1",
                      "--set", "space_options.affine=false",
                      "--set", "space_options.track_running_stats=false",
                      "--out", run)  # fmt: skip
    assert searched.exit_code == 0, searched.output
    # the benchmark's network (affine: true gave it before network= existed, and still does)
    benchmark = NB201Space(DataShape(10, (1, 12, 12)), {"C": 4, "N": 1, "affine": True})
    summary = json.loads((run / "summary.json").read_text())
    arch = yaml.safe_load((run / "arch.yaml").read_text())["architecture"]
    assert summary["network_params"] == params_of(benchmark.build_network(arch))

    derived = run_derive(run, out=tmp_path / "limited.yaml", strategy="random", samples=3, batches=1,
                         max_params=10**6, max_flops=1e9)  # fmt: skip
    chosen = benchmark.build_network(yaml.safe_load((tmp_path / "limited.yaml").read_text())["architecture"])
    assert (derived["params"], derived["flops"]) == (params_of(chosen), count_flops(benchmark, chosen))

    arch_file = tmp_path / "best.yaml"  # an architecture with convs, stored with the search's settings
    arch_file.write_text(yaml.safe_dump({"space": "nb201", "architecture": parse_arch_string(BEST),
                                         "space_options": {"C": 4, "N": 1, "affine": False,
                                                           "track_running_stats": False}}))  # fmt: skip
    trained = invoke("train", arch_file, "--space", "nb201", *common, "--set", "steps_per_epoch=1",
                     "--out", tmp_path / "trained")  # fmt: skip
    assert trained.exit_code == 0, trained.output
    evaluated = invoke("eval", tmp_path / "trained", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads(evaluated.output)
    network = benchmark.build_network(BEST)
    assert (metrics["params"], metrics["macs"]) == (params_of(network), count_flops(benchmark, network) // 2)


def test_networks_trained_before_benchmark_networks_still_load(tmp_path):
    """A checkpoint of the search-settings network (before space_options.network existed) loads as such."""
    from tanglenas_cli.engine.run_models import trained_network

    options = {"C": 4, "N": 1}
    older = NB201Space(DataShape(10, (3, 16, 16)), {**options, "network": "supernet"})
    arch = parse_arch_string(BEST)
    state = {"space": "nb201", "data_shape": {"num_classes": 10, "input_shape": [3, 16, 16]},
             "architecture": arch, "model": older.build_network(arch).state_dict()}  # fmt: skip
    space, model = trained_network(tmp_path / "model.pt", state, options)
    assert space.options.network == "supernet" and model.state_dict().keys() == state["model"].keys()
    state["model"] = {k: v for k, v in state["model"].items() if "head" not in k}
    with pytest.raises(UserError, match="does not match its architecture"):
        trained_network(tmp_path / "model.pt", state, options)


def test_the_cells_that_ignore_their_input_are_the_benchmarks_chance_scorers():
    """A `none` on every input-output path: 341 cells, exactly those the benchmark scores 10%."""
    space = NB201Space(DataShape(10, (3, 12, 12)), {"C": 4, "N": 1})
    if not TABLE.is_file():
        pytest.skip(f"table not found: {TABLE}")
    with TABLE.open() as stream:
        rows = csv.DictReader(stream)
        accuracy = {row["ArchitectureString"]: float(row["CIFAR10TestAccuracy200Epochs"]) for row in rows}
    ignoring = [a for a in space.all_architectures() if space.ignores_input(a)]
    assert len(ignoring) == 341
    assert all(accuracy[space.benchmark_key(a)] == 10.0 for a in ignoring)
    chance = [a for a in space.all_architectures() if accuracy[space.benchmark_key(a)] <= 10.5]
    assert len(chance) == len(ignoring)
    torch.manual_seed(0)
    dead_end = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|"  # node 2 gets nothing
    for arch in (ignoring[0], ignoring[-1], parse_arch_string(dead_end)):
        network = space.build_network(arch).eval()
        inputs = torch.randn(2, 3, 12, 12)
        outputs = network(inputs)
        assert torch.allclose(outputs[0], outputs[1])
    used = space.build_network(parse_arch_string(BEST)).eval()
    outputs = used(torch.randn(2, 3, 12, 12))
    assert not torch.allclose(outputs[0], outputs[1])
    assert not space.ignores_input(parse_arch_string(BEST))


@pytest.mark.parametrize("sampler", ["drnas", "gdas"])
@pytest.mark.parametrize("entangle", [True, False])
def test_supernet_cell_equals_the_sum_of_its_edges(entangle, sampler):
    """The edges into a node share one skip + pool term; the node is still the sum of its edges."""
    from tanglenas_cli.nas.mixed_op import MixedOp
    from tanglenas_cli.spaces.nb201 import EDGES, Cell

    torch.manual_seed(0)
    supernet = small().build_supernet(entangle).double()
    make_sampler(sampler).sample(choices_by_name(supernet).values())
    cell = next(layer for layer in supernet.layers if isinstance(layer, Cell))
    assert all(isinstance(edge, MixedOp) for edge in cell.edges)
    x = torch.randn(2, 4, 16, 16, dtype=torch.float64, requires_grad=True)
    nodes = [x]
    for node in (1, 2, 3):
        terms = [edge(nodes[source]) for edge, (target, source) in zip(cell.edges, EDGES, strict=True)
                 if target == node]  # fmt: skip
        nodes.append(sum(terms[1:], terms[0]))
    expected, actual = nodes[3], cell(x)
    torch.testing.assert_close(actual, expected)
    upstream = torch.randn_like(expected)
    inputs = [x, *(p for p in cell.parameters() if p.requires_grad)]
    arch = [choice.mixing().weights for choice in choices_by_name(supernet).values()]
    wanted = [*inputs, *arch]
    got_all = torch.autograd.grad(actual, wanted, upstream, retain_graph=True, allow_unused=True)
    want_all = torch.autograd.grad(expected, wanted, upstream, allow_unused=True)
    for got, want in zip(got_all, want_all, strict=True):
        if want is None:
            assert got is None
        else:
            torch.testing.assert_close(got, want)
