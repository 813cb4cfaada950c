"""The splits of a dataset for search, training and evaluation, from its training and test sets.

Search: the weights train on the first ``train_portion`` of the training set (or all but a random
hold-out of ``arch_split_size`` items), the architecture on the rest, and validation runs on the arch
items without augmentation. Training: ``val_portion`` held out at the end for validation. Evaluation:
that hold-out, else the search's arch split. Token corpora split by contiguous token ranges and
validate on whole blocks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from tanglenas_cli.data.info import DatasetInfo
from tanglenas_cli.data.registry import build_datasets
from tanglenas_cli.data.tokens import TokenWindows
from tanglenas_cli.errors import UserError


def search_splits(train_set: Dataset, train_portion: float) -> tuple[Dataset, Dataset]:
    """Return (weight split = first floor(train_portion * N) items, arch split = the rest), no shuffling."""
    if isinstance(train_portion, bool) or not 0 < train_portion <= 1:
        raise UserError(f"train_portion must be in (0, 1], got {train_portion!r}")
    if isinstance(train_set, TokenWindows):  # contiguous token ranges, as the corpus is ordered
        first, rest = train_set.split(train_portion)
        return first, rest  # type: ignore[return-value]
    total = len(train_set)
    weight_size = math.floor(train_portion * total)
    if weight_size == 0:
        raise UserError(
            f"train_portion {train_portion} of {total} training items leaves no items to train weights on"
        )
    return Subset(train_set, list(range(weight_size))), Subset(train_set, list(range(weight_size, total)))


def arch_holdout(size: int, arch_split_size: int) -> tuple[list[int], list[int]]:
    """Return (weight indices, arch indices): ``arch_split_size`` of ``range(size)`` drawn with seed 0.

    The arch indices keep their random order (a partial validation pass still sees every class); the
    weight indices, the rest, are sorted.
    """
    if arch_split_size >= size:
        raise UserError(
            f"arch_split_size={arch_split_size} must be below the {size:,} training items"
            " (the rest trains the weights)"
        )
    order = torch.randperm(size, generator=torch.Generator().manual_seed(0))
    held = order[:arch_split_size].tolist()
    return sorted(order[arch_split_size:].tolist()), held


def _unaugmented(held: Dataset, plain_train: Dataset) -> Dataset:
    """Return the items of ``held`` (a part of the training set) without augmentation, to validate on."""
    if isinstance(held, TokenWindows):
        return held.blocks()
    return Subset(plain_train, list(held.indices))  # type: ignore[attr-defined]


@dataclass
class SearchData:
    """The three splits of a search: weights (augmented), arch (augmented), and arch for validation.

    With no arch split (``train_portion=1`` under ``search_strategy=simultaneous``) the search
    validates on the dataset's test split (``valid_is_test``): it reports those numbers, but nothing
    may select an architecture on them.
    """

    weight_split: Dataset
    arch_split: Dataset
    valid_split: Dataset
    info: DatasetInfo
    valid_is_test: bool = False


def search_data(
    name: str,
    data_root: Path,
    options: Mapping[str, Any],
    train_portion: float,
    arch_split_size: int | None = None,
    train_subset: int | None = None,
) -> SearchData:
    """Return the weight / arch splits of dataset ``name``'s training set and the validation split.

    ``train_subset`` keeps that many training items (drawn with seed 0; token corpora: the first that
    many blocks). The arch split is the last ``1 - train_portion`` of them, or ``arch_split_size`` items
    drawn at random (seed 0).
    """
    train_set, test_set, info = build_datasets(name, data_root, options, augment=True)
    tokens = isinstance(train_set, TokenWindows)
    if tokens and arch_split_size is not None:
        raise UserError(
            f"arch_split_size holds out images; {name} is a token corpus, split by train_portion"
            " (remove arch_split_size)"
        )
    plain_train = train_set if tokens else build_datasets(name, data_root, options, augment=False)[0]
    if tokens and train_subset is not None:
        train_set = plain_train = train_set.head(train_subset * train_set.block_size)
    elif train_subset is not None and train_subset < len(train_set):
        order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(0))
        chosen = order[:train_subset].tolist()
        train_set, plain_train = Subset(train_set, chosen), Subset(plain_train, chosen)
    if tokens and train_portion == 1:  # no arch split (simultaneous search): validate on the test tokens
        return SearchData(train_set, Subset(train_set, []), test_set, info, valid_is_test=True)
    if arch_split_size is not None:
        weight_indices, arch_indices = arch_holdout(len(train_set), arch_split_size)
        weight_split, arch_split = Subset(train_set, weight_indices), Subset(train_set, arch_indices)
    else:
        weight_split, arch_split = search_splits(train_set, train_portion)
    if len(weight_split) == 0:  # type: ignore[arg-type]
        raise UserError(f"train_portion={train_portion} leaves no training data for the weights")
    if len(arch_split) == 0:  # type: ignore[arg-type]  # simultaneous search: validate on the test split
        return SearchData(weight_split, arch_split, test_set, info, valid_is_test=True)
    return SearchData(weight_split, arch_split, _unaugmented(arch_split, plain_train), info)


def train_data(name: str, data_root: Path, options: Mapping[str, Any],
               val_portion: float) -> tuple[Dataset, Dataset | None, Dataset, DatasetInfo]:  # fmt: skip
    """Return (training part, validation part or None, test set, info) of dataset ``name`` for ``train``.

    The validation part is the last ``val_portion`` of the training set, without augmentation (0: none).
    """
    train_set, test_set, info = build_datasets(name, data_root, options, augment=True)
    if val_portion == 0:
        return train_set, None, test_set, info
    kept, held = search_splits(train_set, 1 - val_portion)
    if len(held) == 0:  # type: ignore[arg-type]
        raise UserError(f"val_portion={val_portion} holds out no training samples")
    plain = (
        train_set if isinstance(held, TokenWindows) else build_datasets(name, data_root, options, False)[0]
    )
    return kept, _unaugmented(held, plain), test_set, info


def eval_data(name: str, data_root: Path, options: Mapping[str, Any], split: str, val_portion: float,
              train_portion: float) -> Dataset:  # fmt: skip
    """Return the ``split`` ("test" or "valid") of dataset ``name`` for ``eval``, without augmentation.

    "valid" is the training run's ``val_portion`` hold-out, else the search's arch split.
    """
    train_set, test_set, _ = build_datasets(name, data_root, options, augment=False)
    if split == "test":
        return test_set
    held = search_splits(train_set, 1 - val_portion if val_portion > 0 else train_portion)[1]
    return _unaugmented(held, train_set)
