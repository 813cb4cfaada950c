"""Entangled conv / linear layers against the explicit sum over their candidates."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from tanglenas_cli.nas.choices import Choice, JointChoice
from tanglenas_cli.nas.entangled import EntangledConv2d, EntangledLinear
from tanglenas_cli.nas.samplers import DartsSampler, DiscreteSampler, DrNASSampler, GDASSampler, SPOSSampler
from tanglenas_cli.nas.superposition import SlicedDim, Superposition


def padded_conv_weight(layer: EntangledConv2d, index: int) -> torch.Tensor:
    """Slice candidate ``index`` by hand and zero-pad it back to the super kernel's shape."""
    out_c, in_c, k = layer.out_sizes[index], layer.in_sizes[index], layer.kernel_sizes[index]
    big = layer.max_kernel
    start = (big - k) // 2
    if layer.groups > 1:  # grouped/depthwise: the kernel's in dim is per group and never sliced
        in_c = layer.weight.shape[1]
    piece = layer.weight[:out_c, :in_c, start : start + k, start : start + k]
    pad_in = layer.weight.shape[1] - in_c
    return F.pad(piece, (start, start, start, start, 0, pad_in, 0, layer.max_out - out_c))


def explicit_conv(layer: EntangledConv2d, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_i w_i * conv(x; pad(slice_i(W)))`` -- k separate convolutions."""
    total = 0
    for i in range(len(weights)):
        bias = None
        if layer.bias is not None:
            bias = layer.bias.clone()
            if layer.bias_weighted:
                bias = F.pad(layer.bias[: layer.out_sizes[i]], (0, layer.max_out - layer.out_sizes[i]))
        out = F.conv2d(
            x, padded_conv_weight(layer, i), None, layer.stride, layer.padding, layer.dilation, layer.groups
        )
        total = total + weights[i] * out
        if bias is not None:
            total = (
                total
                + (weights[i] * bias if layer.bias_weighted else bias / len(weights))[None, :, None, None]
            )
    return total


def explicit_linear(layer: EntangledLinear, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    total = 0
    out_max, in_max = layer.weight.shape
    for i in range(len(weights)):
        o, n = layer.out_sizes[i], layer.in_sizes[i]
        weight = F.pad(layer.weight[:o, :n], (0, in_max - n, 0, out_max - o))
        bias = None
        if layer.bias is not None:
            bias = (
                F.pad(layer.bias[:o], (0, out_max - o)) if layer.bias_weighted else layer.bias / len(weights)
            )
        scale = weights[i] if layer.bias is None or layer.bias_weighted else 1.0
        total = total + weights[i] * F.linear(x, weight) + (0 if bias is None else scale * bias)
    return total


def conv_cases() -> list[tuple[str, dict, list[list[int]]]]:
    """(name, layer kwargs, candidate lists per joint factor)."""
    return [
        ("kernels", {"in_channels": 6, "out_channels": 5}, [[3, 5, 7]]),
        ("kernel-pair-dilated", {"in_channels": 4, "out_channels": 4, "dilation": 2}, [[3, 5]]),
        ("kernels-bias", {"in_channels": 3, "out_channels": 4, "bias": True}, [[1, 3]]),
        (
            "kernels-bias-unweighted",
            {"in_channels": 3, "out_channels": 4, "bias": True, "bias_weighted": False},
            [[1, 3]],
        ),
        ("grouped", {"in_channels": 8, "out_channels": 6, "groups": 2, "stride": 2}, [[3, 5]]),
    ]


def set_weights(choice: Choice, weights: torch.Tensor, index: int | None = None) -> None:
    choice.set_mixing(weights, index)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("case", conv_cases(), ids=lambda c: c[0])
def test_conv_kernel_candidates_equal_explicit_sum(case, seed):
    torch.manual_seed(seed)
    _, kwargs, (kernels,) = case
    choice = Choice("kernel", kernels)
    layer = EntangledConv2d(choice, kernel_size=kernels, **kwargs)
    if layer.bias is not None:
        torch.nn.init.normal_(layer.bias)
    x = torch.randn(2, kwargs["in_channels"], 11, 11)
    weights = torch.randn(len(kernels))  # any weights, not only simplex points
    set_weights(choice, weights)
    torch.testing.assert_close(layer(x), explicit_conv(layer, x, weights), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_conv_joint_in_out_kernel_equals_explicit_sum(seed):
    """Conv-macro style: product(in-ch, out-ch, kernel) = 12 candidates from three choices."""
    torch.manual_seed(seed)
    c_in, c_out, kernel = Choice("in", [2, 4]), Choice("out", [3, 6]), Choice("k", [3, 5, 7])
    joint = JointChoice([c_in, c_out, kernel])
    ins, outs, ks = zip(*joint.candidates, strict=True)
    layer = EntangledConv2d(joint, ins, outs, ks, bias=True)
    torch.nn.init.normal_(layer.bias)
    for c in (c_in, c_out, kernel):
        c.set_mixing(torch.distributions.Dirichlet(torch.ones(len(c))).sample())
    x = torch.randn(2, 4, 9, 9)
    weights = joint.mixing().weights
    assert weights.shape == (12,)
    torch.testing.assert_close(layer(x), explicit_conv(layer, x, weights), atol=1e-5, rtol=1e-5)


def test_depthwise_joint_channels_kernel_equals_explicit_sum():
    torch.manual_seed(3)
    channels, kernel = Choice("expand", [4, 8]), Choice("k", [3, 5])
    joint = JointChoice([channels, kernel])
    chans, ks = zip(*joint.candidates, strict=True)
    layer = EntangledConv2d(joint, chans, chans, ks, groups=8)
    assert layer.depthwise
    channels.set_mixing(torch.tensor([0.3, 0.7]))
    kernel.set_mixing(torch.tensor([0.6, 0.4]))
    x = torch.randn(2, 8, 7, 7)
    torch.testing.assert_close(
        layer(x), explicit_conv(layer, x, joint.mixing().weights), atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("bias_weighted", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_linear_joint_in_out_equals_explicit_sum(seed, bias_weighted):
    torch.manual_seed(seed)
    embed, ratio = Choice("embed", [4, 6, 8]), Choice("ratio", [2, 3, 4])
    joint = JointChoice([embed, ratio])
    # fc1 of an MLP: in = e, out = e * r -- the out width depends on both choices.
    layer = EntangledLinear(
        joint,
        [e for e, _ in joint.candidates],
        [e * r for e, r in joint.candidates],
        bias_weighted=bias_weighted,
    )
    embed.set_mixing(torch.randn(3))
    ratio.set_mixing(torch.randn(3))
    x = torch.randn(5, 8)
    torch.testing.assert_close(
        layer(x), explicit_linear(layer, x, joint.mixing().weights), atol=1e-5, rtol=1e-5
    )


def test_linear_prefix_out_only():
    torch.manual_seed(0)
    choice = Choice("out", [3, 5, 7])
    layer = EntangledLinear(choice, 4, [3, 5, 7])
    weights = torch.tensor([0.2, 0.5, 0.3])
    choice.set_mixing(weights)
    x = torch.randn(3, 4)
    torch.testing.assert_close(layer(x), explicit_linear(layer, x, weights), atol=1e-5, rtol=1e-5)


def all_conv_layers():
    """Layers with one Choice (name, layer, choice, input)."""
    torch.manual_seed(0)
    layers = []
    choice = Choice("k", [3, 5, 7])
    layers.append(
        ("kernel", EntangledConv2d(choice, 4, 6, [3, 5, 7], bias=True), [choice], torch.randn(2, 4, 9, 9))
    )
    c1, c2 = Choice("out", [2, 4, 6]), Choice("k", [1, 3])
    joint = JointChoice([c1, c2])
    outs, ks = zip(*joint.candidates, strict=True)
    layers.append(
        ("out-x-kernel", EntangledConv2d(joint, 3, outs, ks, stride=2), [c1, c2], torch.randn(2, 3, 8, 8))
    )
    c3, c4 = Choice("ch", [4, 8]), Choice("k", [3, 5])
    joint = JointChoice([c3, c4])
    chans, ks = zip(*joint.candidates, strict=True)
    layers.append(
        (
            "depthwise",
            EntangledConv2d(joint, chans, chans, ks, groups=8, dilation=2),
            [c3, c4],
            torch.randn(2, 8, 9, 9),
        )
    )
    c5, c6 = Choice("in", [3, 5]), Choice("out", [2, 4])
    joint = JointChoice([c5, c6])
    ins, outs = zip(*joint.candidates, strict=True)
    layers.append(("linear-in-x-out", EntangledLinear(joint, ins, outs), [c5, c6], torch.randn(4, 5)))
    return layers


@pytest.mark.parametrize(
    "name, layer, choices, x", all_conv_layers(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_one_hot_equals_standalone_candidate(name, layer, choices, x):
    """One-hot weights take the direct path: same numbers as the sliced standalone layer."""
    for combo in itertools.product(*(range(len(c)) for c in choices)):
        for c, i in zip(choices, combo, strict=True):
            c.set_mixing(torch.nn.functional.one_hot(torch.tensor(i), len(c)).float(), i)
        index = layer.source.mixing().index
        standalone = layer.export(index)
        in_width = (
            standalone.in_channels if isinstance(standalone, torch.nn.Conv2d) else standalone.in_features
        )
        x_in = x[:, :in_width] if x.dim() == 4 else x[..., :in_width]
        expected = standalone(x_in)
        # a sliced (strided) weight view and its contiguous copy may take different oneDNN kernels
        # (seen with one thread): equal to float rounding, not always bit for bit
        torch.testing.assert_close(layer(x), expected, atol=1e-7, rtol=1e-5)
        # The mixture path with the same one-hot weights gives the same numbers, zero-padded.
        mixture = layer.forward_mixture(x, layer.source.mixing().weights)
        width = expected.shape[1] if x.dim() == 4 else expected.shape[-1]
        narrow = mixture[:, :width] if x.dim() == 4 else mixture[..., :width]
        torch.testing.assert_close(narrow, expected, atol=1e-5, rtol=1e-5)
        rest = mixture[:, width:] if x.dim() == 4 else mixture[..., width:]
        assert torch.count_nonzero(rest) == 0


SAMPLERS = {
    "darts": lambda: DartsSampler(seed=0),
    "darts-sparsemax": lambda: DartsSampler(seed=0, activation="sparsemax"),
    "drnas": lambda: DrNASSampler(seed=0),
    "gdas": lambda: GDASSampler(seed=0),
}


@pytest.mark.parametrize("sampler_name", list(SAMPLERS))
@pytest.mark.parametrize(
    "name, layer, choices, x", all_conv_layers(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_logits_get_gradient_under_every_sampler(sampler_name, name, layer, choices, x):
    sampler = SAMPLERS[sampler_name]()
    for choice in choices:
        choice.arch_logits.grad = None
    sampler.sample(choices)
    layer(x).pow(2).sum().backward()
    for choice in choices:
        grad = choice.arch_logits.grad
        assert grad is not None and torch.isfinite(grad).all()
        assert grad.abs().sum() > 0, f"{choice.name} got a zero gradient under {sampler_name}"


@pytest.mark.parametrize("sampler_cls", [SPOSSampler, DiscreteSampler])
def test_spos_and_discrete_leave_logits_untrained(sampler_cls):
    _, layer, choices, x = all_conv_layers()[0]
    sampler = sampler_cls(seed=0)
    sampler.sample(choices)
    assert layer.source.mixing().index is not None
    layer(x).sum().backward()
    assert choices[0].arch_logits.grad is None
    assert layer.weight.grad is not None


def test_superposition_mask_never_holds_k_copies_and_matches_definition():
    torch.manual_seed(0)
    shape = (6, 5, 7, 7)
    dims = [
        SlicedDim(0, (2, 4, 6, 6)),
        SlicedDim(1, (5, 3, 1, 5)),
        SlicedDim(2, (7, 5, 3, 1), centred=True),
        SlicedDim(3, (7, 5, 3, 1), centred=True),
    ]
    superposition = Superposition(shape, dims)
    tensor = torch.randn(shape)
    weights = torch.randn(4)
    expected = torch.zeros(shape)
    for i in range(4):
        region = torch.zeros(shape)
        region[: dims[0].sizes[i], : dims[1].sizes[i]] = 1
        keep = torch.zeros(7)
        start = (7 - dims[2].sizes[i]) // 2
        keep[start : start + dims[2].sizes[i]] = 1
        region = region * keep[None, None, :, None] * keep[None, None, None, :]
        expected += weights[i] * tensor * region
    torch.testing.assert_close(superposition.superpose(tensor, weights), expected, atol=1e-6, rtol=1e-6)


def test_bad_candidates_are_rejected():
    with pytest.raises(ValueError):
        EntangledConv2d(Choice("k", [2, 5]), 3, 3, [2, 5])  # even difference impossible to centre
    with pytest.raises(ValueError):
        EntangledConv2d(Choice("c", [2, 4]), [2, 4], 4, 3, groups=2)  # grouped conv with channel choice
    with pytest.raises(ValueError):
        EntangledLinear(Choice("c", [2, 4]), [2, 4, 6], 3)  # wrong number of per-candidate values
