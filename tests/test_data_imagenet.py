"""The `imagenet` image folder (train/ + val/), OFA's per-batch resolutions and colour jitter, prepare."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import torch
from jpeg_cifar import extract_jpeg_cifar
from torchvision import transforms

from tanglenas_cli.data.imagenet import BatchResolutions, batch_transform_of, resolution_list
from tanglenas_cli.data.registry import build_datasets
from tanglenas_cli.data.registry import prepare_dataset as run_prepare
from tanglenas_cli.engine.loaders import CyclingLoader, WeightBatches, epoch_loader
from tanglenas_cli.errors import UserError

PER_CLASS = 20
SMALL = {"resolutions": [16, 32], "size": 24}  # 32 px CIFAR images: test 24 px, training 16..32 px


@pytest.fixture(scope="module")
def imagenet_folder(tmp_path_factory) -> Path:
    """An ImageNet-style folder (train/<class>/*, val/<class>/*) of PER_CLASS shared JPEG CIFAR-10 images
    per class and split (test/ renamed val/)."""
    return extract_jpeg_cifar(tmp_path_factory.mktemp("imagenet"), PER_CLASS, test_name="val")


def build(folder: Path, augment: bool = True, **options):
    return build_datasets("imagenet", folder.parent, {"path": str(folder), **options}, augment=augment)


def test_imagenet_train_and_val_splits(imagenet_folder: Path):
    train, val, info = build(imagenet_folder, **SMALL)
    assert (len(train), len(val)) == (10 * PER_CLASS, 10 * PER_CLASS)
    assert info.name == "imagenet" and info.num_classes == 10 and info.input_shape == (3, 24, 24)
    assert info.mean == (0.485, 0.456, 0.406) and info.std == (0.229, 0.224, 0.225)
    assert train.classes == val.classes and set(train.targets[:50]) == set(range(10))  # mixed order
    image, label = train[0]
    assert image.shape == (3, 32, 32) and isinstance(label, int)  # random-resized crop at the largest size
    assert val[0][0].shape == (3, 24, 24) and torch.equal(val[3][0], val[3][0])  # deterministic test view
    resize, crop = val.transform.transforms[:2]
    assert resize.size == int(24 / 0.875) and crop.size == (24, 24)
    crop = train.transform.transforms[0]
    assert isinstance(crop, transforms.RandomResizedCrop) and crop.scale == (0.08, 1.0)
    plain, _, _ = build(imagenet_folder, augment=False, **SMALL)
    assert plain.samples == train.samples and batch_transform_of(plain) is None
    assert plain[5][0].shape == (3, 24, 24) and torch.equal(plain[5][0], plain[5][0])


def test_imagenet_defaults_are_ofa_s():
    assert resolution_list([128, 224]) == tuple(range(128, 225, 4)) and len(resolution_list([128, 224])) == 25
    assert resolution_list(224) == (224,) and resolution_list([96]) == (96,)


def test_colour_jitter_on_and_off(imagenet_folder: Path):
    def jitters(**options):
        train, _, _ = build(imagenet_folder, **SMALL, **options)
        return [t for t in train.transform.transforms if isinstance(t, transforms.ColorJitter)]

    (tf,) = jitters()  # OFA's "tf" distortion by default
    assert tf.brightness == pytest.approx((1 - 32 / 255, 1 + 32 / 255)) and tf.saturation == (0.5, 1.5)
    assert tf.contrast is None and tf.hue is None
    (torch_style,) = jitters(color_jitter="torch")
    assert torch_style.hue == (-0.1, 0.1)
    for off in (0, None, False, "none"):
        assert jitters(color_jitter=off) == []


def test_per_batch_resolutions_are_seeded_multiples_of_four(imagenet_folder: Path):
    train, _, _ = build(imagenet_folder, **SMALL)
    transform = batch_transform_of(torch.utils.data.Subset(train, range(50)))
    assert isinstance(transform, BatchResolutions) and transform.sizes == (16, 20, 24, 28, 32)

    def sizes(loader):
        return [images.shape[-1] for images, _ in loader]

    first = sizes(epoch_loader(train, 8, seed=3))
    assert len(first) == 25 and set(first) <= {16, 20, 24, 28, 32} and len(set(first)) > 2
    assert sizes(epoch_loader(train, 8, seed=3)) == first  # the same for the same seed
    assert sizes(epoch_loader(train, 8, seed=4)) != first
    assert sizes(epoch_loader(train, 8, seed=3, start=80)) == first[10:]  # a resumed pass
    assert all(images.shape[-2] == images.shape[-1] for images, _ in epoch_loader(train, 8, seed=3))
    # the arch stream resumes mid-pass with the same resolutions
    stream = CyclingLoader(train, 16, seed=5)
    drawn = [next(stream)[0].shape[-1] for _ in range(16)]  # 13 batches a pass, then 3 more
    resumed = CyclingLoader(train, 16, seed=5)
    resumed.load_state_dict({"cycle": 1, "consumed": 1})
    assert [next(resumed)[0].shape[-1] for _ in range(2)] == drawn[14:]
    # as do the weights' epochs; an unaugmented set keeps its size
    batches = WeightBatches(train, 8, seed=1, grad_accum=2)
    assert [b.shape[-1] for step in batches.epoch(0) for b, _ in step] == sizes(epoch_loader(train, 8, 1000))
    plain, _, _ = build(imagenet_folder, augment=False, **SMALL)
    assert set(sizes(epoch_loader(plain, 64, seed=3))) == {24}


def test_per_batch_resolutions_in_worker_processes(imagenet_folder: Path):
    train, _, _ = build(imagenet_folder, **SMALL)
    subset = torch.utils.data.Subset(train, range(64))
    in_workers = [images.shape[-1] for images, _ in epoch_loader(subset, 8, seed=2, num_workers=2)]
    assert in_workers == [images.shape[-1] for images, _ in epoch_loader(subset, 8, seed=2)]


def test_one_fixed_resolution_and_batch_resize():
    transform = BatchResolutions([224])
    assert {transform.size_for(seed, n) for seed in range(3) for n in range(20)} == {224}
    resized = BatchResolutions([8, 16])(torch.rand(2, 3, 16, 16), 8)
    assert resized.shape == (2, 3, 8, 8)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"resolutions": [224, 128]}, "resolutions"),
        ({"resolutions": [126, 224]}, "multiples of 4"),
        ({"resolutions": "128-224"}, "resolutions"),
        ({"resolutions": [0, 8, 16]}, "resolutions"),
        ({"resolutions": 0}, "resolutions"),
        ({"size": 0}, "size"),
        ({"size": 22.5}, "size"),
        ({"color_jitter": "vivid"}, "color_jitter"),
        ({"color_jitter": 0.4}, "color_jitter"),
        ({"random_erasing": "yes"}, "random_erasing"),
        ({"random_erasing": 2.0}, "random_erasing"),
        ({"randaugment": "bogus"}, "randaugment"),
        ({"crop": 0.5}, "unknown dataset option 'crop'"),
        ({"path": 3}, "folder path"),
    ],
)
def test_bad_options_are_one_line(imagenet_folder: Path, options, message):
    with pytest.raises(UserError, match=message) as caught:
        build(imagenet_folder, **options)
    assert "\n" not in str(caught.value)


def test_randaugment_and_random_erasing(imagenet_folder: Path):
    train, _, _ = build(imagenet_folder, randaugment="rand-m9-mstd0.5-inc1", random_erasing=0.25, **SMALL)
    names = [type(t).__name__ for t in train.transform.transforms]
    assert "RandAugment" in names and names[-1] == "RandomErasing"
    assert train[1][0].shape == (3, 32, 32)


def test_missing_folders_name_the_layout(tmp_path: Path):
    with pytest.raises(UserError, match="val") as caught:
        build_datasets("imagenet", tmp_path)
    assert "prepare-data imagenet" in str(caught.value) and "\n" not in str(caught.value)


def test_prepare_imagenet_from_folder_and_tar(imagenet_folder: Path, tmp_path: Path):
    summary = run_prepare("imagenet", tmp_path / "root", source=imagenet_folder)
    assert "imagenet: 200 train / 200 val images, 10 classes" in summary
    train, val, info = build_datasets("imagenet", tmp_path / "root", SMALL)
    assert (len(train), len(val), info.num_classes) == (200, 200, 10)
    archive = tmp_path / "ilsvrc.tar"
    with tarfile.open(archive, "w") as tar:
        for split in ("train", "val"):
            for name in ("cat", "dog"):
                tar.add(imagenet_folder / split / name, arcname=f"ILSVRC/{split}/{name}")
    summary = run_prepare("imagenet", tmp_path / "root", source=archive)  # replaces the earlier copy
    assert "40 train / 40 val images, 2 classes" in summary
    assert build_datasets("imagenet", tmp_path / "root", SMALL)[2].num_classes == 2
    with pytest.raises(UserError, match="needs --from"):
        run_prepare("imagenet", tmp_path / "root")
    with pytest.raises(UserError, match="no train/ and val/ folders"):
        run_prepare("imagenet", tmp_path / "other", source=imagenet_folder / "train")


def test_simultaneous_search_on_imagenet_with_a_random_arch_hold_out(imagenet_folder: Path, tmp_path: Path):
    from typer.testing import CliRunner

    from tanglenas_cli.cli import app

    settings = [
        f"dataset_options.path={imagenet_folder}", "dataset_options.resolutions=[8, 16]",
        "dataset_options.size=12", "space_options.C=4", "space_options.N=1", "train_subset=100",
        "arch_split_size=40", "search_strategy=simultaneous", "epochs=1", "batch_size=32",
        "logging.progress=false",
    ]  # fmt: skip
    args = ["search", "--space", "nb201", "--dataset", "imagenet", "--opt", "drnas", "--out", tmp_path]
    result = CliRunner().invoke(app, [str(a) for a in args] + [x for s in settings for x in ("--set", s)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["dataset"] == "imagenet" and 0 <= summary["final_valid_acc"] <= 100


def test_fixed_size_spaces_are_refused_per_batch_resolutions(imagenet_folder: Path, tmp_path: Path):
    """AutoFormer's patch grid takes one size: a [min, max] range is one line, a single size runs."""
    from typer.testing import CliRunner

    from tanglenas_cli.cli import app

    settings = [
        f"dataset_options.path={imagenet_folder}", "dataset_options.size=16", "space_options.variant=tiny",
        "space_options.patch_size=4", "space_options.head_dim=8", "train_subset=64", "epochs=1",
        "batch_size=16", "logging.progress=false",
    ]  # fmt: skip
    args = ["search", "--space", "autoformer", "--dataset", "imagenet", "--out", tmp_path / "varied"]
    sets = [x for s in [*settings, "dataset_options.resolutions=[8, 16]"] for x in ("--set", s)]
    result = CliRunner().invoke(app, [str(a) for a in args] + sets)
    assert result.exit_code == 2 and "dataset_options.resolutions=16" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "varied").exists()
    args[-1] = tmp_path / "fixed"
    sets = [x for s in [*settings, "dataset_options.resolutions=16"] for x in ("--set", s)]
    result = CliRunner().invoke(app, [str(a) for a in args] + sets)
    assert result.exit_code == 0, result.output
