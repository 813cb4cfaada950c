"""``tanglenas train``: train a derived architecture from scratch; ``tanglenas eval`` reads its output."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from torch import Tensor
from torch.utils.data import Dataset

from tanglenas_cli.config import RunConfig, resolve_data_root, write_config
from tanglenas_cli.data.splits import train_data
from tanglenas_cli.engine import run_dir as files
from tanglenas_cli.engine.checkpoint import load_checkpoint, save_checkpoint, seed_everything
from tanglenas_cli.engine.factory import (
    LearningRateSchedule,
    WeightLoss,
    check_input_sizes,
    make_space,
    make_space_weight_optimizer,
)
from tanglenas_cli.engine.loaders import WeightBatches, epoch_loader
from tanglenas_cli.engine.metrics import count_parameters, evaluate
from tanglenas_cli.engine.precision import StepGuard, make_accelerator
from tanglenas_cli.engine.progress import RunProgress
from tanglenas_cli.engine.speed import speed_up
from tanglenas_cli.engine.step import Tally, forward_backward
from tanglenas_cli.engine.task import task_of
from tanglenas_cli.engine.tracker import Tracker, require_wandb
from tanglenas_cli.errors import UserError
from tanglenas_cli.nas.choices import weight_parameters


def default_train_dir(arch_file: Path, cfg: RunConfig) -> Path:
    """Return ``<folder of arch.yaml>/train-<dataset>-s<seed>``."""
    return arch_file.parent / f"train-{cfg.dataset}-s{cfg.seed}"


def run_train(arch_file: Path, cfg: RunConfig, inherit: Path | None = None) -> dict[str, Any]:
    """Train the architecture in ``arch_file`` on the training set; return a summary.

    From scratch, or (``inherit``: a search run directory) starting from the supernet's weights. With
    ``val_portion`` > 0 the last part of the training data is held out and its loss logged per epoch.
    """
    if cfg.logging.wandb:
        require_wandb()
    stored = files.read_arch(arch_file)
    if stored["space"] != cfg.space:
        raise UserError(
            f"{arch_file} holds a {stored['space']!r} architecture, but the config says {cfg.space!r}"
        )
    space_options = {**(stored.get("space_options") or {}), **cfg.space_options}
    cfg = cfg.model_copy(update={"space_options": space_options})
    out = cfg.out_dir.expanduser() if cfg.out_dir is not None else default_train_dir(arch_file, cfg)
    if (out / files.MODEL).exists():
        raise UserError(f"{out} already holds a trained model; pass another --out")
    accelerator = make_accelerator(cfg.mixed_precision)
    device = accelerator.device
    guard = StepGuard(cfg.max_nonfinite_steps, cfg.mixed_precision, device)
    seed_everything(cfg.seed)
    root = resolve_data_root(cfg)
    train_set, valid_set, test_set, info = train_data(cfg.dataset, root, cfg.dataset_options, cfg.val_portion)
    space = make_space(cfg.space, info, space_options)
    check_input_sizes(cfg, space)
    arch = space.validate(stored["architecture"])
    model = space.build_network(arch)
    if inherit is not None:
        supernet = load_checkpoint(inherit / files.CHECKPOINT, kind="search")
        if supernet["config"].get("space") != cfg.space:
            raise UserError(f"{inherit} searched {supernet['config'].get('space')!r}, not {cfg.space!r}")
        space.inherit_weights(supernet["model"], model)
    model = model.to(device)
    speed_up(model, channels_last=cfg.channels_last, compile=cfg.compile)
    params = weight_parameters(model)  # a discrete network has no architecture logits: all trainable ones
    optimizer = make_space_weight_optimizer(cfg, space, model)
    task = task_of(space)
    weight_loss = WeightLoss(cfg, info.num_classes, sequence=task.sequence)
    batches = WeightBatches(train_set, cfg.batch_size, cfg.seed, grad_accum=cfg.grad_accum,
                            steps_per_epoch=cfg.steps_per_epoch, num_workers=cfg.num_workers,
                            pin_memory=cfg.pin_memory)  # fmt: skip
    schedule = LearningRateSchedule(cfg, optimizer, batches.steps)
    out.mkdir(parents=True, exist_ok=True)
    write_config(cfg, out / files.CONFIG)
    (out / files.METRICS).unlink(missing_ok=True)
    tracker = Tracker(
        out / files.METRICS,
        cfg.logging.wandb,
        cfg.logging.wandb_project,
        f"train_{cfg.space}_{cfg.dataset}_{cfg.seed}",
        cfg.model_dump(mode="json"),
        out,
    )

    def measure(dataset: Dataset) -> dict[str, float]:
        loader = epoch_loader(dataset, cfg.batch_size, seed=0, shuffle=False, num_workers=cfg.num_workers,
                              pin_memory=cfg.pin_memory)  # fmt: skip
        with accelerator.autocast():
            return evaluate(model, loader, device, max_batches=cfg.eval_batches)

    def backward(loss: Tensor) -> None:
        guard.backward(loss, params)

    started = time.perf_counter()
    test: dict[str, float] = {}
    valid: dict[str, float] = {}
    try:
        with RunProgress(cfg.logging.progress, cfg.epochs) as progress:
            for epoch in range(cfg.epochs):
                lr = schedule.set_epoch(epoch)
                if hasattr(model, "set_epoch"):  # e.g. the drop-path ramp of DARTS networks
                    model.set_epoch(epoch, cfg.epochs)
                progress.start_epoch(epoch, batches.steps)
                model.train()
                tally = Tally()
                for step, micro in enumerate(batches.epoch(epoch)):
                    lr = schedule.set_step(epoch, step)
                    kept = tally.copy()
                    optimizer.zero_grad(set_to_none=True)
                    forward_backward(model, micro, device, weight_loss, backward, tally,
                                     autocast=accelerator.autocast)  # fmt: skip
                    if not guard.step(optimizer, params, cfg.grad_clip, where=f"epoch {epoch} step {step}"):
                        tally = kept
                        continue
                    progress.step(f"loss {tally.mean_loss():.3f} acc {tally.accuracy():.1f}%")
                test = measure(test_set)
                record = {
                    "kind": "epoch",
                    "epoch": epoch,
                    "train_loss": tally.mean_loss(),
                    "train_acc": tally.accuracy(),
                    **task.named("test", test),
                    "lr": lr,
                }
                if valid_set is not None:
                    valid = measure(valid_set)
                    record.update(task.named("valid", valid))
                tracker.log(record)
                progress.end_epoch(task.status("test", test))
    finally:
        tracker.close()
    save_checkpoint(
        {
            "kind": "trained",
            "space": cfg.space,
            "architecture": arch,
            "config": cfg.model_dump(mode="json"),
            "data_shape": {"num_classes": info.num_classes, "input_shape": list(info.input_shape)},
            "model": model.state_dict(),
        },
        out / files.MODEL,
    )
    summary = {
        "space": cfg.space,
        "architecture": space.describe(arch),
        "dataset": cfg.dataset,
        "inherited_from": str(inherit) if inherit is not None else None,
        "epochs": cfg.epochs,
        "test_acc": test.get("top1"),
        "test_loss": test.get("loss"),
    }
    summary.update(task.named("test", test))  # adds what the task has beyond loss and accuracy
    if valid:
        summary.update(task.named("valid", valid))
    summary.update({
        "params": count_parameters(model),
        "train_seconds": round(time.perf_counter() - started, 2),
        "checkpoint": str(out / files.MODEL),
    })  # fmt: skip
    files.write_json_atomic(summary, out / files.SUMMARY)
    return summary
