"""The DARTS space: supernets (WE and WS) under every sampler, derivation, genotypes, the evaluation
network (auxiliary head, drop path), subset SPOS sampling and the command line end to end."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from support import copy_conv_group, invoke

from tanglenas_cli.config import build_config
from tanglenas_cli.engine.factory import make_sampler_for
from tanglenas_cli.engine.posthoc import GenomeDrawer, SupernetScorer, random_search
from tanglenas_cli.errors import UserError
from tanglenas_cli.nas.samplers import SPOSSampler, SubsetSPOSSampler, make_sampler
from tanglenas_cli.spaces import space_class
from tanglenas_cli.spaces.base import DataShape, choices_by_name
from tanglenas_cli.spaces.darts import NODE_EDGES, OPS, DartsSpace, genotype_string
from tanglenas_cli.spaces.darts_cells import FactorizedReduce

SHAPE = DataShape(10, (3, 16, 16))
TINY = {"C": 4, "layers": 3}
DARTS_V2 = {  # the genotype of the DARTS paper (second order); 3,349,342 parameters at C=36, 20 cells
    "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 1],
               ["sep_conv_3x3", 1], ["skip_connect", 0], ["skip_connect", 0], ["dil_conv_3x3", 2]],
    "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1],
               ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]],
}  # fmt: skip
NAMED = (
    "arch_drnas_we2_0_5", "arch_drnas_we2_0_8", "arch_drnas_ws_0_5", "arch_drnas_ws_0_8",
    "arch_rs_spos", "arch_re_spos_0_5", "arch_re_spos_0_8",
)  # fmt: skip


def make(**options) -> DartsSpace:
    return DartsSpace(SHAPE, {**TINY, **options})


def test_space_is_registered():
    assert space_class("darts") is DartsSpace


def test_entangled_edges_share_one_kernel_per_group():
    we = sum(p.numel() for p in make().build_supernet(True).parameters())
    ws = sum(p.numel() for p in make().build_supernet(False).parameters())
    assert we < ws


def test_derive_keeps_the_two_strongest_edges_per_node():
    torch.manual_seed(0)
    space = make()
    choices = choices_by_name(space.build_supernet(True))
    with torch.no_grad():
        for choice in choices.values():
            choice.arch_logits.normal_()
            choice.arch_logits[0] = 10.0  # `none` is the strongest op everywhere, yet never kept
        # node 3 (edges 9..13 read states 0..4): make the edges from states 4 and 1 the strongest
        choices["normal.edge13"].arch_logits[OPS.index("dil_conv_5x5")] = 9.0
        choices["normal.edge10"].arch_logits[OPS.index("max_pool_3x3")] = 8.0
    arch = space.derive(choices)
    assert space.validate(arch) == arch
    for cell_type in ("normal", "reduce"):
        pairs = arch[cell_type]
        assert len(pairs) == 8 and all(op != "none" for op, _ in pairs)
        for node in range(4):
            inputs = [state for _, state in pairs[2 * node : 2 * node + 2]]
            assert len(set(inputs)) == 2 and all(0 <= s < node + 2 for s in inputs)
    assert arch["normal"][6:] == [["dil_conv_5x5", 4], ["max_pool_3x3", 1]]
    for node, edges in enumerate(NODE_EDGES):  # the edge strength decides, the op is the best non-none
        for op, state in arch["reduce"][2 * node : 2 * node + 2]:
            edge = dict((s, e) for e, s in edges)[state]
            probabilities = choices[f"reduce.edge{edge}"].probabilities()[1:]
            assert OPS[1 + int(probabilities.argmax())] == op


def test_genotype_string_and_arch_fields():
    space = make()
    arch = space.named_architectures()["arch_rs_spos"]
    cell = (
        "[('dil_conv_5x5', 0), ('sep_conv_5x5', 1), ('dil_conv_3x3', 1), ('skip_connect', 2), "
        "('avg_pool_3x3', 0), ('skip_connect', 3), ('sep_conv_5x5', 0), ('sep_conv_5x5', 1)]"
    )
    expected = f"Genotype(normal={cell}, normal_concat=range(2, 6), reduce={cell}, reduce_concat=range(2, 6))"
    assert genotype_string(arch) == expected
    assert space.arch_fields(arch) == {"genotype": expected}
    assert space.benchmark_key(arch) is None
    assert space.describe(arch).startswith("normal: dil_conv_5x5@0 sep_conv_5x5@1, dil_conv_3x3@1")


def test_named_genotypes_validate_and_build():
    space = make()
    named = space.named_architectures()
    assert set(named) == set(NAMED)
    assert named["arch_drnas_we2_0_5"]["reduce"][-2:] == [["skip_connect", 2], ["sep_conv_5x5", 4]]
    assert named["arch_drnas_ws_0_5"]["reduce"][:2] == [["sep_conv_5x5", 1], ["max_pool_3x3", 0]]
    for arch in named.values():
        assert space.validate(arch) == arch
        network = space.build_network(arch).eval()
        assert network(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_discrete_network_matches_darts_parameter_count():
    space = DartsSpace(DataShape(10, (3, 32, 32)), {"C": 36, "layers": 20, "affine": True})
    network = space.build_network(DARTS_V2)
    assert sum(p.numel() for p in network.parameters()) == 3_349_342


def test_discrete_network_with_auxiliary_head_and_drop_path():
    torch.manual_seed(0)
    space = make(layers=5, auxiliary_weight=0.4, drop_path=0.2, affine=True)
    network = space.build_network(space.named_architectures()["arch_drnas_we2_0_5"])
    assert network.auxiliary is not None and network.auxiliary_weight == 0.4
    network.set_epoch(5, 10)
    assert network.drop_probability == pytest.approx(0.1)
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    network.train()
    logits, aux_logits = network(x)
    assert logits.shape == aux_logits.shape == (4, 10)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
    loss = F.cross_entropy(logits, y) + network.auxiliary_weight * F.cross_entropy(aux_logits, y)
    loss.backward()
    assert all(p.grad is not None for p in network.auxiliary.parameters())
    optimizer.step()
    network.eval()
    evaluated = network(x)
    assert isinstance(evaluated, torch.Tensor) and evaluated.shape == (4, 10)
    torch.testing.assert_close(network(x), evaluated)  # no drop path in eval mode
    plain = make(layers=5).build_network(space.named_architectures()["arch_drnas_we2_0_5"]).train()
    assert plain.auxiliary is None and isinstance(plain(x), torch.Tensor)


@pytest.mark.parametrize("size", [32, 28, 8])
def test_auxiliary_head_fits_other_input_sizes(size):
    space = DartsSpace(DataShape(7, (1, size, size)), {**TINY, "auxiliary_weight": 0.4})
    network = space.build_network(space.named_architectures()["arch_re_spos_0_8"]).train()
    logits, aux_logits = network(torch.randn(2, 1, size, size))
    assert logits.shape == aux_logits.shape == (2, 7)


@pytest.mark.parametrize(
    ("arch", "fragment"),
    [
        ({"normal": []}, "exactly the keys"),
        ({"normal": DARTS_V2["normal"], "reduce": DARTS_V2["reduce"][:7]}, "8 [op, input] pairs"),
        (
            {"normal": [["none", 0], ["sep_conv_3x3", 1]] * 4, "reduce": DARTS_V2["reduce"]},
            "unknown op 'none'",
        ),
        ({"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 2]] * 4, "reduce": DARTS_V2["reduce"]}, "0..1"),
        ({"normal": [["sep_conv_3x3", 1], ["sep_conv_3x3", 1]] * 4, "reduce": DARTS_V2["reduce"]}, "twice"),
        (
            {"normal": [["sep_conv_3x3", True], ["sep_conv_3x3", 0]] * 4, "reduce": DARTS_V2["reduce"]},
            "input",
        ),
    ],
)
def test_invalid_architectures_are_user_errors(arch, fragment):
    with pytest.raises(UserError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        make().validate(arch)


def test_bad_options_are_user_errors():
    for options in ({"C": 0}, {"drop_path": 1.0}, {"auxiliary_weight": -1.0}, {"cells": 3}, {"C": "wide"}):
        with pytest.raises(UserError):
            DartsSpace(SHAPE, options)


def node_groups(space: DartsSpace, choices) -> list[list]:
    return [[choices[name] for name in group] for group in space.spos_subsets()]


def test_subset_spos_keeps_two_edges_per_node():
    space = make()
    model = space.build_supernet(True)
    choices = choices_by_name(model)
    groups = node_groups(space, choices)
    assert [len(g) for g in groups] == [2, 3, 4, 5] * 2
    sampler = SubsetSPOSSampler(space.spos_subsets(), keep=2, off_index=0, seed=0)
    assert sampler.one_hot and not sampler.trains_logits
    seen = [set() for _ in groups]
    for _ in range(300):
        sampler.sample(choices.values())
        for number, group in enumerate(groups):
            indices = [c.mixing().index for c in group]
            kept = tuple(i for i, index in enumerate(indices) if index != 0)
            assert len(kept) == 2
            for choice in group:
                mixing = choice.mixing()
                assert mixing.weights.sum() == 1 and mixing.weights[mixing.index] == 1
            seen[number].add(kept)
    for number, group in enumerate(groups):
        assert seen[number] == set(itertools.combinations(range(len(group)), 2))
    logits = model(torch.randn(2, 3, 16, 16))
    logits.sum().backward()
    assert all(c.arch_logits.grad is None for c in choices.values())


def test_subset_spos_is_reproducible_and_samples_ungrouped_choices():
    from tanglenas_cli.nas.choices import Choice

    choices = [Choice(f"c{i}", ["none", "a", "b"]) for i in range(4)]
    draws = []
    for _ in range(2):
        sampler = SubsetSPOSSampler([["c0", "c1", "c2"]], keep=1, seed=7)
        sampler.sample(choices)
        draws.append([c.mixing().index for c in choices])
    assert draws[0] == draws[1]
    assert sum(index != 0 for index in draws[0][:3]) == 1
    with pytest.raises(ValueError):
        SubsetSPOSSampler([["c0"], ["c0"]])


def test_spos_random_search_derives_the_kept_edges():
    torch.manual_seed(0)
    space = make()
    model = space.build_supernet(True)
    choices = choices_by_name(model)
    batches = [(torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))) for _ in range(2)]
    scorer = SupernetScorer(model, space, choices, batches, batches[:1], torch.device("cpu"))
    draw = GenomeDrawer(space, choices, seed=1)
    genome = random_search(scorer, draw, samples=3)
    arch = scorer.architecture(genome)
    assert space.validate(arch) == arch
    kept = [sum(genome[list(choices).index(name)] != 0 for name in subset) for subset in space.spos_subsets()]
    assert kept == [2] * len(kept)  # every node keeps two incoming edges, as SPOS trained them


def test_spos_uses_the_space_subsets():
    cfg = build_config(flags={"space": "darts", "dataset": "digits", "optimizer": "spos"})
    assert isinstance(make_sampler_for(cfg, make()), SubsetSPOSSampler)
    assert type(make_sampler_for(cfg)) is SPOSSampler
    drnas = build_config(flags={"space": "darts", "dataset": "digits"})
    assert not isinstance(make_sampler_for(drnas, make()), SPOSSampler)


def copy_cell_weights(super_cell, cell, pairs) -> None:
    """Copy the chosen candidates of a WE supernet cell into a discrete cell."""
    cell.preprocess0.load_state_dict(super_cell.preprocess0.state_dict())
    cell.preprocess1.load_state_dict(super_cell.preprocess1.state_dict())
    for position, (name, state) in enumerate(pairs):
        edge_number = dict((s, e) for e, s in NODE_EDGES[position // 2])[state]
        edge, op = super_cell.ops[edge_number], cell.ops[position]
        slot = 0 if name.endswith("3x3") else 1
        if name.startswith(("sep", "dil")):  # same layers at the same indices; depthwise convs sliced
            group = edge.groups[0 if name.startswith("sep") else 1]
            copy_conv_group(group, op, slot)
        elif isinstance(op, FactorizedReduce):
            op.load_state_dict(edge.candidates[OPS.index(name)].state_dict())


def test_one_hot_supernet_equals_discrete_network():
    torch.manual_seed(0)
    space = make()
    supernet = space.build_supernet(True)
    choices = choices_by_name(supernet)
    make_sampler("darts_v1").sample(choices.values())
    supernet(torch.randn(8, 3, 16, 16))  # non-trivial batch-norm statistics
    supernet.eval()
    arch = {
        "normal": [["sep_conv_3x3", 1], ["dil_conv_5x5", 0], ["sep_conv_5x5", 2], ["skip_connect", 0],
                   ["dil_conv_3x3", 3], ["sep_conv_3x3", 1], ["sep_conv_5x5", 4], ["skip_connect", 2]],
        "reduce": [["skip_connect", 0], ["sep_conv_5x5", 1], ["dil_conv_3x3", 2], ["sep_conv_3x3", 0],
                   ["skip_connect", 1], ["dil_conv_5x5", 3], ["sep_conv_3x3", 4], ["skip_connect", 2]],
    }  # fmt: skip
    for cell_type, pairs in arch.items():
        picked = {}
        for position, (name, state) in enumerate(pairs):
            picked[dict((s, e) for e, s in NODE_EDGES[position // 2])[state]] = OPS.index(name)
        for edge in range(14):
            index = picked.get(edge, 0)
            choices[f"{cell_type}.edge{edge}"].set_mixing(F.one_hot(torch.tensor(index), 8).float(), index)
    network = space.build_network(arch).eval()
    with torch.no_grad():
        network.stem.load_state_dict(supernet.stem.state_dict())
        network.classifier.load_state_dict(supernet.classifier.state_dict())
        for super_cell, cell in zip(supernet.cells, network.cells, strict=True):
            copy_cell_weights(super_cell, cell, arch["reduce" if cell.reduction else "normal"])
    x = torch.randn(3, 3, 16, 16)
    torch.testing.assert_close(supernet(x), network(x), atol=1e-5, rtol=1e-5)


DIGITS = [
    "--dataset", "digits", "--set", "dataset_options.size=16", "--set", "dataset_options.channels=3",
    "--set", "epochs=1", "--set", "space_options.C=4", "--set", "space_options.layers=3",
    "--set", "logging.progress=false",
]  # fmt: skip


def test_train_a_named_genotype(tmp_path: Path):
    out = tmp_path / "trained"
    result = invoke(
        "train", "darts:arch_rs_spos", *DIGITS, "--set", "space_options.auxiliary_weight=0.4",
        "--set", "space_options.drop_path=0.2", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (out / "model.pt").is_file() and (out / "summary.json").is_file()
    stored = yaml.safe_load((out / "arch.yaml").read_text())
    assert stored["space"] == "darts" and stored["genotype"].startswith(
        "Genotype(normal=[('dil_conv_5x5', 0)"
    )
    evaluation = invoke("eval", out / "model.pt", "--json")
    assert evaluation.exit_code == 0, evaluation.output


@pytest.mark.parametrize(
    ("target", "fragment"),
    [("darts:arch_nothing", "arch_rs_spos"), ("nospace:arch", "unknown space 'nospace'")],
)
def test_unknown_named_genotype_is_a_user_error(target: str, fragment: str, tmp_path: Path):
    result = invoke("train", target, *DIGITS, "--out", tmp_path / "out")
    assert result.exit_code == 2 and fragment in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_search_writes_the_genotype(tmp_path: Path):
    out = tmp_path / "search"
    result = invoke(
        "search", "--space", "darts", *DIGITS, "--set", "train_portion=0.3", "--set", "batch_size=128",
        "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    stored = yaml.safe_load((out / "arch.yaml").read_text())
    space = make()
    assert space.validate(stored["architecture"]) == stored["architecture"]
    assert stored["genotype"] == genotype_string(stored["architecture"])
    derived = invoke("derive", out, "--out", tmp_path / "derived.yaml")
    assert derived.exit_code == 0, derived.output
    assert yaml.safe_load((tmp_path / "derived.yaml").read_text())["genotype"] == stored["genotype"]
