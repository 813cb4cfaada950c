"""build_datasets: one entry point from a dataset name to (train set, test set, info)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from tanglenas_cli.data.cifar import build_cifar
from tanglenas_cli.data.digits import build_digits
from tanglenas_cli.data.fashion_mnist import build_fashion_mnist
from tanglenas_cli.data.imagefolder import build_imagefolder
from tanglenas_cli.data.imagenet import build_imagenet
from tanglenas_cli.data.imagenet16 import build_imagenet16
from tanglenas_cli.data.info import DatasetInfo
from tanglenas_cli.data.names import check_available
from tanglenas_cli.data.synthetic import build_synthetic
from tanglenas_cli.data.tokens import TOKEN_DATASETS, build_token_datasets


def build_datasets(
    name: str, data_root: Path, options: Mapping[str, Any] | None = None, augment: bool = True
) -> tuple[Dataset, Dataset, DatasetInfo]:
    """Return (train set, test set, info) of dataset `name`; `augment` toggles training augmentation only."""
    check_available(name)
    data_root = Path(data_root).expanduser()
    if name == "digits":
        return build_digits(options)
    if name == "synthetic":
        return build_synthetic(options)
    if name == "fashion_mnist":
        return build_fashion_mnist(data_root, options)
    if name in ("cifar10", "cifar100"):
        return build_cifar(name, data_root, options, augment)
    if name in TOKEN_DATASETS:  # token corpora: no augmentation
        return build_token_datasets(name, data_root, options)
    if name == "imagenet16-120":
        return build_imagenet16(data_root, options, augment)
    if name == "imagenet":
        return build_imagenet(data_root, options, augment)
    return build_imagefolder(data_root, options, augment)
