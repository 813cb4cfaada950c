"""CIFAR-10 / CIFAR-100 through torchvision: loading from DATA_ROOT/cifar10|cifar100 and preparing them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torchvision import transforms
from torchvision.datasets import CIFAR10, CIFAR100

from tanglenas_cli.data.augment import randaugment, random_erasing
from tanglenas_cli.data.cutout import Cutout
from tanglenas_cli.data.download import download
from tanglenas_cli.data.files import one_line, replace_dir, staging_dir, unpack
from tanglenas_cli.data.info import DatasetInfo
from tanglenas_cli.data.options import int_option, read_options
from tanglenas_cli.data.paths import dataset_dir, prepare_command
from tanglenas_cli.errors import UserError, check_name

MEAN = (125.3 / 255, 123.0 / 255, 113.9 / 255)
STD = (63.0 / 255, 62.1 / 255, 66.7 / 255)
# size: resize the 32 px images (e.g. 224 for ViTs); randaugment: a timm RandAugment config string;
# random_erasing: timm's random-erasing probability
DEFAULTS: dict[str, Any] = {"cutout": 0, "size": 32, "randaugment": None, "random_erasing": 0.0}
IMAGE_SIDE = 32
CROP_PADDING = 4
OFFICIAL_SIZES = (50_000, 10_000)
_VARIANTS: dict[str, tuple[type[CIFAR10], int, str]] = {
    "cifar10": (CIFAR10, 10, "CIFAR-10"),
    "cifar100": (CIFAR100, 100, "CIFAR-100"),
}
_READ_ERRORS = (RuntimeError, OSError, EOFError, ValueError, KeyError, IndexError)


def _variant(name: str) -> tuple[type[CIFAR10], int, str]:
    return _VARIANTS[check_name("CIFAR dataset", name, _VARIANTS)]


def batches_folder(name: str, data_root: Path) -> Path:
    """Return where torchvision expects the python batches, e.g. DATA_ROOT/cifar10/cifar-10-batches-py."""
    return dataset_dir(data_root, name) / _variant(name)[0].base_folder


def _how_to_prepare(name: str, data_root: Path) -> str:
    dataset_class = _variant(name)[0]
    return (
        f"run `{prepare_command(name, data_root)}` (needs internet)"
        f" or `{prepare_command(name, data_root, 'PATH')}` with PATH the official {dataset_class.filename}"
        f" or its extracted {dataset_class.base_folder} folder;"
        f" it ends up in {batches_folder(name, data_root)}"
    )


def _transforms(augment: bool, cutout: int, size: int, rand: str | None, erasing: float) -> tuple[Any, Any]:
    resize = [transforms.Resize(size)] if size != IMAGE_SIDE else []
    normalise = [transforms.ToTensor(), transforms.Normalize(MEAN, STD)]
    test_transform = transforms.Compose([*resize, *normalise])
    if not augment:
        return test_transform, test_transform
    steps = [
        *resize,
        transforms.RandomCrop(size, padding=CROP_PADDING * size // IMAGE_SIDE),
        transforms.RandomHorizontalFlip(),
        *randaugment(rand, MEAN),
        *normalise,
        *random_erasing(erasing),
    ]
    if cutout > 0:
        steps.append(Cutout(cutout))
    return transforms.Compose(steps), test_transform


def build_cifar(
    name: str, data_root: Path, options: Mapping[str, Any] | None = None, augment: bool = True
) -> tuple[CIFAR10, CIFAR10, DatasetInfo]:
    """Return (train, test, info): crop 32 pad 4 + flip (+ cutout if > 0) for training, Normalize for both."""
    dataset_class, num_classes, title = _variant(name)
    settings = read_options(name, options, DEFAULTS)
    cutout = int_option(name, "cutout", settings["cutout"])
    size = int_option(name, "size", settings["size"], minimum=8)
    erasing = settings["random_erasing"]
    if isinstance(erasing, bool) or not isinstance(erasing, int | float):
        raise UserError(f"dataset option random_erasing={erasing!r} for {name} must be a number")
    rand = settings["randaugment"]
    if rand is not None and not isinstance(rand, str):
        raise UserError(
            f"dataset option randaugment={rand!r} for {name} must be a string like rand-m9-mstd0.5-inc1"
        )
    root = dataset_dir(data_root, name)
    if not (root / dataset_class.base_folder).is_dir():
        raise UserError(
            f"{title} not found in {batches_folder(name, data_root)}; {_how_to_prepare(name, data_root)}"
        )
    train_transform, test_transform = _transforms(augment, cutout, size, rand, float(erasing))
    try:
        train = dataset_class(str(root), train=True, transform=train_transform, download=False)
        test = dataset_class(str(root), train=False, transform=test_transform, download=False)
    except _READ_ERRORS as error:
        raise UserError(
            f"{title} in {batches_folder(name, data_root)} is incomplete or corrupted"
            f" ({one_line(error, 100)}); {_how_to_prepare(name, data_root)}"
        ) from None
    info = DatasetInfo(name, num_classes, (3, size, size), MEAN, STD)
    return train, test, info


def _find_batches(folder: Path, base_folder: str) -> Path | None:
    for candidate in (folder / base_folder, *sorted(folder.glob(f"*/{base_folder}"))):
        if candidate.is_dir():
            return candidate
    return None


def _stage_source(name: str, source: Path, staging: Path) -> None:
    """Put the batches folder of ``source`` (it, a folder or tar holding it, or a folder holding the tar)
    at ``staging/<base folder>``."""
    dataset_class, _, title = _variant(name)
    base_folder, archive_name = dataset_class.base_folder, dataset_class.filename

    def find(folder: Path) -> Path | None:
        is_batches = (folder / dataset_class.meta["filename"]).is_file()
        return folder if is_batches else _find_batches(folder, base_folder)

    found = unpack(source, staging, find)
    if found is None and (source / archive_name).is_file():
        found = unpack(source / archive_name, staging, find)
    if found is None:
        raise UserError(
            f"--from {source} is neither the official {archive_name} nor holds {base_folder} for {title}"
        )
    found.rename(staging / base_folder)


def _verify(name: str, root: Path, origin: str) -> tuple[int, int]:
    dataset_class, _, title = _variant(name)
    try:
        counts = tuple(len(dataset_class(str(root), train=train, download=False)) for train in (True, False))
    except _READ_ERRORS as error:
        raise UserError(
            f"the {title} files from {origin} do not match the official {dataset_class.filename}"
            f" ({one_line(error, 100)})"
        ) from None
    return counts[0], counts[1]


def prepare_cifar(name: str, data_root: Path, source: Path | None = None) -> str:
    """Put CIFAR-10/100 into DATA_ROOT/NAME (download, or the official tar.gz or folder `source`); verify."""
    dataset_class, _, title = _variant(name)
    target = batches_folder(name, data_root)
    with staging_dir(dataset_dir(data_root, name)) as staging:
        if source is None:
            offline = (
                f"without internet run `{prepare_command(name, data_root, 'PATH')}` with PATH the official"
                f" {dataset_class.filename} (or its extracted {dataset_class.base_folder} folder)"
            )
            download(title, lambda: dataset_class(str(staging), train=True, download=True), offline)
            origin = "the download"
        else:
            _stage_source(name, Path(source).expanduser(), staging)
            origin = str(source)
        train_count, test_count = _verify(name, staging, origin)
        replace_dir(staging / dataset_class.base_folder, target)
    return f"{name}: {train_count:,} train / {test_count:,} test images in {target}"
