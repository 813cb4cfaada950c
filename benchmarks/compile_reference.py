"""The compiled NB201 step of a plain, minimal entangled supernet next to the project's, interleaved.

The reference is written the obvious way: each edge is ``w_skip * x + w_pool * AvgPool2d(x) +
BN(conv(relu(x), W * (w_3x3 + w_1x1 * centre)))`` (the 1x1 conv entangled as the centre of the 3x3
kernel), cells and residual blocks as in NAS-Bench-201 (C=16, N=5), Dirichlet mixing weights sampled
outside the compiled graph. Its largest subnet runs ReLU-conv-BN on every edge. All four models are
``torch.compile``'d (the plain WE one takes minutes to compile on 2 cores), then round after round each
takes one unmeasured and one measured step.

Usage: python benchmarks/compile_reference.py [--rounds 8]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tanglenas_cli.engine.profile import ModeStep

EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (node, input node)
SKIP, CONV1, CONV3, POOL = 1, 2, 3, 4  # NB201's candidate order: none, skip, 1x1, 3x3, avg pool


class PlainEdge(nn.Module):
    """One edge: the WE mixture, or (``largest``) ReLU-conv-BN."""

    def __init__(self, channels: int, largest: bool) -> None:
        super().__init__()
        self.largest = largest
        self.weight = nn.Parameter(0.1 * torch.randn(channels, channels, 3, 3))
        self.bias = None if largest else nn.Parameter(torch.zeros(channels))
        self.norm = nn.BatchNorm2d(channels, affine=largest)
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.register_buffer("centre", F.pad(torch.ones(1, 1), (1, 1, 1, 1)))

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        if self.largest:
            return self.norm(F.conv2d(F.relu(x), self.weight, None, padding=1))
        kernel = self.weight * (w[CONV3] + w[CONV1] * self.centre)
        conv = self.norm(F.conv2d(F.relu(x), kernel, self.bias, padding=1))
        return w[SKIP] * x + w[POOL] * self.pool(x) + conv


class PlainCell(nn.Module):
    def __init__(self, channels: int, largest: bool) -> None:
        super().__init__()
        self.edges = nn.ModuleList(PlainEdge(channels, largest) for _ in EDGES)

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        nodes = [x]
        for node in (1, 2, 3):
            total: Tensor | None = None
            for i, (edge, (target, source)) in enumerate(zip(self.edges, EDGES, strict=True)):
                if target == node:
                    out = edge(nodes[source], weights[i])
                    total = out if total is None else total + out
            nodes.append(total)
        return nodes[3]


class PlainBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = nn.Sequential(
            nn.ReLU(), nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out)
        )
        self.conv_b = nn.Sequential(
            nn.ReLU(), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out)
        )
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class PlainNB201(nn.Module):
    def __init__(self, largest: bool, channels: int = 16, cells: int = 5, classes: int = 10) -> None:
        super().__init__()
        c = channels
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        layers: list[nn.Module] = []
        for stage, width in enumerate((c, 2 * c, 4 * c)):
            if stage:
                layers.append(PlainBlock(width // 2, width))
            layers += [PlainCell(width, largest) for _ in range(cells)]
        self.layers = nn.ModuleList(layers)
        pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.BatchNorm2d(4 * c), nn.ReLU(), pool, nn.Linear(4 * c, classes))
        self.arch_logits = nn.Parameter(1e-3 * torch.randn(len(EDGES), 5))

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x, weights) if isinstance(layer, PlainCell) else layer(x)
        return self.head(x)


def plain_step(largest: bool, batch: int = 64) -> Callable[[], float]:
    """Return a compiled training step of the plain model (forward, loss, backward)."""
    torch.manual_seed(0)
    model = PlainNB201(largest)
    compiled = torch.compile(model)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))

    def step() -> float:
        started = time.perf_counter()
        concentration = F.softplus(model.arch_logits) + 1e-6  # DrNAS-like, outside the graph
        weights = torch.distributions.Dirichlet(concentration).rsample()
        F.cross_entropy(compiled(x, weights), y).backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - started

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    steps: dict[str, Callable[[], float]] = {
        "plain WE": plain_step(False),
        "plain largest": plain_step(True),
        "tanglenas WE": ModeStep("nb201", "we", "drnas", 64, {}, compile=True),
        "tanglenas largest": ModeStep("nb201", "largest", "drnas", 64, {}, compile=True),
    }
    for name, step in steps.items():
        started = time.perf_counter()
        step()
        step()
        print(f"{name}: compiled and two steps in {time.perf_counter() - started:.0f} s", flush=True)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            step()
            times[name].append(step())
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values):.4f} s, fastest {min(values):.4f} s")
    for kind in ("plain", "tanglenas"):
        we, largest = times[f"{kind} WE"], times[f"{kind} largest"]
        print(f"{kind} WE / largest: median {statistics.median(we) / statistics.median(largest):.2f}x, "
              f"fastest {min(we) / min(largest):.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
