"""The user's own images in ROOT/train/<class>/* and ROOT/test/<class>/* (torchvision ImageFolder)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision import transforms
from torchvision.datasets import ImageFolder

from tanglenas_cli.data.augment import check_augment_options, randaugment, random_erasing
from tanglenas_cli.data.files import one_line, replace_dir, staging_dir, unpack
from tanglenas_cli.data.info import DatasetInfo
from tanglenas_cli.data.options import floats_option, int_option, read_options
from tanglenas_cli.data.paths import dataset_dir, prepare_command
from tanglenas_cli.errors import UserError

NAME = "imagefolder"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHANNELS = 3
SPLITS = ("train", "test")
DEFAULTS: dict[str, Any] = {
    "path": None,
    "size": None,
    "mean": IMAGENET_MEAN,
    "std": IMAGENET_STD,
    "randaugment": None,
    "random_erasing": 0.0,
}
LAYOUT = "ROOT/train/<class>/<image> and ROOT/test/<class>/<image> (same class folders in both)"


# The last listings, keyed by folder and the modification times of it and its class folders: a search
# builds the training set twice (augmented and plain), and ImageNet's listing is 1.28M files.
_LISTINGS: dict[tuple, ImageFolder] = {}


def _listing_key(split_dir: Path) -> tuple:
    folders = [split_dir, *sorted(p for p in split_dir.iterdir() if p.is_dir())]
    return (str(split_dir.resolve()), *((p.name, p.stat().st_mtime_ns) for p in folders))


def _scan(split_dir: Path, layout: str = LAYOUT) -> ImageFolder:
    try:
        key = _listing_key(split_dir)
        if key not in _LISTINGS:
            if len(_LISTINGS) >= 4:
                _LISTINGS.pop(next(iter(_LISTINGS)))
            _LISTINGS[key] = ImageFolder(str(split_dir))
    except (FileNotFoundError, OSError) as error:
        raise UserError(
            f"no images found under {split_dir} ({one_line(error, 100)}); expected {layout}"
        ) from None
    return copy.copy(_LISTINGS[key])  # its own transform; mix_classes replaces the lists it orders


def check_layout(
    root: Path, hint: str, splits: tuple[str, str] = SPLITS, layout: str = LAYOUT
) -> tuple[ImageFolder, ImageFolder]:
    """Return the two splits of ``root`` (``train`` and ``test``, or e.g. ``val``) as ImageFolders.

    UserError when a split folder is missing, holds no images, or the class folders differ.
    """
    missing = [str(root / split) for split in splits if not (root / split).is_dir()]
    if missing:
        raise UserError(f"image folder not found: {', '.join(missing)} missing; expected {layout}; {hint}")
    train, test = _scan(root / splits[0], layout), _scan(root / splits[1], layout)
    if train.classes != test.classes:
        only = ", ".join(sorted(set(train.classes) ^ set(test.classes))[:5])
        pair = f"{splits[0]}/ and {splits[1]}/"
        raise UserError(f"{root}: {pair} need the same class folders; differing: {only}")
    return train, test


def _native_size(path: str) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            width, height = image.size
    except OSError as error:
        raise UserError(f"cannot read image {path}: {one_line(error, 100)}") from None
    return height, width


def mix_classes(folder: ImageFolder) -> None:
    """Put the samples in a fixed random order (seed 0); ImageFolder lists them class by class.

    Contiguous splits (the weight / arch split of a search, ``val_portion``) and the first batches of an
    evaluation (``eval_batches``) then hold every class, not a block of them.
    """
    order = torch.randperm(len(folder.samples), generator=torch.Generator().manual_seed(0)).tolist()
    folder.samples = [folder.samples[i] for i in order]
    folder.imgs = folder.samples
    folder.targets = [target for _, target in folder.samples]


def build_imagefolder(
    data_root: Path, options: Mapping[str, Any] | None = None, augment: bool = True
) -> tuple[ImageFolder, ImageFolder, DatasetInfo]:
    """Return (train, test, info): resize to `size` (default: the first image's size), crop + flip."""
    settings = read_options(NAME, options, DEFAULTS)
    if settings["path"] is not None and not isinstance(settings["path"], (str, Path)):
        raise UserError(f"dataset option path={settings['path']!r} for {NAME} must be a folder path")
    root = (
        Path(settings["path"]).expanduser() if settings["path"] is not None else dataset_dir(data_root, NAME)
    )
    prepare = prepare_command(NAME, data_root, "DIR_OR_TAR")
    hint = f"put your images there, set dataset_options.path, or run `{prepare}`"
    mean = floats_option(NAME, "mean", settings["mean"], CHANNELS)
    std = floats_option(NAME, "std", settings["std"], CHANNELS, positive=True)
    size = None if settings["size"] is None else int_option(NAME, "size", settings["size"], minimum=1)
    train, test = check_layout(root, hint)
    mix_classes(train)
    mix_classes(test)
    height, width = _native_size(train.samples[0][0]) if size is None else (size, size)
    resize_normalise = [
        transforms.Resize((height, width)),
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ]
    test.transform = transforms.Compose(resize_normalise)
    if augment:
        crop = transforms.RandomCrop((height, width), padding=min(height, width) // 8)
        rand, erasing = settings["randaugment"], settings["random_erasing"]
        check_augment_options(NAME, rand, erasing)
        train.transform = transforms.Compose(
            [resize_normalise[0], crop, transforms.RandomHorizontalFlip(), *randaugment(rand, mean),
             *resize_normalise[1:], *random_erasing(float(erasing))]
        )  # fmt: skip
    else:
        train.transform = transforms.Compose(resize_normalise)
    info = DatasetInfo(NAME, len(train.classes), (CHANNELS, height, width), mean, std)
    return train, test, info


def _find_root(folder: Path, splits: tuple[str, str] = SPLITS) -> Path | None:
    candidates = [folder, *sorted(child for child in folder.iterdir() if child.is_dir())]
    for candidate in candidates:
        if all((candidate / split).is_dir() for split in splits):
            return candidate
    return None


def prepare_image_tree(
    name: str, data_root: Path, source: Path | None, splits: tuple[str, str] = SPLITS, layout: str = LAYOUT
) -> str:
    """Copy (folder) or safely extract (tar) `source` holding the two `splits` into DATA_ROOT/`name`."""
    folders = f"{splits[0]}/ and {splits[1]}/"
    if source is None:
        raise UserError(f"{name} needs --from DIR_OR_TAR holding {layout.replace('ROOT/', '')}")
    source = Path(source).expanduser()
    target = dataset_dir(data_root, name)
    with staging_dir(Path(data_root).expanduser()) as staging:
        root = unpack(source, staging, lambda folder: _find_root(folder, splits))
        if root is None:
            raise UserError(
                f"--from {source} (a folder or tar archive) holds no {folders} folders; expected {layout}"
            )
        train, held = check_layout(root, f"check --from {source}", splits, layout)
        replace_dir(root, target)
    counts = f"{len(train):,} {splits[0]} / {len(held):,} {splits[1]} images"
    return f"{name}: {counts}, {len(train.classes)} classes, in {target}"


def prepare_imagefolder(data_root: Path, source: Path | None = None) -> str:
    """Copy (folder) or safely extract (tar) `source` holding train/ and test/ into DATA_ROOT/imagefolder."""
    return prepare_image_tree(NAME, data_root, source)
