"""Named presets: YAML files holding only the settings that differ from the defaults.

Besides settings, a preset file may hold ``description`` (one line), ``command`` (``search``, the
default, or ``train``) and ``smoke: true`` (a quick test run, never chosen by ``--space``/``--opt``).
A non-smoke preset is the paper's run of its command for its space, dataset and (search) optimizer:
``search --space S --opt O`` starts from it.
"""

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tanglenas_cli
from tanglenas_cli.errors import UserError
from tanglenas_cli.yamlio import read_yaml_mapping

PRESET_SUFFIXES = (".yaml", ".yml")
COMMANDS = ("search", "train")
DEFAULT_OPTIMIZER = "drnas"  # the run config's default optimizer


@dataclass(frozen=True)
class Preset:
    """One preset file: its name, where it lives, its one-line description and its settings."""

    name: str
    path: Path
    description: str
    settings: dict[str, Any]
    command: str = "search"
    smoke: bool = False

    @property
    def space(self) -> str | None:
        """The space it runs (None when it sets none)."""
        return self.settings.get("space")

    @property
    def dataset(self) -> str | None:
        """The dataset it runs on (None when it sets none)."""
        return self.settings.get("dataset")

    @property
    def optimizer(self) -> str | None:
        """The one-shot optimizer of a search preset (None for a train preset)."""
        return self.settings.get("optimizer", DEFAULT_OPTIMIZER) if self.command == "search" else None

    def summary(self) -> dict[str, Any]:
        """Return what ``presets --json`` lists of it."""
        fields = ("name", "command", "space", "dataset", "optimizer", "smoke", "description")
        return {field: getattr(self, field) for field in fields}


def presets_dir() -> Path | None:
    """Return the folder of shipped presets: inside the package (wheel), else next to it (checkout)."""
    package_dir = Path(tanglenas_cli.__file__).parent
    for candidate in (package_dir / "presets", package_dir.parent / "presets"):
        if candidate.is_dir():
            return candidate
    return None


def preset_names() -> list[str]:
    """Return the names of the shipped presets, sorted."""
    directory = presets_dir()
    return sorted(path.stem for path in directory.glob("*.yaml")) if directory else []


def find_preset(name_or_path: str) -> Path:
    """Return the file of a preset given by name (`quickstart`) or by path (`my.yaml`)."""
    if name_or_path.endswith(PRESET_SUFFIXES) or "/" in name_or_path or os.sep in name_or_path:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise UserError(f"preset file not found: {path}")
        return path
    directory = presets_dir()
    if directory is not None and (directory / f"{name_or_path}.yaml").is_file():
        return directory / f"{name_or_path}.yaml"
    close = difflib.get_close_matches(name_or_path, preset_names(), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ";"
    raise UserError(
        f"unknown preset {name_or_path!r}{hint} run `tanglenas presets` to list them,"
        " or pass the path of a .yaml file"
    )


def load_preset(name_or_path: str) -> Preset:
    """Return the preset with its description, command and smoke flag split off from its settings."""
    path = find_preset(name_or_path)
    settings = dict(read_yaml_mapping(path, "preset"))
    description = settings.pop("description", "")
    command = settings.pop("command", "search")
    smoke = settings.pop("smoke", False)
    if not isinstance(description, str):
        raise UserError(f"preset {path}: 'description' must be one line of text")
    if command not in COMMANDS or not isinstance(smoke, bool):
        raise UserError(f"preset {path}: 'command' must be search or train and 'smoke' true or false")
    return Preset(name=path.stem, path=path, description=" ".join(description.split()), settings=settings,
                  command=command, smoke=smoke)  # fmt: skip


def list_presets() -> list[Preset]:
    """Return every shipped preset, sorted by name (an unreadable one with the error as its description)."""
    directory = presets_dir()
    listing = []
    for path in sorted(directory.glob("*.yaml")) if directory else ():
        try:
            listing.append(load_preset(str(path)))
        except UserError as error:
            listing.append(Preset(path.stem, path, f"(unreadable: {error})", {}))
    return listing


def run_dataset(space: str, dataset: str | None) -> str:
    """Return ``dataset``, or when it is None the dataset ``space`` is searched on by default."""
    from tanglenas_cli.spaces import space_class

    return dataset or space_class(space).default_dataset


def paper_preset(
    command: str, space: str, dataset: str | None = None, optimizer: str | None = None
) -> Preset | None:
    """Return the shipped preset of the paper's ``command`` run of ``space`` on ``dataset`` (default: the
    space's own) with ``optimizer`` (search), or None when there is none."""
    wanted = (command, space, run_dataset(space, dataset), optimizer if command == "search" else None, False)
    matches = (p for p in list_presets() if (p.command, p.space, p.dataset, p.optimizer, p.smoke) == wanted)
    return next(matches, None)
