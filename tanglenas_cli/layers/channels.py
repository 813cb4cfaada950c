"""Channel widths of MobileNet-style blocks: the rounding rule of MobileNetV2/V3 and Once-for-All."""

from __future__ import annotations


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (at least ``min_value``, default ``divisor``),
    never going more than 10 % below ``value`` (the MobileNet / OFA channel rule)."""
    floor = divisor if min_value is None else min_value
    rounded = max(floor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def expanded_channels(in_channels: int, ratio: float, divisor: int = 8) -> int:
    """Return the mid width of an MBConv block: ``in`` for ratio 1, else make_divisible(round(in * ratio))."""
    if ratio == 1:
        return in_channels
    return make_divisible(round(in_channels * ratio), divisor)


def squeeze_channels(channels: int, reduction: int = 4, divisor: int = 8) -> int:
    """Return the bottleneck width of squeeze-and-excitation over ``channels`` (OFA: ``//`` then rounding)."""
    return make_divisible(channels // reduction, divisor)
