"""`tanglenas export`: ONNX equal to PyTorch (onnxruntime, 1e-4) per space family; safetensors read back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from support import invoke, one_line_error

from tanglenas_cli.config import build_config
from tanglenas_cli.engine.checkpoint import save_checkpoint
from tanglenas_cli.engine.run_models import load_trained, trained_network
from tanglenas_cli.spaces import create_space
from tanglenas_cli.spaces.base import DataShape

ort = pytest.importorskip("onnxruntime", reason="ONNX export checks need onnxruntime (make install)")
pytest.importorskip("onnxscript", reason="ONNX export needs onnxscript (make install)")

# one network of each family: cell, ViT, MobileNetV3, GPT
FAMILIES = {
    "nb201": ("digits", DataShape(10, (3, 16, 16)), {"C": 4, "N": 1}, {"size": 16, "channels": 3}),
    "autoformer": ("digits", DataShape(10, (3, 16, 16)), {"variant": "tiny", "patch_size": 4, "head_dim": 8},
                   {"size": 16, "channels": 3}),
    "mobilenetv3": ("digits", DataShape(10, (3, 32, 32)), {"variant": "tiny"}, {"size": 32, "channels": 3}),
    "nanogpt": ("text", DataShape(256, (32,)), {"variant": "tiny"}, {"block_size": 32}),
}  # fmt: skip


def write_trained(folder: Path, name: str) -> Path:
    """Write a model.pt as `train` does, for the largest network of space ``name`` (random weights)."""
    dataset, shape, space_options, dataset_options = FAMILIES[name]
    torch.manual_seed(0)
    space = create_space(name, shape, space_options)
    arch = space.largest_architecture()
    network = space.build_network(arch)
    cfg = build_config(flags={"space": name, "dataset": dataset, "space_options": space_options,
                              "dataset_options": dataset_options})  # fmt: skip
    state = {"kind": "trained", "space": name, "architecture": arch, "config": cfg.model_dump(mode="json"),
             "data_shape": {"num_classes": shape.num_classes, "input_shape": list(shape.input_shape)},
             "model": network.state_dict()}  # fmt: skip
    save_checkpoint(state, folder / "model.pt")
    return folder


def network_of(path: Path) -> torch.nn.Module:
    file, state = load_trained(path)
    return trained_network(file, state, state["config"]["space_options"])[1].eval()


def inputs_of(name: str, batch: int) -> torch.Tensor:
    shape = FAMILIES[name][1]
    if name == "nanogpt":
        return torch.randint(0, shape.num_classes, (batch, *shape.input_shape))
    return torch.randn(batch, *shape.input_shape)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_onnx_equals_pytorch_and_safetensors_reads_back(name: str, tmp_path: Path) -> None:
    folder = write_trained(tmp_path / "run", name)
    result = invoke("export", folder, "--format", "onnx", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["exported"] == str(folder / "model.onnx")
    session = ort.InferenceSession(str(folder / "model.onnx"))
    network = network_of(folder)
    for batch in (1, 3):  # the batch dimension is dynamic
        x = inputs_of(name, batch)
        (got,) = session.run(None, {"input": x.numpy()})
        with torch.no_grad():
            want = network(x).numpy()
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    assert (
        invoke("export", folder, "--format", "safetensors", "--out", tmp_path / "w.safetensors").exit_code
        == 0
    )
    x = inputs_of(name, 2)
    with torch.no_grad():
        assert torch.equal(network_of(tmp_path / "w.safetensors")(x), network(x))


def test_export_bad_input_is_one_line(tmp_path: Path) -> None:
    folder = write_trained(tmp_path / "gpt", "nanogpt")
    one_line_error(invoke("export", tmp_path / "nowhere"), "trained model not found")
    one_line_error(invoke("export", folder, "--format", "zip"), "unknown export format 'zip'")
    one_line_error(invoke("export", folder, "--image-size", "64"), "image networks")
    one_line_error(invoke("export", folder, "--format", "safetensors", "--image-size", "8"), "only weights")
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    one_line_error(invoke("export", tmp_path / "bad.safetensors"), "no safetensors file")


def test_trained_run_exports_and_eval_reads_the_safetensors(tmp_path: Path) -> None:
    from tanglenas_cli.engine import run_dir as files

    space = create_space("toy_cell")
    arch = space.largest_architecture()
    files.write_arch(tmp_path / "arch.yaml", "toy_cell", arch, space.benchmark_key(arch))
    trained = tmp_path / "trained"
    result = invoke("train", tmp_path / "arch.yaml", "--space", "toy_cell", "--dataset", "digits",
                    "--set", "dataset_options.size=12", "--set", "space_options.C=4", "--set", "epochs=1",
                    "--set", "logging.progress=false", "--out", trained)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert invoke("export", trained, "--format", "safetensors").exit_code == 0
    direct = json.loads(invoke("eval", trained, "--json").stdout)
    exported = json.loads(invoke("eval", trained / "model.safetensors", "--json").stdout)
    assert {k: v for k, v in exported.items() if k != "checkpoint"} == {
        k: v for k, v in direct.items() if k != "checkpoint"
    }
