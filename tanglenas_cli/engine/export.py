"""``tanglenas export``: a trained discrete network to ONNX or safetensors, from its run files alone.

ONNX: the network in eval mode, traced by ``torch.onnx.export`` (dynamo) on one example input, with a
dynamic batch dimension; input ``input`` (images N x C x H x W float, or N x T token ids), output
``logits``. safetensors: the state dict (tied tensors stored once each, as copies) with the space, the
architecture, the config and the data shape as JSON in the metadata, so ``tanglenas eval FILE`` and
:func:`~tanglenas_cli.engine.run_models.load_trained` read it back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from tanglenas_cli import __version__
from tanglenas_cli.config import validate_config
from tanglenas_cli.engine.run_models import load_trained, trained_network
from tanglenas_cli.engine.task import task_of
from tanglenas_cli.errors import UserError, check_name

FORMATS = ("onnx", "safetensors")


def _example_input(space: Any, image_size: int | None) -> torch.Tensor:
    """Return one example input of the space's data (at ``image_size`` px for images)."""
    data = space.data
    if image_size is not None:
        if len(data.input_shape) != 3:
            raise UserError("--image-size applies to image networks; this one reads tokens")
        data = type(data)(data.num_classes, (data.input_shape[0], image_size, image_size))
    inputs, _ = task_of(space).example_batch(data, 2)
    return inputs


def write_onnx(model: torch.nn.Module, example: torch.Tensor, out: Path) -> None:
    """Export ``model`` (eval mode) to ONNX at ``out`` with a dynamic batch dimension."""
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter needs it)
    except ImportError:
        raise UserError("ONNX export needs onnx and onnxscript: pip install 'tanglenas[export]'") from None
    batch = torch.export.Dim("batch", min=1)
    names = {"input_names": ["input"], "output_names": ["logits"]}
    program = torch.onnx.export(
        model, (example,), dynamo=True, dynamic_shapes=({0: batch},), verbose=False, **names
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(out))


def write_safetensors(state: dict[str, Any], model: torch.nn.Module, out: Path) -> None:
    """Write ``model``'s weights with the checkpoint's space, architecture, config and data shape."""
    from safetensors.torch import save_file

    metadata = {key: json.dumps(state[key]) for key in ("space", "architecture", "config", "data_shape")}
    tensors = {name: tensor.detach().contiguous().clone() for name, tensor in model.state_dict().items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata={**metadata, "format": "pt", "tanglenas": __version__})


def run_export(
    source: Path, fmt: str, out: Path | None = None, image_size: int | None = None
) -> dict[str, Any]:
    """Export the trained network of ``source`` (a model.pt, its folder, or an exported .safetensors)."""
    check_name("export format", fmt, FORMATS)
    path, state = load_trained(source)
    cfg = validate_config(state["config"])
    space, model = trained_network(path, state, cfg.space_options)
    model.eval()
    out = out if out is not None else path.with_suffix(f".{fmt}")
    if out.resolve() == path.resolve():
        raise UserError(f"--out {out} is the file being exported; pass another --out")
    if fmt == "onnx":
        example = _example_input(space, image_size)
        try:
            with torch.no_grad():
                model(example)
        except RuntimeError as error:
            if image_size is None:
                raise
            raise UserError(
                f"{path} cannot run on {image_size} px inputs ({str(error).splitlines()[0][:80]})"
            ) from None
        write_onnx(model, example, out)
    else:
        if image_size is not None:
            raise UserError("--image-size sets the ONNX example input; safetensors holds only weights")
        write_safetensors(state, model, out)
    return {"exported": str(out), "format": fmt, "space": state["space"],
            "architecture": space.describe(state["architecture"]), "from": str(path)}  # fmt: skip
