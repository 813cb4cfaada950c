"""The search-time split of a training set: weights train on the first part, the architecture on the rest."""

from __future__ import annotations

import math
from collections.abc import Sized

from torch.utils.data import Dataset, Subset

from tanglenas_cli.data.tokens import TokenWindows
from tanglenas_cli.errors import UserError


def search_splits(train_set: Dataset, train_portion: float) -> tuple[Dataset, Dataset]:
    """Return (weight split = first floor(train_portion * N) items, arch split = the rest), no shuffling."""
    if isinstance(train_portion, bool) or not 0 < train_portion <= 1:
        raise UserError(f"train_portion must be in (0, 1], got {train_portion!r}")
    if not isinstance(train_set, Sized):
        raise TypeError("search_splits needs a dataset with a length")
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
