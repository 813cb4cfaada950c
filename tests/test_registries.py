"""The registries (spaces, datasets, optimizers): one list each, one "unknown X" line, no names elsewhere.

A space defined in one file outside the package, registered by its decorator alone, runs through
search, derive, train and profile with no other edit.
"""

from __future__ import annotations

import ast
import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import invoke

import tanglenas_cli
import tanglenas_cli.spaces as spaces
from tanglenas_cli.benchmarks import check_benchmark_key
from tanglenas_cli.data.registry import dataset_entry, list_datasets
from tanglenas_cli.engine.lookup import guess_space_of_key
from tanglenas_cli.errors import UserError
from tanglenas_cli.nas.optimizers import list_optimizers, optimizer_entry
from tanglenas_cli.spaces import check_space, create_space, list_spaces, space_class

PACKAGE = Path(tanglenas_cli.__file__).parent

THROWAWAY = '''
"""A throw-away space: one conv whose kernel size is searched, then global pooling and a classifier."""

from typing import Any

import torch.nn.functional as F
from torch import nn

from tanglenas_cli.errors import UserError
from tanglenas_cli.nas.choices import Choice
from tanglenas_cli.nas.entangled import EntangledConv2d
from tanglenas_cli.spaces import register_space
from tanglenas_cli.spaces.base import DataShape, SearchSpace

KERNELS = [1, 3]
WIDTH = 8


class Net(nn.Module):
    def __init__(self, conv: nn.Module, classes: int) -> None:
        super().__init__()
        self.conv, self.head = conv, nn.Linear(WIDTH, classes)

    def forward(self, x):
        return self.head(F.relu(self.conv(x)).mean((2, 3)))


@register_space("throwaway")
class ThrowawaySpace(SearchSpace):
    default_dataset = "digits"
    profile_data = DataShape(num_classes=10, input_shape=(1, 12, 12))
    supports_ws = False

    def build_supernet(self, entangle: bool = True) -> nn.Module:
        kernel = Choice("kernel", KERNELS)
        channels = self.data.input_shape[0]
        conv = EntangledConv2d(kernel, [channels] * 2, [WIDTH] * 2, KERNELS, bias=True)
        network = Net(conv, self.data.num_classes)
        network.choices = nn.ModuleDict({"kernel": kernel})
        return network

    def arch_of(self, picks) -> dict[str, Any]:
        return {"kernel": picks["kernel"]}

    def picks_of(self, arch) -> dict[str, Any]:
        return self.validate(arch)

    def validate(self, arch) -> dict[str, Any]:
        if set(arch) != {"kernel"} or arch["kernel"] not in KERNELS:
            raise UserError(f"a throwaway architecture is {{'kernel': one of {KERNELS}}}")
        return {"kernel": int(arch["kernel"])}

    def build_network(self, arch) -> nn.Module:
        kernel = self.validate(arch)["kernel"]
        conv = nn.Conv2d(self.data.input_shape[0], WIDTH, kernel, padding=kernel // 2)
        return Net(conv, self.data.num_classes)

    def largest_architecture(self) -> dict[str, Any]:
        return {"kernel": max(KERNELS)}
'''


@pytest.fixture
def throwaway_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Register the throw-away space by importing its one file from a temporary folder."""
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / "throwaway_space_module.py").write_text(THROWAWAY)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setitem(spaces._SPACES._entries, "throwaway", "")  # removed again after the test
    importlib.import_module("throwaway_space_module")
    yield "throwaway"
    sys.modules.pop("throwaway_space_module", None)


def test_a_space_in_one_file_runs_every_command(throwaway_space: str, tmp_path: Path) -> None:
    assert throwaway_space in list_spaces()
    small = ["--set", "epochs=1", "--set", "train_subset=64", "--set", "batch_size=16",
             "--set", "dataset_options.size=12"]  # fmt: skip
    run = tmp_path / "run"
    searched = invoke("search", "--space", throwaway_space, "--dataset", "digits", *small, "--out", run)
    assert searched.exit_code == 0, searched.output
    derived = invoke("derive", run)
    assert derived.exit_code == 0, derived.output
    assert "kernel" in (run / "arch.yaml").read_text()
    trained = invoke("train", run, *small, "--out", tmp_path / "trained")
    assert trained.exit_code == 0, trained.output
    assert (tmp_path / "trained" / "model.pt").is_file()
    profiled = invoke("profile", "--space", throwaway_space, "--batch-size", "4", "--steps", "1",
                      "--warmup", "0", "--json")  # fmt: skip
    assert profiled.exit_code == 0, profiled.output
    result = json.loads(profiled.stdout)
    assert set(result["modes"]) == {"we", "largest"}  # no weight-sharing mode: supports_ws is False


@pytest.mark.parametrize(
    ("check", "kind", "names"),
    [(check_space, "space", list_spaces), (dataset_entry, "dataset", list_datasets),
     (optimizer_entry, "optimizer", list_optimizers)],
)  # fmt: skip
def test_one_unknown_name_line_per_registry(check, kind: str, names) -> None:
    with pytest.raises(UserError) as caught:
        check("nonsense")
    assert str(caught.value) == f"unknown {kind} 'nonsense'; choose one of: {', '.join(names())}"


def test_every_space_class_carries_its_facts() -> None:
    for name in list_spaces():
        space_type = space_class(name)
        assert space_type.name == name
        assert space_type.default_dataset in list_datasets(), name
        space = create_space(name, space_type.tiny_data, space_type.tiny_options)
        assert space.validate(space.largest_architecture())
        if space_type.benchmark is not None:  # its keys look like its own benchmark's, not another's
            key = space.benchmark_key(space.largest_architecture())
            assert guess_space_of_key(key) == name
            assert check_benchmark_key(space_type.benchmark, f" {key} ") == key


def _named_literals(path: Path, names: set[str]) -> list[str]:
    """Return `file:line: 'name'` for every string constant in `path` equal to one of `names`, except
    docstrings, dictionary keys and subscripts (``result["text"]`` names a field, not a dataset)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            skipped.update(id(key) for key in node.keys if key is not None)
        elif isinstance(node, ast.Subscript):
            skipped.add(id(node.slice))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            skipped.add(id(node.value))
    return [
        f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in names and id(node) not in skipped
    ]


def _modules_outside(*folders: str) -> list[Path]:
    return [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if not any(path.is_relative_to(PACKAGE / folder) for folder in folders)
    ]


def test_no_module_outside_spaces_names_a_space() -> None:
    found = [hit for path in _modules_outside("spaces") for hit in _named_literals(path, set(list_spaces()))]
    assert found == []


def test_no_module_outside_data_names_a_dataset() -> None:
    # spaces name their default dataset; a benchmark's columns are named after the datasets it holds
    names = set(list_datasets())
    found = [
        hit
        for path in _modules_outside("data", "spaces", "benchmarks")
        for hit in _named_literals(path, names)
    ]
    assert found == []


# Each package of tanglenas_cli and the packages it must not import (arrows only point down; the top-level
# modules errors, validation, paths, yamlio and presets are shared by all).
FORBIDDEN_IMPORTS = {
    "layers": ("nas", "data", "benchmarks", "spaces", "engine", "config", "cli"),
    "nas": ("data", "benchmarks", "spaces", "engine", "config", "cli"),
    "data": ("nas", "benchmarks", "spaces", "engine", "config", "cli"),
    "benchmarks": ("nas", "data", "spaces", "engine", "config", "cli"),
    "spaces": ("data", "engine", "config", "cli"),
    "engine": ("cli",),
}


def test_imports_only_point_down() -> None:
    found = []
    for package, forbidden in FORBIDDEN_IMPORTS.items():
        for path in sorted((PACKAGE / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                for module in modules:
                    parts = module.split(".")
                    if parts[0] == "tanglenas_cli" and len(parts) > 1 and parts[1] in forbidden:
                        found.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert found == []
