"""Every registered space, in both modes and under every sampler: forward/backward, derive, train a step.

A new space must add its small test settings to SMALL (a test fails until it does).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tanglenas_cli.nas import make_sampler, weight_parameters
from tanglenas_cli.spaces import SPACE_REGISTRY
from tanglenas_cli.spaces.base import DataShape, choices_by_name

SMALL = {
    "toy_cell": ((1, 16, 16), {"C": 4}),
    "toy_conv_macro": ((3, 16, 16), {}),
    "nb201": ((3, 16, 16), {"C": 4, "N": 1}),
    "nats_sss": ((3, 16, 16), {}),
    "darts": ((3, 16, 16), {"C": 4, "layers": 3}),
    "autoformer": ((3, 16, 16), {"variant": "tiny", "patch_size": 4, "head_dim": 8}),
    "autoformer_s": (
        (3, 16, 16),
        {"variant": "tiny", "patch_size": 4, "head_dim": 8, "relative_position": 0},
    ),
    "nanogpt": ((8,), {"variant": "tiny", "dropout": 0.0, "vocab_multiple": 1}),  # block 8, vocabulary 10
    "mobilenetv3": ((3, 32, 32), {"variant": "tiny"}),
}


def batch(space, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets for a space: images and labels, or token ids and next tokens."""
    if space.task == "language_model":
        tokens = torch.randint(0, 10, (size, space.data.input_shape[0] + 1))
        return tokens[:, :-1], tokens[:, 1:]
    return torch.randn(size, *space.data.input_shape), torch.randint(0, 10, (size,))


def set_one_hot(choices, picks: dict, direct: bool) -> None:
    """Give each named choice a one-hot on the picked candidate (direct path, or mixture path if not)."""
    for name, value in picks.items():
        index = choices[name].candidates.index(value)
        weights = F.one_hot(torch.tensor(index), len(choices[name])).float()
        choices[name].set_mixing(weights, index if direct else None)


def one_hot_outputs(space, arch: dict, picks: dict, inputs: torch.Tensor, direct: bool):
    """Return (supernet output under one-hot ``picks``, output of ``arch``'s discrete network that
    inherited the supernet's weights), both in eval mode, for the exactness tests of each space."""
    supernet = space.build_supernet().eval()
    network = space.build_network(arch).eval()
    space.inherit_weights(supernet.state_dict(), network)
    set_one_hot(choices_by_name(supernet), picks, direct)
    return supernet(inputs), network(inputs)


def search_then_inherit(tmp_path, space: str, settings: list[str]) -> tuple[dict, dict]:
    """Search ``space`` on digits, then `train --inherit` its derived subnet at lr 1e-12 (weights stay
    the supernet's); return (the supernet's state dict, the trained checkpoint)."""
    from typer.testing import CliRunner

    from tanglenas_cli.cli import app

    common = [part for setting in settings for part in ("--set", setting)]
    run = tmp_path / "run"
    searched = CliRunner().invoke(
        app, ["search", "--space", space, "--dataset", "digits", *common, "--out", str(run)]
    )
    assert searched.exit_code == 0, searched.output
    trained = CliRunner().invoke(
        app, ["train", str(run), *common, "--inherit", str(run), "--out", str(tmp_path / "fine"),
              "--set", "weight_optimizer.lr=1e-12", "--set", "weight_optimizer.weight_decay=0"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    supernet = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    return supernet, torch.load(tmp_path / "fine" / "model.pt", weights_only=True)


def loss_of(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of class logits (B, C) or next-token logits (B, T, V)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def make(name: str):
    shape, options = SMALL[name]
    return SPACE_REGISTRY[name](DataShape(10, shape), options)


def test_every_registered_space_is_covered():
    assert set(SPACE_REGISTRY) == set(SMALL)


@pytest.mark.parametrize("optimizer", ["darts_v1", "drnas", "gdas", "spos"])
@pytest.mark.parametrize("entangle", [True, False], ids=["we", "ws"])
@pytest.mark.parametrize("name", list(SMALL))
def test_supernet_forward_backward(name, entangle, optimizer):
    torch.manual_seed(0)
    space = make(name)
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


@pytest.mark.parametrize("name", list(SMALL))
def test_derive_build_and_train_one_step(name):
    torch.manual_seed(1)
    space = make(name)
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
