"""A cost budget inside the search: the penalty, every gradient optimizer in WE and WS, resume, derive
--within-budget and the bad-input lines (scikit-learn's digits, the toy cell at C=4)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from support import invoke, one_line_error, records, tiny_space

from tanglenas_cli.config import CostConfig
from tanglenas_cli.engine.budget import Budget
from tanglenas_cli.engine.cost import cost_model
from tanglenas_cli.engine.metrics import count_parameters
from tanglenas_cli.nas.architect import Architect
from tanglenas_cli.nas.samplers import make_sampler
from tanglenas_cli.spaces import create_space
from tanglenas_cli.spaces.base import DataShape, choices_by_name

TINY = [
    "--space", "toy_cell", "--dataset", "digits",
    "--set", "dataset_options.size=12", "--set", "space_options.C=4",
    "--set", "epochs=2", "--set", "batch_size=128", "--set", "logging.progress=false",
    "--set", "steps_per_epoch=2", "--set", "eval_batches=1",
]  # fmt: skip
SMALLEST, TARGET = 1262, 1500  # the toy cell's cheapest network at these settings, and a budget above it


def budget_args(target: float = TARGET, *extra: str) -> list[str]:
    return ["--set", "cost.metric=params", "--set", f"cost.target={target:g}", *extra]


def _budget(form: str, target: float, weight: float = 1.0, optimizer: str = "darts_v1"):
    torch.manual_seed(0)  # the same logits on every call
    space = tiny_space("nb201")
    supernet = space.build_supernet()
    choices = choices_by_name(supernet)
    settings = CostConfig(metric="params", target=target, weight=weight, form=form, estimate="mean")
    candidates = {n: c.candidates for n, c in choices.items()}
    return Budget(
        settings, cost_model(space, "params", candidates), choices, make_sampler(optimizer)
    ), choices


def test_smallest_architecture_of_the_test_settings():
    space = create_space("toy_cell", DataShape(10, (1, 12, 12)), {"C": 4})
    assert cost_model(space, "params").minimum() == SMALLEST


def test_hinge_is_zero_under_the_budget_and_relative_overrun_above():
    loose, _ = _budget("hinge", 1e9)
    loss = torch.tensor(0.7, dtype=torch.float64)
    assert float(loose.apply(loss).detach()) == pytest.approx(0.7)
    expected, smallest = float(loose.expected().detach()), loose.model.minimum()
    target = (expected + smallest) / 2
    tight, _ = _budget("hinge", target, weight=3.0)
    assert float(tight.apply(loss).detach()) == pytest.approx(0.7 + 3.0 * (expected / target - 1))


def test_fbnet_factor_is_one_at_the_target_and_grows_above():
    probe, _ = _budget("fbnet", 1e9)
    expected, smallest = float(probe.expected().detach()), probe.model.minimum()
    at_target, _ = _budget("fbnet", expected)
    loss = torch.tensor(2.0, dtype=torch.float64)
    assert float(at_target.apply(loss).detach()) == pytest.approx(2.0)
    tighter, _ = _budget("fbnet", smallest)
    assert float(tighter.apply(loss).detach()) == pytest.approx(
        2.0 * (math.log(expected) / math.log(smallest)) ** 0.6
    )


@pytest.mark.parametrize("optimizer", ["darts_v1", "drnas", "gdas"])
def test_the_expected_cost_reads_the_mean_of_the_samplers_weights(optimizer):
    """The mean of DrNAS' Dirichlet samples and of GDAS' one-hot samples: the cost of their mean."""
    budget, choices = _budget("hinge", 1e9, optimizer=optimizer)
    sampler = make_sampler(optimizer, seed=0)
    for choice in choices.values():
        choice.arch_logits.data = torch.randn(len(choice))
    draws = []
    for _ in range(300):
        sampler.sample(choices.values())
        with torch.no_grad():
            draws.append(float(budget.model.expected({n: c.mixing().weights for n, c in choices.items()})))
    mean = sum(draws) / len(draws)
    spread = (sum((d - mean) ** 2 for d in draws) / len(draws)) ** 0.5 / len(draws) ** 0.5
    assert abs(float(budget.expected().detach()) - mean) <= 4.5 * spread + 1e-6 * mean


def test_an_arch_step_with_only_the_penalty_lowers_the_expected_cost():
    space = tiny_space("nb201")
    supernet = space.build_supernet()
    choices = choices_by_name(supernet)
    sampler = make_sampler("darts_v1")
    model = cost_model(space, "params", {n: c.candidates for n, c in choices.items()})
    budget = Budget(
        CostConfig(metric="params", target=model.minimum(), weight=1.0, estimate="mean"),
        model,
        choices,
        sampler,
    )
    architect = Architect(supernet, sampler, lambda model, batch: torch.zeros(()), lr=0.1, weight_decay=0.0,
                          loss_transform=budget.apply)  # fmt: skip
    before = float(budget.expected().detach())
    for _ in range(3):
        architect.step(None)
    assert float(budget.expected().detach()) < before


@pytest.mark.parametrize("optimizer, mode", [("darts_v1", "we"), ("darts_v2", "ws"), ("drnas", "we"),
                                             ("gdas", "ws")])  # fmt: skip
def test_every_gradient_optimizer_logs_the_costs_of_its_epochs(optimizer, mode, tmp_path: Path):
    run = tmp_path / "run"
    ws = ["--ws"] if mode == "ws" else []
    result = invoke("search", *TINY, "--set", "epochs=1", "--opt", optimizer, *ws, *budget_args(),
                    "--out", run, "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    epoch = next(r for r in records(run / "metrics.jsonl") if r["kind"] == "epoch")
    arch = yaml.safe_load((run / "arch.yaml").read_text())["architecture"]
    space = create_space("toy_cell", DataShape(10, (1, 12, 12)), {"C": 4})
    assert epoch["argmax_params"] == count_parameters(space.build_network(arch))
    assert epoch["expected_params"] >= SMALLEST
    summary = json.loads((run / "summary.json").read_text())
    assert summary["within_budget"] == (epoch["argmax_params"] <= TARGET)
    trajectory = records(run / "trajectory.jsonl")[0]
    assert trajectory["argmax_params"] == epoch["argmax_params"]


@pytest.fixture(scope="module")
def budgeted(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("budget") / "run"
    result = invoke("search", *TINY, "--set", "epochs=3", "--opt", "drnas", *budget_args(1500), "--out", run)
    assert result.exit_code == 0, result.output
    return run


def test_derive_within_budget_takes_the_last_epoch_that_meets_it(budgeted: Path, tmp_path: Path):
    costs = [r["argmax_params"] for r in records(budgeted / "metrics.jsonl") if r["kind"] == "epoch"]
    target = sorted(costs)[0]  # met by some epochs, perhaps not by the last
    config = yaml.safe_load((budgeted / "config.yaml").read_text())
    config["cost"]["target"] = float(target)
    run = tmp_path / "copy"
    run.mkdir()
    for name in ("checkpoint.pt", "trajectory.jsonl", "metrics.jsonl"):
        (run / name).write_bytes((budgeted / name).read_bytes())
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    result = invoke("derive", run, "--within-budget", "--json")
    assert result.exit_code == 0, result.output
    derived = json.loads(result.output)
    epoch = max(i for i, cost in enumerate(costs, start=1) if cost <= target)
    assert derived["params"] == target and f"after epoch {epoch}," in derived["derived_by"]
    trajectory = records(run / "trajectory.jsonl")[epoch - 1]["architecture"]
    assert yaml.safe_load((run / "arch.yaml").read_text())["architecture"] == trajectory
    config["cost"]["target"] = float(SMALLEST)  # met by none of the epochs' architectures
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    if min(costs) > SMALLEST:
        one_line_error(invoke("derive", run, "--within-budget"), "no epoch's argmax architecture meets",
                       f"after epoch {costs.index(min(costs)) + 1}")  # fmt: skip


def test_derive_within_budget_of_a_run_without_one(tmp_path: Path):
    run = tmp_path / "plain"
    assert invoke("search", *TINY, "--set", "epochs=1", "--out", run).exit_code == 0
    one_line_error(invoke("derive", run, "--within-budget"), "searched without a cost budget")


def test_resume_continues_a_budgeted_run_exactly(budgeted: Path, tmp_path: Path):
    constant = ["--set", "weight_optimizer.schedule=constant", "--opt", "drnas", *budget_args(1500)]
    whole, part = tmp_path / "whole", tmp_path / "part"
    at = TINY.index("epochs=2")
    args = TINY[: at - 1] + TINY[at + 1 :]
    assert invoke("search", *args, "--set", "epochs=2", *constant, "--out", whole).exit_code == 0
    assert invoke("search", *args, "--set", "epochs=1", *constant, "--out", part).exit_code == 0
    resumed = invoke("search", "--resume", part, "--set", "epochs=2")
    assert resumed.exit_code == 0, resumed.output
    assert records(whole / "trajectory.jsonl") == records(part / "trajectory.jsonl")
    changed = invoke("search", "--resume", part, "--set", "epochs=3", "--set", "cost.target=1700")
    one_line_error(changed, "cannot resume: cost differs")


@pytest.mark.parametrize(
    "settings, fragments",
    [
        (["--set", "cost.metric=energy", "--set", "cost.target=3"], ["cost.metric", "'flops' or 'latency'"]),
        (["--set", "cost.metric=params", "--set", "cost.target=0"], ["cost.target", "> 0"]),
        (["--set", "cost.metric=params"], ["metric needs target"]),
        (["--set", "cost.metric=latency", "--set", "cost.target=3"], ["latency table", "latency-table"]),
        (budget_args(SMALLEST - 1), ["below the smallest architecture", "1,262 parameters"]),
        (budget_args(1500, "--opt", "spos"), ["does not train"]),
        (budget_args(1500, "--set", "cost.form=fbnet", "--set", "cost.target=0.5"), ["fbnet needs target"]),
        (budget_args(1500, "--set", "cost.space_options={depth: 3}"), ["unknown space_options key 'depth'"]),
    ],
)  # fmt: skip
def test_bad_budgets_are_one_line_and_write_nothing(settings, fragments, tmp_path: Path):
    run = tmp_path / "run"
    result = invoke("search", *TINY, *settings, "--out", run)
    assert result.exit_code == 2
    one_line_error(result, *fragments)
    assert not run.exists()


def test_a_low_temperature_reads_the_cost_of_the_argmax_architecture():
    budget, choices = _budget("hinge", 1e9)
    for choice in choices.values():
        choice.arch_logits.data = torch.randn(len(choice))
    argmax = budget.model.of_picks({name: c.derive() for name, c in choices.items()})
    cold = Budget(
        budget.settings.model_copy(update={"temperature": 0.01}), budget.model, choices, budget.sampler
    )
    assert float(cold.expected().detach()) == pytest.approx(argmax, rel=1e-6)
    assert float(budget.expected().detach()) != pytest.approx(argmax, rel=1e-3)


@pytest.mark.parametrize("name", ["nb201", "darts"])
def test_the_argmax_estimate_is_the_derived_architectures_cost_with_the_mean_gradient(name):
    """DARTS derives two edges per node by strength: not each edge's argmax op."""
    torch.manual_seed(0)
    space = tiny_space(name)
    choices = choices_by_name(space.build_supernet())
    for choice in choices.values():
        choice.arch_logits.data = torch.randn(len(choice))
    model = cost_model(space, "params", {n: c.candidates for n, c in choices.items()})
    settings = CostConfig(metric="params", target=1e9, estimate="mean")
    mean = Budget(settings, model, choices, make_sampler("darts_v1"))
    hard = Budget(
        settings.model_copy(update={"estimate": "argmax"}), model, choices, make_sampler("darts_v1")
    )
    derived = model.of_architecture(space.derive(choices))
    logits = [c.arch_logits for c in choices.values()]
    value = hard.expected()
    assert float(value.detach()) == pytest.approx(derived, rel=1e-9)
    assert float(mean.expected().detach()) != pytest.approx(derived, rel=1e-3)
    straight, soft = torch.autograd.grad(value, logits), torch.autograd.grad(mean.expected(), logits)
    assert all(torch.allclose(a, b) for a, b in zip(straight, soft, strict=True))
    assert any(float(g.abs().sum()) > 0 for g in straight)


def test_a_checkpoint_saved_before_a_cost_setting_existed_resumes(tmp_path: Path):
    run = tmp_path / "run"
    at = TINY.index("epochs=2")
    args = TINY[: at - 1] + TINY[at + 1 :]
    assert invoke("search", *args, "--set", "epochs=1", *budget_args(), "--out", run).exit_code == 0
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    del state["config"]["cost"]["estimate"]  # as the checkpoints written before cost.estimate
    torch.save(state, run / "checkpoint.pt")
    resumed = invoke("search", "--resume", run, "--set", "epochs=2")
    assert resumed.exit_code == 0, resumed.output
    assert [r["epoch"] for r in records(run / "metrics.jsonl") if r["kind"] == "epoch"] == [0, 1]


def test_a_search_with_the_argmax_estimate_logs_the_argmax_cost_as_the_penalised_one(tmp_path: Path):
    run = tmp_path / "run"
    result = invoke("search", *TINY, "--set", "epochs=1", "--opt", "drnas",
                    *budget_args(TARGET, "--set", "cost.estimate=argmax"), "--out", run)  # fmt: skip
    assert result.exit_code == 0, result.output
    epoch = next(r for r in records(run / "metrics.jsonl") if r["kind"] == "epoch")
    assert epoch["expected_params"] == pytest.approx(epoch["argmax_params"])


def test_a_run_written_before_the_argmax_default_keeps_the_mean_estimate(tmp_path: Path):
    from tanglenas_cli.config import load_config

    run = tmp_path / "run"
    result = invoke("search", *TINY, "--set", "epochs=1", *budget_args(), "--out", run)
    assert result.exit_code == 0, result.output
    assert load_config(run).cost.estimate == "argmax"  # today's default, written into config.yaml
    config = yaml.safe_load((run / "config.yaml").read_text())
    del config["cost"]["estimate"]  # as the runs written while "mean" was the only estimate
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    assert load_config(run).cost.estimate == "mean"
    assert load_config(run).cost.weight == config["cost"]["weight"]


def test_derive_within_budget_passes_over_architectures_that_ignore_their_input(tmp_path: Path):
    """NB201: the last epoch within budget is a cell of `none` paths (chance): take the one before it."""
    from tanglenas_cli.spaces.nb201 import parse_arch_string

    run = tmp_path / "run"
    result = invoke("search", "--space", "nb201", "--dataset", "digits", "--set", "dataset_options.size=12",
                    "--set", "space_options.C=4", "--set", "space_options.N=1", "--set", "epochs=3",
                    "--set", "batch_size=64", "--set", "steps_per_epoch=1", "--set", "eval_batches=1",
                    "--set", "logging.progress=false", *budget_args(1e9), "--out", run)  # fmt: skip
    assert result.exit_code == 0, result.output
    used = parse_arch_string("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|")
    dead = parse_arch_string("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|")
    lines = records(run / "trajectory.jsonl")
    for record, arch in zip(lines, (dead, used, dead), strict=True):
        record["architecture"] = arch
    (run / "trajectory.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    derived = invoke("derive", run, "--within-budget", "--json")
    assert derived.exit_code == 0, derived.output
    assert "after epoch 2," in json.loads(derived.output)["derived_by"]
    assert yaml.safe_load((run / "arch.yaml").read_text())["architecture"] == used
    (run / "trajectory.jsonl").write_text(
        "".join(json.dumps({**r, "architecture": dead}) + "\n" for r in lines)
    )
    one_line_error(invoke("derive", run, "--within-budget"), "no epoch's argmax architecture meets",
                   "output the same for every input")  # fmt: skip
