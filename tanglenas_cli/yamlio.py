"""Reading and writing the YAML files of the CLI (presets, config.yaml) with one-line errors."""

import os
import re
from pathlib import Path
from typing import Any

import yaml

from tanglenas_cli.errors import UserError


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `3e-4` as a float (PyYAML's YAML 1.1 rules want `3.0e-4`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _describe_yaml_error(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or "invalid YAML"
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def parse_yaml_value(text: str, where: str) -> Any:
    """Return `text` parsed as one YAML value (`0.1`, `true`, `[0.5, 0.999]`, `cifar10`)."""
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.YAMLError as error:
        raise UserError(f"cannot parse {where}: {_describe_yaml_error(error)}") from None


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """Return the mapping stored in the YAML file `path`; `what` names the file in errors."""
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {what} {path}: {error}") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.YAMLError as error:
        raise UserError(f"{what} {path} is not valid YAML: {_describe_yaml_error(error)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{what} {path} must hold a mapping of settings, not a {type(data).__name__}")
    return data


def write_yaml_atomic(data: dict[str, Any], path: Path, header: str = "") -> None:
    """Write `data` as YAML to `path` via a temporary file, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
