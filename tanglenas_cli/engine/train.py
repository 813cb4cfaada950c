"""``tanglenas train``: train a derived architecture from scratch; ``tanglenas eval`` reads its output."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tanglenas_cli.config import RunConfig, resolve_data_root, write_config
from tanglenas_cli.data import build_datasets
from tanglenas_cli.engine import run_dir as files
from tanglenas_cli.engine.checkpoint import load_checkpoint, save_checkpoint, seed_everything
from tanglenas_cli.engine.evaluation import count_parameters, evaluate
from tanglenas_cli.engine.factory import EpochSchedule, WeightLoss, make_space, make_weight_optimizer
from tanglenas_cli.engine.loaders import epoch_loader
from tanglenas_cli.engine.precision import StepGuard, make_accelerator
from tanglenas_cli.engine.progress import RunProgress
from tanglenas_cli.engine.speed import speed_up
from tanglenas_cli.engine.tracker import Tracker, require_wandb
from tanglenas_cli.errors import UserError


def default_train_dir(arch_file: Path, cfg: RunConfig) -> Path:
    """Return ``<folder of arch.yaml>/train-<dataset>-s<seed>``."""
    return arch_file.parent / f"train-{cfg.dataset}-s{cfg.seed}"


def run_train(arch_file: Path, cfg: RunConfig, inherit: Path | None = None) -> dict[str, Any]:
    """Train the architecture in ``arch_file`` on the full training set; return a summary.

    From scratch, or (``inherit``: a search run directory) starting from the supernet's weights.
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
    train_set, test_set, info = build_datasets(cfg.dataset, root, cfg.dataset_options, augment=True)
    space = make_space(cfg.space, info, space_options)
    arch = space.validate(stored["architecture"])
    model = space.build_network(arch)
    if inherit is not None:
        supernet = load_checkpoint(inherit / files.CHECKPOINT, kind="search")
        if supernet["config"].get("space") != cfg.space:
            raise UserError(f"{inherit} searched {supernet['config'].get('space')!r}, not {cfg.space!r}")
        space.inherit_weights(supernet["model"], model)
    model = model.to(device)
    speed_up(model, channels_last=cfg.channels_last, compile=cfg.compile)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_weight_optimizer(cfg, params)
    weight_loss = WeightLoss(cfg, info.num_classes)
    schedule = EpochSchedule(cfg, optimizer)
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
    test_loader = epoch_loader(test_set, cfg.batch_size, seed=0, shuffle=False, num_workers=cfg.num_workers)
    started = time.perf_counter()
    test: dict[str, float] = {}
    try:
        with RunProgress(cfg.logging.progress, cfg.epochs) as progress:
            for epoch in range(cfg.epochs):
                lr = schedule.set_epoch(epoch)
                if hasattr(model, "set_epoch"):  # e.g. the drop-path ramp of DARTS networks
                    model.set_epoch(epoch, cfg.epochs)
                loader = epoch_loader(
                    train_set, cfg.batch_size, seed=cfg.seed * 1_000 + epoch, num_workers=cfg.num_workers
                )
                progress.start_epoch(epoch, len(loader))
                model.train()
                loss_sum, correct, count = 0.0, 0, 0
                for inputs, targets in loader:
                    inputs, targets = inputs.to(device), targets.to(device)
                    mixed, soft = weight_loss.mix(inputs, targets)
                    with accelerator.autocast():
                        logits = model(mixed)
                    if isinstance(logits, tuple):  # (logits, auxiliary-head logits)
                        logits, aux_logits = logits
                        loss = weight_loss.loss(logits.float(), targets, soft)
                        aux_loss = weight_loss.loss(aux_logits.float(), targets, soft)
                        loss = loss + model.auxiliary_weight * aux_loss
                    else:
                        loss = weight_loss.loss(logits.float(), targets, soft)
                    optimizer.zero_grad(set_to_none=True)
                    guard.backward(loss, params)
                    if not guard.step(optimizer, params, cfg.grad_clip, where=f"epoch {epoch}"):
                        continue
                    loss_sum += float(loss.detach()) * len(targets)
                    correct += int((logits.argmax(-1) == targets).sum())
                    count += len(targets)
                    progress.step(f"loss {loss_sum / count:.3f} acc {100 * correct / count:.1f}%")
                with accelerator.autocast():
                    test = evaluate(model, test_loader, device)
                tracker.log(
                    {
                        "kind": "epoch",
                        "epoch": epoch,
                        "train_loss": loss_sum / max(count, 1),
                        "train_acc": 100 * correct / max(count, 1),
                        "test_loss": test["loss"],
                        "test_acc": test["top1"],
                        "lr": lr,
                    }
                )
                progress.end_epoch(f"test acc {test['top1']:.2f}%")
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
        "params": count_parameters(model),
        "train_seconds": round(time.perf_counter() - started, 2),
        "checkpoint": str(out / files.MODEL),
    }
    files.write_json_atomic(summary, out / files.SUMMARY)
    return summary
