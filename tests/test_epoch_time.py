"""A search epoch: where its time goes (per-epoch seconds, the summary's breakdown), and how often a
step waits for the device (reads a tensor's value on the host)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from tanglenas_cli.config import build_config
from tanglenas_cli.engine import search as search_module
from tanglenas_cli.engine.progress import RunProgress
from tanglenas_cli.engine.search import run_search
from tanglenas_cli.engine.stopwatch import StopWatch

TINY = {
    "space": "toy_cell", "dataset": "digits", "dataset_options": {"size": 12}, "space_options": {"C": 4},
    "epochs": 2, "batch_size": 32, "logging": {"progress": False},
}  # fmt: skip
READS = ("__bool__", "__float__", "__int__", "item", "tolist")


def _count_reads(monkeypatch) -> dict[str, int]:
    """Count the reads of tensor values by this project's code inside ``SearchRun._train_epoch``.

    Reads by the data pipeline (host tensors) and by torch itself (e.g. Adam's step count, a CPU tensor)
    wait for no device and are not counted.
    """
    counts = {"reads": 0, "steps": 0, "on": 0}
    package = str(Path(search_module.__file__).parents[1])
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if counts["on"] and caller.startswith(package) and "/data/" not in caller:
                counts["reads"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    train_epoch = search_module.SearchRun._train_epoch

    def watched(self, epoch, lr, progress, tracker):
        counts["on"] += 1
        try:
            return train_epoch(self, epoch, lr, progress, tracker)
        finally:
            counts["on"] -= 1
            counts["steps"] += self.batches.steps

    monkeypatch.setattr(search_module.SearchRun, "_train_epoch", watched)
    return counts


# (SPOS and GDAS pick one path per choice on the host each step: what runs depends on it)
@pytest.mark.parametrize("optimizer", ["drnas", "darts_v1", "darts_v2"])
def test_a_search_step_waits_for_the_device_at_most_twice(tmp_path: Path, monkeypatch, optimizer):
    counts = _count_reads(monkeypatch)
    cfg = build_config(base={**TINY, "optimizer": optimizer, "out_dir": str(tmp_path / "run"),
                             "logging": {"progress": False, "log_every": 10_000}})  # fmt: skip
    run_search(cfg)
    # one for the weight step's finiteness check, one for the arch step's; the loss,
    # accuracy and arch loss are read once per epoch, not per step, and so is the epoch's shuffled order
    per_epoch = 6
    assert counts["steps"] > 20
    assert counts["reads"] <= 2 * counts["steps"] + per_epoch * TINY["epochs"]


def test_epoch_records_and_summary_say_where_the_time_went(tmp_path: Path):
    cfg = build_config(base={**TINY, "out_dir": str(tmp_path / "run")})
    summary = run_search(cfg)
    assert summary is not None
    epochs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in epochs if r["kind"] == "epoch"]
    parts = ("seconds_data", "seconds_arch_steps", "seconds_weight_steps", "seconds_validation")
    for record in epochs:
        assert all(record[p] > 0 for p in parts)
        assert "seconds_writes" not in record  # written after the record: only in the summary
        assert sum(record[p] for p in parts) <= record["seconds"] + 1e-3
    stored = json.loads((tmp_path / "run" / "summary.json").read_text())["time_breakdown"]
    assert set(stored) == {"data", "arch_steps", "weight_steps", "validation", "writes"}
    assert stored["weight_steps"] == pytest.approx(sum(r["seconds_weight_steps"] for r in epochs), abs=0.02)


def test_stopwatch_times_blocks_and_fetches():
    watch = StopWatch()
    with watch.part("a"):
        sum(range(10_000))
    before = dict(watch.totals)
    assert list(watch.items(iter([1, 2, 3]), "fetch")) == [1, 2, 3]
    assert set(watch.totals) == {"a", "fetch"} and watch.totals["a"] > 0
    assert set(watch.since(before)) == {"a", "fetch"} and watch.since(before)["a"] == 0


def test_progress_reads_the_status_only_when_it_shows_it(tmp_path: Path):
    calls = []

    def status() -> str:
        calls.append(1)
        return "loss 1.000 acc 10.0%"

    with RunProgress(True, 1, log=tmp_path / "run.log") as progress:  # no terminal: a plain line now and then
        progress.start_epoch(0, 500)
        for _ in range(500):
            progress.step(status)
    assert len(calls) == 1  # the first step's line; the next is due 30 s later
