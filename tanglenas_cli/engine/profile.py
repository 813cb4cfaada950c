"""``tanglenas profile``: step time and peak memory of the WE supernet, the WS supernet and the
largest single subnet of a space. Each mode's memory is measured in its own fresh process, so peaks
never mix; the step times of all modes are measured interleaved in one more process, so that the noise
of a shared machine hits every mode alike.

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
ROUND_STEPS = 2  # measured steps per mode per round of the interleaved timing


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


class ModeStep:
    """One mode's model and its training step (forward, loss, backward; no optimizer update)."""

    def __init__(self, space_name: str, mode: str, optimizer: str, batch_size: int, options: dict[str, Any],
                 channels_last: bool = False, compile: bool = False) -> None:  # fmt: skip
        from tanglenas_cli.engine.factory import WeightLoss
        from tanglenas_cli.engine.speed import check_compile_supported, speed_up
        from tanglenas_cli.engine.task import task_of
        from tanglenas_cli.nas.samplers import make_sampler
        from tanglenas_cli.spaces import create_space, space_class
        from tanglenas_cli.spaces.base import choices_by_name

        data = space_class(space_name).profile_data
        space = create_space(space_name, data, options)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        torch.manual_seed(0)
        if mode == "largest":
            model = space.build_network(space.largest_architecture()).to(self.device)
            self.choices = []
        else:
            model = space.build_supernet(entangle=mode == "we").to(self.device)
            self.choices = list(choices_by_name(model).values())
        if compile and mode != "largest":
            check_compile_supported(optimizer)
        self.params = sum(p.numel() for p in model.parameters())
        speed_up(model, channels_last=channels_last, compile=compile)
        self.model, self.mode = model, mode
        self.sampler = make_sampler(optimizer, seed=0)
        task = task_of(space)
        self.micro = [task.example_batch(data, batch_size, self.device)]
        self.weight_loss = WeightLoss(None, data.num_classes, sequence=task.sequence)
        model.train()

    def __call__(self) -> float:
        """Run one step; return its seconds (the device finished)."""
        from tanglenas_cli.engine.step import forward_backward

        started = time.perf_counter()
        before = (lambda: self.sampler.sample(self.choices)) if self.choices else None
        forward_backward(self.model, self.micro, self.device, self.weight_loss, lambda loss: loss.backward(),
                         before_forward=before)  # fmt: skip
        self.model.zero_grad(set_to_none=True)
        for choice in self.choices:
            choice.arch_logits.grad = None
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    def device_name(self) -> str:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name()
        return f"cpu ({torch.get_num_threads()} threads)"


def measure_memory(space_name: str, mode: str, optimizer: str, batch_size: int, steps: int, warmup: int,
                   options: dict[str, Any], channels_last: bool = False,
                   compile: bool = False) -> dict[str, Any]:  # fmt: skip
    """Return the peak memory of one mode's steps (run this in a fresh process: peaks never mix)."""
    step = ModeStep(space_name, mode, optimizer, batch_size, options, channels_last, compile)
    baseline = _peak_rss_mb()
    if compile:  # the first call compiles: do it before measuring, and forget the compiler's memory
        step()
        warmup = max(warmup - 1, 0)
        baseline = _forget_peak_rss()
    if step.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    for _ in range(warmup + steps):
        step()
    if step.device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = _peak_rss_mb() - baseline
    return {"mode": mode, "peak_mb": peak, "params": step.params, "device": step.device_name()}


def measure_times(space_name: str, modes: list[str], optimizer: str, batch_size: int, steps: int,
                  warmup: int, options: dict[str, Any], channels_last: bool = False,
                  compile: bool = False) -> dict[str, Any]:  # fmt: skip
    """Time every mode in this one process, interleaved: round after round, each mode takes one unmeasured
    step (its caches warm again) and ``ROUND_STEPS`` measured ones. A slow spell of a shared machine then
    hits every mode alike, which separate processes do not guarantee (their ratios swung by 15%).

    Returns per mode the median and min step, and per round the ratio of each mode's median to the
    largest subnet's.
    """
    built = {mode: ModeStep(space_name, mode, optimizer, batch_size, options, channels_last, compile)
             for mode in modes}  # fmt: skip
    for step in built.values():
        for _ in range(max(warmup, 1 if compile else 0)):
            step()
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    round_ratios: dict[str, list[float]] = {mode: [] for mode in modes if mode != "largest"}
    rounds = -(-steps // ROUND_STEPS)
    for _ in range(rounds):
        medians = {}
        for mode, step in built.items():
            step()
            measured = [step() for _ in range(ROUND_STEPS)]
            times[mode].extend(measured)
            medians[mode] = statistics.median(measured)
        for mode in round_ratios:
            round_ratios[mode].append(medians[mode] / medians["largest"])
    return {"times": {mode: {"step_s": statistics.median(t), "step_min_s": min(t), "steps": len(t)}
                      for mode, t in times.items()},
            "round_ratios": round_ratios}  # fmt: skip


def _worker(request: dict[str, Any]) -> dict[str, Any]:
    """Run one request (``task``: "memory" of one mode or "times" of all) in a fresh process."""
    done = subprocess.run([sys.executable, "-m", "tanglenas_cli.engine.profile", json.dumps(request)],
                          capture_output=True, text=True, env=os.environ.copy(), check=False)  # fmt: skip
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        what = request.get("mode", "timing")
        raise UserError(f"profiling {request['space']} ({what}) failed: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_profile(space: str, optimizer: str = "drnas", batch_size: int = 64, steps: int = 10, warmup: int = 3,
                options: dict[str, Any] | None = None, *, channels_last: bool = False,
                compile: bool = False) -> dict[str, Any]:  # fmt: skip
    """Measure peak memory of every mode in its own process, and step times of all modes interleaved in
    one more process; return the numbers and the ratios to the largest subnet."""
    from tanglenas_cli.spaces import space_class

    space_type = space_class(space)
    modes = [m for m in MODES if m != "ws" or space_type.supports_ws]
    # the worker imports the space's module from this import path: a space registered elsewhere works too
    common = {"space": space, "module": space_type.__module__, "path": sys.path, "optimizer": optimizer,
              "batch_size": batch_size, "warmup": warmup, "options": options or {},
              "channels_last": channels_last, "compile": compile}  # fmt: skip
    results: dict[str, dict[str, Any]] = {}
    for mode in modes:  # memory: a step or two past the warm-up reach the peak
        results[mode] = _worker({**common, "task": "memory", "mode": mode, "steps": min(steps, 2)})
    timing = _worker({**common, "task": "times", "modes": modes, "steps": steps})
    for mode in modes:
        results[mode].update(timing["times"][mode])
    largest = results["largest"]
    summary: dict[str, Any] = {"space": space, "optimizer": optimizer, "batch_size": batch_size,
                               "channels_last": channels_last, "compile": compile,
                               "device": largest["device"], "timing": "interleaved in one process",
                               "modes": results}  # fmt: skip
    for mode in ("we", "ws"):
        if mode not in results:
            continue
        ratios = timing["round_ratios"][mode]
        summary[f"{mode}_time_ratio"] = round(results[mode]["step_s"] / largest["step_s"], 3)
        summary[f"{mode}_time_ratio_rounds"] = [round(min(ratios), 3), round(max(ratios), 3)]
        summary[f"{mode}_memory_ratio"] = round(results[mode]["peak_mb"] / max(largest["peak_mb"], 1e-9), 3)
    return summary


if __name__ == "__main__":  # the worker: one request, one fresh process, one JSON line
    spec = json.loads(sys.argv[1])
    sys.path[:0] = [entry for entry in spec["path"] if entry not in sys.path]
    importlib.import_module(spec["module"])  # registers the space
    shared = (spec["optimizer"], spec["batch_size"], spec["steps"], spec["warmup"], spec["options"],
              spec["channels_last"], spec["compile"])  # fmt: skip
    if spec["task"] == "memory":
        print(json.dumps(measure_memory(spec["space"], spec["mode"], *shared)))
    else:
        print(json.dumps(measure_times(spec["space"], spec["modes"], *shared)))
