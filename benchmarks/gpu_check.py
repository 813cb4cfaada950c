"""The GPU check (``make gpu-check``): what the CPU-only test suite cannot show, in under 8 minutes.

On the GPU(s) of this machine it writes, row by row as each part finishes:

- ``benchmarks/results/gpu-profile.csv``: ``tanglenas profile`` of nb201, darts, autoformer and nanogpt
  with the batch size and space options of their DrNAS paper presets (WE, WS where the space has it,
  largest subnet: CUDA-synchronised step time, ``max_memory_allocated``), and nb201 with ``--compile``;
- ``benchmarks/results/gpu-runs.csv``: a 2-epoch quickstart search under bf16 and under fp16, and with 2+
  GPUs the same search data-parallel over every GPU (its epoch records say the logits stayed in sync).

The compiled profile runs last (its compiles take minutes) and, like every part, is stopped when the
budget is spent, so the check ends inside one 15-minute GPU lease with what it measured written.

Without a GPU it says so in one line and exits 0. ``--smoke`` runs the same plan on the CPU with tiny
sizes into ``--out`` (the test suite does, to check the plumbing).

    python benchmarks/gpu_check.py [--out DIR] [--smoke]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from tanglenas_cli.presets import paper_preset

RESULTS = Path(__file__).parent / "results"
PROFILED = ("nb201", "darts", "autoformer", "nanogpt")
BUDGET_S = 7.5 * 60  # parts that would start later are skipped (and say so)
PROFILE_FIELDS = ["space", "batch_size", "compile", "mode", "step_s", "peak_mb", "params", "time_ratio",
                  "memory_ratio", "device", "status"]  # fmt: skip
RUN_FIELDS = ["run", "processes", "mixed_precision", "seconds", "final_valid_acc", "status"]


def tanglenas(*args: object, processes: int = 1, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the CLI (under torchrun with ``processes`` > 1); one stopped at ``timeout`` s gets rc 124."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
    command = [*(launcher if processes > 1 else [sys.executable]), "-m", "tanglenas_cli", *map(str, args)]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        stopped = f"stopped after {timeout:.0f} s: the check's time budget"
        return subprocess.CompletedProcess(command, 124, "", stopped)


def time_left(started: float) -> float:
    """Seconds of the check's budget still unspent."""
    return BUDGET_S - (time.perf_counter() - started)


def failure(done: subprocess.CompletedProcess) -> str:
    """The last line a failed command printed."""
    return f"rc {done.returncode}: " + (done.stderr.strip().splitlines() or ["no output"])[-1][:200]


class Table:
    """A CSV file written a row at a time (so a stopped check keeps what it measured)."""

    def __init__(self, path: Path, fields: list[str]) -> None:
        self.path, self.fields = path, fields
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            csv.DictWriter(handle, fields).writeheader()

    def add(self, row: dict[str, Any]) -> None:
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, self.fields, extrasaction="ignore").writerow(row)
        print(", ".join(f"{k}={row.get(k, '')}" for k in self.fields), flush=True)


def profile_args(space: str, smoke: bool) -> list[str]:
    """The ``profile`` arguments of ``space``: its DrNAS paper preset's batch size and space options."""
    preset = paper_preset("search", space, None, "drnas")
    settings = preset.settings if preset is not None else {}
    batch = 2 if smoke else int(settings.get("batch_size", 64))
    options = {k: v for k, v in settings.get("space_options", {}).items() if k != "drop_path"}
    if smoke:
        options = {"C": 4, "N": 1}  # nb201, small
    sets = [
        x for key, value in options.items() for x in ("--set", f"space_options.{key}={json.dumps(value)}")
    ]
    steps = ["--steps", "1", "--warmup", "0"] if smoke else ["--steps", "10", "--warmup", "3"]
    return ["--space", space, "--batch-size", str(batch), *steps, *sets]


def run_profiles(table: Table, plan: list[tuple[str, bool]], smoke: bool, started: float) -> None:
    """``profile`` of each (space, compiled) in ``plan``; each stops when the budget is spent."""
    for space, compiled in plan:
        row: dict[str, Any] = {"space": space, "compile": compiled}
        if time_left(started) <= 0:
            table.add({**row, "status": "skipped: time budget spent"})
            continue
        args = [*profile_args(space, smoke), "--json", *(["--compile"] if compiled else [])]
        done = tanglenas("profile", *args, timeout=time_left(started))
        if done.returncode != 0:
            table.add({**row, "status": failure(done)})
            continue
        result = json.loads(done.stdout)
        for mode, numbers in result["modes"].items():
            table.add({**row, "batch_size": result["batch_size"], "mode": mode, **numbers,
                       "time_ratio": result.get(f"{mode}_time_ratio", 1.0),
                       "memory_ratio": result.get(f"{mode}_memory_ratio", 1.0),
                       "device": result["device"], "status": "ok"})  # fmt: skip


def run_searches(table: Table, out: Path, smoke: bool, started: float) -> None:
    """The quickstart search for 2 epochs per precision (and over every GPU), its run in ``out``."""
    gpus = torch.cuda.device_count()
    plan = [("search bf16", 1, "bf16"), ("search fp16", 1, "fp16")]
    if gpus >= 2:
        plan.append((f"search data-parallel x{gpus}", gpus, "bf16"))
    for name, processes, precision in plan[:1] if smoke else plan:
        row: dict[str, Any] = {"run": name, "processes": processes, "mixed_precision": precision}
        if time_left(started) <= 0:
            table.add({**row, "status": "skipped: time budget spent"})
            continue
        run = out / name.replace(" ", "-")
        settings = ["--set", "epochs=2", "--set", "logging.progress=false"]
        if smoke:
            settings += ["--set", "train_subset=64"]
        begun = time.perf_counter()
        done = tanglenas("search", "--preset", "quickstart", *settings, "--mixed-precision", precision,
                         "--out", run, "--json", processes=processes, timeout=time_left(started))  # fmt: skip
        row["seconds"] = round(time.perf_counter() - begun, 1)
        if done.returncode != 0:
            table.add({**row, "status": failure(done)})
            continue
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        epochs = [r for r in records if r["kind"] == "epoch"]
        in_sync = processes == 1 or all(r.get("processes") == processes for r in epochs)
        table.add({**row, "final_valid_acc": epochs[-1]["valid_acc"],
                   "status": "ok" if in_sync else "processes out of sync"})  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the CSV files")
    parser.add_argument("--smoke", action="store_true", help="the same plan on the CPU, tiny (tests)")
    args = parser.parse_args()
    if not torch.cuda.is_available() and not args.smoke:
        print("gpu-check: no GPU here (torch.cuda.is_available() is False); nothing to measure")
        return 0
    device = "cpu (smoke)" if args.smoke else torch.cuda.get_device_name(0)
    print(f"gpu-check on {device}, {torch.cuda.device_count()} GPU(s), torch {torch.__version__}", flush=True)
    os.environ.setdefault("OMP_NUM_THREADS", "4")
    started = time.perf_counter()
    profiles = Table(args.out / "gpu-profile.csv", PROFILE_FIELDS)
    eager = [(space, False) for space in PROFILED[: 1 if args.smoke else None]]
    run_profiles(profiles, eager, args.smoke, started)
    with tempfile.TemporaryDirectory() as runs:
        run_searches(Table(args.out / "gpu-runs.csv", RUN_FIELDS), Path(runs), args.smoke, started)
    if not args.smoke:  # last: compiling takes minutes, and what is left of the budget bounds it
        run_profiles(profiles, [("nb201", True)], args.smoke, started)
    print(f"gpu-check done in {time.perf_counter() - started:.0f} s; tables in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
