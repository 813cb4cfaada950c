"""Latency tables (``tanglenas latency-table``): every cost unit's candidates timed in isolation.

Every distinct module of the space's cost units (``SearchSpace.cost_units``) runs alone on a batch of its
input (eval mode, no gradients) on this machine: warm-up calls, then the median of repeated samples, each
sample timing enough calls to last a few milliseconds. The constant part is the reference network's time
minus its units'. The latency of an architecture is then the sum of its units' times plus that constant,
as FBNet's lookup table; the table also records how well that sum ranks measured whole networks.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from tanglenas_cli.engine import run_dir as files
from tanglenas_cli.engine.cost import CostModel, choice_candidates, unit_key
from tanglenas_cli.engine.task import task_of
from tanglenas_cli.errors import UserError
from tanglenas_cli.spaces.base import SearchSpace

FORMAT = "tanglenas-latency-table/1"


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(
    run: Callable[[], Any], device: torch.device, samples: int = 7, sample_ms: float = 5.0
) -> float:
    """Return the median milliseconds of one ``run()``: warm-up calls (at least 3 and 20 ms), then
    ``samples`` samples, each the mean over as many calls as fill about ``sample_ms``."""
    started, calls = time.perf_counter(), 0
    while calls < 3 or time.perf_counter() - started < 0.02:
        run()
        _synchronize(device)
        calls += 1
    started = time.perf_counter()
    run()
    _synchronize(device)
    once = max(time.perf_counter() - started, 1e-6)
    calls = max(1, math.ceil(sample_ms / 1000 / once))
    results = []
    for _ in range(samples):
        started = time.perf_counter()
        for _ in range(calls):
            run()
        _synchronize(device)
        results.append((time.perf_counter() - started) / calls * 1000)
    return statistics.median(results)


def _batch(inputs: Tensor, batch_size: int, device: torch.device) -> Tensor:
    return inputs.expand(batch_size, *inputs.shape[1:]).contiguous().to(device)


class LatencyMeter:
    """Times unit modules and whole networks on ``device`` at ``batch_size``."""

    shapes_only = False

    def __init__(self, device: torch.device, batch_size: int) -> None:
        self.device, self.batch_size = device, batch_size
        self.times: dict[str, float] = {}

    @torch.no_grad()
    def unit(self, module: nn.Module, inputs: Tensor) -> float:
        key = unit_key(module, inputs)
        if key not in self.times:
            module = module.to(self.device).eval()
            batch = _batch(inputs, self.batch_size, self.device)
            self.times[key] = time_call(lambda: module(batch), self.device)
        return self.times[key]

    @torch.no_grad()
    def network(self, space: SearchSpace, network: nn.Module) -> float:
        network = network.to(self.device).eval()
        inputs, _ = task_of(space).example_batch(space.data, self.batch_size, self.device)
        return time_call(lambda: network(inputs), self.device)


class LatencyTable:
    """A latency table read back: looks units up by their module and input (the meter of ``latency``)."""

    shapes_only = False

    def __init__(self, path: Path, content: dict[str, Any]) -> None:
        self.path, self.content = path, content
        self.times: dict[str, float] = content["units"]
        self.base = float(content["base_ms"])

    @classmethod
    def load(cls, path: Path, space: SearchSpace) -> LatencyTable:
        """Read ``path``; UserError unless it is a table of ``space`` at its options and data shape."""
        path = Path(path).expanduser()
        try:
            content = json.loads(path.read_text())
            if content.get("format") != FORMAT:
                raise ValueError("not a latency table")
        except (OSError, ValueError) as error:
            raise UserError(f"{path} is no latency table from `tanglenas latency-table` ({error})") from None
        wanted = table_identity(space)
        for key, value in wanted.items():
            if content.get(key) != value:
                raise UserError(
                    f"{path} was timed for {key} {content.get(key)!r}, this run has {value!r}; "
                    f"run tanglenas latency-table --space {space.name} with the run's settings"
                )
        return cls(path, content)

    def unit(self, module: nn.Module, inputs: Tensor) -> float:
        key = unit_key(module, inputs)
        if key not in self.times:
            raise UserError(f"{self.path} has no time for a unit of this network ({key.splitlines()[0]}...)")
        return self.times[key]

    def network(self, space: SearchSpace, network: nn.Module) -> float:
        raise NotImplementedError("a latency table knows its networks' constant part (base_ms)")


def table_identity(space: SearchSpace) -> dict[str, Any]:
    """What a latency table must share with the run that reads it: space, options and data shape."""
    options = json.loads(json.dumps(asdict(space.options) if is_dataclass(space.options) else {}))
    shape = {"num_classes": space.data.num_classes, "input_shape": list(space.data.input_shape)}
    return {"space": space.name, "space_options": options, "data_shape": shape}


def write_latency_table(space: SearchSpace, out: Path, device: torch.device, batch_size: int,
                        check: int = 30, seed: int = 0,
                        benchmark: dict[str, float] | None = None) -> dict[str, Any]:  # fmt: skip
    """Time every unit, write the table to ``out`` and return it.

    ``check`` random architectures are also timed whole, and the table's predictions ranked against them
    (Spearman); ``benchmark`` (benchmark key -> a recorded latency) adds the rank agreement with that.
    """
    from scipy.stats import spearmanr

    meter = LatencyMeter(device, batch_size)
    candidates = choice_candidates(space)
    largest = space.build_network(space.largest_architecture())
    meter.network(space, largest)  # warms the kernels up (the first convolution of a process is slow)
    model = CostModel(space, candidates, "latency", meter)
    content: dict[str, Any] = {
        "format": FORMAT, **table_identity(space), "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(), "batch_size": batch_size, "torch": torch.__version__,
        "unit": "ms per batch", "base_ms": model.base, "units": meter.times,
    }  # fmt: skip
    rng = random.Random(seed)
    if check:
        predicted, measured = [], []
        for _ in range(check):
            picks = {name: rng.choice(values) for name, values in candidates.items()}
            arch = space.arch_of(picks)
            predicted.append(model.of_picks(picks))
            measured.append(meter.network(space, space.build_network(arch)))
        rho = spearmanr(predicted, measured).statistic
        error = statistics.fmean(abs(p - m) / m for p, m in zip(predicted, measured, strict=True))
        content["check"] = {"architectures": check, "spearman": round(float(rho), 4),
                            "mean_relative_error": round(error, 4)}  # fmt: skip
    if benchmark:
        architectures = space.all_architectures() or []
        pairs = [(model.of_architecture(a), benchmark[space.benchmark_key(a)]) for a in architectures
                 if space.benchmark_key(a) in benchmark]  # fmt: skip
        if len(pairs) > 2:
            rho = spearmanr([p for p, _ in pairs], [b for _, b in pairs]).statistic
            content["benchmark_check"] = {"architectures": len(pairs), "spearman": round(float(rho), 4)}
    files.write_json_atomic(content, out)
    return content


def run_latency_table(space_name: str, options: dict[str, Any], device: str | None, batch_size: int,
                      input_shape: str | None, classes: int | None, check: int, benchmark: Path | None,
                      out: Path | None) -> dict[str, Any]:  # fmt: skip
    """``tanglenas latency-table``: build the space, time it, write the table; return a summary."""
    from tanglenas_cli.errors import check_name
    from tanglenas_cli.spaces import create_space, space_class
    from tanglenas_cli.spaces.base import DataShape

    where = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    check_name("device", where.type, ("cpu", "cuda"))
    if where.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no GPU is visible to PyTorch here")
    profile = space_class(space_name).profile_data
    shape = profile.input_shape
    if input_shape is not None:
        try:
            shape = tuple(int(part) for part in input_shape.split(","))
        except ValueError:
            raise UserError(f"--input-shape {input_shape!r}: expected numbers like 3,32,32") from None
        if not shape or min(shape) < 1:
            raise UserError(f"--input-shape {input_shape!r}: expected positive numbers like 3,32,32")
    space = create_space(space_name, DataShape(classes or profile.num_classes, shape), options)  # type: ignore[arg-type]
    recorded = None
    if benchmark is not None:
        from tanglenas_cli.benchmarks import load_benchmark

        column = f"latency_{'gpu' if where.type == 'cuda' else 'cpu'}_mean"
        entries = load_benchmark(benchmark).entries
        recorded = {k: float(v[column]) for k, v in entries.items() if isinstance(v.get(column), int | float)}
        if not recorded:
            raise UserError(f"{benchmark} records no {column} column to rank the table against")
    target = out or Path(f"latency-{space_name}-{where.type}-b{batch_size}.json")
    table = write_latency_table(space, target, where, batch_size, check=check, benchmark=recorded)
    result = {"space": space_name, "device": table["device_name"], "batch_size": batch_size,
              "units_timed": len(table["units"]), "base_ms": round(table["base_ms"], 4)}  # fmt: skip
    if "check" in table:
        result.update({f"whole_networks_{k}": v for k, v in table["check"].items()})
    if "benchmark_check" in table:
        result.update({f"benchmark_{k}": v for k, v in table["benchmark_check"].items()})
    result["written"] = str(target)
    return result
