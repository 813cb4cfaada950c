"""First- and second-order architect against their definitions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tanglenas_cli.nas.architect import Architect
from tanglenas_cli.nas.choices import Choice, find_choices, weight_parameters
from tanglenas_cli.nas.entangled import EntangledLinear
from tanglenas_cli.nas.mixed_op import MixedOp
from tanglenas_cli.nas.samplers import DartsSampler, SPOSSampler


class TinySupernet(nn.Module):
    """x -> tanh(mixed(x)) -> linear; the mixed op holds an entangled pair and a plain op."""

    def __init__(self) -> None:
        super().__init__()
        self.op_choice = Choice("op", ["lin_narrow", "lin_wide", "tanh"])
        self.head_choice = Choice("head", [2, 4])
        group = EntangledLinear(self.op_choice.subset([0, 1]), 4, [2, 4])
        self.mixed = MixedOp(self.op_choice, [None, None, nn.Tanh()], groups=[([0, 1], group)], pad_dim=-1)
        self.head = EntangledLinear(self.head_choice, [2, 4], 3)

    def forward(self, x):
        return self.head(torch.tanh(self.mixed(x)))


def loss_fn(model, batch):
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def make_problem(seed: int = 0):
    torch.manual_seed(seed)
    model = TinySupernet().double()
    with torch.no_grad():
        for choice in find_choices(model):
            choice.arch_logits.normal_()
    train = (torch.randn(16, 4, dtype=torch.float64), torch.randint(0, 3, (16,)))
    val = (torch.randn(16, 4, dtype=torch.float64), torch.randint(0, 3, (16,)))
    return model, train, val


def test_first_order_step_is_one_adam_step_on_the_val_gradient():
    model, _, val = make_problem()
    sampler = DartsSampler()
    architect = Architect(model, sampler, loss_fn, lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    before = [p.detach().clone() for p in architect.arch_params]
    sampler.sample(find_choices(model))
    grads = torch.autograd.grad(loss_fn(model, val), architect.arch_params)
    architect.step(val)
    for old, grad, new in zip(before, grads, architect.arch_params, strict=True):
        g = grad + 1e-3 * old  # Adam's L2 weight decay
        expected = old - 3e-4 * g / (g.abs() + 1e-8)  # first Adam step: bias-corrected m/sqrt(v)
        torch.testing.assert_close(new.detach(), expected)
    assert all(p.grad is None for p in weight_parameters(model)), "arch step must not touch weight grads"


def test_spos_architect_is_a_no_op():
    model, _, val = make_problem()
    architect = Architect(model, SPOSSampler(), loss_fn)
    before = [p.detach().clone() for p in architect.arch_params]
    assert architect.step(val) is None
    assert all(torch.equal(a, b) for a, b in zip(before, architect.arch_params, strict=True))


def unrolled_objective(model, arch_values, train, val, lr, momentum, weight_decay, buffers):
    """L_val(w - lr * (momentum * buf + grad_w L_train(w, a) + wd * w), a), computed from scratch."""
    choices = find_choices(model)
    params = weight_parameters(model)
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        for choice, value in zip(choices, arch_values, strict=True):
            choice.arch_logits.copy_(value)
    sampler = DartsSampler()
    sampler.sample(choices)
    grads = torch.autograd.grad(loss_fn(model, train), params)
    with torch.no_grad():
        for p, g, b in zip(params, grads, buffers, strict=True):
            p.sub_(lr * (momentum * b + g + weight_decay * p))
    sampler.sample(choices)
    value = loss_fn(model, val).detach()
    with torch.no_grad():
        for p, s in zip(params, saved, strict=True):
            p.copy_(s)
    return value


@pytest.mark.parametrize("seed", [0, 1])
def test_second_order_gradient_matches_brute_force_finite_differences(seed):
    model, train, val = make_problem(seed)
    lr, momentum, weight_decay = 0.5, 0.9, 3e-4
    weight_optimizer = torch.optim.SGD(
        weight_parameters(model), lr=lr, momentum=momentum, weight_decay=weight_decay
    )
    # one real weight step so that the optimizer has momentum buffers
    sampler = DartsSampler()
    sampler.sample(find_choices(model))
    loss_fn(model, train).backward()
    weight_optimizer.step()
    weight_optimizer.zero_grad(set_to_none=True)
    for choice in find_choices(model):
        choice.arch_logits.grad = None

    architect = Architect(model, sampler, loss_fn, second_order=True, weight_optimizer=weight_optimizer)
    weights_before = [p.detach().clone() for p in weight_parameters(model)]
    _, grads = architect.unrolled_gradients(val, train, lr)
    assert all(torch.equal(a, b) for a, b in zip(weights_before, weight_parameters(model), strict=True))

    buffers = [weight_optimizer.state[p]["momentum_buffer"] for p in weight_parameters(model)]
    base = [c.arch_logits.detach().clone() for c in find_choices(model)]
    step = 1e-5
    for which, logits in enumerate(base):
        numeric = torch.zeros_like(logits)
        for j in range(len(logits)):
            values = []
            for sign in (1, -1):
                shifted = [b.clone() for b in base]
                shifted[which][j] += sign * step
                values.append(
                    unrolled_objective(model, shifted, train, val, lr, momentum, weight_decay, buffers)
                )
            numeric[j] = (values[0] - values[1]) / (2 * step)
        torch.testing.assert_close(grads[which], numeric, rtol=2e-3, atol=1e-6)
    # and the second-order term matters here: the first-order gradient differs
    first_order = Architect(model, DartsSampler(), loss_fn)
    with torch.no_grad():
        for choice, value in zip(find_choices(model), base, strict=True):
            choice.arch_logits.copy_(value)
    plain = torch.autograd.grad(first_order.arch_loss(val), first_order.arch_params)
    gap = max(float((p - g).abs().max()) for p, g in zip(plain, grads, strict=True))
    tolerance = max(float(2e-3 * g.abs().max() + 1e-6) for g in grads)
    assert gap > 10 * tolerance, (gap, tolerance)


def test_virtual_step_uses_each_parameters_own_weight_decay():
    """darts_v2's virtual step w' = w - lr * (grad + wd * w) takes wd from the parameter's own group."""
    model, train, _ = make_problem(0)
    params = weight_parameters(model)
    decayed, exempt = [p for p in params if p.dim() > 1], [p for p in params if p.dim() <= 1]
    optimizer = torch.optim.SGD([{"params": decayed}, {"params": exempt, "weight_decay": 0.0}],
                                lr=0.5, weight_decay=0.1)  # fmt: skip
    sampler = DartsSampler()
    sampler.sample(find_choices(model))
    architect = Architect(model, sampler, loss_fn, second_order=True, weight_optimizer=optimizer)
    grads = torch.autograd.grad(loss_fn(model, train), params)
    before = [p.detach().clone() for p in params]
    architect._virtual_step(train, 0.5)
    for param, grad, old in zip(params, grads, before, strict=True):
        decay = 0.1 if param.dim() > 1 else 0.0
        torch.testing.assert_close(param.detach(), old - 0.5 * (grad + decay * old))
