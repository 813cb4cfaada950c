"""Plot of the mixing-weight trajectories: one panel per Choice, one line per candidate."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator


def plot_trajectories(records: Sequence[Mapping[str, Any]], path: Path, title: str = "") -> None:
    """Save a PNG of the per-epoch candidate probabilities recorded in ``records`` (trajectory.jsonl)."""
    if not records:
        return
    choices = list(records[0]["probabilities"])
    columns = min(4, len(choices))
    rows = math.ceil(len(choices) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.6 * rows), squeeze=False)
    epochs = [record["epoch"] + 1 for record in records]
    for axis, choice in zip(axes.flat, choices, strict=False):
        candidates = list(records[0]["probabilities"][choice])
        for candidate in candidates:
            axis.plot(epochs, [r["probabilities"][choice][candidate] for r in records], label=str(candidate))
        axis.set_title(choice, fontsize=9)
        axis.set_ylim(0, 1)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("epoch", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.legend(fontsize=6, loc="best")
    for axis in list(axes.flat)[len(choices) :]:
        axis.axis("off")
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.tmp.png")
    figure.savefig(temporary, dpi=110)
    plt.close(figure)
    temporary.replace(path)
