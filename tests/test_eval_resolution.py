"""eval --image-size: accuracy and multiply-adds of a trained network at another resolution."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tanglenas_cli.cli import app
from tanglenas_cli.config import build_config
from tanglenas_cli.engine.checkpoint import save_checkpoint
from tanglenas_cli.spaces import create_space
from tanglenas_cli.spaces.base import DataShape


def trained(tmp_path: Path, space_name: str, options: dict, dataset: str, shape: tuple, classes: int) -> Path:
    space = create_space(space_name, DataShape(classes, shape), options)
    arch = space.validate(space.largest_architecture())
    flags = {"space": space_name, "dataset": dataset, "data_root": str(tmp_path)}
    overrides = [f"space_options.{k}={v}" for k, v in options.items()]
    if dataset == "digits":
        overrides += [f"dataset_options.size={shape[1]}", "dataset_options.channels=3"]
    cfg = build_config(flags=flags, overrides=overrides)
    path = tmp_path / f"{space_name}.pt"
    save_checkpoint({"kind": "trained", "space": space_name, "architecture": arch,
                     "config": cfg.model_dump(mode="json"),
                     "data_shape": {"num_classes": classes, "input_shape": list(shape)},
                     "model": space.build_network(arch).state_dict()}, path)  # fmt: skip
    return path


def evaluate(*args: object):
    return CliRunner().invoke(app, ["eval", *[str(a) for a in args]])


def test_mobilenet_evaluates_and_counts_at_another_resolution(tmp_path: Path):
    path = trained(tmp_path, "mobilenetv3", {"variant": "tiny"}, "digits", (3, 32, 32), 10)
    native, larger = (evaluate(path, "--json", *extra) for extra in ([], ["--image-size", "48"]))
    assert native.exit_code == 0 and larger.exit_code == 0, native.output + larger.output
    native, larger = json.loads(native.output), json.loads(larger.output)
    assert (native["input"], larger["input"]) == ("3x32x32", "3x48x48")
    assert 2.0 < larger["macs"] / native["macs"] < 2.5  # (48 / 32)^2 = 2.25, the head does not scale
    assert larger["params"] == native["params"]


def test_image_size_is_refused_for_token_models_and_fixed_size_networks(tmp_path: Path):
    gpt = trained(tmp_path, "nanogpt", {"variant": "tiny"}, "text", (16,), 30)
    result = evaluate(gpt, "--image-size", "32")
    assert result.exit_code == 2 and "image datasets" in result.output
    vit = trained(tmp_path, "autoformer", {"variant": "tiny", "patch_size": 4, "head_dim": 8}, "digits",
                  (3, 16, 16), 10)  # fmt: skip
    result = evaluate(vit, "--image-size", "24")
    assert result.exit_code == 2 and "drop --image-size" in result.output
    assert len(result.output.strip().splitlines()) == 1
