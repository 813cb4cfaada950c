"""timm's image augmentations for training sets: RandAugment before ``ToTensor``, random erasing after."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tanglenas_cli.errors import UserError


def randaugment(config: str | None, mean: Sequence[float]) -> list[Any]:
    """Return ``[timm RandAugment]`` for a config string such as ``rand-m9-mstd0.5-inc1`` ([] for None)."""
    if not config:
        return []
    from timm.data.auto_augment import rand_augment_transform

    try:
        transform = rand_augment_transform(config, {"img_mean": tuple(round(255 * m) for m in mean)})
    except (AssertionError, ValueError, KeyError, IndexError) as error:
        raise UserError(f"bad randaugment setting {config!r} (e.g. rand-m9-mstd0.5-inc1): {error}") from None
    for op in transform.ops:
        if getattr(op.aug_fn, "__name__", "") == "posterize":
            op.aug_fn = posterize
    return [transform]


def posterize(img: Any, bits_to_keep: int, **_: Any) -> Any:
    """timm's posterize, also for 0 bits: Pillow >= 12 refuses 0 (older Pillow returned a black image).

    RandAugment's increasing posterize keeps 4 - int(0.4 * magnitude) bits, i.e. 0 at magnitude 10,
    which ``mstd`` noise reaches now and then.
    """
    from PIL import ImageOps

    if bits_to_keep >= 8:
        return img
    if bits_to_keep <= 0:
        return img.point(lambda _: 0)
    return ImageOps.posterize(img, bits_to_keep)


def random_erasing(probability: float) -> list[Any]:
    """Return ``[timm RandomErasing]`` (per-pixel noise, on normalised tensors) when ``probability`` > 0."""
    if probability <= 0:
        return []
    if probability > 1:
        raise UserError(f"random_erasing is a probability in [0, 1], got {probability}")
    from timm.data.random_erasing import RandomErasing

    return [RandomErasing(probability=probability, mode="pixel", device="cpu")]


def check_augment_options(dataset: str, rand: Any, erasing: Any) -> None:
    """UserError unless ``randaugment`` is a config string (or None) and ``random_erasing`` a number."""
    if (
        (rand is not None and not isinstance(rand, str))
        or isinstance(erasing, bool)
        or not isinstance(erasing, int | float)
    ):
        raise UserError(
            f"{dataset}: randaugment must be a string (rand-m9-mstd0.5-inc1), random_erasing a number"
        )
