"""Search strategies (alternating / simultaneous), the random arch hold-out and pin_memory, on digits."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from support import invoke, records
from torch.utils.data import Subset

import tanglenas_cli.data.splits as splits_module
import tanglenas_cli.engine.loaders as loaders_module
import tanglenas_cli.engine.search as search_module
from tanglenas_cli.config import build_config
from tanglenas_cli.data.info import DatasetInfo
from tanglenas_cli.data.tokens import TokenWindows
from tanglenas_cli.engine.checkpoint import load_checkpoint
from tanglenas_cli.engine.factory import arch_weight_decay, load_search_data, make_sampler_for
from tanglenas_cli.engine.factory import make_weight_optimizer as weight_optimizer_for
from tanglenas_cli.engine.loaders import WeightBatches, epoch_loader
from tanglenas_cli.engine.precision import StepGuard
from tanglenas_cli.engine.search import SearchRun
from tanglenas_cli.engine.step import Tally
from tanglenas_cli.errors import UserError
from tanglenas_cli.nas.architect import MicroBatches
from tanglenas_cli.nas.choices import arch_parameters, weight_parameters
from tanglenas_cli.spaces.base import choices_by_name

DIGITS_TRAIN = 1437  # the fixed 80 % training part of scikit-learn's 1,797 digits
TINY = {
    "space": "toy_cell", "dataset": "digits", "dataset_options": {"size": 12}, "space_options": {"C": 4},
    "epochs": 1, "batch_size": 32, "logging": {"progress": False},
}  # fmt: skip
TINY_CLI = ["--space", "toy_cell", "--dataset", "digits", "--set", "dataset_options.size=12", "--set",
            "space_options.C=4", "--set", "batch_size=128", "--set", "logging.progress=false"]  # fmt: skip


def config(tmp_path: Path, **settings):
    return build_config(base={**TINY, "out_dir": str(tmp_path / "run"), **settings})


# ---------------------------------------------------------------------------------------------------
# arch_split_size


def test_arch_split_size_holds_out_a_fixed_random_set(tmp_path: Path):
    data = load_search_data(config(tmp_path, arch_split_size=300))
    weights, arch = data.weight_split.indices, data.arch_split.indices
    assert (len(arch), len(weights)) == (300, DIGITS_TRAIN - 300)
    assert set(arch).isdisjoint(weights) and set(arch) | set(weights) == set(range(DIGITS_TRAIN))
    assert arch != sorted(arch) and max(arch) > DIGITS_TRAIN - 300  # random, not the contiguous tail
    again = load_search_data(config(tmp_path, arch_split_size=300, seed=5))  # the run's seed does not move it
    assert again.arch_split.indices == arch and again.weight_split.indices == weights
    # validation: the same held-out images, from the unaugmented training set
    assert data.valid_split.indices == arch and data.valid_split.dataset is not data.arch_split.dataset
    subset = load_search_data(config(tmp_path, arch_split_size=100, train_subset=500))
    assert (len(subset.weight_split), len(subset.arch_split)) == (400, 100)
    assert isinstance(subset.arch_split.dataset, Subset)  # indices into the 500 chosen items


def test_arch_split_size_errors_are_one_line(tmp_path: Path, monkeypatch):
    with pytest.raises(UserError, match="arch_split_size=1437 must be below the 1,437 training items"):
        load_search_data(config(tmp_path, arch_split_size=DIGITS_TRAIN))
    with pytest.raises(UserError, match="arch_split_size"):
        config(tmp_path, arch_split_size=0)
    tokens = TokenWindows(np.arange(2000, dtype=np.uint16) % 50, 16)
    info = DatasetInfo("text", 50, (16,), (), ())  # type: ignore[arg-type]
    monkeypatch.setattr(
        splits_module, "build_datasets", lambda *args, **kwargs: (tokens, tokens.blocks(), info)
    )
    with pytest.raises(UserError, match="token corpus, split by train_portion") as caught:
        load_search_data(config(tmp_path, dataset="text", arch_split_size=100))
    assert "\n" not in str(caught.value)
    whole = load_search_data(
        config(tmp_path, dataset="text", train_portion=1.0)
    )  # simultaneous: no arch split
    assert whole.weight_split is tokens and len(whole.arch_split) == 0 and len(whole.valid_split) > 0


# ---------------------------------------------------------------------------------------------------
# pin_memory


@pytest.mark.filterwarnings("ignore:.*pin_memory")
def test_pin_memory_reaches_every_data_loader(tmp_path: Path, monkeypatch):
    assert epoch_loader(range(10), 4, seed=0, pin_memory=True).pin_memory  # type: ignore[arg-type]
    assert not epoch_loader(range(10), 4, seed=0).pin_memory  # type: ignore[arg-type]
    built = []
    original = loaders_module.DataLoader

    def recording(*args, **kwargs):
        loader = original(*args, **kwargs)
        built.append(loader)
        return loader

    monkeypatch.setattr(loaders_module, "DataLoader", recording)
    cfg = config(tmp_path, pin_memory=True, optimizer="darts_v1", steps_per_epoch=1, eval_batches=1)
    run = SearchRun(cfg)
    run.run()  # the weights' and the arch split's streams, validation
    assert len(built) == 3
    epochs = WeightBatches(run.data.weight_split, 32, seed=0, pin_memory=cfg.pin_memory)  # one pass per epoch
    next(iter(epochs.epoch(0)))
    assert len(built) == 4 and all(loader.pin_memory for loader in built)


# ---------------------------------------------------------------------------------------------------
# simultaneous: one backward of the training loss feeds both optimizers


def forbid_arch_batches(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the simultaneous strategy drew from the arch split")

    monkeypatch.setattr(search_module, "batch_stream", refuse)


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    "optimizer, accum, extra",
    [("darts_v1", 1, {}), ("darts_v1", 2, {}), ("drnas", 1, {"sampler": {"drnas_reg": "kl"}})],
)
def test_simultaneous_step_is_one_backward_of_loss_plus_regulariser(tmp_path, monkeypatch, optimizer, accum,
                                                                    extra):  # fmt: skip
    forbid_arch_batches(monkeypatch)
    cfg = config(tmp_path, optimizer=optimizer, search_strategy="simultaneous", grad_accum=accum,
                 arch_optimizer={"grad_clip": 0.01}, **extra)  # fmt: skip
    run = SearchRun(cfg)
    assert run.arch_stream is None and run.simultaneous
    micro = next(iter(run.batches.epoch(0)))
    assert isinstance(micro, MicroBatches) and len(micro) == accum
    # by hand, on a copy of the supernet: one backward of mean(loss + regulariser), then both steps
    model = copy.deepcopy(run.model)
    sampler = make_sampler_for(cfg)
    sampler.load_state_dict(run.sampler.state_dict())
    choices = choices_by_name(model)
    logits = arch_parameters(model)
    weights = weight_parameters(model, exclude=logits)
    rng = torch.get_rng_state()  # dropout
    for inputs, targets in micro:
        sampler.sample(choices.values())
        loss = F.cross_entropy(model(inputs), targets)
        regularization = sampler.regularization(choices.values())
        assert (regularization is None) == (optimizer == "darts_v1")
        total = loss if regularization is None else loss + regularization
        (total / len(micro)).backward()
    torch.nn.utils.clip_grad_norm_(weights, cfg.grad_clip)
    torch.nn.utils.clip_grad_norm_(logits, 0.01)
    weight_optimizer_for(cfg, weights).step()
    torch.optim.Adam(logits, lr=cfg.arch_optimizer.lr, betas=cfg.arch_optimizer.betas,
                     weight_decay=arch_weight_decay(cfg)).step()  # fmt: skip
    expected = snapshot(model)
    torch.set_rng_state(rng)
    before = snapshot(run.model)
    tally = Tally()
    assert run._simultaneous_step(micro, tally, "test")
    after = snapshot(run.model)
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert any(k.endswith("arch_logits") for k in changed) and any("weight" in k for k in changed)
    for key, value in expected.items():
        assert torch.allclose(after[key], value, atol=1e-6, rtol=1e-5), key
    assert tally.count == sum(len(targets) for _, targets in micro)


def test_simultaneous_search_never_draws_arch_batches(tmp_path: Path, monkeypatch):
    forbid_arch_batches(monkeypatch)
    cfg = config(
        tmp_path, optimizer="gdas", search_strategy="simultaneous", steps_per_epoch=3, eval_batches=1
    )
    run = SearchRun(cfg)
    logits = {k: v for k, v in snapshot(run.model).items() if k.endswith("arch_logits")}
    run.run()
    assert all(not torch.equal(run.model.state_dict()[k], v) for k, v in logits.items())
    epoch = next(r for r in records(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "epoch")
    assert "arch_loss" not in epoch and math.isfinite(epoch["valid_loss"])


def test_non_finite_logit_gradients_skip_both_steps(tmp_path: Path):
    run = SearchRun(config(tmp_path, optimizer="darts_v1", search_strategy="simultaneous"))
    micro = next(iter(run.batches.epoch(0)))
    logit = run.architect.arch_params[0]
    hook = logit.register_hook(lambda grad: grad * float("nan"))  # the loss and weight gradients stay finite
    before = snapshot(run.model)
    assert not run._simultaneous_step(micro, Tally(), "test")
    assert all(torch.equal(p, before[name]) for name, p in run.model.named_parameters())
    assert not run.weight_optimizer.state and not run.architect.optimizer.state
    assert run.guard.skipped_total == 1
    assert all(p.grad is None for p in run.architect.arch_params + run.architect.weight_params)
    hook.remove()
    assert run._simultaneous_step(micro, Tally(), "test")
    assert run.guard.in_a_row == 0 and run.architect.optimizer.state


def test_simultaneous_refuses_darts_v2_and_alternating_needs_an_arch_split(tmp_path: Path):
    refused = invoke("search", *TINY_CLI, "--opt", "darts_v2", "--set", "search_strategy=simultaneous",
                     "--out", tmp_path / "v2")  # fmt: skip
    assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1
    assert "darts_v2" in refused.output and "alternating" in refused.output
    no_split = invoke("search", *TINY_CLI, "--set", "train_portion=1.0", "--out", tmp_path / "alt")
    assert no_split.exit_code == 2 and len(no_split.output.strip().splitlines()) == 1
    assert "no arch split" in no_split.output and "simultaneous" in no_split.output


def test_interrupted_simultaneous_search_resumes_exactly(tmp_path: Path, monkeypatch):
    args = ["search", *TINY_CLI, "--opt", "drnas", "--seed", 4, "--set", "search_strategy=simultaneous",
            "--set", "train_portion=1.0", "--set", "grad_accum=2", "--set", "epochs=2", "--set",
            "train_subset=640", "--set", "eval_batches=2", "--set", "logging.log_every=1"]  # fmt: skip
    full = invoke(*args, "--out", tmp_path / "full")
    assert full.exit_code == 0, full.output
    saved = search_module.save_checkpoint

    def save_then_stop(state, path):  # the process dies right after the first checkpoint
        saved(state, path)
        raise KeyboardInterrupt

    monkeypatch.setattr(search_module, "save_checkpoint", save_then_stop)
    assert invoke(*args, "--out", tmp_path / "resumed").exit_code != 0
    monkeypatch.setattr(search_module, "save_checkpoint", saved)
    resumed = invoke("search", "--resume", tmp_path / "resumed")
    assert resumed.exit_code == 0, resumed.output
    states = [load_checkpoint(tmp_path / name / "checkpoint.pt") for name in ("full", "resumed")]
    assert all(torch.equal(states[0]["model"][k], states[1]["model"][k]) for k in states[0]["model"])
    timeless = [
        [
            {k: v for k, v in r.items() if not k.startswith("seconds")}
            for r in records(tmp_path / name / "metrics.jsonl")
        ]
        for name in ("full", "resumed")
    ]
    assert timeless[0] == timeless[1]
    epochs = [r for r in timeless[0] if r["kind"] == "epoch"]
    assert len(epochs) == 2 and all(math.isfinite(r["valid_loss"]) for r in epochs)  # on the test split
    assert (tmp_path / "full" / "arch.yaml").read_text() == (tmp_path / "resumed" / "arch.yaml").read_text()


@pytest.mark.parametrize("precision", ["no", "fp16"])  # fp16: loss scaling (a CPU GradScaler here)
def test_step_guard_steps_two_optimizers_together_or_neither(precision: str):
    weight, logit = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.zeros(2))
    weight_optimizer = torch.optim.SGD([weight], lr=0.1)
    arch_optimizer = torch.optim.Adam([logit], lr=0.01)
    guard = StepGuard(3, precision, torch.device("cpu"))
    steps = [(weight_optimizer, [weight], 5.0), (arch_optimizer, [logit], None)]

    def backward(logit_factor: float) -> None:
        loss = (weight**2).sum() + (logit * torch.tensor([1.0, logit_factor])).sum()
        guard.backward(loss, [weight, logit])

    backward(float("inf"))  # only the logits' gradient is non-finite: neither steps
    assert not guard.step_all(steps, "test") and guard.skipped_total == 1
    assert torch.equal(weight, torch.ones(3)) and torch.equal(logit, torch.zeros(2))
    assert weight.grad is None and logit.grad is None and not arch_optimizer.state
    backward(-1.0)
    assert guard.step_all(steps, "test") and guard.in_a_row == 0
    assert torch.allclose(weight, torch.full((3,), 0.8))  # SGD on the unscaled gradient 2
    assert torch.allclose(logit, torch.tensor([-0.01, 0.01]), atol=1e-6)  # Adam's first step: lr * sign
