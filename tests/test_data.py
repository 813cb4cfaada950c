"""Datasets: digits, synthetic, search splits, Fashion-MNIST / CIFAR preparation, image folders, bad input."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms
from torchvision.datasets import FashionMNIST

from tanglenas_cli.data.cutout import Cutout
from tanglenas_cli.data.info import DatasetInfo
from tanglenas_cli.data.memory import InMemoryDataset
from tanglenas_cli.data.paths import default_data_root
from tanglenas_cli.data.registry import build_datasets, list_datasets
from tanglenas_cli.data.registry import prepare_dataset as run_prepare
from tanglenas_cli.data.splits import search_splits
from tanglenas_cli.errors import UserError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
IDX_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
PER_CLASS = 20


# ---------------------------------------------------------------------------------------------------
# digits


def test_digits_shapes_classes_and_split_sizes(tmp_path):
    train, test, info = build_datasets("digits", tmp_path)
    assert info == DatasetInfo("digits", 10, (1, 28, 28), info.mean, info.std)
    assert len(info.mean) == len(info.std) == 1
    assert (len(train), len(test)) == (1437, 360)
    image, label = train[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert isinstance(label, int)
    assert sorted(set(train.targets)) == list(range(10)) and sorted(set(test.targets)) == list(range(10))
    assert abs(float(train.images.mean())) < 0.05  # normalised with the training mean
    assert not list(tmp_path.iterdir())  # nothing written


def test_digits_is_deterministic_and_test_images_are_not_training_images(tmp_path):
    train_a, test_a, _ = build_datasets("digits", tmp_path)
    train_b, test_b, _ = build_datasets("digits", tmp_path, augment=False)
    assert torch.equal(train_a.images, train_b.images) and torch.equal(test_a.labels, test_b.labels)
    train_flat = {tuple(row) for row in train_a.images.flatten(1)[:, ::7].tolist()}
    overlap = sum(tuple(row) in train_flat for row in test_a.images.flatten(1)[:, ::7].tolist())
    assert overlap < 5  # a few digits may be exact duplicates in the source data, not a split leak


def test_digits_size_and_channels_options(tmp_path):
    train, test, info = build_datasets("digits", tmp_path, {"size": 16, "channels": 3})
    assert info.input_shape == (3, 16, 16) and len(info.mean) == 3
    assert train[5][0].shape == (3, 16, 16) and test[0][0].shape == (3, 16, 16)
    assert torch.equal(train.images[:, 0], train.images[:, 2])
    native, _, _ = build_datasets("digits", tmp_path, {"size": 8})
    assert native.images.shape[1:] == (1, 8, 8)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"colour": True}, "unknown dataset option 'colour'"),
        ({"size": 0}, "size=0"),
        ({"channels": True}, "channels=True"),
        ({"size": 2.5}, "size=2.5"),
    ],
)
def test_digits_bad_options(tmp_path, options, fragment):
    with pytest.raises(UserError, match=fragment):
        build_datasets("digits", tmp_path, options)


# ---------------------------------------------------------------------------------------------------
# synthetic


def test_synthetic_options_determinism_and_learnable(tmp_path):
    options = {"num_classes": 4, "size": 12, "channels": 2, "train_size": 200, "test_size": 80, "seed": 3}
    train, test, info = build_datasets("synthetic", tmp_path, options)
    assert info == DatasetInfo("synthetic", 4, (2, 12, 12), (0.0, 0.0), (1.0, 1.0))
    assert (len(train), len(test)) == (200, 80)
    assert train[0][0].shape == (2, 12, 12) and isinstance(train[0][1], int)
    assert sorted(set(train.targets)) == [0, 1, 2, 3]
    again, _, _ = build_datasets("synthetic", tmp_path, options)
    assert torch.equal(train.images, again.images) and torch.equal(train.labels, again.labels)
    other, _, _ = build_datasets("synthetic", tmp_path, {**options, "seed": 4})
    assert not torch.equal(train.images, other.images)
    # nearest class mean beats chance (25 %) by far
    means = torch.stack([train.images[train.labels == c].mean(0) for c in range(4)]).flatten(1)
    predicted = torch.cdist(test.images.flatten(1), means).argmin(1)
    assert (predicted == test.labels).float().mean() > 0.6


def test_synthetic_defaults(tmp_path):
    train, test, info = build_datasets("synthetic", tmp_path)
    assert (len(train), len(test), info.num_classes, info.input_shape) == (256, 64, 10, (1, 28, 28))


# ---------------------------------------------------------------------------------------------------
# search splits


def _indexed_dataset(count: int) -> InMemoryDataset:
    return InMemoryDataset(
        torch.arange(count, dtype=torch.float32).view(count, 1, 1, 1), torch.arange(count) % 3
    )


def test_search_splits_first_portion_then_rest_unshuffled():
    weights, arch = search_splits(_indexed_dataset(10), 0.7)
    assert (len(weights), len(arch)) == (7, 3)
    assert [int(weights[i][0]) for i in range(7)] == list(range(7))
    assert [int(arch[i][0]) for i in range(3)] == [7, 8, 9]
    assert set(weights.indices).isdisjoint(arch.indices)


def test_search_splits_floor_and_full_portion(tmp_path):
    train, _, _ = build_datasets("digits", tmp_path)
    weights, arch = search_splits(train, 0.5)
    assert (len(weights), len(arch)) == (718, 719)
    assert list(weights.indices) + list(arch.indices) == list(range(1437))
    weights, arch = search_splits(train, 1.0)
    assert (len(weights), len(arch)) == (1437, 0)


@pytest.mark.parametrize("portion", [0.0, -0.5, 1.5, 0.05])
def test_search_splits_bad_portion(portion):
    with pytest.raises(UserError, match="train_portion"):
        search_splits(_indexed_dataset(10), portion)


# ---------------------------------------------------------------------------------------------------
# Fashion-MNIST


def _idx_bytes(array: np.ndarray) -> bytes:
    magic = 0x0800 + array.ndim  # unsigned bytes, ndim dimensions
    return (
        struct.pack(">I", magic)
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.astype(np.uint8).tobytes()
    )


def _write_fake_fashion(folder: Path, train: int, test: int, gzipped: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.RandomState(0)
    arrays = {
        "train-images-idx3-ubyte": rng.randint(0, 256, (train, 28, 28)),
        "train-labels-idx1-ubyte": rng.randint(0, 10, train),
        "t10k-images-idx3-ubyte": rng.randint(0, 256, (test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.randint(0, 10, test),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        if gzipped:
            (folder / f"{name}.gz").write_bytes(gzip.compress(_idx_bytes(array)))
        else:
            (folder / name).write_bytes(_idx_bytes(array))
    return arrays


@pytest.mark.parametrize("gzipped", [True, False])
def test_fashion_mnist_prepare_from_fake_idx_files(tmp_path, gzipped):
    arrays = _write_fake_fashion(tmp_path / "src", 20, 10, gzipped)
    data_root = tmp_path / "root"
    summary = run_prepare("fashion_mnist", data_root, source=tmp_path / "src")
    assert "20 train / 10 test" in summary and "\n" not in summary
    assert sorted(p.name for p in (data_root / "fashion_mnist").iterdir()) == [
        "FashionMNIST"
    ]  # no staging left
    train, test, info = build_datasets("fashion_mnist", data_root)
    assert info == DatasetInfo("fashion_mnist", 10, (1, 28, 28), (0.2859,), (0.3530,))
    assert (len(train), len(test)) == (20, 10)
    image, label = train[3]
    assert label == arrays["train-labels-idx1-ubyte"][3] and isinstance(label, int)
    expected = (
        torch.tensor(arrays["train-images-idx3-ubyte"][3], dtype=torch.float32) / 255 - 0.2859
    ) / 0.3530
    assert image.shape == (1, 28, 28) and torch.allclose(image[0], expected, atol=1e-5)
    assert [test[i][1] for i in range(10)] == arrays["t10k-labels-idx1-ubyte"].tolist()
    # decoded into memory once, bit for bit what torchvision's ToTensor + Normalize give per item
    pipeline = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.2859,), (0.3530,))])
    reference = FashionMNIST(str(data_root / "fashion_mnist"), train=True, transform=pipeline)
    assert all(torch.equal(train[i][0], reference[i][0]) for i in range(20))


def test_fashion_mnist_prepare_rejects_missing_and_broken_files(tmp_path):
    _write_fake_fashion(tmp_path / "src", 5, 5)
    (tmp_path / "src" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(UserError, match=r"lacks t10k-labels-idx1-ubyte\.gz"):
        run_prepare("fashion_mnist", tmp_path / "root", source=tmp_path / "src")
    (tmp_path / "src" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"not an idx file"))
    with pytest.raises(UserError, match="not valid IDX"):
        run_prepare("fashion_mnist", tmp_path / "root", source=tmp_path / "src")
    assert not (tmp_path / "root" / "fashion_mnist").exists()  # no staging folder left behind


def test_fashion_mnist_missing_names_prepare_data(tmp_path):
    with pytest.raises(UserError) as caught:
        build_datasets("fashion_mnist", tmp_path)
    message = str(caught.value)
    assert "tanglenas prepare-data fashion_mnist" in message and "--from DIR" in message
    assert str(tmp_path / "fashion_mnist" / "FashionMNIST" / "raw") in message and "\n" not in message


def test_fashion_mnist_offline_download_says_use_from(tmp_path, monkeypatch):
    def offline(self):
        raise URLError("no network")

    monkeypatch.setattr(FashionMNIST, "download", offline)
    with pytest.raises(UserError, match=r"could not download Fashion-MNIST.*--from DIR"):
        run_prepare("fashion_mnist", tmp_path)


@pytest.mark.skipif(
    not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").is_file(),
    reason="real Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)",
)
def test_fashion_mnist_real_files_from_debian_package(tmp_path):
    summary = run_prepare("fashion_mnist", tmp_path, source=DEBIAN_FASHION)
    assert "60,000 train / 10,000 test" in summary and "official" not in summary
    train, test, _ = build_datasets("fashion_mnist", tmp_path)
    assert (len(train), len(test)) == (60_000, 10_000)
    assert train[0][1] == 9 and test[0][1] == 9  # both files start with an ankle boot
    assert train[0][0].shape == (1, 28, 28)


# ---------------------------------------------------------------------------------------------------
# CIFAR


def test_cifar_missing_names_prepare_data(tmp_path):
    for name, archive in (("cifar10", "cifar-10-python.tar.gz"), ("cifar100", "cifar-100-python.tar.gz")):
        with pytest.raises(UserError) as caught:
            build_datasets(name, tmp_path, {"cutout": 16})
        message = str(caught.value)
        assert f"tanglenas prepare-data {name}" in message and archive in message and "--from" in message


def test_cifar_prepare_rejects_files_that_are_not_the_official_ones(tmp_path):
    fake = tmp_path / "cifar-10-batches-py"
    fake.mkdir()
    for name in ("batches.meta", "data_batch_1", "test_batch"):
        (fake / name).write_bytes(b"fake")
    with pytest.raises(UserError, match=r"do not match the official cifar-10-python\.tar\.gz"):
        run_prepare("cifar10", tmp_path / "root", source=fake)
    assert not (tmp_path / "root" / "cifar10").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="neither the official"):
        run_prepare("cifar10", tmp_path / "root", source=(tmp_path / "empty").resolve())


def _write_fake_cifar10(folder: Path, per_batch: int) -> None:
    """Write CIFAR-10's python-pickle format with `per_batch` random images per batch file."""
    rng = np.random.RandomState(0)
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            "data": rng.randint(0, 256, (per_batch, 3072)).astype(np.uint8),
            "labels": [i % 10 for i in range(per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"class{i}" for i in range(10)]}))


def test_cifar10_prepare_from_tar_and_build_with_cutout(tmp_path, monkeypatch):
    # the fake files cannot match the official MD5 sums, so the checksum test is switched off here
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *args, **kwargs: True)
    _write_fake_cifar10(tmp_path / "src" / "cifar-10-batches-py", per_batch=4)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    summary = run_prepare("cifar10", tmp_path / "root", source=archive)
    assert "20 train / 4 test" in summary
    assert sorted(p.name for p in (tmp_path / "root" / "cifar10").iterdir()) == ["cifar-10-batches-py"]
    train, test, info = build_datasets("cifar10", tmp_path / "root", {"cutout": 16})
    assert info.num_classes == 10 and info.input_shape == (3, 32, 32)
    assert info.mean == pytest.approx((125.3 / 255, 123.0 / 255, 113.9 / 255))
    assert (len(train), len(test)) == (20, 4)
    torch.manual_seed(0)
    image, label = train[0]
    assert image.shape == (3, 32, 32) and isinstance(label, int)
    assert int((image == 0).all(0).sum()) >= 64  # a cutout square of at least 8x8 (clipped 16x16)
    assert torch.equal(test[1][0], test[1][0])
    plain, _, _ = build_datasets("cifar10", tmp_path / "root", {"cutout": 16}, augment=False)
    assert torch.equal(plain[0][0], test.transform(Image.fromarray(plain.data[0])))


def test_cifar10_vit_augmentations_and_size(tmp_path, monkeypatch):
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *args, **kwargs: True)
    _write_fake_cifar10(tmp_path / "root" / "cifar10" / "cifar-10-batches-py", per_batch=4)
    options = {"size": 48, "randaugment": "rand-m9-mstd0.5-inc1", "random_erasing": 1.0}
    train, test, info = build_datasets("cifar10", tmp_path / "root", options)
    assert info.input_shape == (3, 48, 48)
    torch.manual_seed(0)
    assert train[0][0].shape == (3, 48, 48) and test[0][0].shape == (3, 48, 48)
    steps = [type(t).__name__ for t in train.transform.transforms]
    assert "RandAugment" in steps and steps[-1] == "RandomErasing"
    with pytest.raises(UserError, match="randaugment"):
        build_datasets("cifar10", tmp_path / "root", {"randaugment": "nonsense-x"})


def test_randaugment_survives_zero_bit_posterize():
    """At magnitude 10 the increasing posterize keeps 0 bits, which Pillow >= 12 refuses by itself."""
    from tanglenas_cli.data.augment import randaugment

    (transform,) = randaugment("rand-n1-m10-mstd0-inc1", (0.5, 0.5, 0.5))
    transform.ops = [op for op in transform.ops if op.name == "PosterizeIncreasing"]
    transform.ops[0].prob = 1.0
    transform.choice_weights = None
    image = Image.fromarray(np.full((8, 8, 3), 200, dtype=np.uint8))
    assert np.asarray(transform(image)).max() == 0  # 0 bits kept: black, as older Pillow gave


def test_cifar_bad_cutout_option(tmp_path):
    with pytest.raises(UserError, match="cutout"):
        build_datasets("cifar10", tmp_path, {"cutout": "big"})


def test_cutout_zeroes_a_clipped_square():
    torch.manual_seed(0)
    for _ in range(20):
        image = torch.ones(3, 32, 32)
        out = Cutout(16)(image)
        zeroed = (out == 0).all(0)
        assert 0 < int(zeroed.sum()) <= 256 and image.min() == 1  # input left untouched
        rows, cols = zeroed.any(1).nonzero().flatten(), zeroed.any(0).nonzero().flatten()
        assert int(zeroed.sum()) == len(rows) * len(cols)  # one rectangle


# ---------------------------------------------------------------------------------------------------
# image folders


def test_imagefolder_from_shared_jpeg_cifar(cifar_jpg_subset, tmp_path):
    train, test, info = build_datasets("imagefolder", tmp_path, {"path": str(cifar_jpg_subset)})
    assert info.num_classes == 10 and info.input_shape == (3, 32, 32)
    assert info.mean == (0.485, 0.456, 0.406)
    assert (len(train), len(test)) == (10 * PER_CLASS, 10 * PER_CLASS)
    image, label = train[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and isinstance(label, int)
    assert sorted(set(test.targets)) == list(range(10))
    # classes are mixed (fixed order), so a contiguous split such as the arch half holds every class
    assert set(train.targets[: len(train) // 2]) == set(range(10)) == set(test.targets[:40])
    again, _, _ = build_datasets("imagefolder", tmp_path, {"path": str(cifar_jpg_subset)}, augment=False)
    assert again.samples == train.samples and again.targets == [label for _, label in train.samples]
    assert torch.equal(test[7][0], test[7][0])  # test set is not augmented
    plain, _, _ = build_datasets("imagefolder", tmp_path, {"path": str(cifar_jpg_subset)}, augment=False)
    assert torch.equal(plain[7][0], plain[7][0])


def test_imagefolder_size_and_normalisation_options(cifar_jpg_subset, tmp_path):
    options = {"path": str(cifar_jpg_subset), "size": 16, "mean": [0.5, 0.5, 0.5], "std": 0.25}
    train, test, info = build_datasets("imagefolder", tmp_path, options)
    assert info.input_shape == (3, 16, 16) and info.std == (0.25, 0.25, 0.25)
    assert train[0][0].shape == (3, 16, 16) and test[0][0].shape == (3, 16, 16)
    with pytest.raises(UserError, match="std"):
        build_datasets("imagefolder", tmp_path, {**options, "std": [1.0, 0.0, 1.0]})


def test_prepare_imagefolder_from_folder_and_tar(cifar_jpg_subset, tmp_path):
    summary = run_prepare("imagefolder", tmp_path / "root", source=cifar_jpg_subset)
    assert "200 train / 200 test" in summary and "10 classes" in summary
    train, _, info = build_datasets("imagefolder", tmp_path / "root")
    assert len(train) == 200 and info.num_classes == 10
    archive = tmp_path / "mine.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(cifar_jpg_subset / "train" / "cat", arcname="mine/train/cat")
        tar.add(cifar_jpg_subset / "train" / "dog", arcname="mine/train/dog")
        tar.add(cifar_jpg_subset / "test" / "cat", arcname="mine/test/cat")
        tar.add(cifar_jpg_subset / "test" / "dog", arcname="mine/test/dog")
    summary = run_prepare("imagefolder", tmp_path / "root", source=archive)  # replaces the earlier one
    assert "40 train / 40 test" in summary and "2 classes" in summary
    _, test, info = build_datasets("imagefolder", tmp_path / "root")
    assert len(test) == 40 and info.num_classes == 2
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["imagefolder"]


def _tar_with(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def test_prepare_imagefolder_refuses_unsafe_tar(tmp_path):
    evil = _tar_with(tmp_path / "evil.tar.gz", {"train/a/x.txt": b"x", "../evil": b"boom"})
    data_root = tmp_path / "deep" / "root"
    with pytest.raises(UserError, match=r"refusing to extract .*'\.\./evil'"):
        run_prepare("imagefolder", data_root, source=evil)
    assert not (tmp_path / "deep" / "evil").exists() and not (data_root / "evil").exists()
    assert not data_root.exists()  # the staging folder and the data root it created are gone
    absolute = _tar_with(tmp_path / "abs.tar", {"/tmp/evil-absolute": b"boom"})
    with pytest.raises(UserError, match="absolute path"):
        run_prepare("imagefolder", data_root, source=absolute)


def test_imagefolder_missing_layout(tmp_path):
    with pytest.raises(UserError) as caught:
        build_datasets("imagefolder", tmp_path)
    message = str(caught.value)
    assert "ROOT/train/<class>/<image>" in message and "prepare-data imagefolder" in message
    (tmp_path / "imagefolder" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "imagefolder" / "test").mkdir()
    with pytest.raises(UserError, match="no images found"):
        build_datasets("imagefolder", tmp_path)
    with pytest.raises(UserError, match="no train/ and test/"):
        run_prepare("imagefolder", tmp_path / "other", source=tmp_path / "imagefolder" / "train")


# ---------------------------------------------------------------------------------------------------
# names, prepare for in-memory datasets, data root


def test_unknown_datasets(tmp_path):
    with pytest.raises(UserError) as caught:
        build_datasets("mnist", tmp_path)
    assert "'mnist'" in str(caught.value) and all(name in str(caught.value) for name in list_datasets())
    with pytest.raises(UserError, match="unknown dataset 'mnist'"):
        run_prepare("mnist", tmp_path)


def test_prepare_in_memory_datasets_writes_nothing(tmp_path):
    assert "nothing to prepare" in run_prepare("digits", tmp_path / "root")
    assert "nothing to prepare" in run_prepare("synthetic", tmp_path / "root")
    assert not (tmp_path / "root").exists()
    with pytest.raises(UserError, match="--from path not found"):
        run_prepare("fashion_mnist", tmp_path, source=tmp_path / "missing")


def test_default_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("TANGLENAS_DATA_ROOT", str(tmp_path))
    assert default_data_root() == tmp_path
    monkeypatch.delenv("TANGLENAS_DATA_ROOT")
    assert default_data_root() == Path.home() / ".cache" / "tanglenas" / "data"


def test_image_folder_listing_is_scanned_once_until_a_class_folder_changes(
    cifar_jpg_subset, tmp_path, monkeypatch
):
    import shutil

    import tanglenas_cli.data.imagefolder as module

    root = tmp_path / "copy"
    shutil.copytree(cifar_jpg_subset, root)
    scans = []
    original = module.ImageFolder
    monkeypatch.setattr(module, "ImageFolder", lambda path: scans.append(path) or original(path))
    augmented, _, _ = build_datasets("imagefolder", tmp_path, {"path": str(root)})
    plain, _, _ = build_datasets("imagefolder", tmp_path, {"path": str(root)}, augment=False)
    assert len(scans) == 2 and plain.samples == augmented.samples  # train/ and test/, once each
    assert plain.transform is not augmented.transform
    extra = root / "train" / "cat" / "extra.jpg"
    shutil.copy(next((root / "train" / "cat").iterdir()), extra)
    again, _, _ = build_datasets("imagefolder", tmp_path, {"path": str(root)}, augment=False)
    assert len(scans) == 3 and len(again) == len(plain) + 1
