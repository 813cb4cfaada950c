"""ImageNet16-120: NB201's 16x16 down-sampled ImageNet, the first 120 classes (reference §7).

Files (as distributed with NAS-Bench-201): ``train_data_batch_1`` .. ``train_data_batch_10`` and
``val_data``, pickled dicts with ``data`` (N x 3072 uint8, channel-major 3x16x16) and ``labels``
(1-based ImageNet classes). Classes 1..120 give 151,700 training and 6,000 test images.
"""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import transforms

from tanglenas_cli.data.files import one_line, replace_dir, staging_dir
from tanglenas_cli.data.info import DatasetInfo
from tanglenas_cli.data.options import read_options
from tanglenas_cli.data.paths import dataset_dir, prepare_command
from tanglenas_cli.errors import UserError

NAME = "imagenet16-120"
FILES = (*(f"train_data_batch_{i}" for i in range(1, 11)), "val_data")
NUM_CLASSES = 120
MEAN = tuple(v / 255 for v in (122.68, 116.66, 104.01))
STD = tuple(v / 255 for v in (63.22, 61.26, 65.09))
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # how protocol-2 pickles store bytes; it only encodes text
}


class _BatchUnpickler(pickle.Unpickler):
    """Allows only the numpy globals an array needs; anything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        if module.startswith("numpy.core"):
            module = module.replace("numpy.core", "numpy._core")
        return super().find_class(module, name)


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as handle:
            batch = _BatchUnpickler(handle, encoding="latin1").load()
        data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 16, 16)
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (OSError, EOFError, KeyError, TypeError, ValueError, pickle.UnpicklingError) as error:
        raise UserError(f"cannot read ImageNet16 batch {path}: {one_line(error, 120)}") from None
    if len(data) != len(labels):
        raise UserError(f"ImageNet16 batch {path} has {len(data)} images but {len(labels)} labels")
    return data, labels


class ImageNet16(Dataset):
    """The images of some batch files whose 1-based label is at most ``num_classes``."""

    def __init__(self, files: list[Path], num_classes: int, transform: Any) -> None:
        images, labels = [], []
        for path in files:
            data, label = _read_batch(path)
            keep = label <= num_classes
            images.append(data[keep])
            labels.append(label[keep] - 1)
        self.images = np.concatenate(images)
        self.labels = np.concatenate(labels)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(self.images[index]).float().div_(255)
        return self.transform(image), int(self.labels[index])

    @property
    def targets(self) -> list[int]:
        """Return all labels as a list of ints."""
        return self.labels.tolist()


def _how_to_prepare(data_root: Path) -> str:
    return (
        f"get the NAS-Bench-201 ImageNet16 files ({FILES[0]} .. train_data_batch_10, val_data) and run "
        f"`{prepare_command(NAME, data_root, 'DIR')}`; they end up in {dataset_dir(data_root, NAME)}"
    )


def build_imagenet16(
    data_root: Path, options: Mapping[str, Any] | None, augment: bool
) -> tuple[Dataset, Dataset, DatasetInfo]:
    """Return (train, test, info): horizontal flip + random crop 16 (pad 2) when ``augment``."""
    read_options(NAME, options, {})
    folder = dataset_dir(data_root, NAME)
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise UserError(
            f"ImageNet16-120 incomplete in {folder} (missing {', '.join(missing)}); "
            f"{_how_to_prepare(data_root)}"
        )
    normalize = transforms.Normalize(MEAN, STD)
    train_transform = (
        transforms.Compose(
            [transforms.RandomHorizontalFlip(), transforms.RandomCrop(16, padding=2), normalize]
        )
        if augment
        else normalize
    )
    train = ImageNet16([folder / name for name in FILES[:-1]], NUM_CLASSES, train_transform)
    test = ImageNet16([folder / FILES[-1]], NUM_CLASSES, normalize)
    return train, test, DatasetInfo(NAME, NUM_CLASSES, (3, 16, 16), MEAN, STD)


def prepare_imagenet16(data_root: Path, source: Path | None) -> str:
    """Check and copy the ImageNet16 batch files from ``source`` into the data root."""
    if source is None:
        raise UserError(f"ImageNet16-120 has no public download; {_how_to_prepare(data_root)}")
    source = Path(source).expanduser()
    missing = [name for name in FILES if not (source / name).is_file()]
    if missing:
        raise UserError(
            f"{source} lacks the ImageNet16 files {', '.join(missing)} (need {FILES[0]} .. val_data)"
        )
    target = dataset_dir(data_root, NAME)
    with staging_dir(Path(data_root).expanduser()) as staging:
        folder = staging / NAME
        folder.mkdir()
        for name in FILES:
            shutil.copyfile(source / name, folder / name)
        train = ImageNet16([folder / name for name in FILES[:-1]], NUM_CLASSES, None)
        test = ImageNet16([folder / FILES[-1]], NUM_CLASSES, None)
        replace_dir(folder, target)
    return f"{NAME}: {len(train):,} train / {len(test):,} test images (classes 1..120) in {target}"
