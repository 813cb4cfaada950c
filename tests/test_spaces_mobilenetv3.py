"""MobileNetV3 / OFA space: one-hot supernet (direct and mixture paths) equals the discrete network with the
inherited weights; OFA kernel transforms; entangled layers against the explicit sum over their candidates;
architectures; parameters and MACs of the paper variant against an analytic count.

BN in the exactness tests: the discrete network inherits the supernet's BN parameters AND running
statistics (prefix slices). In eval mode both then normalise every channel of the chosen width with the
same statistics; a narrower candidate's padded channels are zero before its BN and are masked to zero
after it, so they never leak. Train mode (batch statistics) is exact too: the statistics of a used channel
depend only on that channel. Both modes are tested, eval mode after a few soft-weight training forwards
so that the running statistics are not the initial 0 / 1.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from support import search_then_inherit, set_one_hot

from tanglenas_cli.engine.flops import count_flops
from tanglenas_cli.errors import UserError
from tanglenas_cli.layers.channels import make_divisible
from tanglenas_cli.nas.choices import Choice, JointChoice
from tanglenas_cli.nas.entangled import EntangledConv2d
from tanglenas_cli.nas.ofa import EntangledMBConv, TransformedKernelConv2d
from tanglenas_cli.nas.samplers import make_sampler
from tanglenas_cli.spaces import create_space
from tanglenas_cli.spaces.base import DataShape, choices_by_name
from tanglenas_cli.spaces.mobilenetv3 import STAGE_SE, VARIANTS

TINY = VARIANTS["tiny"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are small: on a loaded 2-core machine two intra-op threads mostly spin-wait (the module
    then takes minutes instead of seconds), so this module runs single-threaded."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


COMBOS = list(itertools.product(TINY["expand_ratio"], TINY["kernel_size"]))  # (e, k): 4 per block


def make(variant: str = "tiny", classes: int = 10, size: int = 32, **options):
    return create_space("mobilenetv3", DataShape(classes, (3, size, size)), {"variant": variant, **options})


def rotating_arch(shift: int, depth: list[int]) -> dict:
    """Block b of stage s takes (e, k) combination (shift + s + b) mod 4: every block position, in turn,
    every combination; all blocks are listed, those beyond the depth are ignored."""
    kernels, ratios = [], []
    for s in range(5):
        picks = [COMBOS[(shift + s + b) % len(COMBOS)] for b in range(2)]
        ratios.append([e for e, _ in picks])
        kernels.append([k for _, k in picks])
    return {"kernel_size": kernels, "expand_ratio": ratios, "depth": depth}


ARCHS = [
    rotating_arch(0, [2, 2, 2, 2, 2]),
    rotating_arch(1, [1, 2, 1, 2, 1]),
    rotating_arch(2, [2, 1, 2, 1, 2]),
    rotating_arch(3, [1, 1, 2, 2, 1]),
]


def trained_looking_supernet(space, seed: int = 0):
    """A supernet whose transforms, BN affine parameters and running statistics are not the initial ones."""
    torch.manual_seed(seed)
    supernet = space.build_supernet()
    with torch.no_grad():
        for name, parameter in supernet.named_parameters():
            if ".transforms." in name:
                parameter.add_(0.2 * torch.randn_like(parameter))
            elif "norm" in name:
                parameter.copy_(1 + 0.3 * torch.randn_like(parameter) if name.endswith("weight") else
                                0.1 * torch.randn_like(parameter))  # fmt: skip
    make_sampler("darts_v1").sample(choices_by_name(supernet).values())
    supernet.train()
    with torch.no_grad():
        for _ in range(2):
            supernet(torch.randn(4, 3, 32, 32))
    return supernet


def test_covered_candidates():
    seen = {(e, k) for a in ARCHS for s in range(5) for b in range(a["depth"][s])
            for e, k in [(a["expand_ratio"][s][b], a["kernel_size"][s][b])]}  # fmt: skip
    assert seen == set(COMBOS)
    assert {d for a in ARCHS for d in a["depth"]} == set(TINY["depth"])


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "mixture"])
@pytest.mark.parametrize("index", range(len(ARCHS)))
def test_one_hot_supernet_equals_the_discrete_network_eval_mode(index, direct):
    arch = ARCHS[index]
    space = make()
    supernet = trained_looking_supernet(space, seed=index).eval()
    network = space.build_network(arch).eval()
    space.inherit_weights(supernet.state_dict(), network)
    set_one_hot(choices_by_name(supernet), space.picks_of(arch), direct)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(supernet(x), network(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "mixture"])
def test_one_hot_supernet_equals_the_discrete_network_train_mode(direct):
    arch = ARCHS[1]
    space = make(dropout=0.0)
    supernet = trained_looking_supernet(space).train()
    network = space.build_network(arch).train()
    space.inherit_weights(supernet.state_dict(), network)
    set_one_hot(choices_by_name(supernet), space.picks_of(arch), direct)
    x = torch.randn(4, 3, 40, 40)  # any input size: global pooling
    torch.testing.assert_close(supernet(x), network(x), atol=1e-5, rtol=1e-5)


def test_kernel_transforms_derive_the_smaller_kernels():
    joint = JointChoice([Choice("e", [8, 16]), Choice("k", [3, 5, 7])])
    layer = TransformedKernelConv2d(joint, [c for c, _ in joint.candidates], [k for _, k in joint.candidates])
    assert set(layer.transforms) == {"7to5", "5to3"}
    full = layer.weight
    # identity transforms: the plain centred windows
    torch.testing.assert_close(layer.candidate_weight(4), full[:16, :, 1:6, 1:6])  # (16, 5)
    torch.testing.assert_close(layer.candidate_weight(0), full[:8, :, 2:5, 2:5])  # (8, 3)
    torch.testing.assert_close(layer.candidate_weight(5), full)  # (16, 7)
    with torch.no_grad():
        layer.transforms["7to5"].add_(0.1 * torch.randn(25, 25))
        layer.transforms["5to3"].add_(0.1 * torch.randn(9, 9))
    five = full[:, :, 1:6, 1:6].reshape(16, 25) @ layer.transforms["7to5"].t()
    three = five.reshape(16, 1, 5, 5)[:, :, 1:4, 1:4].reshape(16, 9) @ layer.transforms["5to3"].t()
    torch.testing.assert_close(layer.candidate_weight(4), five.reshape(16, 1, 5, 5))
    torch.testing.assert_close(layer.candidate_weight(3), three.reshape(16, 1, 3, 3))
    assert not torch.allclose(layer.candidate_weight(4), full[:, :, 1:6, 1:6])
    # the direct path of kernel 3 trains both matrices and the 7x7 weight
    joint.sources[0].set_mixing(torch.tensor([0.0, 1.0]), 1)
    joint.sources[1].set_mixing(torch.tensor([1.0, 0.0, 0.0]), 0)
    layer(torch.randn(2, 16, 9, 9)).square().sum().backward()
    for parameter in (layer.transforms["7to5"], layer.transforms["5to3"], layer.weight):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0


def padded(weight: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Zero-pad a candidate's weight: channel dims at the end, kernel dims on both sides (centred)."""
    pads = []
    for dim in reversed(range(weight.dim())):
        missing = shape[dim] - weight.shape[dim]
        pads += [missing // 2, missing // 2] if dim >= 2 else [0, missing]
    return F.pad(weight, pads)


def test_block_layers_superpose_the_explicit_sum_of_their_candidates():
    torch.manual_seed(0)
    expand, kernel = Choice("expand", [3, 4, 6]), Choice("kernel", [3, 5, 7])
    block = EntangledMBConv(expand, kernel, 16, 24, stride=2, activation="h_swish", use_se=True)
    with torch.no_grad():
        block.depthwise.transforms["7to5"].add_(0.1 * torch.randn(25, 25))
        block.depthwise.transforms["5to3"].add_(0.1 * torch.randn(9, 9))
    assert block.mid_channels == (48, 64, 96)
    joint_weights = torch.rand(9)
    joint_weights /= joint_weights.sum()
    depthwise = block.depthwise
    explicit = sum(
        w * padded(depthwise.candidate_weight(c), depthwise.weight.shape) for c, w in enumerate(joint_weights)
    )
    torch.testing.assert_close(depthwise.superposed_weight(joint_weights), explicit)
    # one convolution with the superposed kernel == the weighted sum of the 9 candidates' own convolutions
    x = torch.randn(2, 96, 11, 11)
    mixed = depthwise.forward_mixture(x, joint_weights)
    outputs = [F.pad(depthwise.forward_candidate(x, c), (0, 0, 0, 0, 0, 96 - depthwise.channel_sizes[c]))
               for c in range(9)]  # fmt: skip
    torch.testing.assert_close(mixed, sum(w * o for w, o in zip(joint_weights, outputs, strict=True)))
    # the 1x1 convolutions and SE convolutions (weights and biases) on the expand-ratio weights
    weights = torch.tensor([0.2, 0.3, 0.5])
    layers: list[EntangledConv2d] = [block.expand_conv, block.project, block.se.reduce, block.se.expand]
    for layer in layers:
        explicit = sum(
            w * padded(layer.candidate_weight(c), layer.weight.shape) for c, w in enumerate(weights)
        )
        torch.testing.assert_close(layer.weight_superposition.superpose(layer.weight, weights), explicit)
        if layer.bias is not None:
            bias = sum(w * F.pad(layer.bias[: layer.out_sizes[c]], (0, layer.max_out - layer.out_sizes[c]))
                       for c, w in enumerate(weights))  # fmt: skip
            torch.testing.assert_close(layer._mixture_bias(weights), bias)
    assert block.se.reduce.out_sizes == (16, 16, 24)  # make_divisible(mid // 4, 8)


def test_derive_validate_describe_and_bad_architectures():
    space = make()
    supernet = space.build_supernet()
    choices = choices_by_name(supernet)
    assert len(choices) == 5 * 2 * 2 + 5
    arch = space.derive(choices)
    assert space.validate(arch) == arch and space.build_network(arch) is not None
    with torch.no_grad():
        for name, choice in choices.items():
            choice.arch_logits.zero_()
            choice.arch_logits[-1 if "depth" in name or name.endswith("kernel_size") else 0] = 1.0
    arch = space.derive(choices)
    assert arch == {"kernel_size": [[5, 5]] * 5, "expand_ratio": [[3, 3]] * 5, "depth": [2] * 5}
    assert space.describe(arch) == "d 2,2,2,2,2 | k 55 55 55 55 55 | e 33 33 33 33 33"
    short = {"kernel_size": [[5], [3, 5], [3], [5], [3]], "expand_ratio": [[4], [3, 4], [4], [3], [3]],
             "depth": [1, 2, 1, 1, 1]}  # fmt: skip
    normal = space.validate(short)
    assert normal["kernel_size"][0] == [5, 3] and normal["expand_ratio"][0] == [4, 3]  # padded, ignored
    assert space.describe(normal) == "d 1,2,1,1,1 | k 5 35 3 5 3 | e 4 34 4 3 3"
    paper = make("paper", 1000, 224)
    assert paper.describe(paper.largest_architecture()) == "d 4,4,4,4,4 | k " + " ".join(["7777"] * 5) + (
        " | e " + " ".join(["6666"] * 5)
    )
    bad = [
        {**short, "depth": [1, 2, 1, 1]},
        {**short, "depth": [1, 2, 3, 1, 1]},
        {**short, "kernel_size": [[7], [3, 5], [3], [5], [3]]},
        {**short, "expand_ratio": [[4], [3], [4], [3], [3]]},  # stage 2 has depth 2
        {**short, "expand_ratio": [[4], [3, 4, 3], [4], [3], [3]]},
        {**short, "depth": [True, 2, 1, 1, 1]},
        {"kernel_size": short["kernel_size"], "depth": short["depth"]},
        "d 2,2,2,2,2",
    ]
    for arch in bad:
        with pytest.raises(UserError, match="mobilenetv3"):
            space.validate(arch)
    with pytest.raises(UserError, match="weight entanglement only"):
        space.build_supernet(entangle=False)
    with pytest.raises(UserError, match="variant"):
        make("huge")


def analytic_counts(arch: dict, classes: int = 1000, size: int = 224) -> tuple[int, int]:
    """(parameters, multiply-adds) of the paper MobileNetV3 of ``arch``, counted by hand from the spec."""
    params = macs = 0

    def conv(c_in: int, c_out: int, k: int, hw: int, groups: int = 1, bias: bool = False, bn: bool = True):
        nonlocal params, macs
        params += k * k * c_in // groups * c_out + (c_out if bias else 0) + (2 * c_out if bn else 0)
        macs += k * k * c_in // groups * c_out * hw * hw

    hw = -(-size // 2)
    conv(3, 16, 3, hw)  # stem
    conv(16, 16, 3, hw, groups=16)  # first block: depthwise, point-linear
    conv(16, 16, 1, hw)
    c_in = 16
    for s, width in enumerate((24, 40, 80, 112, 160)):
        for b in range(arch["depth"][s]):
            k, e = arch["kernel_size"][s][b], arch["expand_ratio"][s][b]
            mid = c_in * e  # every width here is a multiple of 8
            conv(c_in, mid, 1, hw)
            if b == 0:
                hw = -(-hw // VARIANTS["paper"]["strides"][s])
            conv(mid, mid, k, hw, groups=mid)
            if STAGE_SE[s]:
                squeeze = make_divisible(mid // 4)
                conv(mid, squeeze, 1, 1, bias=True, bn=False)
                conv(squeeze, mid, 1, 1, bias=True, bn=False)
            conv(mid, width, 1, hw)
            c_in = width
    conv(160, 960, 1, hw)
    conv(960, 1280, 1, 1, bn=False)
    conv(1280, classes, 1, 1, bias=True, bn=False)  # the linear classifier
    return params, macs


def test_paper_variant_parameters_and_flops_match_the_analytic_count():
    space = make("paper", 1000, 224)
    counted = {}
    for which in ("largest", "smallest"):
        arch = getattr(space, f"{which}_architecture")()
        network = space.build_network(arch)
        params, macs = analytic_counts(arch)
        assert sum(p.numel() for p in network.parameters()) == params
        flops = count_flops(space, network)
        assert abs(flops / 2 - macs) <= 0.02 * macs  # the acceptance test; in fact they are equal
        counted[which] = (params, flops)
    # largest (d4 e6 k7): 7,664,760 parameters, 566.2M MACs; smallest (d2 e3 k3): 3,410,792, 121.3M MACs
    assert counted["largest"][0] > counted["smallest"][0] and counted["largest"][1] > counted["smallest"][1]


def test_paper_supernet_runs_and_has_the_reference_choices():
    space = make("paper", 1000, 32)
    supernet = space.build_supernet()
    choices = choices_by_name(supernet)
    kernels = [c for n, c in choices.items() if n.endswith("kernel_size")]
    ratios = [c for n, c in choices.items() if n.endswith("expand_ratio")]
    depths = [c for n, c in choices.items() if n.endswith("depth")]
    assert (len(kernels), len(ratios), len(depths)) == (20, 20, 5)
    assert all(c.candidates == [3, 5, 7] for c in kernels) and all(c.candidates == [3, 4, 6] for c in ratios)
    assert all(c.candidates == [2, 3, 4] for c in depths)
    make_sampler("drnas", seed=0).sample(choices.values())
    assert supernet(torch.randn(2, 3, 32, 32)).shape == (2, 1000)


def test_width_mult_and_inherited_network_layout():
    space = make("paper", 10, 32, width_mult=1.2)
    assert space.widths["widths"] == (32, 48, 96, 136, 192) and space.widths["last"] == 1536
    tiny = make()
    network = tiny.build_network(ARCHS[3])
    names = [name for name, _ in network.named_parameters()]
    assert not any("transforms" in name for name in names)  # plain k x k kernels, no transform matrices
    depthwise = network.stages[0].blocks[0].depthwise
    assert depthwise.weight.shape == (32, 1, 5, 5) and len(network.stages[0].blocks) == 1  # e4 k5, depth 1
    state = tiny.build_supernet().state_dict()
    del state["stages.0.blocks.0.depthwise.weight"]
    with pytest.raises(UserError, match="no tensor"):
        tiny.inherit_weights(state, network)


def test_search_then_train_inheriting_the_supernet_subnet(tmp_path):
    settings = ["dataset_options.size=32", "dataset_options.channels=3", "logging.progress=false", "epochs=1",
                "space_options.variant=tiny", "train_subset=64", "batch_size=16", "steps_per_epoch=2",
                "eval_batches=2"]  # fmt: skip
    supernet_state, saved = search_then_inherit(tmp_path, "mobilenetv3", settings)
    space = make()
    expected = space.build_network(saved["architecture"])
    space.inherit_weights(supernet_state, expected)
    parameters = dict(expected.named_parameters())
    for key, tensor in saved["model"].items():  # lr 1e-12: still the supernet's sub-network (buffers move)
        if key in parameters:
            torch.testing.assert_close(tensor, parameters[key].detach(), atol=1e-6, rtol=0)
