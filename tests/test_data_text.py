"""Text corpora for language models: prepare-data text (bytes and GPT-2 BPE), token blocks, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from support import SHAKESPEARE, invoke

from tanglenas_cli.data.text import make_tokenizer
from tanglenas_cli.data.tokens import TokenBlocks

RANKS = Path(
    os.environ.get("TANGLENAS_GPT2_RANKS", Path.home() / ".cache" / "tanglenas-test" / "gpt2.tiktoken")
)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    if not SHAKESPEARE.is_file():
        pytest.skip(f"not found: {SHAKESPEARE}")
    return SHAKESPEARE


def test_bytes_tokens_and_blocks(corpus: Path, tmp_path: Path):
    result = invoke("prepare-data", "text", "--from", corpus, "--data-root", tmp_path, "--tokenizer", "bytes",
                    "--name", "shakespeare")  # fmt: skip
    assert result.exit_code == 0, result.output
    folder = tmp_path / "text" / "shakespeare"
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["tokenizer"] == "bytes" and meta["eot"] == 256
    size = len(corpus.read_bytes())
    assert meta["train_tokens"] + meta["val_tokens"] == size + 1  # every byte plus one end of text
    train = np.fromfile(folder / "train.bin", dtype=np.uint16)
    assert bytes(train[:14].tolist()) == corpus.read_bytes()[:14]
    blocks = TokenBlocks(np.memmap(folder / "train.bin", dtype=np.uint16, mode="r"), 32)
    x, y = blocks[3]
    assert x.shape == (32,) and torch.equal(x[1:], y[:-1]) and len(blocks) == (len(train) - 1) // 32
    assert torch.equal(x, torch.from_numpy(train[96:128].astype(np.int64)))


def test_gpt2_tokens_from_the_ranks_file(corpus: Path, tmp_path: Path):
    if not RANKS.is_file():
        pytest.skip(f"GPT-2 ranks not found: {RANKS} (.ci/run fetches them)")
    coder = make_tokenizer("gpt2", RANKS)
    assert coder.encode("Hello world") == [15496, 995] and coder.vocab_size == 50257
    result = invoke(
        "prepare-data", "text", "--from", corpus, "--data-root", tmp_path, "--tokenizer-file", RANKS
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "text" / "tinyshakespeare" / "meta.json").read_text())
    assert meta["train_tokens"] + meta["val_tokens"] == 338_026  # 338,025 BPE tokens + end of text
    val = np.fromfile(tmp_path / "text" / "tinyshakespeare" / "val.bin", dtype=np.uint16)
    assert val[-1] == 50256 and coder.decode(val[:40].tolist()).strip()


@pytest.mark.parametrize("args, fragment", [
    (["--tokenizer", "bytes"], "--from"),
    (["--tokenizer", "sentencepiece", "--from", "CORPUS"], "gpt2 or bytes"),
    (["--tokenizer-file", "NOFILE", "--from", "CORPUS"], "not found"),
    (["--tokenizer-file", "CORPUS", "--from", "CORPUS"], "ranks file"),
    (["--tokenizer", "bytes", "--val-portion", "1.5", "--from", "CORPUS"], "val-portion"),
    (["--tokenizer", "bytes", "--from", "TINY"], "too short"),
    (["--tokenizer", "bytes", "--from", "BINARY"], "UTF-8"),
])  # fmt: skip
def test_bad_text_input_is_one_line(corpus: Path, tmp_path: Path, args, fragment):
    (tmp_path / "tiny.txt").write_text("ab")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00\x9c")
    paths = {"CORPUS": corpus, "NOFILE": tmp_path / "missing", "TINY": tmp_path / "tiny.txt",
             "BINARY": tmp_path / "binary.txt"}  # fmt: skip
    result = invoke(
        "prepare-data", "text", "--data-root", tmp_path / "root", *[paths.get(a, a) for a in args]
    )
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert fragment in result.output
    assert not (tmp_path / "root" / "text").exists() or not any((tmp_path / "root" / "text").iterdir())
