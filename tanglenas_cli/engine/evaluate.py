"""``tanglenas eval``: top-1/top-5 and loss (language models: loss and perplexity) of a trained checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tanglenas_cli.config import resolve_data_root, validate_config
from tanglenas_cli.data.splits import eval_data
from tanglenas_cli.engine.flops import count_flops
from tanglenas_cli.engine.loaders import epoch_loader
from tanglenas_cli.engine.metrics import count_parameters, evaluate
from tanglenas_cli.engine.run_models import load_trained, space_from_state, trained_network
from tanglenas_cli.engine.task import task_of
from tanglenas_cli.errors import UserError


def run_eval(
    checkpoint: Path,
    split: str = "test",
    data_root: Path | None = None,
    batch_size: int | None = None,
    image_size: int | None = None,
) -> dict[str, Any]:
    """Evaluate the network in ``checkpoint`` (a model.pt from ``train``, its directory, or an exported
    .safetensors file).

    ``image_size`` evaluates (and counts multiply-adds) at another square resolution than the trained
    one, for networks that accept it (global pooling, e.g. MobileNetV3).
    """
    path, state = load_trained(checkpoint)
    cfg = validate_config(state["config"])
    if data_root is not None:
        cfg = cfg.model_copy(update={"data_root": data_root})
    space, model = trained_network(path, state, cfg.space_options)
    root = resolve_data_root(cfg)
    options, shape = dict(cfg.dataset_options), [int(v) for v in state["data_shape"]["input_shape"]]
    if image_size is not None:
        if len(shape) != 3:
            raise UserError("--image-size applies to image datasets; this checkpoint reads tokens")
        options["size"], shape = image_size, [shape[0], image_size, image_size]
    dataset = eval_data(cfg.dataset, root, options, split, cfg.val_portion, cfg.train_portion)
    if len(dataset) == 0:
        raise UserError(f"the {split} split of {cfg.dataset} is empty")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    eval_batch_size = batch_size or cfg.batch_size
    loader = epoch_loader(dataset, eval_batch_size, seed=0, shuffle=False, pin_memory=cfg.pin_memory)
    try:
        metrics = evaluate(model.to(device), loader, device)
    except RuntimeError as error:
        if image_size is None:
            raise
        raise UserError(
            f"{path} cannot run on {image_size} px inputs ({str(error).splitlines()[0][:80]}); "
            "drop --image-size"
        ) from None
    result: dict[str, Any] = {
        "checkpoint": str(path),
        "space": state["space"],
        "architecture": space.describe(state["architecture"]),
        "dataset": cfg.dataset,
        "split": split,
        "samples": len(dataset),
    }
    result.update(task_of(space).report(metrics, len(dataset), space.data))
    result["params"] = count_parameters(model)
    # multiply-adds of one input at the trained resolution (one block of tokens for language models)
    at_size = space_from_state(
        state["space"], {**state["data_shape"], "input_shape": shape}, cfg.space_options
    )
    result["macs"] = count_flops(at_size, model) // 2
    result["input"] = "x".join(str(v) for v in shape)
    return result
