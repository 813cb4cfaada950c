"""One validated run config: defaults < preset < command-line flags < `--set key=value` overrides."""

import copy
import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tanglenas_cli.data.registry import list_datasets
from tanglenas_cli.errors import UserError, unknown_name_message
from tanglenas_cli.nas.optimizers import list_optimizers, optimizer_entry
from tanglenas_cli.paths import default_data_root
from tanglenas_cli.presets import DEFAULT_OPTIMIZER, load_preset
from tanglenas_cli.spaces import list_spaces
from tanglenas_cli.validation import invalid_error, one_line, unknown_name_error
from tanglenas_cli.yamlio import parse_yaml_value, read_yaml_mapping, write_yaml_atomic

CONFIG_FILE = "config.yaml"

# Strict numbers: `epochs: true` or `lr: "fast"` is an error, not 1 or a silent cast.
PositiveInt = Annotated[int, Strict(), Field(gt=0)]
NonNegativeInt = Annotated[int, Strict(), Field(ge=0)]
PositiveFloat = Annotated[float, Strict(), Field(gt=0)]
NonNegativeFloat = Annotated[float, Strict(), Field(ge=0)]
Beta = Annotated[float, Strict(), Field(ge=0, lt=1)]
StrictBool = Annotated[bool, Strict()]


class _Section(BaseModel):
    """Base of every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class WeightOptimizerConfig(_Section):
    """Optimizer of the network weights and its learning-rate schedule (per epoch, or per step)."""

    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: PositiveFloat = 0.025
    lr_min: NonNegativeFloat = 0.001
    momentum: Beta = 0.9
    nesterov: StrictBool = False
    weight_decay: NonNegativeFloat = 3e-4
    betas: tuple[Beta, Beta] = (0.9, 0.999)
    schedule: Literal["cosine", "constant"] = "cosine"
    # "step": the learning rate changes every optimizer step (warm-up counted in steps), as nanoGPT's
    schedule_unit: Literal["epoch", "step"] = "epoch"
    warmup_epochs: NonNegativeInt = 0
    warmup_steps: NonNegativeInt = 0
    # no weight decay on 1-d parameters (biases, norms), as in ViT / AutoFormer training; a space's own
    # exemptions (SearchSpace.no_weight_decay: nanoGPT's embeddings, AutoFormer's positions) always apply
    no_decay_1d: StrictBool = False


class MixupConfig(_Section):
    """Mixup / CutMix / label smoothing of the weight steps (timm); all off by default."""

    mixup_alpha: NonNegativeFloat = 0.0
    cutmix_alpha: NonNegativeFloat = 0.0
    label_smoothing: Annotated[float, Strict(), Field(ge=0, lt=1)] = 0.0


class ArchOptimizerConfig(_Section):
    """Adam on the architecture logits."""

    lr: PositiveFloat = 3e-4
    betas: tuple[Beta, Beta] = (0.5, 0.999)
    weight_decay: NonNegativeFloat = 1e-3
    # clip the norm of the logits' gradient before each arch step (nanoGPT: 5.0); None: no clipping
    grad_clip: PositiveFloat | None = None


class SamplerConfig(_Section):
    """Settings of the samplers that turn architecture logits into mixing weights."""

    tau_max: PositiveFloat = 10.0
    tau_min: PositiveFloat = 0.1
    darts_activation: Literal["softmax", "sparsemax"] = "softmax"
    drnas_reg: Literal["l2", "kl"] = "l2"
    drnas_reg_scale: NonNegativeFloat = 1e-3

    @model_validator(mode="after")
    def _tau_order(self) -> "SamplerConfig":
        if self.tau_min > self.tau_max:
            raise invalid_error(f"tau_min ({self.tau_min}) must not exceed tau_max ({self.tau_max})")
        return self


class SelectionConfig(_Section):
    """How an architecture is picked by scoring paths of a trained supernet (SPOS' final random search;
    ``derive --strategy`` takes the same settings as its defaults)."""

    # random architectures scored at the end of a SPOS search
    samples: PositiveInt = 100
    # arch-split batches each candidate is scored on (the same batches for every candidate)
    batches: PositiveInt = 4
    # training batches that re-estimate the batch-norm statistics of each candidate before it is scored
    recalibration_batches: NonNegativeInt = 2


class CostConfig(_Section):
    """A cost budget inside the search: a penalty on the architecture loss (off while ``metric`` is unset).

    ``hinge`` adds ``weight * max(0, E[cost] / target - 1)``: nothing under the budget, a pull back to it
    above. ``fbnet`` multiplies the loss by ``(log E[cost] / log target) ** beta`` (FBNet's latency factor,
    normalised so that it is 1 at the target): it keeps trading accuracy for cost under the budget too.
    ``E[cost]`` is the expected cost of this step's mixing weights (tanglenas_cli.engine.cost).
    """

    metric: Literal["params", "flops", "latency"] | None = None
    target: Annotated[float, Field(gt=0)] | None = None  # parameters, multiply-adds or milliseconds
    # the hinge's scale: at 1, 4 of 6 NB201 searches end in a cell with a `none` on every path (10%); at
    # 0.1, one of 6 reaches such a cell in its last epoch and `derive --within-budget` passes over it
    # (benchmarks/cost_aware.py)
    weight: NonNegativeFloat = 0.1
    form: Literal["hinge", "fbnet"] = "hinge"
    beta: PositiveFloat = 0.6
    # the penalty reads each choice's weights w as w ** (1 / temperature), renormalised: 1 is the expected
    # cost of the sampled architectures; towards 0 it approaches the cost of the argmax architecture,
    # the one `derive` returns (a flat distribution's expected cost can sit far above its argmax's)
    temperature: PositiveFloat = 1.0
    # what the penalty's value is: "mean" the expected cost above; "argmax" the exact cost of the argmax
    # architecture (the one `derive` returns), with the expected cost's gradient (straight-through). A
    # flat mixture's mean can meet the budget while its argmax does not, or push a space with free
    # candidates (NB201's none, skip, pool) far below it; "argmax" acts exactly while the derived
    # architecture is over the budget
    estimate: Literal["mean", "argmax"] = "argmax"
    # cost.metric=latency: the table written by `tanglenas latency-table`
    table: Path | None = None
    # count the cost on the network of these space options instead of the searched one's (e.g. search a
    # C=8 proxy and budget the C=16 network that will be trained); the choices must be the same
    space_options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _complete(self) -> "CostConfig":
        if (self.metric is None) != (self.target is None):
            given, missing = ("metric", "target") if self.target is None else ("target", "metric")
            raise invalid_error(f"{given} needs {missing} too (e.g. --set cost.metric=params "
                                "--set cost.target=2e5)")  # fmt: skip
        if self.form == "fbnet" and self.target is not None and self.target <= 1:
            raise invalid_error(f"form=fbnet needs target > 1 (it takes its log), got {self.target:g}")
        return self

    @property
    def active(self) -> bool:
        """Whether a budget is set."""
        return self.metric is not None


class LoggingConfig(_Section):
    """Where and how often a run reports progress."""

    wandb: StrictBool = False
    wandb_project: str = "tanglenas"
    log_every: PositiveInt = 20
    progress: StrictBool = True


class RunConfig(_Section):
    """Everything one search (or training) run needs; written to `config.yaml` in the run directory."""

    space: str
    optimizer: str = DEFAULT_OPTIMIZER
    dataset: str
    # The preset the run started from (a name or a file), recorded by build_config; None: the defaults.
    preset: str | None = None
    data_root: Path | None = None
    train_portion: Annotated[float, Strict(), Field(gt=0, le=1)] = 0.5
    # Hold out a fixed random set of this many training images (seed 0) for the architecture instead of
    # the contiguous train_portion split (OFA / TangleNAS hold out 10,000 ImageNet images); image data only.
    arch_split_size: PositiveInt | None = None
    # alternating: arch step on an arch-split batch, then weight step on a training batch; simultaneous
    # (MobileNetV3 / OFA): one backward of the training loss feeds both optimizers, no arch split needed.
    search_strategy: Literal["alternating", "simultaneous"] = "alternating"
    epochs: PositiveInt = 50
    batch_size: PositiveInt = 64
    seed: Annotated[int, Strict(), Field(ge=0, lt=2**32)] = 9001
    entangle: StrictBool = True
    # Entangled groups that end in batch norm (cell spaces): "original" adds BN(conv(x, sum_i w_i W_i))
    # to the edge unweighted, as the paper's code; "scaled" outputs s * BN(conv(x, sum_i (w_i / s) W_i))
    # with s = sum_i w_i, so the group competes with the edge's other ops by its total weight.
    entangled_groups: Literal["original", "scaled"] = "original"
    out_dir: Path | None = None
    num_workers: NonNegativeInt = 0
    # Page-locked batches from every data loader (faster host-to-GPU copies); ignored without a GPU.
    pin_memory: StrictBool = False
    # Search on a fixed random subset of this many training images (token corpora: the first this many
    # blocks) for quick runs; None = all of them.
    train_subset: PositiveInt | None = None
    grad_clip: PositiveFloat | None = 5.0
    # Micro-batches of `batch_size` whose gradients make one step (of the weights, and of the logits).
    grad_accum: PositiveInt = 1
    # Optimizer steps per epoch; None: one pass over the data (token corpora: over their tokens).
    steps_per_epoch: PositiveInt | None = None
    # Batches per validation pass at the end of an epoch; None: the whole split.
    eval_batches: PositiveInt | None = None
    # `train`: hold out this share of the training data to report a validation loss; 0: none.
    val_portion: Annotated[float, Strict(), Field(ge=0, lt=1)] = 0.0
    # Speed: store weights and activations channels-last; compile the model's forward (torch.compile).
    channels_last: StrictBool = False
    compile: StrictBool = False
    # Autocast precision (Accelerate): bf16 works on CPU and GPU, fp16 needs a GPU (loss scaling). None:
    # Accelerate's own setting (`accelerate launch --mixed_precision`, its config file), else "no"; a run
    # records the precision it used.
    mixed_precision: Literal["no", "bf16", "fp16"] | None = None
    # Steps whose loss or gradients are NaN/inf are skipped; this many in a row stop the run.
    max_nonfinite_steps: PositiveInt = 10
    weight_optimizer: WeightOptimizerConfig = Field(default_factory=WeightOptimizerConfig)
    arch_optimizer: ArchOptimizerConfig = Field(default_factory=ArchOptimizerConfig)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    mixup: MixupConfig = Field(default_factory=MixupConfig)
    space_options: dict[str, Any] = Field(default_factory=dict)
    dataset_options: dict[str, Any] = Field(default_factory=dict)
    benchmark: Path | None = None
    # Initialise the supernet from a released checkpoint before searching (mobilenetv3: OFA's supernet).
    init_from: Path | None = None
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    cost: CostConfig = Field(default_factory=CostConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @field_validator("space", "optimizer", "dataset")
    @classmethod
    def _known_name(cls, value: str, info: ValidationInfo) -> str:
        """A name of the registry of its kind (the registries' one "unknown ..." line otherwise)."""
        allowed = {"space": list_spaces, "optimizer": list_optimizers, "dataset": list_datasets}[
            info.field_name
        ]()
        if value not in allowed:
            raise unknown_name_error(unknown_name_message(info.field_name, value, allowed))
        return value

    @model_validator(mode="after")
    def _strategy_fits(self) -> "RunConfig":
        if self.search_strategy == "simultaneous" and optimizer_entry(self.optimizer).second_order:
            raise invalid_error(
                "search_strategy=simultaneous takes first-order arch steps on the training batch;"
                " darts_v2 (second order) needs search_strategy=alternating (or use darts_v1)"
            )
        return self

    @model_validator(mode="after")
    def _warmup_fits(self) -> "RunConfig":
        spec = self.weight_optimizer
        if spec.warmup_epochs > self.epochs:
            raise invalid_error(
                f"weight_optimizer.warmup_epochs ({spec.warmup_epochs}) must not exceed epochs"
                f" ({self.epochs})"
            )
        if spec.schedule_unit == "epoch" and spec.warmup_steps:
            raise invalid_error(
                "weight_optimizer.warmup_steps needs weight_optimizer.schedule_unit=step"
                " (or use warmup_epochs)"
            )
        if spec.schedule_unit == "step" and spec.warmup_epochs:
            raise invalid_error(
                "with weight_optimizer.schedule_unit=step, give warmup_steps, not warmup_epochs"
            )
        return self


# ---------------------------------------------------------------------------------------------------
# Keys: check them against the schema before validation, so a typo gets a suggestion.


def _section_of(model: type[BaseModel], key: str) -> type[BaseModel] | None:
    annotation = model.model_fields[key].annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _is_free_form(model: type[BaseModel], key: str) -> bool:
    return get_origin(model.model_fields[key].annotation) is dict


def _all_keys(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[str]:
    keys = []
    for key in model.model_fields:
        section = _section_of(model, key)
        keys.extend(_all_keys(section, f"{prefix}{key}.") if section else [f"{prefix}{key}"])
    return keys


def _unknown_key_message(prefix: Sequence[str], key: object, model: type[BaseModel], source: str) -> str:
    valid = list(model.model_fields)
    dotted = ".".join([*prefix, str(key)])
    suggestions = [".".join([*prefix, match]) for match in difflib.get_close_matches(str(key), valid, n=1)]
    if not suggestions:  # `lr` -> `weight_optimizer.lr` or `arch_optimizer.lr`
        suggestions = [full for full in _all_keys() if full.endswith(f".{key}")]
    if not suggestions:
        suggestions = difflib.get_close_matches(dotted, _all_keys(), n=1)
    hint = f"; did you mean {' or '.join(repr(s) for s in suggestions)}?" if suggestions else ""
    level = f" under '{'.'.join(prefix)}'" if prefix else ""
    return f"unknown setting '{dotted}'{source}{hint} (valid keys{level}: {', '.join(valid)})"


def _check_mapping(
    mapping: Mapping[Any, Any], source: str, model: type[BaseModel] = RunConfig, prefix: tuple[str, ...] = ()
) -> None:
    for key, value in mapping.items():
        if not isinstance(key, str) or key not in model.model_fields:
            raise UserError(_unknown_key_message(prefix, key, model, source))
        section = _section_of(model, key)
        if section is not None and isinstance(value, Mapping):
            _check_mapping(value, source, section, (*prefix, key))


def _check_key_path(parts: Sequence[str], source: str) -> None:
    model: type[BaseModel] = RunConfig
    for depth, part in enumerate(parts):
        if part not in model.model_fields:
            raise UserError(_unknown_key_message(parts[:depth], part, model, source))
        if _is_free_form(model, part):
            return  # space_options.* and dataset_options.* are checked later by the space / dataset
        section = _section_of(model, part)
        if section is None:
            if depth < len(parts) - 1:
                single = ".".join(parts[: depth + 1])
                raise UserError(
                    f"unknown setting '{'.'.join(parts)}'{source}: '{single}' is a single setting,"
                    f" not a group; use {single}=VALUE"
                )
            return
        model = section


def validate_config(data: Mapping[str, Any], hints: Mapping[str, str] | None = None) -> RunConfig:
    """Return `data` validated as a RunConfig; UserError with one line if any setting is bad."""
    _check_mapping(data, "")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as error:
        raise UserError(one_line(error, hints)) from None


# ---------------------------------------------------------------------------------------------------
# Building a config from a preset, flags and overrides.


def parse_override(text: str) -> tuple[list[str], Any]:
    """Return the dotted key (as parts) and the YAML-parsed value of one `--set key=value`."""
    key, separator, raw_value = text.partition("=")
    parts = key.strip().split(".")
    if not separator or not all(part.strip() for part in parts):
        raise UserError(f"bad --set {text!r}: expected KEY=VALUE, e.g. --set epochs=10")
    parts = [part.strip() for part in parts]
    return parts, parse_yaml_value(raw_value, f"the value of --set {text!r}")


def _set_path(data: dict[str, Any], parts: Sequence[str], value: Any) -> None:
    node = data
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def _merge(target: dict[str, Any], update: Mapping[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


_MISSING_HINTS = {"space": "pass --space or --preset", "dataset": "pass --dataset or --preset"}

# What `tanglenas train` takes from the search run whose arch.yaml it trains; the rest (epochs, lr,
# space_options such as the number of cells) differs between search and training from scratch.
INHERITED_BY_TRAIN = ("space", "dataset", "data_root", "dataset_options")


def build_config(
    preset: str | None = None,
    flags: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
    base: Mapping[str, Any] | None = None,
) -> RunConfig:
    """Return the validated config: defaults < base < preset < flags < `--set` overrides.

    `flags` maps dotted keys (`seed`, `logging.wandb`) to values; None means "not given".
    `base` is an earlier config (e.g. the one of a run being resumed).
    """
    data: dict[str, Any] = copy.deepcopy(dict(base)) if base else {}
    if preset is not None:
        loaded = load_preset(preset)
        _check_mapping(loaded.settings, f" in preset {loaded.path}")
        _merge(data, loaded.settings)
        data["preset"] = preset
    for key, value in (flags or {}).items():
        if value is not None:
            _set_path(data, key.split("."), value)
    for text in overrides:
        parts, value = parse_override(text)
        _check_key_path(parts, f" in --set {text!r}")
        _set_path(data, parts, value)
    return validate_config(data, _MISSING_HINTS)


# ---------------------------------------------------------------------------------------------------
# Files and derived paths.


def write_config(cfg: RunConfig, path: Path) -> None:
    """Write the resolved config as YAML to `path` (atomically)."""
    header = "# tanglenas run config (resolved: defaults < preset < flags < --set)\n"
    write_yaml_atomic(cfg.model_dump(mode="json"), Path(path), header)


# defaults that changed after runs were written with them: a stored config without the key ran with these
FORMER_DEFAULTS = {"cost": {"estimate": "mean"}}


def _with_former_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Return a run's stored config with the settings it ran with where their default changed since."""
    for section, defaults in FORMER_DEFAULTS.items():
        stored = data.get(section)
        if isinstance(stored, dict):
            data[section] = {**{k: v for k, v in defaults.items() if k not in stored}, **stored}
    return data


def load_config(path: Path) -> RunConfig:
    """Return the config stored in `path` (a config.yaml, or a run directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_FILE
    data = _with_former_defaults(read_yaml_mapping(path, "config file"))
    try:
        return validate_config(data)
    except UserError as error:
        raise UserError(f"{path}: {error}") from None


def resolve_data_root(cfg: RunConfig) -> Path:
    """Return the folder that holds the datasets for `cfg`."""
    return cfg.data_root.expanduser() if cfg.data_root is not None else default_data_root()


def resolve_out_dir(cfg: RunConfig) -> Path:
    """Return the run directory: `out_dir`, else runs/{space}-{optimizer}-{we|ws}-{dataset}-s{seed}."""
    if cfg.out_dir is not None:
        return cfg.out_dir.expanduser()
    mode = "we" if cfg.entangle else "ws"
    return Path.cwd() / "runs" / f"{cfg.space}-{cfg.optimizer}-{mode}-{cfg.dataset}-s{cfg.seed}"
