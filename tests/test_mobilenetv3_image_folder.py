"""Acceptance of the MobileNetV3 space on real images: tiny search, derive, train and eval on CPU,
on an image folder cut from the shared JPEG CIFAR-10."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from support import invoke

TINY = ["--set", "dataset_options.size=32", "--set", "space_options.variant=tiny", "--set", "epochs=1",
        "--set", "steps_per_epoch=3", "--set", "eval_batches=2", "--set", "batch_size=16",
        "--set", "logging.progress=false"]  # fmt: skip


@pytest.mark.slow
def test_tiny_mobilenet_search_derive_train_eval_on_cifar_images(cifar_jpg_subset: Path, tmp_path: Path):
    run = tmp_path / "search"
    result = invoke("search", "--space", "mobilenetv3", "--dataset", "imagefolder", "--set",
                    f"dataset_options.path={cifar_jpg_subset}", *TINY, "--out", run)  # fmt: skip
    assert result.exit_code == 0, result.output
    result = invoke("derive", run, "--out", tmp_path / "arch.yaml")
    assert result.exit_code == 0, result.output
    arch = yaml.safe_load((tmp_path / "arch.yaml").read_text())["architecture"]
    assert set(arch) == {"kernel_size", "expand_ratio", "depth"} and len(arch["depth"]) == 5
    folder = ["--dataset", "imagefolder", "--set", f"dataset_options.path={cifar_jpg_subset}"]
    result = invoke("train", tmp_path / "arch.yaml", "--space", "mobilenetv3", *folder, *TINY,
                    "--out", tmp_path / "trained")  # fmt: skip
    assert result.exit_code == 0, result.output
    result = invoke("eval", tmp_path / "trained", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["samples"] == 200 and 0 <= metrics["top1"] <= metrics["top5"] <= 100
    assert metrics["input"] == "3x32x32" and metrics["macs"] > metrics["params"] > 0
