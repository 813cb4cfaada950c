"""nanoGPT space: one-hot supernet (direct and mixture paths) equals the discrete GPT with the inherited
weights; derived architectures validate; the head is tied to the token embedding."""

from __future__ import annotations

import pytest
import torch
from support import one_hot_outputs

from tanglenas_cli.errors import UserError
from tanglenas_cli.spaces import create_space
from tanglenas_cli.spaces.base import DataShape, choices_by_name


def make(**options):
    options = {"variant": "tiny", "dropout": 0.0, "vocab_multiple": 1, **options}
    return create_space("nanogpt", DataShape(30, (8,)), options)


ARCHS = [
    {"num_layers": 1, "embed_dim": 12, "num_heads": [3], "mlp_ratio": [2]},
    {"num_layers": 2, "embed_dim": 12, "num_heads": [2, 3], "mlp_ratio": [3, 2]},
    {"num_layers": 2, "embed_dim": 24, "num_heads": [3, 2], "mlp_ratio": [2, 3]},
    {"num_layers": 1, "embed_dim": 24, "num_heads": [2], "mlp_ratio": [3]},
]


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "mixture"])
@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: f"L{a['num_layers']}e{a['embed_dim']}")
def test_one_hot_supernet_equals_the_discrete_gpt(arch, direct):
    torch.manual_seed(0)
    supernet_logits, logits = one_hot_outputs(make(), arch, torch.randint(0, 30, (2, 8)), direct)
    assert logits.shape == (2, 8, 30)
    torch.testing.assert_close(supernet_logits, logits, atol=1e-5, rtol=1e-5)


def test_discrete_gpt_is_causal_and_ties_its_head():
    torch.manual_seed(1)
    space = make()
    network = space.build_network(ARCHS[1]).eval()
    tokens = torch.randint(0, 30, (1, 8))
    changed = tokens.clone()
    changed[0, 5] = (changed[0, 5] + 1) % 30
    # positions before the change see the same logits
    torch.testing.assert_close(network(tokens)[:, :5], network(changed)[:, :5])
    names = [name for name, _ in network.named_parameters()]
    assert not any("head" in name for name in names)  # the output head is the token table
    count = sum(p.numel() for p in network.parameters())
    # tokens, positions, final LN; per block two LNs (no bias), q/k/v/proj and the two MLP layers
    assert count == 30 * 12 + 8 * 12 + 12 + sum(2 * 12 + 4 * 12 * 12 + 2 * 12 * 12 * r for r in (3, 2))


def test_paper_space_derives_and_rejects_bad_architectures():
    space = create_space("nanogpt", DataShape(50304, (224,)), {})
    choices = choices_by_name(space.build_supernet())
    arch = space.derive(choices)
    assert space.validate(arch) == arch and arch["num_layers"] in (5, 6, 7)
    assert arch["embed_dim"] in (384, 576, 768) and len(arch["num_heads"]) == arch["num_layers"]
    with pytest.raises(UserError, match="one of"):
        space.validate({**arch, "embed_dim": 500})
    with pytest.raises(UserError, match="lists of"):
        space.validate({**arch, "num_heads": [6]})
    with pytest.raises(UserError, match="weight entanglement only"):
        space.build_supernet(entangle=False)


def test_vocabulary_is_padded_like_nanogpt():
    for vocab, padded in ((50257, 50304), (257, 320), (64, 64)):
        network = create_space("nanogpt", DataShape(vocab, (8,)), {"variant": "tiny"}).build_network(
            {"embed_dim": 12, "num_layers": 1, "num_heads": [2], "mlp_ratio": [2]}
        )
        assert network.tokens.weight.shape[0] == padded
    with pytest.raises(UserError, match="vocab_multiple"):
        create_space("nanogpt", DataShape(30, (8,)), {"vocab_multiple": 0})
