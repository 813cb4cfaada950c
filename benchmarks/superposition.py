"""Cost of superposing k candidates: the WE primitive (W * mask) against the naive sum of k padded copies.

For an entangled linear layer (1024 -> up to 1024 features) and an entangled conv (64 -> up to 64
channels, 3x3) with k = 2..16 nested candidates, one step = forward + backward under random mixing
weights. Reports the median step time and the bytes autograd saves for backward (a deterministic
memory measure), as CSV and PNG. Usage: python benchmarks/superposition.py [--out DIR] [--steps N]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from tanglenas_cli.nas.choices import Choice
from tanglenas_cli.nas.entangled import EntangledConv2d, EntangledLinear


def saved_bytes(step) -> int:
    """Bytes of the distinct tensors autograd saves for backward during ``step()``'s forward."""
    seen: dict[int, int] = {}

    def pack(tensor):
        seen[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        step()
    return sum(seen.values())


def timed(step, steps: int, warmup: int = 3) -> float:
    times = []
    for number in range(warmup + steps):
        started = time.perf_counter()
        step()
        if number >= warmup:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def make_case(kind: str, k: int):
    """Return (we_step, naive_step) for k candidates."""
    torch.manual_seed(0)
    choice = Choice("width", list(range(k)))
    if kind == "linear":
        sizes = [1024 * (i + 1) // k for i in range(k)]
        layer = EntangledLinear(choice, 1024, sizes, bias=False)
        x = torch.randn(256, 1024)

        def naive_weight(weights):
            return sum(
                w * F.pad(layer.weight[:s], (0, 0, 0, 1024 - s)) for w, s in zip(weights, sizes, strict=True)
            )

        def apply(weight):
            return F.linear(x, weight)
    else:
        sizes = [64 * (i + 1) // k for i in range(k)]
        layer = EntangledConv2d(choice, 64, sizes, 3)
        x = torch.randn(32, 64, 32, 32)

        def naive_weight(weights):
            return sum(
                w * F.pad(layer.weight[:s], (0, 0, 0, 0, 0, 0, 0, 64 - s))
                for w, s in zip(weights, sizes, strict=True)
            )

        def apply(weight):
            return F.conv2d(x, weight, padding=1)

    logits = torch.zeros(k, requires_grad=True)

    def we_step():
        choice.set_mixing(torch.softmax(logits, 0))
        layer(x).square().mean().backward()

    def naive_step():
        apply(naive_weight(torch.softmax(logits, 0))).square().mean().backward()

    return we_step, naive_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for kind in ("linear", "conv"):
        for k in range(2, 17):
            we_step, naive_step = make_case(kind, k)
            for method, step in (("we_mask", we_step), ("naive_padded_copies", naive_step)):
                rows.append({"layer": kind, "k": k, "method": method, "step_s": timed(step, args.steps),
                             "saved_mb": saved_bytes(step) / 2**20})  # fmt: skip
            print(kind, k, *(f"{r['method']} {r['step_s']:.4f}s {r['saved_mb']:.1f}MB" for r in rows[-2:]))
    with (args.out / "superposition.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    figure, axes = plt.subplots(2, 2, figsize=(10, 7))
    for column, kind in enumerate(("linear", "conv")):
        for method in ("we_mask", "naive_padded_copies"):
            chosen = [r for r in rows if r["layer"] == kind and r["method"] == method]
            ks = [r["k"] for r in chosen]
            axes[0, column].plot(ks, [r["step_s"] for r in chosen], marker="o", label=method)
            axes[1, column].plot(ks, [r["saved_mb"] for r in chosen], marker="o", label=method)
        axes[0, column].set_title(f"entangled {kind}: step time (s)")
        axes[1, column].set_title(f"entangled {kind}: saved for backward (MB)")
        for row in range(2):
            axes[row, column].set_xlabel("candidates k")
            axes[row, column].legend(fontsize=8)
    figure.suptitle(f"superposition cost, {torch.get_num_threads()} CPU threads")
    figure.tight_layout()
    figure.savefig(args.out / "superposition.png", dpi=110)
    for kind in ("linear", "conv"):
        we = {r["k"]: r["step_s"] for r in rows if r["layer"] == kind and r["method"] == "we_mask"}
        print(f"{kind}: WE time k=16 / k=2 = {we[16] / we[2]:.2f}")
    print(f"wrote {args.out / 'superposition.csv'} and {args.out / 'superposition.png'}")


if __name__ == "__main__":
    main()
