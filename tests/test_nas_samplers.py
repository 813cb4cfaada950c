"""Samplers against their definitions."""

from __future__ import annotations

import pytest
import torch

from tanglenas_cli.errors import UserError
from tanglenas_cli.nas.choices import Choice
from tanglenas_cli.nas.samplers import (
    DartsSampler,
    DiscreteSampler,
    DrNASSampler,
    GDASSampler,
    SPOSSampler,
    make_sampler,
    sparsemax,
)


def test_darts_softmax():
    choice = Choice("op", list(range(4)))
    with torch.no_grad():
        choice.arch_logits.copy_(torch.tensor([0.1, -0.2, 0.3, 1.0]))
    DartsSampler().sample([choice])
    torch.testing.assert_close(choice.mixing().weights, torch.softmax(choice.arch_logits, -1))
    assert choice.mixing().index is None


def test_sparsemax_values_and_jacobian():
    z = torch.tensor([1.0, 0.5, -1.0], requires_grad=True)
    p = sparsemax(z)
    torch.testing.assert_close(p, torch.tensor([0.75, 0.25, 0.0]))
    # Jacobian of sparsemax: diag(s) - s s^T / |S| with s the support indicator.
    jacobian = torch.autograd.functional.jacobian(sparsemax, z.detach())
    support = torch.tensor([1.0, 1.0, 0.0])
    expected = torch.diag(support) - torch.outer(support, support) / 2
    torch.testing.assert_close(jacobian, expected)
    for _ in range(20):
        q = sparsemax(torch.randn(7) * 3)
        assert torch.all(q >= 0) and torch.isclose(q.sum(), torch.tensor(1.0))


def test_drnas_sample_mean_matches_dirichlet_mean():
    logits = torch.tensor([-0.5, 0.0, 1.0, 2.0], requires_grad=True)
    sampler = DrNASSampler(seed=123)
    samples = torch.stack([sampler.weights(logits)[0].detach() for _ in range(6000)])
    concentration = torch.nn.functional.elu(logits.detach()) + 1
    torch.testing.assert_close(samples.mean(0), concentration / concentration.sum(), atol=0.012, rtol=0)
    assert torch.allclose(samples.sum(-1), torch.ones(len(samples)), atol=1e-5)
    # reparameterised: gradients reach the logits
    weights, index = sampler.weights(logits)
    assert index is None
    (weights * torch.arange(4.0)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_drnas_eval_is_dirichlet_mean_and_kl_regulariser():
    choice = Choice("op", [0, 1, 2])
    sampler = DrNASSampler(kl_scale=0.5)
    sampler.sample([choice], training=False)
    concentration = torch.nn.functional.elu(choice.arch_logits) + 1
    torch.testing.assert_close(choice.mixing().weights, concentration / concentration.sum())
    reg = sampler.regularization([choice])
    expected = 0.5 * torch.distributions.kl_divergence(
        torch.distributions.Dirichlet(concentration), torch.distributions.Dirichlet(torch.ones(3))
    )
    torch.testing.assert_close(reg, expected)
    assert DrNASSampler().regularization([choice]) is None


def test_gdas_forward_exactly_one_hot_with_gradient():
    sampler = GDASSampler(seed=0, tau_max=10, tau_min=0.1)
    logits = torch.randn(5, requires_grad=True)
    for _ in range(50):
        weights, index = sampler.weights(logits)
        expected = torch.zeros(5)
        expected[index] = 1
        assert torch.equal(weights.detach(), expected)
    weights, index = sampler.weights(logits)
    (weights * torch.arange(5.0)).sum().backward()
    assert logits.grad.abs().sum() > 0


def test_gdas_tau_schedule():
    sampler = GDASSampler(tau_max=10, tau_min=0.1)
    sampler.set_epoch(0, 250)
    assert sampler.tau == pytest.approx(10.0)
    sampler.set_epoch(249, 250)
    assert sampler.tau == pytest.approx(0.1)
    sampler.set_epoch(1, 3)
    assert sampler.tau == pytest.approx(5.05)
    state = sampler.state_dict()
    other = GDASSampler()
    other.load_state_dict(state)
    assert other.tau == pytest.approx(5.05)


def test_spos_uniform_one_hot_and_untrained():
    sampler = SPOSSampler(seed=1)
    logits = torch.tensor([5.0, 0.0, 0.0], requires_grad=True)  # logits must not matter
    counts = torch.zeros(3)
    for _ in range(3000):
        weights, index = sampler.weights(logits)
        assert weights[index] == 1 and weights.sum() == 1 and not weights.requires_grad
        counts[index] += 1
    torch.testing.assert_close(counts / counts.sum(), torch.full((3,), 1 / 3), atol=0.035, rtol=0)
    assert not SPOSSampler.trains_logits


def test_discrete_is_argmax():
    logits = torch.tensor([0.1, 0.9, 0.3])
    weights, index = DiscreteSampler().weights(logits)
    assert index == 1 and torch.equal(weights, torch.tensor([0.0, 1.0, 0.0]))


@pytest.mark.parametrize("name", ["drnas", "gdas", "spos"])
def test_same_seed_same_draws_and_state_round_trip(name):
    logits = torch.randn(6)
    first, second = make_sampler(name, seed=7), make_sampler(name, seed=7)
    assert all(torch.equal(first.weights(logits)[0], second.weights(logits)[0]) for _ in range(5))
    state = first.state_dict()
    ahead = [first.weights(logits)[0] for _ in range(3)]
    resumed = make_sampler(name, seed=999)
    resumed.load_state_dict(state)
    assert all(torch.equal(a, resumed.weights(logits)[0]) for a in ahead)


def test_unknown_optimizer():
    with pytest.raises(UserError, match="unknown optimizer"):
        make_sampler("nonsense")
