"""Every registered space, in both modes and under every sampler: forward/backward, derive, train a step.

Each space runs at its own tiny settings (``tiny_data``, ``tiny_options`` on its class).
"""

from __future__ import annotations

import pytest
import torch
from support import batch, loss_of, tiny_space

from tanglenas_cli.nas.choices import weight_parameters
from tanglenas_cli.nas.samplers import make_sampler
from tanglenas_cli.spaces import list_spaces
from tanglenas_cli.spaces.base import choices_by_name


@pytest.mark.parametrize("optimizer", ["darts_v1", "drnas", "gdas", "spos"])
@pytest.mark.parametrize("entangle", [True, False], ids=["we", "ws"])
@pytest.mark.parametrize("name", list_spaces())
def test_supernet_forward_backward(name, entangle, optimizer):
    torch.manual_seed(0)
    space = tiny_space(name)
    if not entangle and not space.supports_ws:
        pytest.skip(f"{name} has weight entanglement only")
    model = space.build_supernet(entangle)
    choices = choices_by_name(model)
    sampler = make_sampler(optimizer, seed=0)
    sampler.sample(choices.values())
    x, y = batch(space, 3)
    logits = model(x)
    assert logits.shape == (3, *y.shape[1:], 10)
    loss = loss_of(logits, y)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [c.arch_logits.grad for c in choices.values()]
    if not sampler.trains_logits:
        assert all(g is None for g in grads)
    elif sampler.one_hot:  # a straight-through one-hot: finite everywhere, non-zero where it matters
        # choices off the sampled path (e.g. layers beyond a sampled depth) have no gradient at all
        assert all(g is None or torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)
    else:
        assert all(g is not None and g.abs().sum() > 0 for g in grads)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in weight_parameters(model))


@pytest.mark.parametrize("name", list_spaces())
def test_derive_build_and_train_one_step(name):
    torch.manual_seed(1)
    space = tiny_space(name)
    arch = space.derive(choices_by_name(space.build_supernet(True)))
    assert space.validate(arch) == arch
    for candidate in (arch, space.largest_architecture()):
        network = space.build_network(candidate)
        x, y = batch(space, 4)
        output = network(x)
        logits = output[0] if isinstance(output, tuple) else output
        loss = loss_of(logits, y)
        loss.backward()
        torch.optim.SGD(network.parameters(), lr=0.1).step()
        assert torch.isfinite(loss) and logits.shape == (4, *y.shape[1:], 10)


@pytest.mark.parametrize("name", list_spaces())
def test_picks_and_architectures_map_both_ways(name):
    """``arch_of`` reads one candidate per choice of the supernet; ``picks_of`` gives them back."""
    import random

    space = tiny_space(name)
    choices = choices_by_name(space.build_supernet(entangle=True))
    rng = random.Random(0)
    archs = [space.largest_architecture()]
    for _ in range(5):
        archs.append(space.arch_of({n: rng.choice(c.candidates) for n, c in choices.items()}))
    for arch in archs:
        picks = space.picks_of(arch)
        assert set(picks) == set(choices)
        assert all(value in choices[n].candidates for n, value in picks.items())
        # the same architecture back (DARTS may list a node's two edges in another order)
        assert space.picks_of(space.arch_of(picks)) == picks
