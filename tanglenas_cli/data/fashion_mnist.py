"""Fashion-MNIST through torchvision: loading it from DATA_ROOT/fashion_mnist, preparing it there."""

from __future__ import annotations

import gzip
import shutil
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torchvision.datasets import FashionMNIST

from tanglenas_cli.data.download import download
from tanglenas_cli.data.files import ensure_dir, one_line, replace_dir, staging_dir
from tanglenas_cli.data.info import DatasetInfo
from tanglenas_cli.data.memory import InMemoryDataset
from tanglenas_cli.data.options import read_options
from tanglenas_cli.data.paths import dataset_dir, prepare_command
from tanglenas_cli.errors import UserError

NAME = "fashion_mnist"
MEAN = (0.2859,)
STD = (0.3530,)
NUM_CLASSES = 10
IMAGE_SIDE = 28
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
OFFICIAL_SIZES = (60_000, 10_000)
DEBIAN_FOLDER = "/usr/share/datasets/fashion-mnist/"
_READ_ERRORS = (RuntimeError, AssertionError, TypeError, ValueError, IndexError)


def raw_folder(data_root: Path) -> Path:
    """Return the folder where torchvision expects the four un-gzipped IDX files."""
    return dataset_dir(data_root, NAME) / "FashionMNIST" / "raw"


def _how_to_prepare(data_root: Path) -> str:
    gz_names = ", ".join(f"{name}.gz" for name in IDX_FILES)
    return (
        f"run `{prepare_command(NAME, data_root)}` (needs internet)"
        f" or `{prepare_command(NAME, data_root, 'DIR')}` with DIR holding {gz_names}"
        f" (Debian's dataset-fashion-mnist package installs them in {DEBIAN_FOLDER});"
        f" they end up in {raw_folder(data_root)}"
    )


def _raw(root: Path, train: bool) -> FashionMNIST:
    return FashionMNIST(str(root), train=train, download=False)


def _open(root: Path, train: bool) -> InMemoryDataset:
    """Decode one split once: float images normalised as ToTensor + Normalize(MEAN, STD) would."""
    split = _raw(root, train)
    images = split.data.unsqueeze(1).to(torch.float32).div(255)
    images = images.sub(torch.tensor(MEAN).view(1, -1, 1, 1)).div(torch.tensor(STD).view(1, -1, 1, 1))
    return InMemoryDataset(images, split.targets)


def build_fashion_mnist(
    data_root: Path, options: Mapping[str, Any] | None = None, augment: bool = False
) -> tuple[InMemoryDataset, InMemoryDataset, DatasetInfo]:
    """Return (train, test, info): ToTensor + Normalize(0.2859, 0.3530), not augmented (`augment` unused).

    Both splits are decoded into memory once (188 MB of float32 for the 70,000 images), so a batch is a
    tensor index, not 64 PIL conversions: a toy-cell search epoch spent about 5% of its time there.
    """
    read_options(NAME, options, {})
    raw = raw_folder(data_root)
    if not all((raw / name).is_file() for name in IDX_FILES):
        raise UserError(f"Fashion-MNIST not found in {raw}; {_how_to_prepare(data_root)}")
    try:
        train, test = _open(raw.parents[1], True), _open(raw.parents[1], False)
    except _READ_ERRORS as error:
        raise UserError(
            f"cannot read Fashion-MNIST in {raw} ({one_line(error, 100)}); {_how_to_prepare(data_root)}"
        ) from None
    info = DatasetInfo(NAME, NUM_CLASSES, (1, IMAGE_SIDE, IMAGE_SIDE), MEAN, STD)
    return train, test, info


def _copy_idx_files(source: Path, destination: Path) -> None:
    if not source.is_dir():
        raise UserError(f"--from {source} must be a folder holding the four Fashion-MNIST IDX files")
    missing = [
        f"{name}.gz"
        for name in IDX_FILES
        if not (source / f"{name}.gz").is_file() and not (source / name).is_file()
    ]
    if missing:
        raise UserError(f"--from {source} lacks {', '.join(missing)} (un-gzipped files are accepted too)")
    ensure_dir(destination)
    for name in IDX_FILES:
        gzipped = source / f"{name}.gz"
        try:
            if gzipped.is_file():
                with gzip.open(gzipped, "rb") as packed, open(destination / name, "wb") as unpacked:
                    shutil.copyfileobj(packed, unpacked)
            else:
                shutil.copyfile(source / name, destination / name)
        except (OSError, EOFError, zlib.error) as error:
            raise UserError(
                f"cannot read {gzipped if gzipped.is_file() else source / name}: {one_line(error)}"
            ) from None


def _verify(root: Path, origin: str) -> tuple[int, int]:
    counts = []
    for train in (True, False):
        try:
            dataset = _raw(root, train)
        except _READ_ERRORS as error:
            raise UserError(
                f"the Fashion-MNIST files from {origin} are not valid IDX files ({one_line(error, 100)})"
            ) from None
        images, labels = dataset.data, dataset.targets
        if (
            images.shape[0] != labels.shape[0]
            or tuple(images.shape[1:]) != (IMAGE_SIDE, IMAGE_SIDE)
            or (labels.numel() and int(labels.max()) >= NUM_CLASSES)
        ):
            split = "train" if train else "t10k"
            raise UserError(
                f"the Fashion-MNIST {split} files from {origin} do not match: {images.shape[0]} images of"
                f" {tuple(images.shape[1:])}, {labels.shape[0]} labels"
                " (need 28x28 images, labels 0..9, equal counts)"
            )
        counts.append(int(labels.shape[0]))
    return counts[0], counts[1]


def prepare_fashion_mnist(data_root: Path, source: Path | None = None) -> str:
    """Put Fashion-MNIST into DATA_ROOT/fashion_mnist (download, or the IDX files in `source`); verify."""
    target = raw_folder(data_root)
    with staging_dir(dataset_dir(data_root, NAME)) as staging:
        staged_raw = staging / "FashionMNIST" / "raw"
        if source is None:
            offline = (
                f"without internet run `{prepare_command(NAME, data_root, 'DIR')}` with DIR holding the four"
                f" IDX .gz files (Debian's dataset-fashion-mnist package installs them in {DEBIAN_FOLDER})"
            )
            download("Fashion-MNIST", lambda: FashionMNIST(str(staging), train=True, download=True), offline)
            origin = "the download"
        else:
            _copy_idx_files(Path(source).expanduser(), staged_raw)
            origin = str(source)
        train_count, test_count = _verify(staging, origin)
        replace_dir(staged_raw, target)
    note = "" if (train_count, test_count) == OFFICIAL_SIZES else " (not the official 60,000 / 10,000)"
    return f"fashion_mnist: {train_count:,} train / {test_count:,} test images in {target}{note}"
