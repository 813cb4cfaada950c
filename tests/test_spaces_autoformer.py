"""AutoFormer: the supernet under one-hot weights (direct and mixture paths) computes exactly what the
discrete network of that architecture computes with the inherited weights."""

from __future__ import annotations

import pytest
import torch
from support import one_hot_outputs, search_then_inherit

from tanglenas_cli.errors import UserError
from tanglenas_cli.nas.samplers import make_sampler
from tanglenas_cli.spaces import create_space
from tanglenas_cli.spaces.base import DataShape, choices_by_name

OPTIONS = {"variant": "tiny", "patch_size": 4, "head_dim": 8}


def make(**extra):
    return create_space("autoformer", DataShape(10, (3, 16, 16)), {**OPTIONS, **extra})


ARCHS = [
    {"embed_dim": 16, "depth": 1, "num_heads": [1], "mlp_ratio": [2.0]},
    {"embed_dim": 16, "depth": 2, "num_heads": [2, 1], "mlp_ratio": [3.0, 2.0]},
    {"embed_dim": 24, "depth": 2, "num_heads": [1, 2], "mlp_ratio": [2.0, 3.0]},
    {"embed_dim": 24, "depth": 1, "num_heads": [2], "mlp_ratio": [3.0]},
]


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "mixture"])
@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: f"e{a['embed_dim']}d{a['depth']}")
def test_one_hot_supernet_equals_the_discrete_network(arch, direct):
    torch.manual_seed(0)
    supernet_out, network_out = one_hot_outputs(make(), arch, torch.randn(2, 3, 16, 16), direct)
    torch.testing.assert_close(supernet_out, network_out, atol=1e-5, rtol=1e-5)


def test_derive_keeps_fractional_ratios_and_counts_parameters():
    space = create_space("autoformer", DataShape(10, (3, 32, 32)), {"patch_size": 4})
    supernet = space.build_supernet()
    choices = choices_by_name(supernet)
    with torch.no_grad():
        for choice in choices.values():
            choice.arch_logits.zero_()
            choice.arch_logits[0] = 1.0  # embed 192, depth 12, heads 3, ratio 3.5
    arch = space.derive(choices)
    assert arch["embed_dim"] == 192 and arch["depth"] == 12 and arch["mlp_ratio"] == [3.5] * 12
    network = space.build_network(arch)
    count = sum(p.numel() for p in network.parameters())
    assert 4e6 < count < 6e6  # AutoFormer-T subnets have about 5.7M parameters at ImageNet size
    make_sampler("drnas", seed=0).sample(choices.values())
    assert supernet(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_bad_architectures_and_options_are_user_errors():
    space = make()
    with pytest.raises(UserError, match="one of"):
        space.validate({"embed_dim": 17, "depth": 1, "num_heads": [1], "mlp_ratio": [2.0]})
    with pytest.raises(UserError, match="lists of 2"):
        space.validate({"embed_dim": 16, "depth": 2, "num_heads": [1], "mlp_ratio": [2.0]})
    with pytest.raises(UserError, match="patch_size"):
        create_space("autoformer", DataShape(10, (3, 30, 30)), {"patch_size": 4}).build_supernet()
    with pytest.raises(UserError, match="weight entanglement only"):
        space.build_supernet(entangle=False)


def test_search_then_train_inheriting_the_supernet_weights(tmp_path, monkeypatch):
    from tanglenas_cli.spaces.autoformer import AutoFormerSpace

    exempted: list[set[str]] = []  # search and train build their weight optimizers with the exemptions
    original = AutoFormerSpace.no_weight_decay

    def recording(self, model):
        exempted.append(original(self, model))
        return exempted[-1]

    monkeypatch.setattr(AutoFormerSpace, "no_weight_decay", recording)
    settings = ["dataset_options.size=16", "dataset_options.channels=3", "logging.progress=false", "epochs=1",
                *(f"space_options.{k}={v}" for k, v in OPTIONS.items())]  # fmt: skip
    supernet, saved = search_then_inherit(tmp_path, "autoformer", settings)
    assert len(exempted) == 2 and all({"cls_token", "pos_embed"} <= names for names in exempted)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["weight_optimizer"]
    no_decay = state["param_groups"][1]  # the supernet's: tokens, positions and 4 tables in each of 2 blocks
    assert no_decay["weight_decay"] == 0 and len(no_decay["params"]) == 10
    network = saved["model"]
    for key, tensor in network.items():  # lr 1e-12: still the supernet's leading slices
        torch.testing.assert_close(
            tensor, supernet[key][tuple(slice(0, n) for n in tensor.shape)], atol=1e-6, rtol=0
        )


def test_paper_presets_follow_the_reference():
    from tanglenas_cli.config import build_config

    cfg = build_config(preset="autoformer-cifar10-drnas")
    assert (cfg.space, cfg.optimizer, cfg.dataset, cfg.epochs, cfg.batch_size) == (
        "autoformer",
        "drnas",
        "cifar10",
        500,
        512,
    )
    spec = cfg.weight_optimizer
    assert (spec.name, spec.lr, spec.lr_min, spec.weight_decay, spec.no_decay_1d, spec.warmup_epochs) == (
        "adamw",
        1e-3,
        1e-5,
        0.05,
        True,
        20,
    )
    assert cfg.arch_optimizer.lr == 6e-4 and cfg.train_portion == 0.8 and cfg.grad_clip is None
    assert (cfg.mixup.mixup_alpha, cfg.mixup.cutmix_alpha, cfg.mixup.label_smoothing) == (0.8, 1.0, 0.1)
    assert cfg.dataset_options == {"size": 224, "randaugment": "rand-m9-mstd0.5-inc1", "random_erasing": 0.25}
    assert build_config(preset="autoformer-s-imagenet-drnas").space == "autoformer_s"


def test_layer_norms_use_pytorch_default_eps_like_the_original():
    """AutoFormer's LayerNormSuper keeps PyTorch's eps (1e-5), in the supernet and in discrete networks."""
    from torch import nn

    from tanglenas_cli.nas.transformer import EntangledLayerNorm

    space = make()
    for model in (space.build_supernet(), space.build_network(ARCHS[1])):
        norms = [m for m in model.modules() if isinstance(m, EntangledLayerNorm)]
        assert len(norms) == 5 and {norm.eps for norm in norms} == {nn.LayerNorm(4).eps} == {1e-5}
    network = space.build_network(ARCHS[1])
    torch.manual_seed(0)
    x = 1e-3 * torch.randn(2, 5, 16)  # variance 1e-6: an eps of 1e-6 instead of 1e-5 changes the output
    reference = nn.LayerNorm(16)
    with torch.no_grad():
        reference.weight.copy_(network.norm.weight)
        reference.bias.copy_(network.norm.bias)
    torch.testing.assert_close(network.norm(x), reference(x))


def test_reference_remask_is_exact_under_one_hot_weights_and_remasks_the_pool_under_soft_ones():
    """``reference_remask``: the original's second application of the head weights in attention and of
    the embedding weights in the mean pool. One-hot weights (mixture path) still give the discrete network."""
    import torch.nn.functional as F

    for arch in ARCHS:
        torch.manual_seed(0)
        got, want = one_hot_outputs(
            make(reference_remask=True), arch, torch.randn(2, 3, 16, 16), direct=False
        )
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.manual_seed(0)
    remasked = make(reference_remask=True).build_supernet().eval()
    plain = make().build_supernet().eval()
    plain.load_state_dict(remasked.state_dict())
    for model in (remasked, plain):
        torch.manual_seed(1)
        for choice in choices_by_name(model).values():
            choice.set_mixing(torch.softmax(torch.randn(len(choice)), 0))
    embed_weights = choices_by_name(remasked)["embed"].mixing().weights
    tokens = torch.randn(2, 17, 24)
    pairs = zip(embed_weights, (16, 24), strict=True)
    masked_means = sum(w * F.pad(tokens[:, 1:, :e].mean(1), (0, 24 - e)) for w, e in pairs)
    torch.testing.assert_close(remasked.pool(tokens), masked_means)
    torch.testing.assert_close(plain.pool(tokens), tokens[:, 1:].mean(1))
    images = torch.randn(2, 3, 16, 16)
    assert (remasked(images) - plain(images)).abs().max() > 1e-4
