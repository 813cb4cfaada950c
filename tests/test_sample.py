"""`tanglenas sample`: text from a trained nanoGPT checkpoint (a tiny untrained GPT over a bytes corpus)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from support import one_line_error
from typer.testing import CliRunner

from tanglenas_cli.cli import app
from tanglenas_cli.config import build_config
from tanglenas_cli.data.text import prepare_text
from tanglenas_cli.engine.checkpoint import save_checkpoint
from tanglenas_cli.engine.sample import generate, run_sample
from tanglenas_cli.errors import UserError
from tanglenas_cli.spaces import create_space
from tanglenas_cli.spaces.base import DataShape
from tanglenas_cli.spaces.nanogpt import GPTNetwork

BLOCK = 32
EOT = 256  # of the bytes tokenizer (vocabulary 257)
ARCH = {"embed_dim": 24, "num_layers": 2, "num_heads": [3, 2], "mlp_ratio": [3, 2]}
runner = CliRunner()


def invoke(*args: Any) -> Any:
    return runner.invoke(app, ["sample", *(str(arg) for arg in args)])


def write_lm_checkpoint(path: Path, data_root: Path, vocab: int = 257, seed: int = 0) -> Path:
    """Save an untrained tiny nanoGPT in the format of `tanglenas train`."""
    torch.manual_seed(seed)
    shape = DataShape(num_classes=vocab, input_shape=(BLOCK,))
    space = create_space("nanogpt", shape, {"variant": "tiny"})
    arch = space.validate(ARCH)
    model = space.build_network(arch)
    cfg = build_config(
        flags={
            "space": "nanogpt",
            "dataset": "text",
            "data_root": str(data_root),
            "space_options.variant": "tiny",
            "dataset_options.block_size": BLOCK,
        }
    )
    state = {
        "kind": "trained",
        "space": "nanogpt",
        "architecture": arch,
        "config": cfg.model_dump(mode="json"),
        "data_shape": {"num_classes": vocab, "input_shape": [BLOCK]},
        "model": model.state_dict(),
    }
    save_checkpoint(state, path)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with one bytes corpus, text/story."""
    root = tmp_path_factory.mktemp("data")
    source = root.parent / "story.txt"
    source.write_text("Once upon a time a small model learned to write. " * 40, encoding="utf-8")
    prepare_text(root, source, tokenizer="bytes")
    return root


@pytest.fixture(scope="module")
def checkpoint(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_lm_checkpoint(tmp_path_factory.mktemp("run") / "model.pt", corpus)


@pytest.fixture
def no_eot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the end-of-text token impossible, so that every sample runs to its full length."""
    forward = GPTNetwork.forward

    def without_eot(self: GPTNetwork, idx: torch.Tensor) -> torch.Tensor:
        logits = forward(self, idx)
        logits[..., EOT] = -math.inf
        return logits

    monkeypatch.setattr(GPTNetwork, "forward", without_eot)


def test_sample_continues_the_prompt_with_the_requested_tokens(checkpoint: Path, no_eot: None) -> None:
    result = run_sample(checkpoint, "Once upon", max_new_tokens=20, seed=3)
    assert result["text"].startswith("Once upon") and len(result["text"]) > len("Once upon")
    assert result["new_tokens"] == 20
    assert result["prompt"] == "Once upon" and result["seed"] == 3
    assert result["checkpoint"] == str(checkpoint)
    assert run_sample(checkpoint.parent, "Once upon", max_new_tokens=20, seed=3) == result  # the run dir


def test_same_seed_same_text_and_different_seed_different_text(checkpoint: Path, no_eot: None) -> None:
    first = run_sample(checkpoint, "A", max_new_tokens=30, temperature=1.0, seed=1)["text"]
    assert run_sample(checkpoint, "A", max_new_tokens=30, temperature=1.0, seed=1)["text"] == first
    assert run_sample(checkpoint, "A", max_new_tokens=30, temperature=1.0, seed=2)["text"] != first


def test_temperature_zero_is_greedy(checkpoint: Path, no_eot: None) -> None:
    texts = {
        run_sample(checkpoint, "The", max_new_tokens=15, temperature=0, seed=s)["text"] for s in (0, 1, 2)
    }
    assert len(texts) == 1


def test_empty_prompt_starts_from_end_of_text(checkpoint: Path, no_eot: None) -> None:
    result = run_sample(checkpoint, "", max_new_tokens=10)
    assert result["new_tokens"] == 10 and result["prompt"] == ""


def test_long_prompt_keeps_the_last_block(checkpoint: Path, no_eot: None) -> None:
    prompt = "abcdefghij" * 10  # 100 byte tokens, block 32
    long = run_sample(checkpoint, prompt, max_new_tokens=12, seed=5)
    short = run_sample(checkpoint, prompt[-BLOCK:], max_new_tokens=12, seed=5)
    assert long["text"].startswith(prompt) and long["new_tokens"] == 12
    assert long["text"][len(prompt) :] == short["text"][BLOCK:]


def test_generation_stops_at_end_of_text(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forward = GPTNetwork.forward

    def always_eot(self: GPTNetwork, idx: torch.Tensor) -> torch.Tensor:
        logits = forward(self, idx)
        logits[..., EOT] = 1e4
        return logits

    monkeypatch.setattr(GPTNetwork, "forward", always_eot)
    result = run_sample(checkpoint, "Hello", max_new_tokens=50)
    assert result == {**result, "text": "Hello", "new_tokens": 0}


def test_padded_vocabulary_is_never_sampled(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    padded = write_lm_checkpoint(tmp_path / "model.pt", corpus, vocab=320)
    forward = GPTNetwork.forward

    def favour_padding(self: GPTNetwork, idx: torch.Tensor) -> torch.Tensor:
        logits = forward(self, idx)
        assert logits.shape[-1] == 320
        logits[..., 257:] = 1e4  # the padded ids would win every draw
        logits[..., EOT] = -math.inf
        return logits

    monkeypatch.setattr(GPTNetwork, "forward", favour_padding)
    result = run_sample(padded, "xy", max_new_tokens=25, temperature=1.0, top_k=5)
    assert result["new_tokens"] == 25 and len(result["text"]) > 2  # bytes were produced, not padding
    space = create_space("nanogpt", DataShape(320, (BLOCK,)), {"variant": "tiny"})
    model = space.build_network(space.validate(ARCH))
    for temperature in (0.0, 1.0):
        generator = torch.Generator().manual_seed(0)
        ids = generate(model, [1, 2, 3], 40, block_size=BLOCK, vocab_size=257, eot=EOT,
                       temperature=temperature, top_k=None, generator=generator)  # fmt: skip
        assert len(ids) == 40 and max(ids) < 257


def test_top_k_one_equals_greedy(checkpoint: Path, no_eot: None) -> None:
    greedy = run_sample(checkpoint, "Once", max_new_tokens=10, temperature=0)["text"]
    assert (
        run_sample(checkpoint, "Once", max_new_tokens=10, temperature=1.5, top_k=1, seed=9)["text"] == greedy
    )


def test_classification_checkpoint_is_refused(tmp_path: Path) -> None:
    space = create_space("toy_conv_macro", DataShape(10, (3, 16, 16)), {})
    arch = space.largest_architecture()
    cfg = build_config(flags={"space": "toy_conv_macro", "dataset": "cifar10"})
    state = {
        "kind": "trained",
        "space": "toy_conv_macro",
        "architecture": arch,
        "config": cfg.model_dump(mode="json"),
        "data_shape": {"num_classes": 10, "input_shape": [3, 16, 16]},
        "model": space.build_network(arch).state_dict(),
    }
    save_checkpoint(state, tmp_path / "model.pt")
    with pytest.raises(UserError, match="is not a language model"):
        run_sample(tmp_path / "model.pt", "hi")
    one_line_error(invoke(tmp_path, "--prompt", "hi"), "is not a language model")


def test_cli_prints_the_text_and_json(checkpoint: Path, no_eot: None) -> None:
    plain = invoke(checkpoint, "--prompt", "Once", "--tokens", "8", "--seed", "4", "--temperature", "0")
    assert plain.exit_code == 0, plain.output
    as_json = invoke(checkpoint, "--prompt", "Once", "--tokens", "8", "--seed", "4", "--temperature", "0",
                     "--json")  # fmt: skip
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert set(data) == {"checkpoint", "prompt", "text", "new_tokens", "seed"}
    assert data["new_tokens"] == 8 and data["text"].startswith("Once") and plain.stdout.startswith("Once")
    assert data == run_sample(checkpoint, "Once", max_new_tokens=8, temperature=0, seed=4)


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--tokens", "0"),
        ("--tokens", "-3"),
        ("--temperature", "-0.5"),
        ("--temperature", "nan"),
        ("--top-k", "-1"),
    ],
)
def test_cli_rejects_bad_settings(checkpoint: Path, flag: str, value: str) -> None:
    one_line_error(invoke(checkpoint, "--prompt", "a", flag, value), flag)


def test_cli_missing_and_corrupt_checkpoints(tmp_path: Path) -> None:
    one_line_error(invoke(tmp_path / "nothing.pt", "--prompt", "a"), "checkpoint not found")
    corrupt = tmp_path / "model.pt"
    corrupt.write_bytes(b"not a checkpoint at all")
    one_line_error(invoke(corrupt, "--prompt", "a"), "cannot load checkpoint")
    one_line_error(invoke(tmp_path, "--prompt", "a"), "cannot load checkpoint")  # the directory


def test_missing_corpus_names_data_root(checkpoint: Path, tmp_path: Path) -> None:
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    line = one_line_error(invoke(checkpoint, "--prompt", "a", "--data-root", empty), "--data-root")
    assert "prepare-data text" in line
    moved = write_lm_checkpoint(tmp_path / "moved" / "model.pt", tmp_path / "gone")
    with pytest.raises(UserError, match="--data-root"):
        run_sample(moved, "a")


def test_data_root_overrides_the_checkpoints_corpus(corpus: Path, tmp_path: Path, no_eot: None) -> None:
    moved = write_lm_checkpoint(tmp_path / "model.pt", tmp_path / "gone")
    result = invoke(moved, "--prompt", "a", "--tokens", "5", "--data-root", corpus, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["new_tokens"] == 5


def test_gpt2_corpus_without_ranks_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "data" / "text" / "story"
    folder.mkdir(parents=True)
    meta = {"tokenizer": "gpt2", "vocab_size": 50257, "eot": 50256, "tokenizer_file": str(tmp_path / "gone")}
    (folder / "meta.json").write_text(json.dumps(meta))
    model = write_lm_checkpoint(tmp_path / "model.pt", tmp_path / "data")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty-cache"))
    import tiktoken

    def offline(name: str) -> Any:
        raise ConnectionError("no network")

    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    one_line_error(invoke(model, "--prompt", "a"), "--tokenizer-file")
    one_line_error(invoke(model, "--prompt", "a", "--tokenizer-file", tmp_path / "no.tiktoken"),
                          "tokenizer file not found")  # fmt: skip
