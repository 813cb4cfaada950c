"""The cost model of every space: exact on architectures, the mean on soft weights, gradients to the logits.

Each space runs at its tiny settings. "Exact" is against ``eval``'s own counts: the discrete network's
trainable parameters and its multiply-adds on one input (half of PyTorch's FLOP count).
"""

from __future__ import annotations

import random
import statistics

import pytest
import torch
from support import tiny_space

from tanglenas_cli.engine.cost import CostModel, choice_candidates, cost_model
from tanglenas_cli.engine.flops import count_flops
from tanglenas_cli.engine.metrics import count_parameters
from tanglenas_cli.spaces import create_space, list_spaces, space_class

SPACES = list_spaces()


@pytest.fixture(scope="module")
def models() -> dict[str, tuple[CostModel, CostModel]]:
    """(params, flops) cost models of every space, built once."""
    built = {}
    for name in SPACES:
        space = tiny_space(name)
        candidates = choice_candidates(space)
        built[name] = (cost_model(space, "params", candidates), cost_model(space, "flops", candidates))
    return built


def _picks(model: CostModel, rng: random.Random, none_share: float = 0.0) -> dict:
    """Random picks; ``none_share`` of the choices with a ``none`` candidate take it (DARTS' padding)."""
    picks = {}
    for name, values in model.candidates.items():
        off = "none" in values and rng.random() < none_share
        picks[name] = "none" if off else rng.choice(values)
    return picks


@pytest.mark.parametrize("name", SPACES)
def test_one_hot_cost_is_the_discrete_networks_count(models, name):
    params, flops = models[name]
    space = params.space
    rng = random.Random(0)
    cases = [space.picks_of(space.largest_architecture())]
    cases += [
        {n: v[0] for n, v in params.candidates.items()},
        {n: v[-1] for n, v in params.candidates.items()},
    ]
    cases += [_picks(params, rng, none_share=0.5 * (k % 2)) for k in range(6)]
    for picks in cases:
        network = space.build_network(space.arch_of(picks))
        assert params.of_picks(picks) == count_parameters(network), picks
        assert flops.of_picks(picks) == count_flops(space, network) // 2, picks
        # the differentiable path gives the same number on one-hot weights
        assert float(params.expected(params.one_hot(picks))) == pytest.approx(
            params.of_picks(picks), abs=1e-6
        )


@pytest.mark.parametrize("name", SPACES)
def test_soft_weights_give_the_mean_cost_of_sampled_architectures(models, name):
    generator = torch.Generator().manual_seed(1)
    for model in models[name]:
        weights = {
            n: torch.distributions.Dirichlet(torch.ones(len(v))).sample().double()
            for n, v in model.candidates.items()
        }
        names = list(model.candidates)
        draws = []
        for _ in range(400):
            picks = {}
            for n in names:
                index = int(torch.multinomial(weights[n].float(), 1, generator=generator))
                picks[n] = model.candidates[n][index]
            draws.append(model.of_picks(picks))
        mean, error = statistics.fmean(draws), statistics.stdev(draws) / len(draws) ** 0.5
        assert abs(float(model.expected(weights)) - mean) <= 4.5 * error + 1e-9 * abs(mean), model.metric


@pytest.mark.parametrize("name", SPACES)
def test_gradient_reaches_every_logit_that_changes_the_cost(models, name):
    rng = random.Random(2)
    for model in models[name]:
        base = _picks(model, rng)
        logits = {
            n: torch.randn(len(v), dtype=torch.float64, requires_grad=True)
            for n, v in model.candidates.items()
        }
        model.expected({n: torch.softmax(vector, -1) for n, vector in logits.items()}).backward()
        checked = 0
        for choice, values in model.candidates.items():
            # the choice changes the cost when another pick of it changes some architecture's cost
            changes = False
            for picks in (base, _picks(model, rng), _picks(model, rng)):
                changes |= len({model.of_picks({**picks, choice: v}) for v in values}) > 1
            if changes:
                assert logits[choice].grad.abs().sum() > 0, (model.metric, choice)
                checked += 1
        assert checked > 0


def test_nb201_edge_costs_by_hand():
    """NB201's benchmark network: per cell, an edge's 1x1 conv costs c*c + 2c (BN), a 3x3 9c*c + 2c."""
    space = tiny_space("nb201")
    model = cost_model(space, "params")
    plain = {n: "none" for n in model.candidates}
    widths = [space.options.C * 2**stage for stage in range(3)]
    for op, taps in (("nor_conv_1x1", 1), ("nor_conv_3x3", 9)):
        added = model.of_picks({**plain, "edge1<-0": op}) - model.of_picks(plain)
        assert added == space.options.N * sum(taps * c * c + 2 * c for c in widths)
    assert model.of_picks({**plain, "edge1<-0": "skip_connect"}) == model.of_picks(plain)


def test_minimum_is_exact_on_a_listed_space():
    space = tiny_space("toy_cell")
    model = cost_model(space, "params")
    smallest = min(count_parameters(space.build_network(a)) for a in space.all_architectures()[::97])
    assert model.minimum() <= smallest
    assert model.minimum() == min(model.of_architecture(a) for a in space.all_architectures())


@pytest.mark.parametrize("name", ["nb201", "darts", "mobilenetv3", "autoformer"])
def test_parameters_are_exact_at_the_default_settings(name):
    """At the space's default options and profile data (AutoFormer-T and OFA's MobileNetV3 at 224 px)."""
    space = create_space(name, space_class(name).profile_data)
    model = cost_model(space, "params")
    rng = random.Random(3)
    for picks in (space.picks_of(space.largest_architecture()), _picks(model, rng)):
        assert model.of_picks(picks) == count_parameters(space.build_network(space.arch_of(picks)))


@pytest.mark.parametrize("name", ["autoformer", "autoformer_s", "nanogpt"])
def test_a_transformer_layer_reads_the_depth_only_where_some_depth_leaves_it_out(models, name):
    params, _ = models[name]
    depths = params.candidates["depth"]
    expected = {("embed",)} | {
        ("depth",) * (i >= min(depths)) + ("embed", f"layer{i}.heads", f"layer{i}.mlp_ratio")
        for i in range(max(depths))
    }
    assert set(params.tables) == expected
    last = max(depths) - 1
    table = params.tables[("depth", "embed", f"layer{last}.heads", f"layer{last}.mlp_ratio")]
    assert (table[: depths.index(max(depths))] == 0).all() and (table[depths.index(max(depths))] > 0).all()
