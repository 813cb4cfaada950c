"""Named presets: YAML files holding only the settings that differ from the defaults."""

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tanglenas_cli
from tanglenas_cli.errors import UserError
from tanglenas_cli.yamlio import read_yaml_mapping

PRESET_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Preset:
    """One preset file: its name, where it lives, its one-line description and its settings."""

    name: str
    path: Path
    description: str
    settings: dict[str, Any]


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
    """Return the preset with its `description` split off from its settings."""
    path = find_preset(name_or_path)
    settings = dict(read_yaml_mapping(path, "preset"))
    description = settings.pop("description", "")
    if not isinstance(description, str):
        raise UserError(f"preset {path}: 'description' must be one line of text")
    return Preset(name=path.stem, path=path, description=" ".join(description.split()), settings=settings)


def list_presets() -> list[tuple[str, str]]:
    """Return (name, description) of every shipped preset, sorted by name."""
    directory = presets_dir()
    if directory is None:
        return []
    listing = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            description = load_preset(str(path)).description
        except UserError as error:
            description = f"(unreadable: {error})"
        listing.append((path.stem, description))
    return listing
