"""--init-from: a released Once-for-All MobileNetV3 checkpoint (OFA's parameter names) into the supernet."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tanglenas_cli.errors import UserError
from tanglenas_cli.spaces import create_space
from tanglenas_cli.spaces.base import DataShape
from tanglenas_cli.spaces.ofa_checkpoint import load_ofa_checkpoint, ofa_to_supernet_name

# OFA's names (ofa_mbv3_d234_e346_k357_w1.0) written out by hand, and where they belong here
KNOWN = {
    "first_conv.conv.weight": "stem.weight",
    "first_conv.bn.running_var": "stem_norm.running_var",
    "blocks.0.mobile_inverted_conv.depth_conv.conv.weight": "first_block.depthwise.weight",
    "blocks.0.conv.point_linear.bn.bias": "first_block.project_norm.bias",
    "blocks.1.conv.inverted_bottleneck.conv.conv.weight": "stages.0.blocks.0.expand_conv.weight",
    "blocks.5.conv.depth_conv.conv.7to5_matrix": "stages.1.blocks.0.depthwise.transforms.7to5",
    "blocks.8.conv.depth_conv.se.fc.expand.bias": "stages.1.blocks.3.se.expand.bias",
    "module.blocks.20.mobile_inverted_conv.point_linear.conv.conv.weight": "stages.4.blocks.3.project.weight",
    "blocks.13.conv.depth_conv.bn.bn.running_mean": "stages.3.blocks.0.depthwise_norm.norm.running_mean",
    "final_expand_layer.bn.weight": "final_norm.weight",
    "feature_mix_layer.conv.weight": "feature_mix.weight",
    "classifier.linear.bias": "classifier.bias",
}


def supernet(classes: int = 1000, **options):
    space = create_space("mobilenetv3", DataShape(classes, (3, 64, 64)), options)
    return space, space.build_supernet()


def ofa_file(tmp_path: Path, model: torch.nn.Module) -> tuple[Path, dict]:
    """An OFA-named checkpoint holding random tensors of the supernet's shapes."""
    ours = {v: k.removeprefix("module.").replace("mobile_inverted_conv", "conv") for k, v in KNOWN.items()}
    names = {}
    for name in model.state_dict():
        if name.startswith("choices."):
            continue
        names[name] = ours.get(name) or _ofa_name(name)
    generator = torch.Generator().manual_seed(0)
    state = {ofa: torch.randn(model.state_dict()[name].shape, generator=generator)
             for name, ofa in names.items() if not name.endswith("num_batches_tracked")}  # fmt: skip
    path = tmp_path / "ofa.pth"
    torch.save({"state_dict": state, "epoch": 180}, path)
    return path, {name: state[ofa] for name, ofa in names.items() if ofa in state}


def _ofa_name(name: str) -> str:
    """OFA's name of a supernet tensor, by search over the candidate OFA spellings."""
    parts = name.split(".")
    if parts[0] == "stages":
        number = 1 + 4 * int(parts[1]) + int(parts[3])
        rest = ".".join(parts[4:])
        layer = {"expand_conv.weight": "inverted_bottleneck.conv.conv.weight",
                 "depthwise.weight": "depth_conv.conv.conv.weight",
                 "project.weight": "point_linear.conv.conv.weight"}.get(rest)  # fmt: skip
        if layer is None:
            head, tail = rest.rsplit(".", 1)
            layer = {"expand_norm.norm": "inverted_bottleneck.bn.bn",
                     "depthwise_norm.norm": "depth_conv.bn.bn", "project_norm": "point_linear.bn.bn",
                     "se.reduce": "depth_conv.se.fc.reduce",
                     "se.expand": "depth_conv.se.fc.expand"}.get(head, "")  # fmt: skip
            if head == "depthwise.transforms":
                return f"blocks.{number}.conv.depth_conv.conv.{tail}_matrix"
            layer = f"{layer}.{tail}"
        return f"blocks.{number}.conv.{layer}"
    fixed = {"first_block.depthwise_norm.norm": "blocks.0.conv.depth_conv.bn",
             "stem_norm": "first_conv.bn", "first_block.project_norm": "blocks.0.conv.point_linear.bn",
             "final_norm": "final_expand_layer.bn", "first_block.project": "blocks.0.conv.point_linear.conv",
             "final_expand": "final_expand_layer.conv", "classifier": "classifier.linear"}  # fmt: skip
    head, tail = name.rsplit(".", 1)
    return f"{fixed[head]}.{tail}"


def test_known_ofa_names_map_onto_the_supernet():
    for ofa, ours in KNOWN.items():
        assert ofa_to_supernet_name(ofa) == ours
    assert ofa_to_supernet_name("blocks.1.conv.unknown.weight") is None
    _, model = supernet()
    assert set(KNOWN.values()) <= set(model.state_dict())


def test_checkpoint_loads_every_tensor_and_skips_another_classifier(tmp_path: Path):
    space, model = supernet()
    path, expected = ofa_file(tmp_path, model)
    summary = space.load_pretrained(model, path)
    state = model.state_dict()
    assert summary["tensors_loaded"] == len(expected) and "classifier" not in summary
    assert all(torch.equal(state[name], tensor) for name, tensor in expected.items())
    _, ten_classes = supernet(classes=10)
    before = ten_classes.classifier.weight.detach().clone()
    summary = load_ofa_checkpoint(ten_classes, path)
    assert "another number of classes" in summary["classifier"]
    assert torch.equal(ten_classes.classifier.weight, before)
    assert torch.equal(ten_classes.stem.weight, expected["stem.weight"])


def test_mismatched_or_foreign_files_are_refused_unchanged(tmp_path: Path):
    _, model = supernet()
    path, _ = ofa_file(tmp_path, model)
    space, tiny = supernet(variant="tiny")
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    with pytest.raises(UserError, match="variant=paper"):
        space.load_pretrained(tiny, path)
    assert all(torch.equal(before[k], v) for k, v in tiny.state_dict().items())
    foreign = tmp_path / "resnet.pth"
    torch.save({"state_dict": {"layer1.0.conv1.weight": torch.zeros(1)}}, foreign)
    with pytest.raises(UserError, match="unknown parameter 'layer1"):
        load_ofa_checkpoint(model, foreign)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable"):
        load_ofa_checkpoint(model, garbage)
    with pytest.raises(UserError, match="has no pretrained"):
        create_space("nanogpt", DataShape(30, (8,)), {"variant": "tiny"}).load_pretrained(model, path)


@pytest.mark.slow
def test_search_init_from_starts_the_supernet_from_the_file(tmp_path: Path):
    from typer.testing import CliRunner

    from tanglenas_cli.cli import app
    from tanglenas_cli.engine.checkpoint import load_checkpoint

    path, expected = ofa_file(tmp_path, supernet()[1])
    common = ["search", "--space", "mobilenetv3", "--dataset", "digits", "--set", "dataset_options.size=32",
              "--set", "dataset_options.channels=3", "--set", "epochs=1", "--set", "train_subset=16",
              "--set", "batch_size=8", "--set", "weight_optimizer.lr=1e-12",
              "--set", "weight_optimizer.momentum=0.0", "--set", "logging.progress=false"]  # fmt: skip
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [*common, "--init-from", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    state = load_checkpoint(out / "checkpoint.pt")["model"]
    for name in ("stem.weight", "stages.2.blocks.1.depthwise.transforms.7to5", "feature_mix.weight"):
        torch.testing.assert_close(state[name], expected[name], atol=1e-6, rtol=0)
    assert "initialised_from" in (out / "summary.json").read_text()
    tiny = CliRunner().invoke(app, [*common, "--set", "space_options.variant=tiny", "--init-from", str(path),
                                    "--out", str(tmp_path / "tiny")])  # fmt: skip
    assert (
        tiny.exit_code == 2 and "variant=paper" in tiny.output and len(tiny.output.strip().splitlines()) == 1
    )
    assert not (tmp_path / "tiny").exists()
    missing = CliRunner().invoke(app, [*common, "--init-from", str(tmp_path / "nope.pth")])
    assert missing.exit_code == 2 and "not found" in missing.output
