"""What a run directory holds, loaded: the search's supernet, a trained network, the trajectory's archs."""

from __future__ import annotations

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
