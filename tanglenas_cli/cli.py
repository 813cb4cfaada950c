"""The `tanglenas` command line: parse, build the config, call one engine function, print."""

import sys
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from tanglenas_cli import __version__
from tanglenas_cli.benchmarks.prepare import BENCHMARK_PREPARE_STEPS
from tanglenas_cli.config import (
    build_config,
    default_data_root,
    load_config,
    parse_override,
)
from tanglenas_cli.console import print_error, print_note, print_result
from tanglenas_cli.data.registry import dataset_entry, list_datasets, prepare_dataset
from tanglenas_cli.errors import Interrupted, UserError, check_name
from tanglenas_cli.nas.optimizers import list_optimizers, optimizer_entry
from tanglenas_cli.presets import DEFAULT_OPTIMIZER, list_presets, load_preset, paper_preset, run_dataset
from tanglenas_cli.spaces import check_space, list_spaces

ARCH_FILE = "arch.yaml"
EVAL_SPLITS = ("test", "valid")


class _Group(TyperGroup):
    """Typer group that reports a UserError as one line on stderr and exits with its code (errors.py)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as error:
            print_error(str(error))
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            print_error("interrupted")
            raise typer.Exit(Interrupted.exit_code) from None


app = typer.Typer(
    name="tanglenas",
    cls=_Group,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"tanglenas {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_show_version),
    ] = False,
) -> None:
    """One-shot neural architecture search with weight entanglement (TangleNAS).

    Flow: prepare-data, search, derive, then train and eval (or bench-query for a tabular benchmark).
    """


# ---------------------------------------------------------------------------------------------------
# Option annotations.


def _opt(kind: Any, *flags: str, help: str, **settings: Any) -> Any:
    """Return the annotation of an option ``flags`` of type ``kind`` (``settings``: those of typer.Option)."""
    return Annotated[kind, typer.Option(*flags, help=help, **settings)]


def _arg(kind: Any, metavar: str, help: str, **settings: Any) -> Any:
    """Return the annotation of a positional argument of type ``kind``."""
    return Annotated[kind, typer.Argument(metavar=metavar, help=help, **settings)]


# fmt: off
SpaceOption = _opt(str | None, "--space", metavar="SPACE",
                   help=f"Search space, one of: {', '.join(list_spaces())}.")
DatasetOption = _opt(str | None, "--dataset", metavar="DATASET",
                     help=f"Dataset, one of: {', '.join(list_datasets())}.")
OptimizerHelp = f"One-shot optimizer, one of: {', '.join(list_optimizers())}."
PresetOption = _opt(str | None, "--preset", metavar="NAME_OR_FILE",
                    help="Start from a preset: a name from `tanglenas presets` or the path of a .yaml file.")
SetOption = _opt(list[str] | None, "--set", metavar="KEY=VALUE",
                 help="Override one setting, applied last (repeatable). KEY is dotted, VALUE is YAML:"
                 " --set epochs=10 --set weight_optimizer.lr=0.1 --set space_options.C=8.")
SeedOption = _opt(int | None, "--seed", metavar="N", help="Seed of torch, numpy and Python RNGs.")
DataRootOption = _opt(Path | None, "--data-root", metavar="DIR",
                      help="Folder holding the datasets (default: $TANGLENAS_DATA_ROOT, else"
                           " ~/.cache/tanglenas/data).")
WandbOption = _opt(bool | None, "--wandb/--no-wandb", help="Log to Weights & Biases (default: off).")
ChannelsLastOption = _opt(bool | None, "--channels-last/--no-channels-last",
                          help="Store weights and activations channels-last (faster convolutions on CPU;"
                               " default: off).")
MixedPrecisionOption = _opt(str | None, "--mixed-precision", metavar="no|bf16|fp16",
                            help="Autocast precision (bf16 also on CPU; fp16 needs a GPU). Default:"
                                 " Accelerate's (accelerate launch --mixed_precision, its config), else no.")
BenchmarkDatasetOption = _opt(str | None, "--dataset", metavar="DATASET",
                              help="Dataset column of benchmarks that hold several (default: the run's"
                                   " dataset, else cifar10).")
NoPresetOption = _opt(bool, "--no-preset",
                      help="The bare defaults, not the paper's preset that --space (and --opt) would pick.")
CompileOption = _opt(bool | None, "--compile/--no-compile",
                     help="Compile the model with torch.compile (default: off).")
RunDirArgument = _arg(Path, "RUN_DIR", "Run directory written by `tanglenas search`.")
BatchesOption = _opt(int | None, "--batches", min=1,
                     help="Arch-split batches per score (default: the run's selection.batches).")
# fmt: on


def _json_option(what: str) -> Any:
    """Return the annotation of ``--json`` (print ``what`` as JSON)."""
    return _opt(bool, "--json", help=f"Print {what} as JSON.")


# ---------------------------------------------------------------------------------------------------
# Helpers: input checks.


def _require(path: Path, what: str, test: str = "exists") -> Path:
    """Return ``path`` when ``path.<test>()`` holds; else UserError "<what> not found: <path>"."""
    if not getattr(path, test)():
        raise UserError(f"{what} not found: {path}")
    return path


def _run_flags(space: str | None, dataset: str | None, seed: int | None, out: Path | None,
               data_root: Path | None, wandb: bool | None, channels_last: bool | None,
               compile_model: bool | None, mixed_precision: str | None) -> dict[str, Any]:  # fmt: skip
    """Return the options `search` and `train` share, by dotted config key (None: not given)."""
    return {"space": space, "dataset": dataset, "seed": seed, "out_dir": out, "data_root": data_root,
            "logging.wandb": wandb, "channels_last": channels_last, "compile": compile_model,
            "mixed_precision": mixed_precision}  # fmt: skip


def _resumed_config(resume: Path, out: Path | None, preset: str | None) -> dict[str, Any]:
    """Return the config of the run directory ``resume`` (the base of its resumed run)."""
    if preset is not None:
        raise UserError("--resume continues a run with its own config.yaml; drop --preset")
    base = load_config(_require(resume, "run directory to resume", "is_dir")).model_dump(mode="json")
    if out is not None and out.resolve() != resume.resolve():
        raise UserError(f"--out {out} differs from --resume {resume}; a resumed run stays in its directory")
    return base


def _announce_preset(name: str) -> None:
    """Say in one line which preset --space/--opt picked."""
    print_note(f"preset {name}: {load_preset(name).description} (--no-preset: the bare defaults)")


# ---------------------------------------------------------------------------------------------------
# Commands.


PREPARABLE = [*list_datasets(), *BENCHMARK_PREPARE_STEPS]


@app.command("prepare-data")
def prepare_data(
    dataset: _arg(str, "DATASET", f"What to prepare, one of: {', '.join(PREPARABLE)}."),
    source: _opt(Path | None, "--from", metavar="PATH",
                 help="Use this local file or folder instead of downloading (for machines without"
                      " internet).") = None,
    data_root: DataRootOption = None,
    name: _opt(str | None, "--name",
               help="text: the corpus name under DATA_ROOT/text (default: file stem).") = None,
    tokenizer: _opt(str, "--tokenizer", help="text/tinystories: gpt2 (tiktoken BPE) or bytes.") = "gpt2",
    tokenizer_file: _opt(Path | None, "--tokenizer-file", metavar="FILE",
                         help="text/tinystories: GPT-2 ranks file (gpt2.tiktoken), for offline use.") = None,
    val_portion: _opt(float, "--val-portion",
                      help="text/tinystories: share of tokens (tinystories: of stories,"
                      " when the source has no validation part) kept for validation.") = 0.1,
    as_json: _json_option("the summary") = False,
) -> None:  # fmt: skip
    """Download (or unpack from --from) a dataset into the data root, so later runs work offline."""
    check_name("dataset", dataset, PREPARABLE)
    if source is not None and not source.exists():
        raise UserError(f"--from path not found: {source}")
    root = data_root or default_data_root()
    text = {}  # the options of token corpora
    if dataset not in BENCHMARK_PREPARE_STEPS and dataset_entry(dataset).tokens:
        text = {
            "name": name,
            "tokenizer": tokenizer,
            "tokenizer_file": tokenizer_file,
            "val_portion": val_portion,
        }
    step = BENCHMARK_PREPARE_STEPS.get(dataset)  # a benchmark's files, else a dataset
    summary = step(root, source) if step else prepare_dataset(dataset, data_root=root, source=source, **text)
    print_result(
        {"prepared": dataset, "data_root": str(root), "summary": summary} if as_json else summary, as_json
    )


@app.command()
def search(
    space: SpaceOption = None,
    optimizer: _opt(str | None, "--opt", "--optimizer", help=OptimizerHelp) = None,
    dataset: DatasetOption = None,
    preset: PresetOption = None,
    no_preset: NoPresetOption = False,
    overrides: SetOption = None,
    seed: SeedOption = None,
    out: _opt(Path | None, "--out", metavar="DIR",
              help="Run directory (default: a folder under runs/ named after"
              " space, optimizer, we or ws, dataset and seed).") = None,
    ws: _opt(bool, "--ws",
             help="Weight sharing (separate weights per candidate) instead of weight entanglement.") = False,
    data_root: DataRootOption = None,
    resume: _opt(Path | None, "--resume", metavar="RUN_DIR",
                 help="Continue an interrupted search from its run directory (uses its config.yaml).") = None,
    benchmark: _opt(Path | None, "--benchmark", metavar="FILE",
                    help="Tabular benchmark to query with the derived architecture each epoch.") = None,
    init_from: _opt(Path | None, "--init-from", metavar="FILE",
                    help="Start the supernet from a released checkpoint (mobilenetv3: an OFA .pth).") = None,
    wandb: WandbOption = None,
    channels_last: ChannelsLastOption = None,
    compile_model: CompileOption = None,
    mixed_precision: MixedPrecisionOption = None,
    as_json: _json_option("the summary") = False,
) -> None:  # fmt: skip
    """Search an architecture: train the supernet's weights and architecture logits, write a run directory.

    Settings resolve as defaults < --preset < flags (--space, --opt, ...) < --set KEY=VALUE. Without
    --preset, --space S --opt O starts from the paper's preset for them on --dataset (default: S's own
    dataset) where there is one, else from the defaults.
    """
    base = None
    if resume is None and space is not None:
        base = {"dataset": run_dataset(check_space(space), dataset)}
        paper = preset is None and not no_preset
        found = (
            paper_preset("search", space, base["dataset"], optimizer or DEFAULT_OPTIMIZER) if paper else None
        )
        if found is not None:
            preset = found.name
            _announce_preset(preset)
    if resume is not None:
        base, out = _resumed_config(resume, out, preset), resume
    flags = _run_flags(space, dataset, seed, out, data_root, wandb, channels_last, compile_model,
                       mixed_precision)  # fmt: skip
    flags.update({"optimizer": optimizer, "entangle": False if ws else None, "benchmark": benchmark,
                  "init_from": init_from})  # fmt: skip
    cfg = build_config(preset=preset, flags=flags, overrides=overrides or (), base=base)
    if cfg.benchmark is not None:
        _require(cfg.benchmark, "benchmark file")
    if cfg.init_from is not None and resume is None:
        _require(cfg.init_from, "checkpoint to --init-from", "is_file")
    from tanglenas_cli.engine.search import run_search

    result = run_search(cfg, resume=resume)
    if result is not None:  # None on data-parallel processes other than the first
        print_result(result, as_json)


def _positive(value: float | None) -> float | None:
    """Option callback: a number above 0 (or no value)."""
    if value is not None and not value > 0:
        raise typer.BadParameter(f"{value:g} is not above 0.")
    return value


@app.command()
def derive(
    run_dir: RunDirArgument,
    out: _opt(Path | None, "--out", metavar="FILE",
              help=f"Where to write the architecture (default: RUN_DIR/{ARCH_FILE}).") = None,
    epoch: _opt(int | None, "--epoch", metavar="N", min=1,
                help="Take the architecture recorded after epoch N (trajectory.jsonl), not the last"
                     " checkpoint.") = None,
    within_budget: _opt(bool, "--within-budget",
                        help="Take the last epoch's architecture that meets the run's cost budget"
                             " (cost.metric <= cost.target) and uses its input (NB201: not a `none` on"
                             " every path).") = False,
    strategy: _opt(str | None, "--strategy", metavar="random|evolution",
                   help="Search the trained supernet (SPOS second stage) instead of taking the logits'"
                        " argmax.") = None,
    samples: _opt(int | None, "--samples", min=1,
                  help="Random search: architectures scored (default: the run's selection.samples).") = None,
    generations: _opt(int, "--generations", min=1, help="Evolution: generations.") = 20,
    population: _opt(int, "--population", min=2, help="Evolution: population.") = 50,
    batches: BatchesOption = None,
    min_params: _opt(int | None, "--min-params", min=0, help="Parameter floor.") = None,
    max_params: _opt(int | None, "--max-params", min=1, help="Parameter cap.") = None,
    min_flops: _opt(float | None, "--min-flops", callback=_positive,
                    help="FLOPs floor (forward, one input; e.g. 1e6).") = None,
    max_flops: _opt(float | None, "--max-flops", callback=_positive,
                    help="FLOPs cap (forward, one input; e.g. 2.5e8).") = None,
    as_json: _json_option("the summary") = False,
) -> None:  # fmt: skip
    """Derive the final architecture of a search run and write arch.yaml.

    By default the argmax of the architecture logits; with --strategy random|evolution, the best
    architecture found by scoring paths of the trained supernet (SPOS' second stage), optionally within
    parameter / FLOPs limits (FLOPs: forward pass of the discrete network on one input, 2 per multiply-add).
    """
    load_config(_require(run_dir, "run directory", "is_dir"))  # a bad config fails here, in one line
    from tanglenas_cli.engine.derive import run_derive

    if strategy is None:
        print_result(run_derive(run_dir, out=out, epoch=epoch, within_budget=within_budget), as_json)
        return
    if within_budget:
        raise UserError("--within-budget picks among the epochs' argmax architectures; drop --strategy"
                        " (or give it --max-params / --max-flops)")  # fmt: skip
    check_name("strategy", strategy, ("random", "evolution"))
    result = run_derive(run_dir, out=out, epoch=epoch, strategy=strategy, samples=samples, batches=batches,
                        min_params=min_params, max_params=max_params, min_flops=min_flops,
                        max_flops=max_flops, population=population, generations=generations)  # fmt: skip
    print_result(result, as_json)


@app.command()
def train(
    target: _arg(Path | None, "[ARCH_YAML_OR_RUN_DIR]", f"An architecture file, a run directory holding"
                 f" {ARCH_FILE} (from `tanglenas derive`), or SPACE:NAME, an architecture shipped with a"
                 " space (e.g. darts:arch_drnas_we2_0_5).", show_default=False) = None,
    space: SpaceOption = None,
    dataset: DatasetOption = None,
    preset: PresetOption = None,
    no_preset: NoPresetOption = False,
    overrides: SetOption = None,
    seed: SeedOption = None,
    out: _opt(Path | None, "--out", metavar="DIR",
              help="Directory for the trained checkpoint and metrics.") = None,
    data_root: DataRootOption = None,
    wandb: WandbOption = None,
    channels_last: ChannelsLastOption = None,
    compile_model: CompileOption = None,
    mixed_precision: MixedPrecisionOption = None,
    inherit: _opt(Path | None, "--inherit", metavar="RUN_DIR",
                  help="Start from the weights of this search run's supernet (fine-tune), not from"
                       " scratch.") = None,
    from_run: _opt(Path | None, "--from-run", metavar="RUN_DIR",
                   help="Train the architecture a search run had after --epoch (default: its last), from"
                        " its trajectory, instead of an architecture file.") = None,
    epoch: _opt(int | None, "--epoch", metavar="N",
                help="With --from-run: the epoch (from 1) whose architecture to train.") = None,
    resume: _opt(Path | None, "--resume", metavar="TRAIN_DIR",
                 help="Continue an interrupted training run from its folder (its config.yaml and"
                      " arch.yaml).") = None,
    as_json: _json_option("the summary") = False,
) -> None:  # fmt: skip
    """Train a derived architecture from scratch and write its checkpoint.

    Space, dataset and data settings come from the search's config.yaml beside the architecture file.

    Everything else resolves as defaults < --preset < flags < --set KEY=VALUE. Without --preset,
    --space S (or a SPACE:NAME target) starts from the paper's training preset for S on the dataset
    where there is one.
    """
    if inherit is not None:
        _require(inherit / "checkpoint.pt", "search checkpoint to inherit", "is_file")
    from tanglenas_cli.engine.train import run_train
    from tanglenas_cli.engine.train_target import resolve_train_target

    flags = _run_flags(space, dataset, seed, out, data_root, wandb, channels_last, compile_model,
                       mixed_precision)  # fmt: skip
    if resume is not None:
        if target is not None or from_run is not None or inherit is not None:
            raise UserError(
                "--resume continues a training run as it was started; drop TARGET, --from-run and --inherit"
            )
        base = _resumed_config(resume, out, preset)
        cfg = build_config(flags={**flags, "out_dir": resume}, overrides=overrides or (), base=base)
        print_result(run_train(resume / "arch.yaml", cfg, resume=True), as_json)
        return
    arch_file, cfg = resolve_train_target(target, from_run, epoch, preset, flags, overrides or (),
                                          use_paper_preset=not no_preset)  # fmt: skip
    if preset is None and cfg.preset is not None:
        _announce_preset(cfg.preset)
    print_result(run_train(arch_file, cfg, inherit=inherit), as_json)


@app.command("eval")
def evaluate(
    checkpoint: _arg(Path, "CHECKPOINT", "model.pt written by `tanglenas train`, or its directory."),
    split: _opt(str, "--split", metavar="SPLIT",
                help=f"Split to evaluate, one of: {', '.join(EVAL_SPLITS)}.") = "test",
    data_root: DataRootOption = None,
    batch_size: _opt(int | None, "--batch-size", metavar="N",
                     help="Evaluation batch size (default: the training one).") = None,
    image_size: _opt(int | None, "--image-size", metavar="PX", min=1,
                     help="Evaluate at this square resolution instead of the trained one (e.g. MobileNetV3"
                          " at 224).") = None,
    as_json: _json_option("the metrics") = False,
) -> None:  # fmt: skip
    """Evaluate a trained checkpoint (accuracy, or loss and perplexity) on the test or validation split."""
    _require(checkpoint / "model.pt" if checkpoint.is_dir() else checkpoint, "checkpoint", "is_file")
    check_name("split", split, EVAL_SPLITS)
    if batch_size is not None and batch_size <= 0:
        raise UserError(f"invalid value for --batch-size: {batch_size} (expected a number > 0)")
    from tanglenas_cli.engine.evaluate import run_eval

    print_result(run_eval(checkpoint, split=split, data_root=data_root, batch_size=batch_size,
                          image_size=image_size), as_json)  # fmt: skip


@app.command("export")
def export(
    source: _arg(Path, "MODEL_OR_DIR", "model.pt written by `tanglenas train`, its directory, or an exported"
                 " .safetensors file."),
    fmt: _opt(str, "--format", metavar="onnx|safetensors", help="ONNX (for inference anywhere) or safetensors"
              " (weights, with the architecture and config in the metadata; eval reads it).") = "onnx",
    out: _opt(Path | None, "--out", metavar="FILE",
              help="Where to write (default: beside the model, model.onnx or model.safetensors).") = None,
    image_size: _opt(int | None, "--image-size", metavar="PX", min=1,
                     help="ONNX: the example input's square resolution (default: the trained one).") = None,
    as_json: _json_option("where it was written") = False,
) -> None:  # fmt: skip
    """Export a trained network to ONNX or safetensors, from the files of its run alone."""
    _require(source / "model.pt" if source.is_dir() else source, "trained model", "is_file")
    from tanglenas_cli.engine.export import run_export

    print_result(run_export(source, fmt, out=out, image_size=image_size), as_json)


@app.command("sample")
def sample(
    checkpoint: _arg(Path, "CHECKPOINT", "Language-model checkpoint written by `tanglenas train` (or its"
                                         " directory)."),
    prompt: _opt(str, "--prompt", metavar="TEXT",
                 help="Text to continue (empty: start a new document).") = "",
    tokens: _opt(int, "--tokens", metavar="N", help="Most tokens to generate (fewer at end of text).") = 200,
    temperature: _opt(float, "--temperature", metavar="T",
                      help="Divide the logits by T; 0 picks the likeliest token.") = 0.8,
    top_k: _opt(int, "--top-k", metavar="K", help="Sample among the K likeliest tokens (0: all).") = 200,
    seed: _opt(int, "--seed", metavar="N", help="Seed of the sampler.") = 0,
    tokenizer_file: _opt(Path | None, "--tokenizer-file", metavar="FILE",
                         help="GPT-2 ranks file (default: the one the corpus was prepared with, else"
                              " tiktoken's cache).") = None,
    data_root: DataRootOption = None,
    as_json: _json_option("the prompt, text and settings") = False,
) -> None:  # fmt: skip
    """Generate text with a trained language model (nanoGPT), continuing --prompt."""
    _require(checkpoint, "checkpoint")
    if tokenizer_file is not None:
        _require(tokenizer_file, "tokenizer file", "is_file")
    if data_root is not None:
        _require(data_root, "data root", "is_dir")
    from tanglenas_cli.engine.sample import check_sampling, printable, run_sample

    check_sampling(tokens, temperature, top_k)
    result = run_sample(
        checkpoint, prompt, max_new_tokens=tokens, temperature=temperature, top_k=top_k, seed=seed,
        tokenizer_file=tokenizer_file, data_root=data_root,
    )  # fmt: skip
    if as_json:
        print_result(result, as_json=True)
    else:
        typer.echo(printable(result["text"]))


@app.command("bench-query")
def bench_query(
    target: _arg(str, "TARGET", f"An {ARCH_FILE}, a run directory, or an architecture string"
                 " (e.g. an NB201 string |nor_conv_3x3~0|+|...|)."),
    benchmark: _opt(Path | None, "--benchmark", metavar="FILE",
                    help="Tabular benchmark file to query (required).") = None,
    space: _opt(str | None, "--space",
                help="Space of an architecture string (default: guessed from the target).") = None,
    dataset: BenchmarkDatasetOption = None,
    as_json: _json_option("the benchmark entry") = False,
) -> None:  # fmt: skip
    """Look up an architecture's accuracy (and cost) in a tabular benchmark, without training it."""
    if benchmark is None:
        raise UserError("bench-query needs --benchmark FILE (the tabular benchmark to query)")
    _require(benchmark, "benchmark file")
    if space is not None:
        check_space(space)
    if dataset is not None:
        dataset_entry(dataset)
    arch: Path | str = target
    if Path(target).exists():
        arch = Path(target)
    elif target.endswith((".yaml", ".yml", ".json")):
        raise UserError(f"architecture file not found: {target}")
    from tanglenas_cli.engine.bench_query import run_bench_query

    print_result(run_bench_query(arch, benchmark=benchmark, space=space, dataset=dataset), as_json)


@app.command("correlate")
def correlate(
    run_dir: RunDirArgument,
    benchmark: _opt(Path | None, "--benchmark", metavar="FILE",
                    help="Tabular benchmark of the run's space (required).") = None,
    samples: _opt(int, "--samples", min=2,
                  help="Architectures drawn uniformly (all of them if the space has no more).") = 100,
    batches: BatchesOption = None,
    top_k: _opt(int | None, "--top-k", min=1,
                help="k of the top-k overlap (default: 10% of the sample).") = None,
    seed: _opt(int | None, "--seed", help="Seed of the draw (default: the run's).") = None,
    dataset: BenchmarkDatasetOption = None,
    as_json: _json_option("the statistics") = False,
) -> None:  # fmt: skip
    """How well a trained supernet ranks architectures: Kendall tau, Spearman rho, top-k overlap.

    Each sampled architecture is scored on the supernet as `derive --strategy` scores it (its path picked,
    batch norm recalibrated, the same arch-split batches for all); writes correlate.json and a scatter plot
    correlate.png into RUN_DIR.
    """
    if benchmark is None:
        raise UserError("correlate needs --benchmark FILE (the tabular benchmark of the run's space)")
    _require(benchmark, "benchmark file")
    load_config(_require(run_dir, "run directory", "is_dir"))  # a bad config fails here, in one line
    if dataset is not None:
        dataset_entry(dataset)
    from tanglenas_cli.engine.correlate import run_correlate

    result = run_correlate(run_dir, benchmark, samples=samples, batches=batches, seed=seed, top_k=top_k,
                           dataset=dataset)  # fmt: skip
    print_result(result, as_json)


def _space_options(overrides: list[str] | None, command: str) -> dict[str, Any]:
    """Return the space options of ``--set space_options.KEY=VALUE`` flags (anything else: UserError)."""
    options = {}
    for text in overrides or ():
        parts, value = parse_override(text)
        if len(parts) != 2 or parts[0] != "space_options":
            raise UserError(f"{command} takes only --set space_options.KEY=VALUE, not {text!r}")
        options[parts[1]] = value
    return options


@app.command("profile")
def profile_command(
    space: _opt(str, "--space", metavar="SPACE", help=f"Search space, one of: {', '.join(list_spaces())}."),
    optimizer: _opt(str, "--opt", "--optimizer", help=OptimizerHelp) = "drnas",
    batch_size: _opt(int, "--batch-size", metavar="N", min=1, help="Batch size.") = 64,
    steps: _opt(int, "--steps", metavar="N", min=1, help="Measured steps per mode (median).") = 10,
    warmup: _opt(int, "--warmup", metavar="N", min=0, help="Unmeasured steps first.") = 3,
    overrides: _opt(list[str] | None, "--set", metavar="space_options.KEY=VALUE",
                    help="Space setting (repeatable), e.g. C=8.") = None,
    as_json: _json_option("the numbers") = False,
    channels_last: _opt(bool, "--channels-last", help="Store weights and activations channels-last.") = False,
    compile_model: _opt(bool, "--compile",
                        help="torch.compile every mode (compiles before the warm-up).") = False,
) -> None:  # fmt: skip
    """Step time and peak memory: WE supernet, WS supernet and the largest subnet (memory: each in its own
    process; time: all interleaved in one, so a shared machine's noise hits each alike)."""
    check_space(space)
    optimizer_entry(optimizer)
    options = _space_options(overrides, "profile")
    from tanglenas_cli.engine.profile import run_profile

    result = run_profile(space, optimizer, batch_size, steps, warmup, options, channels_last=channels_last,
                         compile=compile_model)  # fmt: skip
    if as_json:
        print_result(result, as_json=True)
        return
    extras = "".join(
        f", {name}" for name, on in (("channels-last", channels_last), ("compiled", compile_model)) if on
    )
    table = Table(title=f"{space}, {optimizer}, batch {batch_size}{extras}, {result['device']}")
    for column in ("mode", "step (s)", "peak memory (MB)", "parameters", "time / largest",
                   "rounds", "memory / largest"):  # fmt: skip
        table.add_column(column, justify="right")
    for mode, numbers in result["modes"].items():
        time_ratio = result.get(f"{mode}_time_ratio", 1.0)
        rounds = result.get(f"{mode}_time_ratio_rounds")
        spread = f"{rounds[0]:.2f}-{rounds[1]:.2f}x" if rounds else ""
        memory_ratio = result.get(f"{mode}_memory_ratio", 1.0)
        table.add_row(mode, f"{numbers['step_s']:.4f}", f"{numbers['peak_mb']:.1f}", f"{numbers['params']:,}",
                      f"{time_ratio:.2f}x", spread, f"{memory_ratio:.2f}x")  # fmt: skip
    Console(highlight=False).print(table)


@app.command("latency-table")
def latency_table(
    space: _opt(str, "--space", metavar="SPACE", help=f"Search space, one of: {', '.join(list_spaces())}."),
    device: _opt(str | None, "--device", metavar="cpu|cuda",
                 help="Where to time (default: cuda if any).") = None,
    batch_size: _opt(int, "--batch-size", metavar="N", min=1, help="Batch size of every timing.") = 1,
    input_shape: _opt(str | None, "--input-shape", metavar="C,H,W",
                      help="One input's shape (language models: T), as the run's data (default: the space's"
                           " profile shape).") = None,
    classes: _opt(int | None, "--classes", metavar="N", min=1,
                  help="Classes (language models: vocabulary), as the run's data.") = None,
    overrides: _opt(list[str] | None, "--set", metavar="space_options.KEY=VALUE",
                    help="Space setting (repeatable), as the run's.") = None,
    check: _opt(int, "--check", metavar="N", min=0,
                help="Also time N random whole networks and rank the table against them.") = 30,
    benchmark: _opt(Path | None, "--benchmark", metavar="FILE",
                    help="Rank the table against this benchmark's recorded latency (toy benchmarks).") = None,
    out: _opt(Path | None, "--out", metavar="FILE",
              help="Where to write the table (default: latency-SPACE-DEVICE-bN.json).") = None,
    as_json: _json_option("the check numbers") = False,
) -> None:  # fmt: skip
    """Time every candidate of every choice in isolation on this machine: the table of cost.metric=latency.

    Search with it: --set cost.metric=latency --set cost.target=MS --set cost.table=FILE.
    """
    check_space(space)
    options = _space_options(overrides, "latency-table")
    if benchmark is not None:
        _require(benchmark, "benchmark file")
    from tanglenas_cli.engine.latency import run_latency_table

    result = run_latency_table(
        space, options, device, batch_size, input_shape, classes, check, benchmark, out
    )
    print_result(result, as_json)


@app.command("doctor")
def doctor(
    data_root: DataRootOption = None,
    as_json: _json_option("the report") = False,
) -> None:
    """Versions, devices, Accelerate config, data and benchmark files found: paste it into a bug report."""
    from tanglenas_cli.engine.doctor import run_doctor

    report = run_doctor(data_root)
    if as_json:
        print_result(report, as_json=True)
        return
    for section, values in report.items():  # plain lines: nothing truncated, easy to paste
        if isinstance(values, dict):
            typer.echo(f"{section}:")
            for key, value in values.items():
                typer.echo(f"  {key}: {value}")
        else:
            typer.echo(f"{section}: {values}")


@app.command("presets")
def presets_command(
    space: _opt(str | None, "--space", metavar="SPACE", help="Only the presets of this space.") = None,
    optimizer: _opt(str | None, "--opt", "--optimizer", help="Only the search presets of this one.") = None,
    as_json: _json_option("each preset's name, command, space, dataset, optimizer and description") = False,
) -> None:  # fmt: skip
    """List the shipped presets and what each one runs (use one with `tanglenas search --preset NAME`)."""
    if space is not None:
        check_space(space)
    if optimizer is not None:
        optimizer_entry(optimizer)
    listing = [p for p in list_presets() if space in (None, p.space) and optimizer in (None, p.optimizer)]
    if as_json:
        print_result([preset.summary() for preset in listing], as_json=True)
        return
    if not listing:
        raise UserError("no presets found" + (" for these filters" if space or optimizer else
                        " (the presets folder is missing from this installation)"))  # fmt: skip
    table = Table(title="tanglenas presets")
    table.add_column("preset", style="bold", no_wrap=True, min_width=max(len(p.name) for p in listing))
    table.add_column("description")
    for preset in listing:
        table.add_row(Text(preset.name), Text(preset.description))
    Console(highlight=False).print(table)


def main() -> None:
    """Run the `tanglenas` command line (console-script entry point)."""
    try:
        app()
    except UserError as error:
        print_error(str(error))
        sys.exit(error.exit_code)
