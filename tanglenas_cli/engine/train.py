"""``tanglenas train``: train a derived architecture from scratch; ``tanglenas eval`` reads its output.

The training folder gets config.yaml, arch.yaml (the architecture trained), metrics.jsonl, a checkpoint
after every epoch (checkpoint.pt: weights, optimizer, batch stream, loss scale, RNG states; the first
before epoch 1, so a killed run always resumes with ``train --resume DIR``), then model.pt and
summary.json. Under ``torchrun`` / ``accelerate launch`` each process trains on its share of every
batch and the gradients are averaged as in the search (:class:`~tanglenas_cli.engine.distributed.Cluster`),
so a step equals the one-process step on the global batch up to batch-norm statistics; only the first
process writes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from tanglenas_cli.config import RunConfig, resolve_data_root, write_config
from tanglenas_cli.data.splits import train_data
from tanglenas_cli.engine import checkpoint as checkpoints
from tanglenas_cli.engine import run_dir as files
from tanglenas_cli.engine.distributed import Cluster
from tanglenas_cli.engine.factory import (
    LearningRateSchedule,
    WeightLoss,
    check_input_sizes,
    make_space,
    make_space_weight_optimizer,
)
from tanglenas_cli.engine.loaders import WeightBatches, epoch_loader
from tanglenas_cli.engine.lock import RunLock
from tanglenas_cli.engine.metrics import count_parameters, evaluate
from tanglenas_cli.engine.precision import StepGuard, check_finite, make_accelerator
from tanglenas_cli.engine.progress import RUN_LOG, RunProgress, append_log
from tanglenas_cli.engine.speed import speed_up
from tanglenas_cli.engine.step import Tally, forward_backward
from tanglenas_cli.engine.task import task_of
from tanglenas_cli.engine.tracker import Tracker, require_wandb
from tanglenas_cli.errors import Interrupted, UserError
from tanglenas_cli.nas.choices import weight_parameters

# what a resumed training run must share with its checkpoint
_MUST_MATCH = ("space", "dataset", "space_options", "dataset_options", "batch_size", "seed")


def default_train_dir(arch_file: Path, cfg: RunConfig) -> Path:
    """Return ``<folder of arch.yaml>/train-<dataset>-s<seed>``."""
    return arch_file.parent / f"train-{cfg.dataset}-s{cfg.seed}"


class TrainRun:
    """One training run of a discrete network: build, restore, train epoch by epoch, write."""

    def __init__(
        self, arch_file: Path, cfg: RunConfig, inherit: Path | None = None, resume: bool = False
    ) -> None:
        if cfg.logging.wandb:
            require_wandb()
        stored = files.read_arch(arch_file)
        if stored["space"] != cfg.space:
            raise UserError(
                f"{arch_file} holds a {stored['space']!r} architecture, but the config says {cfg.space!r}"
            )
        space_options = {**(stored.get("space_options") or {}), **cfg.space_options}
        self.out = out = (
            cfg.out_dir.expanduser() if cfg.out_dir is not None else default_train_dir(arch_file, cfg)
        )
        self.lock = RunLock(out)
        if out.exists():
            self.lock.acquire()
        if (out / files.MODEL).exists():
            raise UserError(f"{out} already holds a trained model; pass another --out")
        checkpoint = None
        if resume:
            checkpoint = checkpoints.load_checkpoint(out / files.CHECKPOINT, kind="train")
        elif (out / files.CHECKPOINT).exists():
            raise UserError(f"{out} holds an unfinished training run; pass --resume {out} or another --out")
        self.accelerator = make_accelerator(cfg.mixed_precision)
        precision = self.accelerator.mixed_precision
        update = {"space_options": space_options, "out_dir": out, "mixed_precision": precision}
        self.cfg = cfg = cfg.model_copy(update=update)
        self.device = self.accelerator.device
        self.cluster = Cluster(self.accelerator.process_index, self.accelerator.num_processes)
        self.guard = StepGuard(cfg.max_nonfinite_steps, cfg.mixed_precision, self.device)
        checkpoints.seed_everything(cfg.seed)
        root = resolve_data_root(cfg)
        self.train_set, self.valid_set, self.test_set, self.info = train_data(
            cfg.dataset, root, cfg.dataset_options, cfg.val_portion
        )
        self.space = make_space(cfg.space, self.info, space_options)
        check_input_sizes(cfg, self.space)
        self.arch = self.space.validate(stored["architecture"])
        self.model = self.space.build_network(self.arch)
        self.inherit = inherit
        if inherit is not None and checkpoint is None:
            supernet = checkpoints.load_checkpoint(inherit / files.CHECKPOINT, kind="search")
            if supernet["config"].get("space") != cfg.space:
                raise UserError(f"{inherit} searched {supernet['config'].get('space')!r}, not {cfg.space!r}")
            self.space.inherit_weights(supernet["model"], self.model)
        self.model = self.model.to(self.device)
        self.cluster.broadcast_module(self.model)
        speed_up(self.model, channels_last=cfg.channels_last, compile=cfg.compile)
        self.params = weight_parameters(self.model)  # a discrete network: all its trainable parameters
        self.optimizer = make_space_weight_optimizer(cfg, self.space, self.model)
        self.task = task_of(self.space)
        self.weight_loss = WeightLoss(cfg, self.info.num_classes, sequence=self.task.sequence)
        self.batches = WeightBatches(self.train_set, cfg.batch_size, cfg.seed, grad_accum=cfg.grad_accum,
                                     steps_per_epoch=cfg.steps_per_epoch, num_workers=cfg.num_workers,
                                     rank=self.cluster.rank, world=self.cluster.world,
                                     pin_memory=cfg.pin_memory)  # fmt: skip
        self.schedule = LearningRateSchedule(cfg, self.optimizer, self.batches.steps)
        self.start_epoch, self.train_seconds = 0, 0.0
        if checkpoint is not None:
            self._restore(checkpoint)
        elif self.cluster.is_main:
            self.lock.acquire()  # creates the folder
            (out / files.METRICS).unlink(missing_ok=True)
            if arch_file.resolve() != (out / files.ARCH).resolve():
                extra = {
                    k: v for k, v in stored.items() if k not in ("space", "architecture", "benchmark_key")
                }
                key = self.space.benchmark_key(self.arch)
                files.write_arch(out / files.ARCH, cfg.space, self.arch, key, **extra)
        if self.cluster.is_main:
            write_config(cfg, out / files.CONFIG)
            if checkpoint is None:  # epoch 0: a run killed during its first epoch resumes from here
                checkpoints.save_checkpoint(self._state(0), out / files.CHECKPOINT)
        self.cluster.barrier()

    @property
    def _stateful(self) -> dict[str, Any]:
        """Everything a checkpoint restores, by its key: each has ``state_dict`` / ``load_state_dict``."""
        return {"model": self.model, "optimizer": self.optimizer, "weight_stream": self.batches,
                "step_guard": self.guard}  # fmt: skip

    def _state(self, epoch: int) -> dict[str, Any]:
        return {
            "kind": "train",
            "epoch": epoch,
            "config": self.cfg.model_dump(mode="json"),
            "inherited_from": str(self.inherit) if self.inherit is not None else None,
            "train_seconds": self.train_seconds,
            **{key: part.state_dict() for key, part in self._stateful.items()},
            "rng": checkpoints.rng_state(),
            "metrics_size": files.file_size(self.out / files.METRICS),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        saved, current = state.get("config", {}), self.cfg.model_dump(mode="json")
        for key in _MUST_MATCH:
            if saved.get(key) != current.get(key):
                raise UserError(f"cannot resume: {key} differs from the checkpoint's ({saved.get(key)!r})")
        for key, part in self._stateful.items():
            if state.get(key) is not None:
                part.load_state_dict(state[key])
        checkpoints.set_rng_state(state["rng"])
        if self.cluster.is_main:
            files.truncate(self.out / files.METRICS, int(state["metrics_size"]))
        self.start_epoch, self.train_seconds = int(state["epoch"]), float(state["train_seconds"])
        self.inherit = Path(state["inherited_from"]) if state.get("inherited_from") else None

    def _measure(self, dataset: Dataset) -> dict[str, float]:
        """Evaluate on ``dataset``, each process on its share, the counts summed over processes."""
        cfg, cluster = self.cfg, self.cluster
        loader = epoch_loader(dataset, cfg.batch_size, seed=0, shuffle=False, num_workers=cfg.num_workers,
                              rank=cluster.rank, world=cluster.world, pin_memory=cfg.pin_memory)  # fmt: skip
        with self.accelerator.autocast():
            return evaluate(self.model, loader, self.device, max_batches=self.cfg.eval_batches,
                            reduce=self.cluster.sum_)  # fmt: skip

    def _train_epoch(self, epoch: int, progress: RunProgress) -> tuple[Tally, float]:
        cfg, model = self.cfg, self.model
        lr = self.schedule.set_epoch(epoch)
        if hasattr(model, "set_epoch"):  # e.g. the drop-path ramp of DARTS networks
            model.set_epoch(epoch, cfg.epochs)
        progress.start_epoch(epoch, self.batches.steps)
        model.train()
        tally = Tally()
        for step, micro in enumerate(self.batches.epoch(epoch)):
            lr = self.schedule.set_step(epoch, step)
            kept = tally.copy()
            self.optimizer.zero_grad(set_to_none=True)
            forward_backward(model, micro, self.device, self.weight_loss,
                             lambda loss: self.guard.backward(loss, self.params), tally,
                             autocast=self.accelerator.autocast)  # fmt: skip
            self.cluster.local_count = tally.samples - kept.samples
            self.cluster.average_parameter_gradients(self.params)
            if not self.guard.step(
                self.optimizer, self.params, cfg.grad_clip, where=f"epoch {epoch} step {step}"
            ):
                tally = kept
                continue
            progress.step(tally.status)
        self.cluster.average_buffers(model)
        return tally, lr

    def run(self) -> dict[str, Any] | None:
        """Train the remaining epochs, write model.pt and summary.json; return the summary (first process)."""
        try:
            test, valid = self._train()
            if not test:  # resumed after its last epoch: measure again
                test = self._measure(self.test_set)
                valid = self._measure(self.valid_set) if self.valid_set is not None else {}
            return self._finish(test, valid) if self.cluster.is_main else None
        finally:
            self.lock.release()

    def _train(self) -> tuple[dict[str, float], dict[str, float]]:
        """Train the remaining epochs; return the last test and validation metrics (empty when none ran)."""
        cfg, main = self.cfg, self.cluster.is_main
        tracker = Tracker(self.out / files.METRICS, cfg.logging.wandb and main, cfg.logging.wandb_project,
                          f"train_{cfg.space}_{cfg.dataset}_{cfg.seed}", cfg.model_dump(mode="json"),
                          self.out, enabled=main)  # fmt: skip
        test: dict[str, float] = {}
        valid: dict[str, float] = {}
        try:
            log = self.out / RUN_LOG if main else None
            with RunProgress(cfg.logging.progress and main, cfg.epochs, self.start_epoch, log) as progress:
                for epoch in range(self.start_epoch, cfg.epochs):
                    started = time.perf_counter()
                    tally, lr = self._train_epoch(epoch, progress)
                    test = self._measure(self.test_set)
                    record = {"kind": "epoch", "epoch": epoch, "train_loss": tally.mean_loss(),
                              "train_acc": tally.accuracy(), **self.task.named("test", test),
                              "lr": lr}  # fmt: skip
                    if self.valid_set is not None:
                        valid = self._measure(self.valid_set)
                        record.update(self.task.named("valid", valid))
                    if self.cluster.active:
                        record["processes"] = self.cluster.world
                    tracker.log(record)
                    self.train_seconds += time.perf_counter() - started
                    state = self._state(epoch + 1)
                    check_finite(state["model"], "the network's weights")
                    if main:
                        checkpoints.save_checkpoint(state, self.out / files.CHECKPOINT)
                    progress.end_epoch(self.task.status("test", test))
        finally:
            tracker.close()
        return test, valid

    def _finish(self, test: dict[str, float], valid: dict[str, float]) -> dict[str, Any]:
        cfg, out = self.cfg, self.out
        shape = {"num_classes": self.info.num_classes, "input_shape": list(self.info.input_shape)}
        trained = {
            "kind": "trained",
            "space": cfg.space,
            "architecture": self.arch,
            "config": cfg.model_dump(mode="json"),
            "data_shape": shape,
            "model": self.model.state_dict(),
        }
        checkpoints.save_checkpoint(trained, out / files.MODEL)
        (out / files.CHECKPOINT).unlink(missing_ok=True)  # model.pt is the finished run
        summary = {"space": cfg.space, "architecture": self.space.describe(self.arch), "dataset": cfg.dataset,
                   "inherited_from": str(self.inherit) if self.inherit is not None else None,
                   "epochs": cfg.epochs, "test_acc": test.get("top1"), "test_loss": test.get("loss"),
                   **self.task.named("test", test), **(self.task.named("valid", valid) if valid else {}),
                   "params": count_parameters(self.model), "train_seconds": round(self.train_seconds, 2),
                   "checkpoint": str(out / files.MODEL)}  # fmt: skip
        if self.cluster.active:
            summary["processes"] = self.cluster.world
        files.write_json_atomic(summary, out / files.SUMMARY)
        append_log(out / RUN_LOG, [f"{key}: {value}" for key, value in summary.items()])
        return summary


def run_train(
    arch_file: Path, cfg: RunConfig, inherit: Path | None = None, resume: bool = False
) -> dict[str, Any] | None:
    """Train the architecture in ``arch_file`` (``resume``: continue the run in ``cfg.out_dir``); return the
    summary, None on data-parallel processes other than the first.

    From scratch, or (``inherit``: a search run directory) starting from the supernet's weights. With
    ``val_portion`` > 0 the last part of the training data is held out and its loss logged per epoch.
    """
    run = TrainRun(arch_file, cfg, inherit=inherit, resume=resume)
    try:
        return run.run()
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted; the finished epochs are kept: tanglenas train --resume {run.out}"
        ) from None
