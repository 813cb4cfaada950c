"""Speed options: channels-last changes no numbers; torch.compile traces a supernet once."""

from __future__ import annotations

import copy

import pytest
import torch
from support import batch, loss_of, tiny_space
from torch import nn
from typer.testing import CliRunner

from tanglenas_cli.cli import app
from tanglenas_cli.engine.speed import speed_up
from tanglenas_cli.layers.pooling import BoxAvgPool2d
from tanglenas_cli.nas.choices import Choice
from tanglenas_cli.nas.entangled import EntangledConv2d
from tanglenas_cli.nas.mixed_op import MixedOp, Zero
from tanglenas_cli.nas.samplers import make_sampler
from tanglenas_cli.spaces import list_spaces
from tanglenas_cli.spaces.base import choices_by_name


@pytest.mark.parametrize("entangle", [True, False], ids=["we", "ws"])
@pytest.mark.parametrize("name", list_spaces())
def test_channels_last_gives_the_same_outputs_and_gradients(name, entangle):
    torch.manual_seed(0)
    space = tiny_space(name)
    if not entangle and not space.supports_ws:
        pytest.skip(f"{name} has weight entanglement only")
    model = space.build_supernet(entangle)
    for module in model.modules():  # dropout masks are drawn in memory order, which differs
        if isinstance(module, nn.Dropout | nn.Dropout2d):
            module.p = 0.0
        if hasattr(module, "drop_prob"):  # timm's DropPath
            module.drop_prob = 0.0
    twin = copy.deepcopy(model)
    speed_up(twin, channels_last=True)
    assert list(twin.state_dict()) == list(model.state_dict())
    x, y = batch(space, 4)
    for network in (model, twin):
        make_sampler("drnas", seed=1).sample(list(choices_by_name(network).values()))
    outputs = []
    for network in (model, twin):
        out = network(x)
        out = out[0] if isinstance(out, tuple) else out
        loss_of(out, y).backward()
        outputs.append(out)
    torch.testing.assert_close(outputs[1], outputs[0], atol=1e-5, rtol=1e-4)
    for (key, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
        if p.grad is not None:
            # deep BN stacks on a batch of 4 amplify the two layouts' summation orders (seen with one
            # thread: up to 0.4% of the largest entry on mobilenetv3), so the tolerance grows with the scale
            scale = float(p.grad.abs().max())
            torch.testing.assert_close(q.grad, p.grad, atol=1e-4 + 5e-3 * scale, rtol=1e-3, msg=key)


class _TinySupernet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.choice = Choice("edge", ["none", "skip", "pool", "conv3", "conv1"])
        conv = EntangledConv2d(self.choice.subset([3, 4]), 4, 4, [3, 1])
        self.edge = MixedOp(
            self.choice, [Zero(), nn.Identity(), BoxAvgPool2d(3), None, None], [([3, 4], conv)]
        )
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.edge(x).mean((2, 3)))


def test_compiled_supernet_matches_eager_and_is_traced_once():
    torch._dynamo.reset()
    model = _TinySupernet()
    eager = copy.deepcopy(model)
    speed_up(model, compile=True)
    x = torch.randn(2, 4, 6, 6)
    sampler, eager_sampler = make_sampler("drnas", seed=0), make_sampler("drnas", seed=0)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for _ in range(3):  # a new sample each step must not re-trace
            sampler.sample([model.choice])
            eager_sampler.sample([eager.choice])
            got, want = model(x), eager(x)
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
            got.sum().backward()
            want.sum().backward()
            torch.testing.assert_close(model.choice.arch_logits.grad, eager.choice.arch_logits.grad)


def test_compile_with_a_path_sampler_is_one_line(tmp_path):
    result = CliRunner().invoke(
        app, ["search", "--space", "toy_cell", "--dataset", "digits", "--opt", "gdas", "--compile",
              "--out", str(tmp_path / "run")],
    )  # fmt: skip
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "gdas" in result.output and "compile" in result.output
