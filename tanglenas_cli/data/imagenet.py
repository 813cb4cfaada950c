"""ImageNet-1k as an image folder (ROOT/train/<class>/* and ROOT/val/<class>/*) with OFA's search pipeline.

Training samples are random-resized-cropped (scale 0.08-1) to the largest training resolution, flipped
and colour-distorted (OFA's "tf" distortion: brightness 32/255, saturation 0.5). Each batch is then
resized as a whole to a resolution drawn from ``resolutions`` (128..224 in steps of 4 by default), as
OFA trains with an image size sampled per batch: see :class:`BatchResolutions`, which the engine's
loaders apply. Test images: Resize(size / 0.875) + CenterCrop(size), ImageNet mean / std.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset, Subset
from torchvision import transforms
from torchvision.datasets import ImageFolder

from tanglenas_cli.data.augment import check_augment_options, randaugment, random_erasing
from tanglenas_cli.data.imagefolder import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    check_layout,
    mix_classes,
    prepare_image_tree,
)
from tanglenas_cli.data.info import DatasetInfo
from tanglenas_cli.data.options import int_option, read_options
from tanglenas_cli.data.paths import dataset_dir, prepare_command
from tanglenas_cli.errors import UserError

NAME = "imagenet"
SPLITS = ("train", "val")
CHANNELS = 3
RESOLUTION_STEP = 4  # OFA samples training image sizes in steps of 4 pixels
CROP_SCALE = (0.08, 1.0)
TEST_CROP_RATIO = 0.875  # resize to size / 0.875 (256 for 224), then centre-crop size
DEFAULTS: dict[str, Any] = {
    "path": None,
    "size": 224,
    "resolutions": [128, 224],
    "color_jitter": "tf",
    "randaugment": None,
    "random_erasing": 0.0,
}
LAYOUT = "ROOT/train/<class>/<image> and ROOT/val/<class>/<image> (same class folders in both)"
# OFA's colour distortions: "tf" (TensorFlow's, used for MobileNetV3 / OFA), "torch" (PyTorch example's)
COLOR_JITTERS: dict[str, dict[str, float]] = {
    "tf": {"brightness": 32.0 / 255.0, "saturation": 0.5},
    "torch": {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1},
}


class BatchResolutions:
    """A per-batch training resolution: batch ``number`` of a loader seeded ``seed`` is resized to
    ``size_for(seed, number)``, drawn uniformly from ``sizes`` by a generator seeded by (seed, number).

    The draw depends only on the loader's seed and the batch's position in its pass, so a resumed
    loader (which knows both) draws the same sizes, and every data-parallel process the same size.
    """

    def __init__(self, sizes: Sequence[int]) -> None:
        self.sizes = tuple(int(size) for size in sizes)
        self.max_size = max(self.sizes)

    def size_for(self, seed: int, number: int) -> int:
        """Return the resolution of batch ``number`` of a loader seeded ``seed``."""
        if len(self.sizes) == 1:
            return self.sizes[0]
        generator = np.random.default_rng([int(seed), int(number)])
        return self.sizes[int(generator.integers(len(self.sizes)))]

    def __call__(self, images: Tensor, size: int) -> Tensor:
        """Return the batch ``images`` (N, C, H, W) resized to ``size`` x ``size`` (unchanged if already)."""
        if tuple(images.shape[-2:]) == (size, size):
            return images
        return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)

    def __repr__(self) -> str:
        return f"BatchResolutions({self.sizes[0]}..{self.sizes[-1]}, {len(self.sizes)} sizes)"


def batch_transform_of(dataset: Dataset) -> BatchResolutions | None:
    """Return the per-batch transform of ``dataset`` (looking through Subsets), or None."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    transform = getattr(dataset, "batch_transform", None)
    return transform if isinstance(transform, BatchResolutions) else None


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def training_resolutions(options: Mapping[str, Any] | None) -> tuple[int, ...]:
    """Return the training resolutions that ``options`` of the imagenet dataset give."""
    return resolution_list(read_options(NAME, options, DEFAULTS)["resolutions"])


def resolution_list(value: Any) -> tuple[int, ...]:
    """Return the training resolutions of option ``resolutions``: one size, or [min, max] in steps of 4."""
    if _is_int(value):
        return (int_option(NAME, "resolutions", value, minimum=1),)
    bad = (
        f"dataset option resolutions={value!r} for {NAME} must be one size or [min, max] with"
        f" {RESOLUTION_STEP} <= min <= max, both multiples of {RESOLUTION_STEP} (e.g. [128, 224])"
    )
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) not in (1, 2):
        raise UserError(bad)
    if not all(_is_int(item) for item in value):
        raise UserError(bad)
    if len(value) == 1:
        return resolution_list(value[0])
    low, high = int(value[0]), int(value[1])
    if not RESOLUTION_STEP <= low <= high or low % RESOLUTION_STEP or high % RESOLUTION_STEP:
        raise UserError(bad)
    return tuple(range(low, high + 1, RESOLUTION_STEP))


def color_jitter(value: Any) -> list[Any]:
    """Return ``[ColorJitter]`` for ``tf`` / ``torch``, ``[]`` for 0 / false / none."""
    if value is None or value is False or (isinstance(value, (int, float)) and value == 0) or value == "none":
        return []
    if isinstance(value, str) and value in COLOR_JITTERS:
        return [transforms.ColorJitter(**COLOR_JITTERS[value])]
    raise UserError(
        f"dataset option color_jitter={value!r} for {NAME} must be tf (OFA's: brightness 32/255,"
        " saturation 0.5), torch, or 0 / none to disable"
    )


def _train_augmentations(settings: Mapping[str, Any], jitter: Any, max_size: int) -> list[Any]:
    rand, erasing = settings["randaugment"], settings["random_erasing"]
    check_augment_options(NAME, rand, erasing)
    return [
        transforms.RandomResizedCrop(max_size, scale=CROP_SCALE),
        transforms.RandomHorizontalFlip(),
        *color_jitter(jitter),
        *randaugment(rand, IMAGENET_MEAN),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        *random_erasing(float(erasing)),
    ]


def build_imagenet(
    data_root: Path, options: Mapping[str, Any] | None = None, augment: bool = True
) -> tuple[ImageFolder, ImageFolder, DatasetInfo]:
    """Return (train, val, info) of the ImageNet folder; the train set carries ``batch_transform``.

    Options: ``path`` (default DATA_ROOT/imagenet), ``size`` (test resolution, 224), ``resolutions``
    (training resolutions per batch, [128, 224] in steps of 4, or one size), ``color_jitter`` (tf,
    torch, or 0 / none), ``randaugment`` and ``random_erasing`` (timm's, off by default).
    """
    settings = read_options(NAME, options, DEFAULTS)
    # read_options keeps the default for None; for color_jitter an explicit None means "off"
    off = isinstance(options, Mapping) and "color_jitter" in options and options["color_jitter"] is None
    jitter = None if off else settings["color_jitter"]
    if settings["path"] is not None and not isinstance(settings["path"], (str, Path)):
        raise UserError(f"dataset option path={settings['path']!r} for {NAME} must be a folder path")
    path = settings["path"]
    root = Path(path).expanduser() if path is not None else dataset_dir(data_root, NAME)
    size = int_option(NAME, "size", settings["size"], minimum=1)
    sizes = resolution_list(settings["resolutions"])
    train_transforms = _train_augmentations(settings, jitter, max(sizes))  # checks the options either way
    prepare = prepare_command(NAME, data_root, "DIR_OR_TAR")
    hint = f"put the images there, set dataset_options.path, or run `{prepare}`"
    train, val = check_layout(root, hint, SPLITS, LAYOUT)
    mix_classes(train)
    mix_classes(val)
    test_transform = transforms.Compose([
        transforms.Resize(int(size / TEST_CROP_RATIO)),
        transforms.CenterCrop(size),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])  # fmt: skip
    val.transform = test_transform
    if augment:
        train.transform = transforms.Compose(train_transforms)
        train.batch_transform = BatchResolutions(sizes)  # type: ignore[attr-defined]
    else:
        train.transform = test_transform
    info = DatasetInfo(NAME, len(train.classes), (CHANNELS, size, size), IMAGENET_MEAN, IMAGENET_STD)
    return train, val, info


def prepare_imagenet(data_root: Path, source: Path | None = None) -> str:
    """Copy (folder) or safely extract (tar) `source` holding train/ and val/ into DATA_ROOT/imagenet."""
    return prepare_image_tree(NAME, data_root, source, SPLITS, LAYOUT)
