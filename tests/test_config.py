"""Run config: defaults, presets, --set overrides, one-line errors, config.yaml round trip."""

from pathlib import Path
from typing import Any

import pytest

import tanglenas_cli
from tanglenas_cli.config import (
    RunConfig,
    build_config,
    load_config,
    resolve_data_root,
    resolve_out_dir,
    validate_config,
    write_config,
)
from tanglenas_cli.data.registry import list_datasets
from tanglenas_cli.errors import UserError
from tanglenas_cli.nas.optimizers import list_optimizers
from tanglenas_cli.presets import list_presets, load_preset, presets_dir
from tanglenas_cli.spaces import list_spaces

PRESET_FILES = sorted(presets_dir().glob("*.yaml"))
PRESET_NAMES = [path.stem for path in PRESET_FILES]


def error_of(**kwargs: Any) -> str:
    """Return the message of the UserError that build_config raises for `kwargs`."""
    with pytest.raises(UserError) as caught:
        build_config(**kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def leaves(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Return the nested mapping flattened to dotted keys (free-form option dicts stay whole)."""
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, dict) and key not in ("space_options", "dataset_options"):
            flat.update(leaves(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# ---------------------------------------------------------------------------------------------------
# Defaults


def test_defaults_match_the_paper_settings() -> None:
    cfg = RunConfig(space="toy_cell", dataset="digits")
    assert cfg.optimizer == "drnas"
    assert (cfg.train_portion, cfg.epochs, cfg.batch_size, cfg.seed) == (0.5, 50, 64, 9001)
    assert cfg.entangle is True
    assert cfg.grad_clip == 5.0
    assert cfg.arch_optimizer.lr == 3e-4
    assert cfg.arch_optimizer.betas == (0.5, 0.999)
    assert cfg.arch_optimizer.weight_decay == 1e-3
    weights = cfg.weight_optimizer
    assert (weights.name, weights.lr, weights.lr_min, weights.momentum) == ("sgd", 0.025, 0.001, 0.9)
    assert (weights.nesterov, weights.weight_decay, weights.schedule) == (False, 3e-4, "cosine")
    assert (cfg.sampler.tau_max, cfg.sampler.tau_min, cfg.sampler.drnas_reg) == (10.0, 0.1, "l2")
    assert cfg.space_options == {} and cfg.out_dir is None and cfg.data_root is None


def test_vocabularies() -> None:
    assert "nb201" in list_spaces() and "toy_cell" in list_spaces()
    assert set(list_optimizers()) == {"darts_v1", "darts_v2", "drnas", "gdas", "spos", "discrete"}
    assert "imagenet16-120" in list_datasets()


@pytest.mark.parametrize(
    ("kind", "flags"),
    [
        ("space", {"space": "nonsense", "dataset": "digits"}),
        ("optimizer", {"space": "toy_cell", "dataset": "digits", "optimizer": "nonsense"}),
        ("dataset", {"space": "toy_cell", "dataset": "nonsense"}),
    ],
)
def test_unknown_name_lists_the_allowed_ones(kind: str, flags: dict[str, str]) -> None:
    message = error_of(flags=flags)
    allowed = {"space": list_spaces(), "optimizer": list_optimizers(), "dataset": list_datasets()}[kind]
    assert message.startswith(f"unknown {kind} 'nonsense'; choose one of: {', '.join(allowed)}")


def test_missing_space_says_how_to_give_one() -> None:
    message = error_of(flags={"dataset": "digits"})
    assert "'space'" in message and "--space or --preset" in message
    assert "--dataset or --preset" in error_of(flags={"space": "toy_cell"})


# ---------------------------------------------------------------------------------------------------
# Presets


def test_presets_folder_has_the_paper_presets() -> None:
    expected = {"quickstart", "toy-cell-fmnist-train", "toy-conv-macro-cifar10-train", "nb201-cifar10-train"}
    expected |= {"darts-cifar10-train", "nats-sss-cifar10-train"}
    for family in (
        "toy-cell-fmnist",
        "toy-conv-macro-cifar10",
        "nb201-cifar10",
        "darts-cifar10",
        "nats-sss-cifar10",
    ):
        expected |= {f"{family}-{opt}" for opt in ("darts_v1", "darts_v2", "drnas", "gdas", "spos")}
    expected |= {f"autoformer-{data}-{opt}" for data in ("cifar10", "cifar100") for opt in ("drnas", "spos")}
    expected |= {"autoformer-imagenet-drnas", "autoformer-s-imagenet-drnas", "autoformer-tiny-drnas"}
    expected.add("autoformer-cifar10-train")
    expected |= {f"nanogpt-tinystories-{opt}" for opt in ("darts_v1", "drnas", "gdas", "spos", "train")}
    expected |= {"nanogpt-tiny-drnas", "nanogpt-tiny-train"}
    expected |= {f"mobilenetv3-imagenet-{opt}" for opt in ("darts_v1", "drnas", "gdas", "spos", "train")}
    expected |= {"mobilenetv3-tiny-drnas", "mobilenetv3-tiny-train"}
    assert set(PRESET_NAMES) == expected


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_every_preset_validates(name: str) -> None:
    cfg = build_config(preset=name)
    preset = load_preset(name)
    assert preset.description and "\n" not in preset.description
    if name != "quickstart" and not name.endswith("-train"):
        assert name.endswith(cfg.optimizer)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_presets_hold_only_what_differs_from_the_defaults(name: str) -> None:
    settings = load_preset(name).settings
    cfg = validate_config(settings)
    defaults = leaves(RunConfig(space=cfg.space, dataset=cfg.dataset).model_dump(mode="json"))
    for key, value in leaves(settings).items():
        if key in ("space", "dataset"):
            continue  # no default
        assert value != defaults[key], f"{name}: {key}={value!r} repeats the default"


def test_preset_values_follow_the_paper_table() -> None:
    nb201_spos = build_config(preset="nb201-cifar10-spos")
    assert (nb201_spos.space, nb201_spos.optimizer, nb201_spos.dataset) == ("nb201", "spos", "cifar10")
    assert (nb201_spos.epochs, nb201_spos.train_portion) == (250, 0.8)
    assert nb201_spos.weight_optimizer.nesterov is True
    assert nb201_spos.weight_optimizer.weight_decay == 5e-4
    assert nb201_spos.space_options == {"C": 16, "N": 5, "affine": False, "track_running_stats": False}
    assert nb201_spos.weight_optimizer.lr == 0.025  # default kept

    macro = build_config(preset="toy-conv-macro-cifar10-gdas").weight_optimizer
    assert (macro.name, macro.lr, macro.lr_min, macro.betas, macro.weight_decay) == (
        "adam",
        3e-4,
        1e-4,
        (0.9, 0.995),
        5e-4,
    )
    assert build_config(preset="toy-conv-macro-cifar10-spos").weight_optimizer.lr_min == 1e-3

    darts_gdas = build_config(preset="darts-cifar10-gdas")
    assert (darts_gdas.batch_size, darts_gdas.epochs, darts_gdas.space_options) == (
        256,
        250,
        {"C": 16, "layers": 8},
    )
    assert build_config(preset="darts-cifar10-drnas").weight_optimizer.lr_min == 0.0
    assert build_config(preset="toy-cell-fmnist-spos").weight_optimizer.lr == 0.01
    assert build_config(preset="toy-cell-fmnist-drnas").space_options == {"C": 32}

    nats = build_config(preset="nats-sss-cifar10-train")  # NATS-Bench's protocol (reference §4.2)
    assert (nats.space, nats.epochs, nats.batch_size) == ("nats_sss", 90, 256)
    nats_sgd = nats.weight_optimizer
    assert (nats_sgd.name, nats_sgd.lr, nats_sgd.lr_min, nats_sgd.schedule) == ("sgd", 0.1, 0.0, "cosine")
    assert (nats_sgd.weight_decay, nats_sgd.nesterov, nats_sgd.momentum) == (5e-4, True, 0.9)
    for train in ("nb201-cifar10-train", "nats-sss-cifar10-train"):
        assert build_config(preset=train).space_options["network"] == "benchmark"

    quick = build_config(preset="quickstart")
    assert (quick.space, quick.dataset, quick.optimizer, quick.epochs, quick.batch_size) == (
        "toy_cell",
        "digits",
        "drnas",
        25,
        64,
    )
    assert quick.space_options == {"C": 8}


def test_list_presets_covers_every_file_with_a_description() -> None:
    listing = {preset.name: preset.description for preset in list_presets()}
    assert sorted(listing) == PRESET_NAMES
    assert all(description.strip() for description in listing.values())


def test_preset_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("description: mine\nspace: toy_cell\ndataset: digits\nweight_optimizer: {lr: 3e-4}\n")
    cfg = build_config(preset=str(path))
    assert cfg.weight_optimizer.lr == 3e-4  # `3e-4` is a float, not PyYAML's YAML 1.1 string
    assert load_preset(str(path)).description == "mine"


def test_presets_dir_prefers_the_package_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "site" / "tanglenas_cli"
    package.mkdir(parents=True)
    (tmp_path / "site" / "presets").mkdir()
    (tmp_path / "site" / "presets" / "beside.yaml").write_text("description: next to the package\n")
    monkeypatch.setattr(tanglenas_cli, "__file__", str(package / "__init__.py"))
    assert [(p.name, p.description) for p in list_presets()] == [
        ("beside", "next to the package")
    ]  # checkout
    (package / "presets").mkdir()
    (package / "presets" / "inside.yaml").write_text("description: inside the wheel\n")
    assert [(p.name, p.description) for p in list_presets()] == [("inside", "inside the wheel")]  # wheel wins


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("quikstart", "unknown preset 'quikstart'; did you mean 'quickstart'?"),
        ("nowhere/missing.yaml", "preset file not found: nowhere/missing.yaml"),
    ],
)
def test_missing_preset(preset: str, expected: str) -> None:
    assert expected in error_of(preset=preset)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("space: [toy_cell\n", "not valid YAML"),
        ("- toy_cell\n- digits\n", "must hold a mapping of settings, not a list"),
        ("description: [a, b]\nspace: toy_cell\n", "'description' must be one line of text"),
        ("space: toy_cell\ndataset: digits\nepochz: 3\n", "unknown setting 'epochz' in preset"),
        ("space: toy_cell\ndataset: digits\nsampler: {tua_max: 1}\n", "did you mean 'sampler.tau_max'"),
    ],
)
def test_bad_preset_file(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert expected in error_of(preset=str(path))


# ---------------------------------------------------------------------------------------------------
# Resolution order and --set


def test_flags_override_preset_and_set_overrides_flags() -> None:
    cfg = build_config(preset="nb201-cifar10-gdas", flags={"seed": 1, "entangle": False, "optimizer": None})
    assert (cfg.seed, cfg.entangle, cfg.optimizer, cfg.epochs) == (1, False, "gdas", 250)
    cfg = build_config(preset="nb201-cifar10-gdas", flags={"seed": 1}, overrides=["seed=2", "epochs=3"])
    assert (cfg.seed, cfg.epochs) == (2, 3)


def test_set_values_are_yaml() -> None:
    cfg = build_config(
        preset="quickstart",
        overrides=[
            "weight_optimizer.lr=0.1",
            "arch_optimizer.lr=6e-4",
            "weight_optimizer.betas=[0.5, 0.99]",
            "entangle=false",
            "grad_clip=null",
            "space_options.C=16",
            "space_options.new_option=abc",
            "dataset_options.cutout=16",
            "data_root=/tmp/data",
            "logging.wandb=true",
        ],
    )
    assert cfg.weight_optimizer.lr == 0.1 and cfg.arch_optimizer.lr == 6e-4
    assert cfg.weight_optimizer.betas == (0.5, 0.99)
    assert cfg.entangle is False and cfg.grad_clip is None
    assert cfg.space_options == {"C": 16, "new_option": "abc"}
    assert cfg.dataset_options == {"size": 16, "cutout": 16}
    assert cfg.data_root == Path("/tmp/data") and cfg.logging.wandb is True


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("epochz=3", "unknown setting 'epochz' in --set 'epochz=3'; did you mean 'epochs'?"),
        ("weight_optimizer.lrr=1", "did you mean 'weight_optimizer.lr'?"),
        ("lr=1", "did you mean 'weight_optimizer.lr' or 'arch_optimizer.lr'?"),
        ("wandb=true", "did you mean 'logging.wandb'?"),
    ],
)
def test_unknown_key_suggests_the_closest(override: str, expected: str) -> None:
    message = error_of(preset="quickstart", overrides=[override])
    assert expected in message
    assert "valid keys" in message


def test_set_below_a_single_setting() -> None:
    message = error_of(preset="quickstart", overrides=["epochs.max=3"])
    assert message.endswith("'epochs' is a single setting, not a group; use epochs=VALUE")


def test_unknown_key_lists_the_keys_of_its_level() -> None:
    message = error_of(preset="quickstart", overrides=["sampler.tau=1"])
    assert (
        "(valid keys under 'sampler': tau_max, tau_min, darts_activation, drnas_reg, drnas_reg_scale)"
        in message
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("epochs=abc", "invalid value for 'epochs': 'abc' (expected an integer)"),
        ("epochs=true", "invalid value for 'epochs': True (expected an integer)"),
        ("epochs=2.5", "invalid value for 'epochs': 2.5 (expected an integer)"),
        ("batch_size=0", "invalid value for 'batch_size': 0 (expected a number > 0)"),
        ("train_portion=2", "invalid value for 'train_portion': 2 (expected a number <= 1"),
        ("train_portion=0", "invalid value for 'train_portion': 0 (expected a number > 0"),
        ("weight_optimizer.lr=fast", "invalid value for 'weight_optimizer.lr': 'fast' (expected a number)"),
        (
            "weight_optimizer.name=rmsprop",
            "'weight_optimizer.name': 'rmsprop' (expected one of 'sgd', 'adam'",
        ),
        ("weight_optimizer.betas=[0.5]", "'weight_optimizer.betas': [0.5] (expected a list of 2 numbers)"),
        ("entangle=maybe", "invalid value for 'entangle': 'maybe' (expected true or false)"),
        ("weight_optimizer=5", "invalid value for 'weight_optimizer': 5 (expected a mapping of settings)"),
        ("sampler.tau_min=20", "sampler: tau_min (20.0) must not exceed tau_max (10.0)"),
        ("sampler.tau_max=0", "invalid value for 'sampler.tau_max': 0 (expected a number > 0"),
        ("weight_optimizer.warmup_epochs=99", "warmup_epochs (99) must not exceed epochs (25)"),
        ("space=nonsense", "unknown space 'nonsense'; choose one of"),
        ("epochs=[1,", "cannot parse the value of --set 'epochs=[1,'"),
    ],
)
def test_bad_value_is_one_line_naming_key_value_and_expectation(override: str, expected: str) -> None:
    assert expected in error_of(preset="quickstart", overrides=[override])


@pytest.mark.parametrize("override", ["epochs", "=3", "weight_optimizer..lr=1"])
def test_malformed_set(override: str) -> None:
    assert "expected KEY=VALUE" in error_of(preset="quickstart", overrides=[override])


# ---------------------------------------------------------------------------------------------------
# config.yaml


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_write_load_round_trip(name: str, tmp_path: Path) -> None:
    cfg = build_config(
        preset=name,
        flags={"out_dir": tmp_path / "run", "data_root": tmp_path / "data", "benchmark": tmp_path / "b.pkl"},
        overrides=["dataset_options.cutout=16", "weight_optimizer.betas=[0.8, 0.95]"],
    )
    write_config(cfg, tmp_path / "run" / "config.yaml")
    assert load_config(tmp_path / "run" / "config.yaml") == cfg
    assert load_config(tmp_path / "run") == cfg  # a run directory works too
    assert not list((tmp_path / "run").glob(".*.tmp"))


def test_load_config_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    corrupt = tmp_path / "config.yaml"
    corrupt.write_text("space: toy_cell\nepochs: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(corrupt)
    corrupt.write_text("space: toy_cell\ndataset: digits\nepochs: -1\n")
    with pytest.raises(
        UserError, match=r"config.yaml: invalid value for 'epochs': -1 \(expected a number > 0\)"
    ):
        load_config(corrupt)


# ---------------------------------------------------------------------------------------------------
# Derived paths and space availability


def test_resolve_data_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = RunConfig(space="toy_cell", dataset="digits")
    monkeypatch.delenv("TANGLENAS_DATA_ROOT", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_data_root(cfg) == tmp_path / ".cache" / "tanglenas" / "data"
    monkeypatch.setenv("TANGLENAS_DATA_ROOT", str(tmp_path / "env"))
    assert resolve_data_root(cfg) == tmp_path / "env"
    assert resolve_data_root(cfg.model_copy(update={"data_root": tmp_path / "flag"})) == tmp_path / "flag"


def test_resolve_out_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = build_config(preset="nb201-cifar10-drnas", flags={"entangle": False, "seed": 9002})
    assert resolve_out_dir(cfg) == tmp_path / "runs" / "nb201-drnas-ws-cifar10-s9002"
    assert resolve_out_dir(build_config(preset="quickstart")).name == "toy_cell-drnas-we-digits-s9001"
    assert resolve_out_dir(cfg.model_copy(update={"out_dir": tmp_path / "mine"})) == tmp_path / "mine"
