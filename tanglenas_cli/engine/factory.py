"""Builds what a run needs from its config: data, space, sampler, optimizers, learning-rate schedule."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from timm.scheduler import CosineLRScheduler
from torch import nn

from tanglenas_cli.config import MixupConfig, RunConfig, resolve_data_root
from tanglenas_cli.data.info import DatasetInfo
from tanglenas_cli.data.registry import training_input_sizes
from tanglenas_cli.data.splits import SearchData, search_data
from tanglenas_cli.engine.metrics import flatten_tokens
from tanglenas_cli.engine.task import task_of
from tanglenas_cli.errors import UserError
from tanglenas_cli.nas.choices import weight_parameters
from tanglenas_cli.nas.samplers import Sampler, SPOSSampler, SubsetSPOSSampler, sampler_class
from tanglenas_cli.spaces import create_space
from tanglenas_cli.spaces.base import DataShape, SearchSpace


def load_search_data(cfg: RunConfig) -> SearchData:
    """Return the search splits of the config's dataset (:func:`tanglenas_cli.data.splits.search_data`)."""
    return search_data(cfg.dataset, resolve_data_root(cfg), cfg.dataset_options, cfg.train_portion,
                       cfg.arch_split_size, cfg.train_subset)  # fmt: skip


def data_shape(info: DatasetInfo) -> DataShape:
    """Return what a space needs to know about a dataset."""
    return DataShape(num_classes=info.num_classes, input_shape=tuple(info.input_shape))  # type: ignore[arg-type]


def make_space(name: str, info: DatasetInfo, options: dict | None) -> SearchSpace:
    """Return the search space ``name`` for data described by ``info``."""
    return create_space(name, data_shape(info), options)


def build_search_supernet(cfg: RunConfig, space: SearchSpace) -> nn.Module:
    """Return the supernet of the config (WE or WS; ``entangled_groups`` where the space has such groups)."""
    if cfg.entangled_groups == "original":
        return space.build_supernet(entangle=cfg.entangle)
    if not cfg.entangle:
        raise UserError(
            f"entangled_groups={cfg.entangled_groups} applies to weight entanglement; drop --ws or it"
        )
    if not space.scalable_groups:
        raise UserError(
            f"entangled_groups={cfg.entangled_groups} applies to spaces whose entangled groups end in batch"
            f" norm (nb201, darts, toy_cell); {space.name} has none"
        )
    return space.build_supernet(entangle=True, entangled_groups=cfg.entangled_groups)  # type: ignore[call-arg]


def check_input_sizes(cfg: RunConfig, space: SearchSpace) -> None:
    """Refuse, in one line, a space whose networks take one input size when the data varies it per batch.

    Some datasets (ImageNet's multi-resolution training) draw the resolution per batch; networks with
    global pooling accept them, others (e.g. AutoFormer's fixed patch grid) fail. Probed once on the
    largest network at both extremes.
    """
    if task_of(space).sequence:  # token sequences have one length
        return
    sizes = training_input_sizes(cfg.dataset, cfg.dataset_options)
    if sizes is None or len(sizes) == 1:
        return
    try:
        network = space.build_network(space.largest_architecture()).eval()
    except UserError:  # no single largest architecture: nothing to probe
        return
    channels = space.data.input_shape[0]
    for size in (min(sizes), max(sizes)):
        try:
            with torch.no_grad():
                network(torch.zeros(1, channels, size, size))
        except RuntimeError:
            fixed = space.data.input_shape[-1]
            raise UserError(
                f"space {space.name!r} takes one input size, but {cfg.dataset} varies it per batch "
                f"({min(sizes)}..{max(sizes)} px); set dataset_options.resolutions={fixed}"
            ) from None


def make_sampler_for(cfg: RunConfig, space: SearchSpace | None = None) -> Sampler:
    """Return the sampler of the config's one-shot optimizer (subset SPOS where the space offers subsets)."""
    sampler_type = sampler_class(cfg.optimizer)
    subsets = space.spos_subsets() if space is not None and sampler_type is SPOSSampler else None
    if subsets:
        return SubsetSPOSSampler(subsets, seed=cfg.seed)
    return sampler_type(seed=cfg.seed, **sampler_type.options_from(cfg.sampler))


def arch_weight_decay(cfg: RunConfig) -> float:
    """Return the arch optimizer's weight decay (DrNAS: its l2 regulariser, or 0 with the KL one)."""
    return sampler_class(cfg.optimizer).arch_weight_decay(cfg.sampler, cfg.arch_optimizer.weight_decay)


def make_weight_optimizer(
    cfg: RunConfig, params: Iterable[nn.Parameter], no_decay: Iterable[torch.Tensor] = ()
) -> torch.optim.Optimizer:
    """Return the weight optimizer (SGD, Adam or AdamW) of the config over ``params``.

    Parameters in ``no_decay`` (by identity), and with ``weight_optimizer.no_decay_1d`` every 1-d
    parameter, form a second group with weight decay 0.
    """
    spec = cfg.weight_optimizer
    params = list(params)
    exempt = {id(p) for p in no_decay}
    groups: list[dict] = [{"params": params}]
    if spec.no_decay_1d or exempt:
        free = [p for p in params if id(p) in exempt or (spec.no_decay_1d and p.dim() <= 1)]
        free_ids = {id(p) for p in free}
        groups = [
            {"params": [p for p in params if id(p) not in free_ids]},
            {"params": free, "weight_decay": 0.0},
        ]
    if spec.name == "sgd":
        return torch.optim.SGD(
            groups, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov, weight_decay=spec.weight_decay
        )
    optimizer_type = torch.optim.Adam if spec.name == "adam" else torch.optim.AdamW
    return optimizer_type(groups, lr=spec.lr, betas=tuple(spec.betas), weight_decay=spec.weight_decay)


def make_space_weight_optimizer(
    cfg: RunConfig, space: SearchSpace, model: nn.Module
) -> torch.optim.Optimizer:
    """Return the weight optimizer of ``model``, a supernet or a discrete network of ``space``.

    It trains every trainable parameter except the architecture logits (by identity); the parameters
    the space exempts (:meth:`SearchSpace.no_weight_decay`) get no weight decay. ``search`` and
    ``train`` both build theirs here.
    """
    named = dict(model.named_parameters())
    exempt = space.no_weight_decay(model)
    unknown = sorted(exempt - named.keys())
    if unknown:
        raise ValueError(f"space {space.name!r} exempts parameters the model lacks: {', '.join(unknown)}")
    return make_weight_optimizer(cfg, weight_parameters(model), [named[name] for name in sorted(exempt)])


class WeightLoss:
    """The weight-step loss: cross-entropy, with timm's Mixup/CutMix and label smoothing when configured.

    ``__call__(model_forward, inputs, targets)`` returns (logits, loss); logits are those of the mixed
    inputs, so accuracy against ``targets`` is only indicative while mixing is on.
    """

    def __init__(self, cfg: RunConfig | None, num_classes: int, sequence: bool = False) -> None:
        spec = cfg.mixup if cfg is not None else MixupConfig()  # no config: plain cross-entropy
        self.smoothing = spec.label_smoothing
        self.mixup = None
        if sequence and (spec.mixup_alpha > 0 or spec.cutmix_alpha > 0):
            raise UserError("mixup / cutmix mix images; they do not apply to token sequences (set them to 0)")
        if spec.mixup_alpha > 0 or spec.cutmix_alpha > 0:
            from timm.data import Mixup

            self.mixup = Mixup(mixup_alpha=spec.mixup_alpha, cutmix_alpha=spec.cutmix_alpha,
                               label_smoothing=spec.label_smoothing, num_classes=num_classes)  # fmt: skip

    def mix(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return mixed inputs and soft targets, or (inputs, None) when mixing is off or the batch is odd."""
        if self.mixup is None or len(targets) % 2:
            return inputs, None
        return self.mixup(inputs, targets)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, soft: torch.Tensor | None) -> torch.Tensor:
        """Return the loss of ``logits`` against soft targets if mixed, else (smoothed) hard targets.

        Language-model logits ``(B, T, V)`` are scored per token.
        """
        logits, targets = flatten_tokens(logits, targets)
        if soft is not None:
            return torch.sum(-soft * torch.log_softmax(logits, dim=-1), dim=-1).mean()
        return torch.nn.functional.cross_entropy(logits, targets, label_smoothing=self.smoothing)


class LearningRateSchedule:
    """The weights' learning rate: cosine from lr to lr_min (timm) after a linear warm-up, or constant.

    With ``schedule_unit=epoch`` it changes once per epoch (:meth:`set_epoch`); with ``step`` at every
    optimizer step (:meth:`set_step`), over ``epochs * steps_per_epoch`` steps. The cosine reaches
    lr_min at the end of the run, warm-up included.
    """

    def __init__(self, cfg: RunConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int = 1) -> None:
        spec = cfg.weight_optimizer
        self.optimizer = optimizer
        self.per_step = spec.schedule_unit == "step"
        self.steps_per_epoch = steps_per_epoch
        total = cfg.epochs * steps_per_epoch if self.per_step else cfg.epochs
        warmup = spec.warmup_steps if self.per_step else spec.warmup_epochs
        if self.per_step and warmup >= total > 1:
            raise UserError(f"weight_optimizer.warmup_steps ({warmup}) must be below the run's {total} steps")
        self.scheduler = None
        if spec.schedule == "cosine" and total > 1:
            self.scheduler = CosineLRScheduler(
                optimizer,
                t_initial=max(total - warmup, 1),
                lr_min=spec.lr_min,
                warmup_t=warmup,
                warmup_lr_init=spec.lr_min if not self.per_step else 0.0,
                warmup_prefix=warmup > 0,
                t_in_epochs=not self.per_step,
            )

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def set_epoch(self, epoch: int) -> float:
        """Set the learning rate at the start of ``epoch`` (counted from 0) and return it."""
        if self.per_step:
            return self.set_step(epoch, 0)
        if self.scheduler is not None:
            self.scheduler.step(epoch)
        return self._lr()

    def set_step(self, epoch: int, step: int) -> float:
        """Per-step schedules: set the learning rate of ``step`` of ``epoch``; return the current rate."""
        if self.per_step and self.scheduler is not None:
            self.scheduler.step_update(epoch * self.steps_per_epoch + step)
        return self._lr()
