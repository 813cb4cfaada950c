"""Reliability: malformed input anywhere is one line and exit 2 (hypothesis), NaN/inf steps are skipped and
stop the run, mixed precision, and `tanglenas doctor`."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import TOY_BENCHMARKS, invoke

from tanglenas_cli.engine.precision import StepGuard, check_finite, make_accelerator
from tanglenas_cli.errors import UserError

TINY = [
    "--space", "toy_cell", "--dataset", "digits", "--set", "dataset_options.size=12",
    "--set", "space_options.C=4", "--set", "epochs=1", "--set", "batch_size=128",
    "--set", "logging.progress=false",
]  # fmt: skip
TOY_BENCHMARK = TOY_BENCHMARKS / "entangled_cell_ss_benchmark.pkl"


def fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "search"
    result = invoke("search", *TINY, "--opt", "drnas", "--out", out)
    assert result.exit_code == 0, result.output
    return out


def _garbage_text() -> st.SearchStrategy[str]:
    yaml_like = st.lists(
        st.tuples(
            st.sampled_from(
                ["space", "epochs", "seed", "optimizer", "sampler", "weight_optimizer.lr", "x y", ""]
            ),
            st.one_of(st.text(max_size=12), st.integers(), st.floats(), st.booleans(), st.none()),
        ),
        max_size=4,
    ).map(lambda pairs: "\n".join(f"{k}: {v}" for k, v in pairs))
    return st.one_of(
        st.text(max_size=200), yaml_like, st.sampled_from(["{", "- [", "a: b: c", "\x00\x01", "[]"])
    )


def _garbage_bytes() -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=300), _garbage_text().map(lambda t: t.encode("utf-8", "replace")))


CASES = st.one_of(
    st.tuples(st.just("preset"), _garbage_text()),
    st.tuples(st.just("override"), st.text(max_size=40)),
    st.tuples(st.just("arch"), _garbage_bytes()),
    st.tuples(st.just("benchmark"), _garbage_bytes()),
    st.tuples(st.just("checkpoint"), _garbage_bytes()),
    st.tuples(st.just("truncated"), st.floats(0.0, 0.99)),
)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=CASES)
def test_malformed_input_is_one_line_exit_2_and_touches_nothing(case, run_dir: Path, tmp_path_factory):
    kind, payload = case
    scratch = tmp_path_factory.mktemp("case")
    before = fingerprint(run_dir)
    if kind == "preset":
        preset = scratch / "preset.yaml"
        preset.write_text(payload)
        # epochs=0 is invalid too, so no case can start a real search
        result = invoke("search", "--preset", preset, "--set", "epochs=0", "--out", scratch / "run")
    elif kind == "override":
        result = invoke("search", *TINY, "--set", payload, "--set", "epochs=0", "--out", scratch / "run")
    elif kind == "arch":
        arch = scratch / "arch.yaml"
        arch.write_bytes(payload)
        result = invoke("bench-query", arch, "--benchmark", TOY_BENCHMARK)
    elif kind == "benchmark":
        benchmark = scratch / "bench.pkl"
        benchmark.write_bytes(payload)
        result = invoke("bench-query", run_dir, "--benchmark", benchmark)
    else:
        copy = scratch / "run"
        shutil.copytree(run_dir, copy)
        checkpoint = copy / "checkpoint.pt"
        good = checkpoint.read_bytes()
        bad = payload if kind == "checkpoint" else good[: int(len(good) * payload)]
        checkpoint.write_bytes(bad)
        before_copy = fingerprint(copy)
        result = invoke("derive", copy)
        assert fingerprint(copy) == before_copy
        resumed = invoke("search", "--resume", copy)
        assert resumed.exit_code == 2 and len(resumed.output.strip().splitlines()) == 1, resumed.output
        assert fingerprint(copy) == before_copy
    assert result.exit_code == 2, (kind, payload, result.output)
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.output
    assert fingerprint(run_dir) == before


def test_nan_steps_are_skipped_then_stop_the_run(tmp_path: Path):
    out = tmp_path / "run"
    result = invoke("search", *TINY, "--set", "weight_optimizer.lr=1e30", "--set", "grad_clip=null",
                    "--set", "max_nonfinite_steps=2", "--out", out)  # fmt: skip
    assert result.exit_code == 3 and len(result.output.strip().splitlines()) == 1, (
        result.output
    )  # not bad input
    assert "NaN/inf" in result.output
    assert not (out / "checkpoint.pt").exists() and not (out / "arch.yaml").exists()


def test_step_guard_skips_a_nonfinite_step_and_leaves_the_weights():
    layer = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    guard = StepGuard(max_in_a_row=2, mixed_precision="no", device=torch.device("cpu"))
    before = [p.detach().clone() for p in layer.parameters()]
    guard.backward(layer(torch.tensor([[float("nan"), 1.0, 2.0]])).sum(), list(layer.parameters()))
    assert not guard.step(optimizer, list(layer.parameters()), clip=5.0, where="test")
    for param, old in zip(layer.parameters(), before, strict=True):
        assert torch.equal(param, old)
    guard.backward(layer(torch.ones(1, 3)).sum(), list(layer.parameters()))
    assert guard.step(optimizer, list(layer.parameters()), clip=5.0, where="test")
    assert guard.in_a_row == 0 and guard.skipped_total == 1
    with pytest.raises(UserError, match="NaN"):
        check_finite({"w": torch.tensor([1.0, float("inf")])}, "weights")


def test_step_guard_state_keeps_the_fp16_loss_scale():
    """A checkpoint's step_guard entry restores the loss scale an fp16 run had reached, not the first."""
    guard = StepGuard(3, "fp16", torch.device("cpu"))
    weight = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    guard.backward((weight * float("inf")).sum(), [weight])
    assert not guard.step(optimizer, [weight], None, where="test")  # an inf step halves the scale
    resumed = StepGuard(3, "fp16", torch.device("cpu"))
    resumed.load_state_dict(guard.state_dict())
    assert resumed.scaler.get_scale() == guard.scaler.get_scale() == 2.0**15 and resumed.skipped_total == 1


def test_bf16_search_on_cpu(tmp_path: Path):
    result = invoke("search", *TINY, "--mixed-precision", "bf16", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["mixed_precision"] == "bf16"
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["train_loss"] > 0 for r in records if r["kind"] == "epoch")


def test_fp16_without_a_gpu_is_one_line(tmp_path: Path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = invoke("search", *TINY, "--mixed-precision", "fp16", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "bf16" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_doctor_reports_versions_devices_and_data(tmp_path: Path):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "nb201.pth").write_bytes(b"")
    result = invoke("doctor", "--data-root", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["packages"]["torch"] == torch.__version__.split("+")[0]
    assert "cuda_available" in report["devices"] and "gloo" in report["devices"]["distributed_backends"]
    assert report["data"]["benchmarks_found"] == ["nb201.pth"] and report["data"]["from"] == "--data-root"
    assert "config_file" in report["accelerate"]
    assert invoke("doctor").exit_code == 0


def test_mixup_label_smoothing_and_no_decay_groups(tmp_path: Path):
    from tanglenas_cli.config import build_config
    from tanglenas_cli.engine.factory import WeightLoss, make_weight_optimizer

    overrides = ["mixup.mixup_alpha=0.8", "mixup.cutmix_alpha=1.0", "mixup.label_smoothing=0.1",
                 "weight_optimizer.name=adamw", "weight_optimizer.no_decay_1d=true"]  # fmt: skip
    cfg = build_config(flags={"space": "toy_cell", "dataset": "digits"}, overrides=overrides)
    layer = torch.nn.Linear(3, 2)
    groups = make_weight_optimizer(cfg, layer.parameters()).param_groups
    assert [len(g["params"]) for g in groups] == [1, 1] and groups[1]["weight_decay"] == 0.0
    weight_loss = WeightLoss(cfg, num_classes=10)
    inputs, targets = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    mixed, soft = weight_loss.mix(inputs, targets)
    assert (
        mixed.shape == inputs.shape
        and soft is not None
        and soft.shape == (4, 10)
        and torch.allclose(soft.sum(1), torch.ones(4))
    )
    logits = torch.randn(4, 10)
    expected = -(soft * torch.log_softmax(logits, -1)).sum(1).mean()
    torch.testing.assert_close(weight_loss.loss(logits, targets, soft), expected)
    assert weight_loss.mix(inputs[:3], targets[:3])[1] is None  # odd batch: no mixing
    smooth = WeightLoss(build_config(flags={"space": "toy_cell", "dataset": "digits"},
                                     overrides=["mixup.label_smoothing=0.1"]), 10)  # fmt: skip
    torch.testing.assert_close(
        smooth.loss(logits, targets, None),
        torch.nn.functional.cross_entropy(logits, targets, label_smoothing=0.1),
    )
    result = invoke("search", *TINY, "--set", "mixup.mixup_alpha=0.8", "--set", "mixup.cutmix_alpha=1.0",
                    "--out", tmp_path / "run")  # fmt: skip
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("flag", "expected"), [([], "bf16"), (["--mixed-precision", "no"], "no")])
def test_accelerate_sets_the_precision_unless_the_flag_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: list[str], expected: str
) -> None:
    """`accelerate launch --mixed_precision bf16` (its environment variable) wins over the default, not
    over an explicit --mixed-precision; config.yaml records the precision in effect."""
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    result = invoke("search", *TINY, *flag, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["mixed_precision"] == expected
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION")
    assert make_accelerator(None).mixed_precision == "no"
