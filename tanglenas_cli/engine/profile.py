"""``tanglenas profile``: step time and peak memory of the WE supernet, the WS supernet and the
largest single subnet of a space, each measured in its own fresh process so peaks never mix.

A step is forward + loss + backward of the weights (and, for supernets, the architecture logits),
with a fresh sample of the mixing weights. On CPU the peak is the growth of the process's peak RSS
over its value after construction; on a GPU it is ``torch.cuda.max_memory_allocated`` after a reset.
With ``compile`` the first (compiling) step runs before the reset, so only the steps' memory counts.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from tanglenas_cli.errors import UserError

MODES = ("we", "ws", "largest")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _forget_peak_rss() -> float:
    """Reset the kernel's peak-RSS mark (Linux ``clear_refs``) and return the RSS now, in MB.

    Used after compiling, so the compiler's own memory does not count as the step's peak. Without
    ``clear_refs`` (not Linux) the peak is left as is and the current peak is returned.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back, so the baseline holds no slack
        Path("/proc/self/clear_refs").write_text("5")
        return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20
    except (OSError, AttributeError):
        return _peak_rss_mb()


def measure(space_name: str, mode: str, optimizer: str, batch_size: int, steps: int, warmup: int,
            options: dict[str, Any], channels_last: bool = False,
            compile: bool = False) -> dict[str, Any]:  # fmt: skip
    """Return the median step time and peak memory of one mode, measured in this process."""
    from tanglenas_cli.engine.factory import WeightLoss
    from tanglenas_cli.engine.speed import check_compile_supported, speed_up
    from tanglenas_cli.engine.step import forward_backward
    from tanglenas_cli.engine.task import task_of
    from tanglenas_cli.nas.samplers import make_sampler
    from tanglenas_cli.spaces import create_space, space_class
    from tanglenas_cli.spaces.base import choices_by_name

    data = space_class(space_name).profile_data
    space = create_space(space_name, data, options)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    if mode == "largest":
        model = space.build_network(space.largest_architecture()).to(device)
        choices = []
    else:
        model = space.build_supernet(entangle=mode == "we").to(device)
        choices = list(choices_by_name(model).values())
    if compile and mode != "largest":
        check_compile_supported(optimizer)
    speed_up(model, channels_last=channels_last, compile=compile)
    sampler = make_sampler(optimizer, seed=0)
    task = task_of(space)
    micro = [task.example_batch(data, batch_size, device)]
    weight_loss = WeightLoss(None, data.num_classes, sequence=task.sequence)
    model.train()

    def step() -> None:  # the training step of search and train, without the optimizer's update
        forward_backward(model, micro, device, weight_loss, lambda loss: loss.backward(),
                         before_forward=(lambda: sampler.sample(choices)) if choices else None)  # fmt: skip
        model.zero_grad(set_to_none=True)
        for choice in choices:
            choice.arch_logits.grad = None

    baseline = _peak_rss_mb()
    if compile:  # the first call compiles: do it before measuring, and forget the compiler's memory
        step()
        warmup = max(warmup - 1, 0)
        baseline = _forget_peak_rss()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for number in range(warmup + steps):
        started = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if number >= warmup:
            times.append(time.perf_counter() - started)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
        device_name = torch.cuda.get_device_name()
    else:
        peak = _peak_rss_mb() - baseline
        device_name = f"cpu ({torch.get_num_threads()} threads)"
    params = sum(p.numel() for p in model.parameters())
    return {"mode": mode, "step_s": statistics.median(times), "peak_mb": peak, "params": params,
            "device": device_name}  # fmt: skip


def run_profile(space: str, optimizer: str = "drnas", batch_size: int = 64, steps: int = 10, warmup: int = 3,
                options: dict[str, Any] | None = None, *, channels_last: bool = False,
                compile: bool = False) -> dict[str, Any]:  # fmt: skip
    """Measure every mode in its own process; return the numbers and the ratios to the largest subnet."""
    from tanglenas_cli.spaces import space_class

    space_type = space_class(space)
    results: dict[str, dict[str, Any]] = {}
    modes = [m for m in MODES if m != "ws" or space_type.supports_ws]
    # the worker imports the space's module from this import path: a space registered elsewhere works too
    for mode in modes:
        request = json.dumps({"space": space, "module": space_type.__module__, "path": sys.path, "mode": mode,
                              "optimizer": optimizer, "batch_size": batch_size, "steps": steps,
                              "warmup": warmup, "options": options or {}, "channels_last": channels_last,
                              "compile": compile})  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "tanglenas_cli.engine.profile", request],
            capture_output=True, text=True, env=os.environ.copy(), check=False,
        )  # fmt: skip
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(f"profiling {space} ({mode}) failed: {last}")
        results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    largest = results["largest"]
    summary: dict[str, Any] = {"space": space, "optimizer": optimizer, "batch_size": batch_size,
                               "channels_last": channels_last, "compile": compile,
                               "device": largest["device"], "modes": results}  # fmt: skip
    for mode in ("we", "ws"):
        if mode not in results:
            continue
        summary[f"{mode}_time_ratio"] = round(results[mode]["step_s"] / largest["step_s"], 3)
        summary[f"{mode}_memory_ratio"] = round(results[mode]["peak_mb"] / max(largest["peak_mb"], 1e-9), 3)
    return summary


if __name__ == "__main__":  # the worker: one mode, one fresh process, one JSON line
    spec = json.loads(sys.argv[1])
    sys.path[:0] = [entry for entry in spec["path"] if entry not in sys.path]
    importlib.import_module(spec["module"])  # registers the space
    print(json.dumps(measure(spec["space"], spec["mode"], spec["optimizer"], spec["batch_size"],
                             spec["steps"], spec["warmup"], spec["options"], spec.get("channels_last", False),
                             spec.get("compile", False))))  # fmt: skip
