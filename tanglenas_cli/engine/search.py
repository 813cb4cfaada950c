"""The bilevel search loop, one for every space.

``search_strategy=alternating``: an arch step on an arch-split batch, then a weight step on a training
batch. ``simultaneous`` (MobileNetV3 / OFA): one backward of the training loss (plus the sampler's
regulariser) fills the gradients of the weights and of the logits; both optimizers step.

Writes the run directory (config.yaml, metrics.jsonl, trajectory.jsonl, checkpoint.pt, arch.yaml,
summary.json, mixing_weights.png). A checkpoint is written atomically after every epoch; ``--resume``
continues from it and, with the same seed on a CPU, ends exactly where an uninterrupted run ends.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from tanglenas_cli.config import CostConfig, RunConfig, resolve_out_dir, write_config
from tanglenas_cli.engine import run_dir as files
from tanglenas_cli.engine.budget import Budget, budget_model
from tanglenas_cli.engine.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)
from tanglenas_cli.engine.distributed import Cluster
from tanglenas_cli.engine.factory import (
    LearningRateSchedule,
    WeightLoss,
    arch_weight_decay,
    build_search_supernet,
    check_input_sizes,
    load_search_data,
    make_sampler_for,
    make_space,
    make_space_weight_optimizer,
)
from tanglenas_cli.engine.loaders import WeightBatches, batch_stream, epoch_loader
from tanglenas_cli.engine.lock import RunLock
from tanglenas_cli.engine.lookup import BenchmarkLookup
from tanglenas_cli.engine.metrics import count_parameters, evaluate, flatten_tokens, peak_memory_mb
from tanglenas_cli.engine.plot import plot_trajectories
from tanglenas_cli.engine.posthoc import GenomeDrawer, SupernetScorer, random_search, scoring_batches
from tanglenas_cli.engine.precision import StepGuard, check_finite, make_accelerator
from tanglenas_cli.engine.progress import RUN_LOG, RunProgress, append_log
from tanglenas_cli.engine.speed import check_compile_supported, speed_up
from tanglenas_cli.engine.step import Tally, forward_backward
from tanglenas_cli.engine.stopwatch import StopWatch
from tanglenas_cli.engine.task import task_of
from tanglenas_cli.engine.tracker import Tracker, require_wandb
from tanglenas_cli.errors import Interrupted, UserError
from tanglenas_cli.nas.architect import Architect, MicroBatches
from tanglenas_cli.nas.choices import Choice
from tanglenas_cli.nas.optimizers import optimizer_entry
from tanglenas_cli.nas.samplers import SPOSSampler
from tanglenas_cli.spaces.base import SearchSpace, choices_by_name


def mixing_summary(choices: Mapping[str, Choice]) -> dict[str, dict[str, float]]:
    """Return softmax(logits) per choice, keyed by candidate."""
    return {
        name: {
            str(c): round(float(p), 6) for c, p in zip(choice.candidates, choice.probabilities(), strict=True)
        }
        for name, choice in choices.items()
    }


# checkpoint parts a resumed run must match exactly (anything else restores what it finds)
_MUST_MATCH = ("model", "weight_optimizer", "arch_optimizer")
PLOT_EVERY_S = 60.0  # the mixing-weight plot is redrawn after the last epoch, and at most this often before


class SearchRun:
    """Everything one search holds; :meth:`run` executes the remaining epochs."""

    def __init__(self, cfg: RunConfig, resume: Path | None = None) -> None:
        self.cfg = cfg
        if cfg.logging.wandb:
            require_wandb()
        self.out = resolve_out_dir(cfg)
        self.lock = RunLock(self.out)
        if self.out.exists():
            self.lock.acquire()
        checkpoint_file = self.out / files.CHECKPOINT
        # a run killed before its first checkpoint has nothing to resume: it starts again
        self.resuming = resume is not None and checkpoint_file.exists()
        if not self.resuming and checkpoint_file.exists():
            raise UserError(
                f"{self.out} already holds a search run; pass --resume {self.out} or another --out"
            )
        checkpoint = load_checkpoint(checkpoint_file, kind="search") if self.resuming else None
        self.accelerator = make_accelerator(cfg.mixed_precision)
        self.cfg = cfg = cfg.model_copy(update={"mixed_precision": self.accelerator.mixed_precision})
        self.device = self.accelerator.device
        self.cluster = Cluster(self.accelerator.process_index, self.accelerator.num_processes)
        self.guard = StepGuard(cfg.max_nonfinite_steps, cfg.mixed_precision, self.device)
        seed_everything(cfg.seed)
        self.data = load_search_data(cfg)
        self.space: SearchSpace = make_space(cfg.space, self.data.info, cfg.space_options)
        check_input_sizes(cfg, self.space)
        if cfg.compile:
            check_compile_supported(cfg.optimizer)
        self.model = build_search_supernet(cfg, self.space)
        self.initialised_from = None
        if cfg.init_from is not None and checkpoint is None:  # a resumed run has its own weights
            self.initialised_from = self.space.load_pretrained(self.model, cfg.init_from.expanduser())
        self.model = self.model.to(self.device)
        self.cluster.broadcast_module(self.model)
        speed_up(self.model, channels_last=cfg.channels_last, compile=cfg.compile)
        self.choices = choices_by_name(self.model)
        self.sampler = make_sampler_for(cfg, self.space)
        self.budget = self._budget()
        self.weight_optimizer = make_space_weight_optimizer(cfg, self.space, self.model)
        self.task = task_of(self.space)
        self.weight_loss = WeightLoss(cfg, self.data.info.num_classes, sequence=self.task.sequence)
        self.batches = WeightBatches(
            self.data.weight_split, cfg.batch_size, cfg.seed, grad_accum=cfg.grad_accum,
            steps_per_epoch=cfg.steps_per_epoch, num_workers=cfg.num_workers, rank=self.cluster.rank,
            world=self.cluster.world, pin_memory=cfg.pin_memory,
        )  # fmt: skip
        self.schedule = LearningRateSchedule(cfg, self.weight_optimizer, self.batches.steps)
        self.architect = Architect(
            self.model,
            self.sampler,
            self._arch_loss,
            lr=cfg.arch_optimizer.lr,
            betas=tuple(cfg.arch_optimizer.betas),
            weight_decay=arch_weight_decay(cfg),
            second_order=optimizer_entry(cfg.optimizer).second_order,
            weight_optimizer=self.weight_optimizer,
            reduce_gradients=self.cluster.average_gradients if self.cluster.active else None,
            grad_clip=cfg.arch_optimizer.grad_clip,
            loss_transform=self.budget.apply if self.budget is not None else None,
        )
        self.trains_logits = self.sampler.trains_logits
        # simultaneous: the logits learn from the training batches' backward; no arch-split batches
        self.simultaneous = cfg.search_strategy == "simultaneous" and self.trains_logits
        self.arch_stream = None
        if isinstance(self.sampler, SPOSSampler) and self.data.valid_is_test:
            raise UserError(
                f"spos picks its architecture on the arch split, and train_portion={cfg.train_portion} leaves"
                " none; set train_portion below 1 (the SPOS presets use 0.8) or arch_split_size=N"
            )
        if self.trains_logits and not self.simultaneous:
            if len(self.data.arch_split) == 0:
                raise UserError(
                    f"train_portion={cfg.train_portion} leaves no arch split for {cfg.optimizer}"
                    " (search_strategy=simultaneous needs none)"
                )
            rank, world = self._shard
            self.arch_stream = batch_stream(self.data.arch_split, cfg.batch_size, cfg.seed, rank=rank,
                                            world=world, num_workers=cfg.num_workers,
                                            pin_memory=cfg.pin_memory)  # fmt: skip
        self.lookup = BenchmarkLookup.for_config(cfg, self.space)
        self.start_epoch = 0
        if checkpoint is not None:
            self._restore(checkpoint)
        elif self.cluster.is_main:
            self.lock.acquire()  # creates the folder
            for name in (files.METRICS, files.TRAJECTORY):
                (self.out / name).unlink(missing_ok=True)
        if self.cluster.is_main:
            write_config(cfg, self.out / files.CONFIG)
        # the trajectory so far, read once (plotted from memory); the plot's last update
        self.trajectory = files.read_jsonl(self.out / files.TRAJECTORY) if self.resuming else []
        self.plotted_at = time.perf_counter()
        self.watch = StopWatch()  # where the epochs' time goes: summary.json's time_breakdown
        self.cluster.barrier()

    def _budget(self) -> Budget | None:
        """Return the cost budget of ``cfg.cost`` (None when unset), refusing what it cannot apply to."""
        cfg = self.cfg
        if not cfg.cost.active:
            return None
        if not self.sampler.trains_logits:
            raise UserError(
                f"a cost budget acts on the architecture logits, which {cfg.optimizer} does not train; use "
                "darts_v1, darts_v2, drnas or gdas, or pick within limits: tanglenas derive RUN "
                "--strategy evolution --max-params N"
            )
        if cfg.cost.form == "fbnet" and cfg.search_strategy == "simultaneous":
            raise UserError(
                "cost.form=fbnet scales the loss, and search_strategy=simultaneous would scale the weights'"
                " gradients with it; use cost.form=hinge"
            )
        candidates = {name: choice.candidates for name, choice in self.choices.items()}
        return Budget(cfg.cost, budget_model(cfg, self.space, candidates), self.choices, self.sampler)

    @property
    def _shard(self) -> tuple[int, int]:
        return self.cluster.rank, self.cluster.world

    def _arch_loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        """Cross-entropy (per token for language models) under autocast; records this process's share."""
        inputs, targets = (t.to(self.device) for t in batch)
        self.cluster.local_count = len(targets)
        with self.accelerator.autocast():
            logits = model(inputs)
        return F.cross_entropy(*flatten_tokens(logits.float(), targets))

    @property
    def _stateful(self) -> dict[str, Any]:
        """Everything a checkpoint restores, by its key: each has ``state_dict`` / ``load_state_dict``.

        The first three must match the checkpoint (a mismatch is a UserError); ``arch_stream`` is None
        when the run takes no arch steps.
        """
        return {"model": self.model, "weight_optimizer": self.weight_optimizer,
                "arch_optimizer": self.architect, "sampler": self.sampler, "arch_stream": self.arch_stream,
                "weight_stream": self.batches, "step_guard": self.guard}  # fmt: skip

    def _state(self, epoch: int) -> dict[str, Any]:
        return {
            "kind": "search",
            "epoch": epoch,
            "config": self.cfg.model_dump(mode="json"),
            "data_shape": {
                "num_classes": self.data.info.num_classes,
                "input_shape": list(self.data.info.input_shape),
            },
            **{key: part.state_dict() if part is not None else None for key, part in self._stateful.items()},
            "rng": rng_state(),
            "file_sizes": {
                name: files.file_size(self.out / name) for name in (files.METRICS, files.TRAJECTORY)
            },
        }

    def _restore(self, state: dict[str, Any]) -> None:
        saved = state.get("config", {})
        current = self.cfg.model_dump(mode="json")
        # older checkpoints: absent
        added_later = {
            "arch_split_size": None,
            "search_strategy": "alternating",
            "entangled_groups": "original",
            "cost": CostConfig().model_dump(mode="json"),
        }
        for key in ("space", "optimizer", "dataset", "entangle", "space_options", "dataset_options",
                    *added_later):  # fmt: skip
            value = saved.get(key, added_later.get(key))
            if key == "cost" and isinstance(value, dict):  # cost settings added later: their defaults
                value = {**added_later["cost"], **value}
            if value != current.get(key):
                raise UserError(f"cannot resume: {key} differs from the checkpoint's ({saved.get(key)!r})")
        if "step_guard" not in state:  # older checkpoints: the skipped-step count alone
            state = {**state, "step_guard": {"skipped_total": state.get("nonfinite_steps", 0)}}
        for key, part in self._stateful.items():
            if part is None or (state.get(key) is None and key not in _MUST_MATCH):
                continue
            try:
                part.load_state_dict(state[key])
            except (RuntimeError, KeyError, ValueError) as error:
                if key not in _MUST_MATCH:
                    raise
                raise UserError(
                    f"checkpoint does not match this supernet: {str(error).splitlines()[0]}"
                ) from None
        set_rng_state(state["rng"])
        if self.cluster.is_main:
            for name, size in state["file_sizes"].items():
                files.truncate(self.out / name, int(size))
        self.start_epoch = int(state["epoch"])

    def _weight_step(self, micro: MicroBatches, tally: Tally, with_logits: bool = False) -> Tensor:
        """Accumulate the weight gradients of ``micro`` (one backward per micro-batch); return the loss.

        ``with_logits`` (simultaneous strategy): the same backward also fills the logits' gradients, and
        the sampler's regulariser is added to the loss (once per step: a share per micro-batch).
        """
        params = self.architect.weight_params
        if with_logits:
            params = params + self.architect.arch_params
        samples = tally.samples
        step_loss = forward_backward(
            self.model, micro, self.device, self.weight_loss, lambda loss: self.guard.backward(loss, params),
            tally, autocast=self.accelerator.autocast,
            before_forward=lambda: self.sampler.sample(self.choices.values()),  # a sample per forward
            extra_loss=self._simultaneous_extra_loss if with_logits else None,
            non_blocking=self.cfg.pin_memory and self.device.type == "cuda",
        )  # fmt: skip
        self.cluster.local_count = tally.samples - samples
        return step_loss

    def _simultaneous_extra_loss(self) -> Tensor | None:
        """The sampler's regulariser plus the budget's penalty, added to the training loss."""
        terms = [self.sampler.regularization(self.choices.values())]
        if self.budget is not None:
            terms.append(self.budget.penalty())
        present = [term for term in terms if term is not None]
        return sum(present[1:], present[0]) if present else None

    def _train_epoch(
        self, epoch: int, lr: float, progress: RunProgress, tracker: Tracker
    ) -> dict[str, float]:
        cfg = self.cfg
        progress.start_epoch(epoch, self.batches.steps)
        params = self.architect.weight_params
        self.model.train()
        tally, arch_loss_sum, arch_steps = Tally(), torch.zeros((), device=self.device), 0
        watch = self.watch
        for step, micro in enumerate(watch.items(self.batches.epoch(epoch), "data")):
            lr = self.schedule.set_step(epoch, step)
            if self.arch_stream is not None:
                with watch.part("data"):
                    arch_micro = MicroBatches(next(self.arch_stream) for _ in range(len(micro)))
                with watch.part("arch_steps"):
                    arch_loss = self.architect.step(arch_micro, micro, weight_lr=lr)
                if arch_loss is not None:  # summed on the device: no wait for it here
                    finite = torch.isfinite(arch_loss)
                    arch_loss_sum = arch_loss_sum + torch.where(finite, arch_loss, 0.0)
                    arch_steps = arch_steps + finite.long()
            with watch.part("weight_steps"):
                self.weight_optimizer.zero_grad(set_to_none=True)
                kept = tally.copy()
                where = f"epoch {epoch} step {step}"
                if self.simultaneous:
                    stepped = self._simultaneous_step(micro, tally, where)
                else:
                    self._weight_step(micro, tally)
                    self.cluster.average_parameter_gradients(params)
                    stepped = self.guard.step(self.weight_optimizer, params, cfg.grad_clip, where=where)
            if not stepped:
                tally = kept
                continue
            progress.step(tally.status)
            if (step + 1) % cfg.logging.log_every == 0:
                tracker.log(
                    {
                        "kind": "step",
                        "epoch": epoch,
                        "step": step + 1,
                        "train_loss": tally.mean_loss(),
                        "train_acc": tally.accuracy(),
                        "lr": lr,
                    }
                )
        result = {"train_loss": tally.mean_loss(), "train_acc": tally.accuracy()}
        finite_arch_steps = int(arch_steps)
        if finite_arch_steps:
            result["arch_loss"] = float(arch_loss_sum) / finite_arch_steps
        return result

    def _simultaneous_step(self, micro: MicroBatches, tally: Tally, where: str) -> bool:
        """One backward of the training loss (+ regulariser) into weights and logits; step both.

        Gradients are averaged across processes; the weights are clipped at ``grad_clip``, the logits at
        ``arch_optimizer.grad_clip``; a NaN/inf loss or gradient skips both steps. Return whether stepped.
        """
        architect = self.architect
        architect.optimizer.zero_grad(set_to_none=True)
        self._weight_step(micro, tally, with_logits=True)
        self.cluster.average_parameter_gradients(architect.weight_params + architect.arch_params)
        return self.guard.step_all(
            [
                (self.weight_optimizer, architect.weight_params, self.cfg.grad_clip),
                (architect.optimizer, architect.arch_params, architect.grad_clip),
            ],
            where,
        )

    def _validate(self) -> dict[str, float]:
        loader = epoch_loader(
            self.data.valid_split,
            self.cfg.batch_size,
            seed=0,
            shuffle=False,
            num_workers=self.cfg.num_workers,
            rank=self.cluster.rank,
            world=self.cluster.world,
            pin_memory=self.cfg.pin_memory,
        )
        # one deterministic architecture for the whole pass: the expected / most likely one
        self.sampler.sample(self.choices.values(), training=False)
        with self.accelerator.autocast():
            return evaluate(
                self.model, loader, self.device, max_batches=self.cfg.eval_batches, reduce=self.cluster.sum_
            )

    def _record_epoch(
        self, epoch: int, seconds: float, train: dict, valid: dict, lr: float, tracker: Tracker
    ) -> dict:
        arch = self.space.derive(self.choices)
        key = self.space.benchmark_key(arch)
        queried = self.lookup.query(key) if self.lookup else None
        record = {
            "kind": "epoch",
            "epoch": epoch,
            **train,
            **self.task.named("valid", valid),
            "lr": lr,
            "seconds": round(seconds, 3),
        }
        if hasattr(self.sampler, "tau"):
            record["tau"] = self.sampler.tau
        if self.cluster.active:  # reaching here means the logits were bit-identical on every process
            record["processes"] = self.cluster.world
        if self.guard.skipped_total:
            record["nonfinite_steps_skipped"] = self.guard.skipped_total
        costs = self.budget.record(arch) if self.budget is not None else {}
        record.update(costs)
        if queried:
            record.update({f"benchmark_{k}": v for k, v in queried.items() if isinstance(v, int | float)})
        tracker.log(record)
        if not self.cluster.is_main:
            return record
        point = {
            "epoch": epoch,
            "architecture": arch,
            "benchmark_key": key,
            **costs,
            "probabilities": mixing_summary(self.choices),
            "logits": {
                n: [round(float(v), 6) for v in c.arch_logits.detach()] for n, c in self.choices.items()
            },
        }
        files.append_jsonl(self.out / files.TRAJECTORY, point)
        self.trajectory.append(point)
        return record

    def _plot(self, last_epoch: bool) -> None:
        """Redraw the mixing-weight plot after the last epoch, and at most every PLOT_EVERY_S before."""
        if not last_epoch and time.perf_counter() - self.plotted_at < PLOT_EVERY_S:
            return
        mode = "we" if self.cfg.entangle else "ws"
        plot_trajectories(
            self.trajectory, self.out / files.PLOT, f"{self.cfg.space} {self.cfg.optimizer} ({mode})"
        )
        self.plotted_at = time.perf_counter()

    def run(self) -> dict[str, Any] | None:
        """Run the remaining epochs; return the summary."""
        cfg = self.cfg
        if self.start_epoch >= cfg.epochs:
            return self._finish()
        mode = "we" if cfg.entangle else "ws"
        main = self.cluster.is_main
        tracker = Tracker(
            self.out / files.METRICS,
            cfg.logging.wandb and main,
            cfg.logging.wandb_project,
            f"{mode}_{cfg.space}_{cfg.optimizer}_{cfg.dataset}_{cfg.seed}",
            cfg.model_dump(mode="json"),
            self.out,
            enabled=main,
        )
        try:
            log = self.out / RUN_LOG if main else None
            with RunProgress(cfg.logging.progress and main, cfg.epochs, self.start_epoch, log) as progress:
                for epoch in range(self.start_epoch, cfg.epochs):
                    started = time.perf_counter()
                    self.sampler.set_epoch(epoch, cfg.epochs)
                    lr = self.schedule.set_epoch(epoch)
                    before = dict(self.watch.totals)
                    train = self._train_epoch(epoch, lr, progress, tracker)
                    self.cluster.average_buffers(self.model)
                    self.cluster.check_identical(self.architect.arch_params, "architecture logits")
                    with self.watch.part("validation"):
                        valid = self._validate()
                    parts = {
                        f"seconds_{name}": round(s, 3)
                        for name, s in self.watch.since(before).items()
                        if name != "writes"
                    }  # an epoch's writes come after its record: summary only
                    with self.watch.part("writes"):
                        record = self._record_epoch(
                            epoch, time.perf_counter() - started, {**train, **parts}, valid, lr, tracker
                        )
                        state = self._state(epoch + 1)
                        check_finite(state["model"], "the supernet's weights or logits")
                        if main:
                            save_checkpoint(state, self.out / files.CHECKPOINT)
                            self._plot(last_epoch=epoch + 1 == cfg.epochs)
                    status = self.task.status("valid", valid)
                    if "benchmark_test_acc" in record:
                        status += f" | benchmark test {record['benchmark_test_acc']:.2f}%"
                    progress.end_epoch(status)
        finally:
            tracker.close()
        return self._finish()

    def _final_architecture(self) -> tuple[dict[str, Any], str]:
        if self.trains_logits:
            return self.space.derive(self.choices), "argmax of the architecture logits"
        spec = self.cfg.selection
        valid, train = scoring_batches(self.cfg, self.data, spec.batches, spec.recalibration_batches)
        scorer = SupernetScorer(self.model, self.space, self.choices, valid, train, self.device)
        genome = random_search(scorer, GenomeDrawer(self.space, self.choices, self.cfg.seed), spec.samples)
        method = (f"random search over the trained supernet (SPOS): best of {spec.samples} by supernet "
                  f"{self.task.metric_name} on {len(valid)} arch-split batches, batch norm recalibrated on "
                  f"{len(train)} training batches")  # fmt: skip
        return scorer.architecture(genome), method

    def _finish(self) -> dict[str, Any] | None:
        arch, method = self._final_architecture()
        if not self.cluster.is_main:
            return None
        key = self.space.benchmark_key(arch)
        queried = self.lookup.query(key) if self.lookup else None
        files.write_arch(
            self.out / files.ARCH,
            self.cfg.space,
            arch,
            key,
            dataset=self.cfg.dataset,
            space_options=dict(self.cfg.space_options),
            derived_by=method,
            **self.space.arch_fields(arch),
        )
        epochs = files.read_jsonl(self.out / files.METRICS)
        epoch_records = [r for r in epochs if r.get("kind") == "epoch"]
        summary: dict[str, Any] = {
            "space": self.cfg.space,
            "optimizer": self.cfg.optimizer,
            "mode": "we" if self.cfg.entangle else "ws",
            "dataset": self.cfg.dataset,
            "epochs": self.cfg.epochs,
            "architecture": self.space.describe(arch),
            "benchmark_key": key,
            "derived_by": method,
            "final_valid_acc": epoch_records[-1]["valid_acc"] if epoch_records else None,
            "final_valid_loss": epoch_records[-1]["valid_loss"] if epoch_records else None,
            "supernet_params": count_parameters(self.model),
            "network_params": count_parameters(self.space.build_network(arch)),
            "search_seconds": round(sum(r.get("seconds", 0.0) for r in epoch_records), 2),
            # of this process (a resumed run: since it resumed); GPU: tensors allocated, CPU: resident set
            "peak_memory_mb": peak_memory_mb(self.device),
            # of this process (a resumed run: since it resumed): seconds per part of the epochs
            "time_breakdown": {name: round(seconds, 2) for name, seconds in self.watch.totals.items()},
            "run_dir": str(self.out),
        }
        if self.budget is not None:
            metric = self.budget.metric
            summary[f"network_{metric}"] = self.budget.model.of_architecture(arch)
            summary["within_budget"] = self.budget.within(arch)
        if self.cfg.init_from is not None:
            summary["initialised_from"] = str(self.cfg.init_from)
        if queried:
            summary["benchmark"] = queried
        files.write_json_atomic(summary, self.out / files.SUMMARY)
        shown = {k: v for k, v in summary.items() if k not in ("benchmark", "benchmark_key")}
        if queried:
            shown.update({f"benchmark {k}": v for k, v in queried.items() if k in ("test_acc", "train_acc")})
        append_log(self.out / RUN_LOG, [f"{key}: {value}" for key, value in shown.items()])
        return shown


def run_search(cfg: RunConfig, resume: Path | None = None) -> dict[str, Any] | None:
    """Run (or resume) a search; return its summary (None on every data-parallel process but the first)."""
    run = SearchRun(cfg, resume=resume)
    try:
        return run.run()
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted; the finished epochs are kept: tanglenas search --resume {run.out}"
        ) from None
    finally:
        run.lock.release()
