"""The datasets by name: what each one is, how it is built and prepared.

The table names functions, imported on first use: the data modules import torch and torchvision, which
``tanglenas --help`` and config validation do not need. A new dataset is one module and one entry here.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tanglenas_cli.errors import UserError
from tanglenas_cli.registry import Registry


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset: its builder and prepare step (``module:function`` of this package) and its properties.

    A builder is called ``(*build_args, data_root, options, augment)`` and returns (train set, test set,
    info); a prepare step ``(*prepare_args, data_root, source, **options)`` and returns a one-line summary.
    """

    build: str
    prepare: str | None = None
    build_args: tuple[str, ...] = ()
    prepare_args: tuple[str, ...] = ()
    # why there is nothing to prepare (when ``prepare`` is None)
    nothing_to_prepare: str = ""
    # a token corpus: items are (inputs, next tokens) windows of token ids, split by contiguous ranges
    tokens: bool = False
    # ``module:function`` of the training input sizes its options give, when the size may vary per batch
    input_sizes: str | None = None


_DATASETS: Registry[DatasetEntry] = Registry(
    "dataset",
    {
        "digits": DatasetEntry("digits:build_digits", nothing_to_prepare="ships with scikit-learn"),
        "synthetic": DatasetEntry("synthetic:build_synthetic", nothing_to_prepare="is generated in memory"),
        "fashion_mnist": DatasetEntry(
            "fashion_mnist:build_fashion_mnist", "fashion_mnist:prepare_fashion_mnist"
        ),
        "cifar10": DatasetEntry(
            "cifar:build_cifar", "cifar:prepare_cifar", build_args=("cifar10",), prepare_args=("cifar10",)
        ),
        "cifar100": DatasetEntry(
            "cifar:build_cifar", "cifar:prepare_cifar", build_args=("cifar100",), prepare_args=("cifar100",)
        ),
        "imagenet16-120": DatasetEntry("imagenet16:build_imagenet16", "imagenet16:prepare_imagenet16"),
        "imagenet": DatasetEntry(
            "imagenet:build_imagenet",
            "imagenet:prepare_imagenet",
            input_sizes="imagenet:training_resolutions",
        ),
        "imagefolder": DatasetEntry("imagefolder:build_imagefolder", "imagefolder:prepare_imagefolder"),
        "tinystories": DatasetEntry(
            "tokens:build_token_datasets",
            "tinystories:prepare_tinystories",
            build_args=("tinystories",),
            tokens=True,
        ),
        "text": DatasetEntry(
            "tokens:build_token_datasets", "text:prepare_text", build_args=("text",), tokens=True
        ),
    },
)


def list_datasets() -> list[str]:
    """Return the names of every dataset, in the order they are listed."""
    return _DATASETS.names()


def dataset_entry(name: str) -> DatasetEntry:
    """Return the entry of dataset ``name``; UserError (the one "unknown dataset" line) otherwise."""
    return _DATASETS.get(name)


def _function(path: str) -> Any:
    module, _, function = path.partition(":")
    return getattr(importlib.import_module(f"tanglenas_cli.data.{module}"), function)


def build_datasets(
    name: str, data_root: Path, options: Mapping[str, Any] | None = None, augment: bool = True
) -> tuple[Any, Any, Any]:
    """Return (train set, test set, info) of dataset ``name``; ``augment``: training augmentation (only)."""
    entry = dataset_entry(name)
    return _function(entry.build)(*entry.build_args, Path(data_root).expanduser(), options, augment)


def prepare_dataset(dataset: str, data_root: Path, source: Path | None = None, **options: Any) -> str:
    """Download or unpack ``dataset`` (from ``source`` if given) into ``data_root``; return a summary.

    ``options`` go to the prepare step (token corpora: tokenizer, tokenizer_file, val_portion, name).
    """
    entry = dataset_entry(dataset)
    if source is not None and not Path(source).expanduser().exists():
        raise UserError(f"--from path not found: {source}")
    if entry.prepare is None:
        ignored = " (--from is not used)" if source is not None else ""
        return f"{dataset}: nothing to prepare, it {entry.nothing_to_prepare}{ignored}"
    return _function(entry.prepare)(*entry.prepare_args, Path(data_root).expanduser(), source, **options)


def training_input_sizes(name: str, options: Mapping[str, Any] | None) -> tuple[int, ...] | None:
    """Return the square input sizes dataset ``name`` trains at under ``options`` (None: one fixed size)."""
    entry = dataset_entry(name)
    return None if entry.input_sizes is None else tuple(_function(entry.input_sizes)(options))
