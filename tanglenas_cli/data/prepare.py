"""run_prepare: the `tanglenas prepare-data DATASET [--from PATH]` step, one dataset at a time."""

from __future__ import annotations

from pathlib import Path

from tanglenas_cli.data.cifar import prepare_cifar
from tanglenas_cli.data.fashion_mnist import prepare_fashion_mnist
from tanglenas_cli.data.imagefolder import prepare_imagefolder
from tanglenas_cli.data.imagenet import prepare_imagenet
from tanglenas_cli.data.imagenet16 import prepare_imagenet16
from tanglenas_cli.data.names import check_available
from tanglenas_cli.errors import UserError

_NOTHING_TO_PREPARE = {
    "digits": "ships with scikit-learn",
    "synthetic": "is generated in memory",
}


def run_prepare(dataset: str, data_root: Path, source: Path | None = None) -> str:
    """Download or unpack `dataset` (from `source` if given) into `data_root`; return a one-line summary."""
    check_available(dataset)
    data_root = Path(data_root).expanduser()
    if source is not None and not Path(source).expanduser().exists():
        raise UserError(f"--from path not found: {source}")
    if dataset in _NOTHING_TO_PREPARE:
        ignored = " (--from is not used)" if source is not None else ""
        return f"{dataset}: nothing to prepare, it {_NOTHING_TO_PREPARE[dataset]}{ignored}"
    if dataset == "fashion_mnist":
        return prepare_fashion_mnist(data_root, source)
    if dataset in ("cifar10", "cifar100"):
        return prepare_cifar(dataset, data_root, source)
    if dataset == "imagenet16-120":
        return prepare_imagenet16(data_root, source)
    if dataset == "imagenet":
        return prepare_imagenet(data_root, source)
    return prepare_imagefolder(data_root, source)
