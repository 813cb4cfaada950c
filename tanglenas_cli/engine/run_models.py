"""What a run directory holds, loaded: the search's supernet, a trained network, the trajectory's archs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from tanglenas_cli.config import RunConfig, load_config
from tanglenas_cli.engine import run_dir as files
from tanglenas_cli.engine.checkpoint import load_checkpoint
from tanglenas_cli.engine.factory import build_search_supernet
from tanglenas_cli.errors import UserError
from tanglenas_cli.spaces import create_space
from tanglenas_cli.spaces.base import DataShape, SearchSpace


def space_from_state(space: str, data_shape: dict[str, Any], options: dict[str, Any]) -> SearchSpace:
    """Return the space of a checkpoint, built for the data shape stored in it."""
    shape = DataShape(int(data_shape["num_classes"]), tuple(int(v) for v in data_shape["input_shape"]))  # type: ignore[arg-type]
    return create_space(space, shape, options)


def load_trained(path: Path) -> tuple[Path, dict[str, Any]]:
    """Return the file and the state of a trained network: a ``train`` model.pt (or its folder), or a
    ``.safetensors`` file written by ``tanglenas export`` (its architecture and config in the metadata)."""
    path = path / files.MODEL if path.is_dir() else path
    if path.suffix != ".safetensors":
        return path, load_checkpoint(path, kind="trained")
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        state = {key: json.loads(metadata[key]) for key in ("space", "architecture", "config", "data_shape")}
        state["model"] = load_file(str(path))
    except (SafetensorError, OSError, KeyError, ValueError) as error:
        raise UserError(f"{path} is no safetensors file from `tanglenas export` ({error})") from None
    return path, {"kind": "trained", **state}


def trained_network(
    path: Path, state: dict[str, Any], options: dict[str, Any]
) -> tuple[SearchSpace, nn.Module]:
    """Return the space and the discrete network of a ``train`` checkpoint ``state`` (read from ``path``)."""
    space = space_from_state(state["space"], state["data_shape"], options)
    model = space.build_network(state["architecture"])
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        # trained before discrete NB201 / NATS networks became the benchmark's (space_options.network)
        if "network" not in options and hasattr(space.options, "network"):
            older = space_from_state(state["space"], state["data_shape"], {**options, "network": "supernet"})
            model = older.build_network(state["architecture"])
            try:
                model.load_state_dict(state["model"])
                return older, model
            except RuntimeError:
                pass
        raise UserError(f"{path} does not match its architecture: {str(error).splitlines()[0]}") from None
    return space, model


def load_supernet(run_dir: Path) -> tuple[RunConfig, SearchSpace, nn.Module]:
    """Return the config, the space and the trained supernet of the search run in ``run_dir``."""
    cfg = load_config(run_dir)
    state = load_checkpoint(run_dir / files.CHECKPOINT, kind="search")
    space = space_from_state(cfg.space, state["data_shape"], cfg.space_options)
    model = build_search_supernet(cfg, space)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise UserError(
            f"checkpoint in {run_dir} does not match its config: {str(error).splitlines()[0]}"
        ) from None
    return cfg, space, model


def derive_from_trajectory(run_dir: Path, epoch: int) -> dict[str, Any]:
    """Return the architecture recorded after ``epoch`` (counted from 1) in trajectory.jsonl."""
    records = files.read_jsonl(run_dir / files.TRAJECTORY)
    for record in records:
        if record.get("epoch") == epoch - 1:
            return record["architecture"]
    raise UserError(f"{run_dir / files.TRAJECTORY} has no epoch {epoch} (it has 1..{len(records)})")
