"""Language models in the engine: token streams, gradient accumulation, per-step schedules, and the
nanoGPT search -> derive -> train -> eval -> sample path on a real (tiny) corpus."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from support import SHAKESPEARE, invoke, records

from tanglenas_cli.config import build_config
from tanglenas_cli.data.tokens import TokenWindows
from tanglenas_cli.engine.checkpoint import load_checkpoint
from tanglenas_cli.engine.factory import LearningRateSchedule, WeightLoss
from tanglenas_cli.engine.loaders import WeightBatches, WindowStream
from tanglenas_cli.errors import UserError
from tanglenas_cli.nas.architect import Architect, MicroBatches
from tanglenas_cli.nas.samplers import make_sampler

AUTOFORMER_TINY = ["space_options.variant=tiny", "space_options.patch_size=4", "space_options.head_dim=8",
                   "space_options.drop_path=0.0", "dataset_options.size=16", "dataset_options.channels=3",
                   "weight_optimizer.momentum=0.0"]  # fmt: skip
LM_FLAGS = {"space": "nanogpt", "dataset": "text"}
TINY = ["--set", "epochs=2", "--set", "steps_per_epoch=4", "--set", "eval_batches=3",
        "--set", "weight_optimizer.warmup_steps=2"]  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# token streams and epochs of steps


def windows(n: int = 1000, block: int = 8) -> TokenWindows:
    return TokenWindows(np.arange(n, dtype=np.uint16), block)


def test_window_stream_is_seeded_resumable_and_sharded():
    data = windows()
    first = WindowStream(data, 4, seed=3)
    batches = [next(first) for _ in range(3)]
    again = WindowStream(data, 4, seed=3)
    again.load_state_dict({"consumed": 2})
    assert torch.equal(next(again)[0], batches[2][0])
    x, y = batches[0]
    assert x.shape == (4, 8) and torch.equal(x[:, 1:], y[:, :-1]) and torch.equal(y - x, torch.ones_like(x))
    ranks = [next(WindowStream(data, 2, seed=3, rank=r, world=2))[0] for r in (0, 1)]
    assert torch.equal(torch.stack(ranks, 1).reshape(4, 8), batches[0][0])  # one global batch, split


def test_token_splits_are_contiguous_and_evaluate_on_blocks():
    data = windows(1001)
    first, rest = data.split(0.6)
    assert first.tokens[-1] + 1 == rest.tokens[0] and first.num_tokens == 600
    blocks = rest.blocks()
    assert len(blocks) == (401 - 1) // 8 and int(blocks[1][0][0]) == 608
    with pytest.raises(UserError, match="fewer than a block"):
        data.split(0.999)


def test_weight_batches_group_micro_batches():
    dataset = torch.utils.data.TensorDataset(torch.arange(20.0), torch.arange(20))
    batches = WeightBatches(dataset, 4, seed=0, grad_accum=2)
    steps = list(batches.epoch(0))
    assert batches.steps == 3 and [len(s) for s in steps] == [2, 2, 1]
    seen = torch.cat([b[1] for s in steps for b in s])
    assert sorted(seen.tolist()) == list(range(20))
    tokens = WeightBatches(windows(1001), 5, seed=0, grad_accum=2)
    assert tokens.steps == 1000 // 8 // 10 and all(isinstance(s, MicroBatches) for s in tokens.epoch(0))
    assert WeightBatches(windows(), 5, seed=0, steps_per_epoch=7).steps == 7


def test_per_step_schedule_warms_up_then_decays_to_lr_min():
    cfg = build_config(flags={"space": "nanogpt", "dataset": "text"}, overrides=[
        "epochs=2", "weight_optimizer.schedule_unit=step", "weight_optimizer.warmup_steps=4",
        "weight_optimizer.lr=0.1", "weight_optimizer.lr_min=0.01"])  # fmt: skip
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    schedule = LearningRateSchedule(cfg, optimizer, steps_per_epoch=10)
    rates = [schedule.set_step(step // 10, step % 10) for step in range(20)]
    assert rates[0] == 0.0 and rates[2] == pytest.approx(0.05) and rates[4] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(rates[4:]))
    assert rates[-1] == pytest.approx(0.01, abs=2e-3)
    with pytest.raises(UserError, match="schedule_unit=step"):
        build_config(
            flags={"space": "nanogpt", "dataset": "text"}, overrides=["weight_optimizer.warmup_steps=3"]
        )


def test_language_model_loss_is_per_token_and_mixup_is_refused():
    cfg = build_config(flags={"space": "nanogpt", "dataset": "text"})
    logits, targets = torch.randn(2, 5, 7), torch.randint(0, 7, (2, 5))
    loss = WeightLoss(cfg, 7, sequence=True).loss(logits, targets, None)
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(logits.reshape(10, 7), targets.reshape(10)))
    mixed = build_config(flags={"space": "nanogpt", "dataset": "text"}, overrides=["mixup.mixup_alpha=0.8"])
    with pytest.raises(UserError, match="token sequences"):
        WeightLoss(mixed, 7, sequence=True)


# ---------------------------------------------------------------------------------------------------
# the architect: accumulated micro-batches and clipped logit gradients


class TwoChoiceModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        from tanglenas_cli.nas.choices import Choice

        self.choice = Choice("op", ["a", "b"])
        self.weight = torch.nn.Parameter(torch.randn(3, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.weight) * self.choice.mixing().weights


def arch_gradient(batch, clip=None) -> torch.Tensor:
    torch.manual_seed(0)
    model = TwoChoiceModel()
    seen = {}
    architect = Architect(model, make_sampler("darts_v1"), lambda m, b: (m(b[0]) - b[1]).pow(2).mean(),
                          lr=1.0, weight_decay=0.0, grad_clip=clip)  # fmt: skip
    architect.optimizer.step = lambda: seen.update(grad=model.choice.arch_logits.grad.clone())  # type: ignore[method-assign]
    architect.step(batch)
    return seen["grad"]


def test_accumulated_arch_gradient_equals_the_joined_batch_and_is_clipped():
    x, y = torch.randn(8, 3), torch.randn(8, 2)
    joined = arch_gradient([x, y])
    micro = arch_gradient(MicroBatches([[x[:4], y[:4]], [x[4:], y[4:]]]))
    assert torch.allclose(joined, micro, atol=1e-6) and joined.norm() > 1e-3
    clipped = arch_gradient([x, y], clip=float(joined.norm()) / 10)
    assert clipped.norm() == pytest.approx(float(joined.norm()) / 10, rel=1e-4)


def test_search_with_accumulation_matches_the_big_batch(tmp_path: Path):
    """batch 8 x 1 and batch 4 x 2 see the same samples in the same steps: same weights and logits."""
    states = []
    for batch, accum in ((8, 1), (4, 2)):
        out = tmp_path / f"b{batch}"
        settings = [f"batch_size={batch}", f"grad_accum={accum}", "train_subset=64", *AUTOFORMER_TINY]
        sets = [part for setting in settings for part in ("--set", setting)]
        result = invoke("search", "--space", "autoformer", "--dataset", "digits", "--opt", "darts_v1",
                        "--out", out, *sets, "--set", "epochs=1")  # fmt: skip
        assert result.exit_code == 0, result.output
        states.append(load_checkpoint(out / "checkpoint.pt")["model"])
    for key, tensor in states[0].items():
        assert torch.allclose(tensor, states[1][key], atol=2e-5), key


# ---------------------------------------------------------------------------------------------------
# nanoGPT end to end on tiny-shakespeare


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory) -> Path:
    if not SHAKESPEARE.is_file():
        pytest.skip(f"not found: {SHAKESPEARE}")
    root = tmp_path_factory.mktemp("lm")
    result = invoke(
        "prepare-data", "text", "--from", SHAKESPEARE, "--tokenizer", "bytes", "--data-root", root
    )
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture(scope="module")
def lm_run(corpus_root: Path) -> Path:
    out = corpus_root / "search"
    result = invoke(
        "search", "--preset", "nanogpt-tiny-drnas", "--data-root", corpus_root, "--out", out, *TINY
    )
    assert result.exit_code == 0, result.output
    return out


def test_tiny_nanogpt_search_logs_perplexity(lm_run: Path):
    epochs = [r for r in records(lm_run / "metrics.jsonl") if r["kind"] == "epoch"]
    assert len(epochs) == 2
    for record in epochs:
        assert record["valid_perplexity"] == pytest.approx(math.exp(record["valid_loss"]), rel=1e-6)
    assert epochs[-1]["valid_loss"] < epochs[0]["valid_loss"] < math.log(320)  # 257 bytes padded to 320
    steps = [r for r in records(lm_run / "metrics.jsonl") if r["kind"] == "step"]
    assert all(r["lr"] <= 0.003 for r in steps)
    summary = json.loads((lm_run / "summary.json").read_text())
    assert summary["final_valid_loss"] == epochs[-1]["valid_loss"] and summary["space"] == "nanogpt"


@pytest.mark.slow
def test_interrupted_lm_search_resumes_exactly(corpus_root: Path, lm_run: Path, monkeypatch):
    import tanglenas_cli.engine.search as search_module

    saved = search_module.save_checkpoint

    def save_then_stop(state, path):  # the process dies right after the first checkpoint
        saved(state, path)
        raise KeyboardInterrupt

    out = corpus_root / "resumed"
    args = ["search", "--preset", "nanogpt-tiny-drnas", "--data-root", corpus_root, "--out", out, *TINY]
    monkeypatch.setattr(search_module, "save_checkpoint", save_then_stop)
    assert invoke(*args).exit_code != 0
    monkeypatch.setattr(search_module, "save_checkpoint", saved)
    result = invoke("search", "--resume", out)
    assert result.exit_code == 0, result.output
    full, resumed = (load_checkpoint(d / "checkpoint.pt")["model"] for d in (lm_run, out))
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    timeless = [[{k: v for k, v in r.items() if not k.startswith("seconds")}
                 for r in records(d / "metrics.jsonl")] for d in (lm_run, out)]  # fmt: skip
    assert timeless[0] == timeless[1]


@pytest.mark.slow
def test_train_eval_and_sample_the_derived_gpt(corpus_root: Path, lm_run: Path):
    train = ["train", "--preset", "nanogpt-tiny-train", "--set", "epochs=1", "--set", "steps_per_epoch=6",
             "--set", "weight_optimizer.warmup_steps=2"]  # fmt: skip
    result = invoke(*train, "--from-run", lm_run, "--epoch", "1")
    assert result.exit_code == 0, result.output
    trained = lm_run / "train-epoch1-text-s9001"
    arch = (trained / "arch.yaml").read_text()
    assert "after epoch 1" in arch
    epoch = records(trained / "metrics.jsonl")[-1]
    assert {"test_loss", "test_perplexity", "valid_loss", "valid_perplexity"} <= set(epoch)
    result = invoke("eval", trained, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["perplexity"] == pytest.approx(math.exp(metrics["loss"]), rel=1e-3)
    assert metrics["tokens"] == metrics["samples"] * 64 and 0 < metrics["token_top1"] < 100
    assert metrics["input"] == "64" and metrics["macs"] > 0
    result = invoke("sample", trained, "--prompt", "ROMEO:", "--tokens", "20", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["text"].startswith("ROMEO:")
    # from the derived arch.yaml, without a validation split: no validation loss is logged
    result = invoke(*train, lm_run, "--set", "val_portion=0.0", "--out", corpus_root / "plain")
    assert result.exit_code == 0, result.output
    assert "valid_loss" not in records(corpus_root / "plain" / "metrics.jsonl")[-1]


@pytest.mark.parametrize("args, fragment", [
    (["RUN", "--from-run", "RUN"], "not both"),
    ([], "not both"),
    (["RUN", "--epoch", "1"], "give --from-run"),
    (["--from-run", "RUN", "--epoch", "9"], "no epoch 9"),
    (["--from-run", "RUN", "--epoch", "0"], "count from 1"),
    (["--from-run", "MISSING"], "not found"),
])  # fmt: skip
def test_bad_train_sources_are_one_line(lm_run: Path, tmp_path: Path, args, fragment):
    paths = {"RUN": lm_run, "MISSING": tmp_path / "missing"}
    result = invoke("train", *[paths.get(a, a) for a in args], "--out", tmp_path / "out")
    assert result.exit_code == 2 and fragment in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_spos_lm_search_then_evolution_ranks_by_loss(corpus_root: Path):
    out = corpus_root / "spos"
    result = invoke("search", "--preset", "nanogpt-tiny-drnas", "--opt", "spos", "--data-root", corpus_root,
                    "--out", out, *TINY, "--set", "train_portion=0.8")  # fmt: skip
    assert result.exit_code == 0, result.output
    result = invoke("derive", out, "--strategy", "evolution", "--generations", "1", "--population", "4",
                    "--batches", "2", "--out", out / "evolved.yaml")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "supernet loss" in yaml.safe_load((out / "evolved.yaml").read_text())["derived_by"]


def test_missing_corpus_names_the_prepare_command(tmp_path: Path):
    result = invoke(
        "search", "--preset", "nanogpt-tiny-drnas", "--data-root", tmp_path, "--out", tmp_path / "r"
    )
    assert result.exit_code == 2 and "prepare-data text" in result.output
