"""Plain-text corpora for language models: tokenised once into ``train.bin`` / ``val.bin`` (uint16).

``tanglenas prepare-data text --from FILE_OR_DIR [--name NAME]`` writes DATA_ROOT/text/NAME/ with the
two token files and ``meta.json`` (tokenizer, vocabulary size, end-of-text id, counts). Every file of a
folder is one document; an end-of-text token follows each document. Tokenizers:

* ``gpt2`` -- GPT-2's BPE through tiktoken. Offline, give the ranks file (``--tokenizer-file``, e.g.
  ``gpt2.tiktoken`` from the openai-whisper source package) or a warm ``TIKTOKEN_CACHE_DIR``.
* ``bytes`` -- UTF-8 bytes (ids 0..255, end of text 256): needs nothing, for tests and tiny runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tanglenas_cli.data.files import replace_dir, staging_dir
from tanglenas_cli.data.paths import dataset_dir
from tanglenas_cli.errors import UserError

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT2_EOT = 50256


@dataclass(frozen=True)
class Tokenizer:
    """A named encoder with its vocabulary size and end-of-text id."""

    name: str
    vocab_size: int
    eot: int
    encoder: Any = None  # a tiktoken Encoding for gpt2

    def encode(self, text: str) -> list[int]:
        """Return the token ids of ``text`` (no end-of-text token)."""
        if self.encoder is None:
            return list(text.encode("utf-8"))
        return self.encoder.encode_ordinary(text)

    def decode(self, ids: list[int]) -> str:
        """Return the text of ``ids`` (end-of-text tokens become newlines)."""
        if self.encoder is None:
            return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")
        return self.encoder.decode([i for i in ids if i != self.eot])


def make_tokenizer(name: str, ranks_file: Path | None = None) -> Tokenizer:
    """Return the ``bytes`` or ``gpt2`` tokenizer; UserError with a remedy when GPT-2's ranks are missing."""
    if name == "bytes":
        return Tokenizer("bytes", 257, 256)
    if name != "gpt2":
        raise UserError(f"unknown tokenizer {name!r}; choose gpt2 or bytes")
    import tiktoken

    if ranks_file is not None:
        if not ranks_file.is_file():
            raise UserError(f"tokenizer file not found: {ranks_file}")
        from tiktoken.load import load_tiktoken_bpe

        try:
            ranks = load_tiktoken_bpe(str(ranks_file))
        except Exception as error:  # any parse failure: not a ranks file
            raise UserError(f"{ranks_file} is not a tiktoken ranks file ({str(error)[:80]})") from None
        encoder = tiktoken.Encoding(
            name="gpt2",
            pat_str=GPT2_PATTERN,
            mergeable_ranks=ranks,
            special_tokens={"<|endoftext|>": GPT2_EOT},
        )
    else:
        try:
            encoder = tiktoken.get_encoding("gpt2")
        except Exception:  # no network and no cache
            raise UserError(
                "GPT-2's BPE ranks are not available offline: pass --tokenizer-file gpt2.tiktoken (it ships "
                "in the openai-whisper source package as whisper/assets/gpt2.tiktoken), set "
                "TIKTOKEN_CACHE_DIR to a warm cache, or use --tokenizer bytes"
            ) from None
    return Tokenizer("gpt2", encoder.n_vocab, GPT2_EOT, encoder)


def write_token_files(target: Path, coder: Tokenizer, train: np.ndarray, val: np.ndarray, source: object,
                      tokenizer_file: Path | None = None) -> None:  # fmt: skip
    """Write ``train.bin`` / ``val.bin`` (uint16) and ``meta.json`` into ``target`` (atomically)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with staging_dir(target.parent) as staged:
        np.asarray(train, dtype=np.uint16).tofile(staged / "train.bin")
        np.asarray(val, dtype=np.uint16).tofile(staged / "val.bin")
        meta = {"tokenizer": coder.name, "vocab_size": coder.vocab_size, "eot": coder.eot,
                "tokenizer_file": str(Path(tokenizer_file).resolve()) if tokenizer_file else None,
                "source": str(source), "train_tokens": len(train),
                "val_tokens": len(val)}  # fmt: skip
        (staged / "meta.json").write_text(json.dumps(meta, indent=2))
        replace_dir(staged, target)


def _documents(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    found = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix in (".txt", ".md", ""))
    if not found:
        raise UserError(f"no .txt files in {source}")
    return found


def prepare_text(data_root: Path, source: Path | None, name: str | None = None, tokenizer: str = "gpt2",
                 tokenizer_file: Path | None = None, val_portion: float = 0.1) -> str:  # fmt: skip
    """Tokenise ``source`` (a file or a folder of text files) into DATA_ROOT/text/NAME; return a summary."""
    if source is None:
        raise UserError("prepare-data text needs --from FILE_OR_DIR (any UTF-8 text)")
    if not 0 < val_portion < 1:
        raise UserError(f"--val-portion must be in (0, 1), got {val_portion}")
    name = name or source.stem
    coder = make_tokenizer(tokenizer, tokenizer_file)
    ids: list[int] = []
    for path in _documents(source):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise UserError(f"{path} is not UTF-8 text") from None
        ids.extend(coder.encode(text))
        ids.append(coder.eot)
    tokens = np.asarray(ids, dtype=np.uint16)
    split = int(len(tokens) * (1 - val_portion))
    if split < 2 or len(tokens) - split < 2:
        raise UserError(f"{source} is too short to split into training and validation tokens")
    target = dataset_dir(data_root, "text") / name
    target.parent.mkdir(parents=True, exist_ok=True)
    write_token_files(target, coder, tokens[:split], tokens[split:], source, tokenizer_file)
    counts = f"{split:,} train and {len(tokens) - split:,} validation tokens"
    return f"text/{name}: {counts} ({coder.name}) in {target}"
