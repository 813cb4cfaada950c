"""Token corpora as datasets: random training windows and non-overlapping evaluation blocks.

A corpus is a folder with ``train.bin`` / ``val.bin`` (uint16 token ids) and ``meta.json``, written by
``prepare-data text`` (DATA_ROOT/text/NAME) or ``prepare-data tinystories`` (DATA_ROOT/tinystories).
Item ``i`` of a dataset is ``(tokens[s : s+B], tokens[s+1 : s+B+1])``: the input block and its
next-token targets. Training draws windows at random start offsets (:class:`TokenWindows`); evaluation
walks non-overlapping blocks (:class:`TokenBlocks`). Splits are contiguous token ranges, never index
lists, so a corpus of billions of tokens costs no memory beyond its memory map.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from tanglenas_cli.data.info import DatasetInfo
from tanglenas_cli.data.options import int_option, read_options
from tanglenas_cli.data.paths import dataset_dir, prepare_command
from tanglenas_cli.errors import UserError

TOKEN_DATASETS = ("text", "tinystories")
DEFAULT_BLOCK_SIZE = 224  # the paper's nanoGPT block


class _Tokens(Dataset):
    """A contiguous range of a token file, cut into (input, target) items of ``block_size`` tokens."""

    def __init__(self, tokens: np.ndarray, block_size: int, what: str = "token file") -> None:
        if len(tokens) <= block_size:
            raise UserError(f"the {what} holds {len(tokens)} tokens, fewer than a block of {block_size} + 1")
        self.tokens = tokens
        self.block_size = block_size

    def _item(self, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        chunk = torch.from_numpy(self.tokens[start : start + self.block_size + 1].astype(np.int64))
        return chunk[:-1], chunk[1:]

    @property
    def num_tokens(self) -> int:
        """Return the number of tokens in this range."""
        return len(self.tokens)


class TokenBlocks(_Tokens):
    """Consecutive non-overlapping blocks: item i starts at token ``i * block_size`` (evaluation)."""

    def __len__(self) -> int:
        return (len(self.tokens) - 1) // self.block_size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._item(index * self.block_size)


class TokenWindows(_Tokens):
    """Every window of the range: item i starts at token i (training draws them at random offsets)."""

    def __len__(self) -> int:
        return len(self.tokens) - self.block_size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._item(index)

    def split(self, portion: float) -> tuple[TokenWindows, TokenWindows]:
        """Return (first ``portion`` of the tokens, the rest) as two contiguous ranges."""
        cut = int(len(self.tokens) * portion)
        first = TokenWindows(self.tokens[:cut], self.block_size, f"first {portion:g} of the training tokens")
        rest = TokenWindows(self.tokens[cut:], self.block_size, f"last {1 - portion:g} of the train tokens")
        return first, rest

    def head(self, tokens: int) -> TokenWindows:
        """Return the first ``tokens`` tokens of the range."""
        return TokenWindows(self.tokens[: max(tokens, self.block_size + 1)], self.block_size)

    def blocks(self) -> TokenBlocks:
        """Return the same range as non-overlapping blocks (for evaluation)."""
        return TokenBlocks(self.tokens, self.block_size)

    @property
    def blocks_per_pass(self) -> int:
        """Return how many blocks cover the range once (the size of one 'epoch' of tokens)."""
        return (len(self.tokens) - 1) // self.block_size


def corpus_dir(dataset: str, data_root: Path, options: Mapping[str, Any] | None = None) -> Path:
    """Return the folder of a token corpus: DATA_ROOT/tinystories, or DATA_ROOT/text/NAME.

    For ``text`` without ``name``, the one prepared corpus is used; none or several is an error.
    """
    if dataset == "tinystories":
        return dataset_dir(data_root, "tinystories")
    base = dataset_dir(data_root, "text")
    name = (options or {}).get("name")
    if name is not None:
        return base / str(name)
    found = sorted(p.name for p in base.iterdir() if (p / "meta.json").is_file()) if base.is_dir() else []
    if not found:
        raise UserError(f"no text corpus in {base}; run: {prepare_command('text', data_root, 'FILE.txt')}")
    if len(found) > 1:
        raise UserError(
            f"{base} holds several corpora ({', '.join(found)}); pick one: --set dataset_options.name=NAME"
        )
    return base / found[0]


def read_meta(folder: Path, dataset: str, data_root: Path) -> dict[str, Any]:
    """Return ``meta.json`` of a corpus; UserError naming the prepare command when it is missing or bad."""
    meta_file = folder / "meta.json"
    command = prepare_command(dataset, data_root, "FILE.txt" if dataset == "text" else None)
    if not meta_file.is_file():
        raise UserError(f"{dataset} is not prepared in {folder}; run: {command}")
    try:
        meta = json.loads(meta_file.read_text())
        int(meta["vocab_size"]), int(meta["eot"]), str(meta["tokenizer"])
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{meta_file} is corrupt; prepare the corpus again: {command}") from None
    return meta


def _load(folder: Path, split: str, dataset: str, data_root: Path) -> np.ndarray:
    path = folder / f"{split}.bin"
    if not path.is_file():
        raise UserError(f"{path} is missing; prepare the corpus again: {prepare_command(dataset, data_root)}")
    if path.stat().st_size % 2:
        raise UserError(f"{path} is not a uint16 token file (odd size); prepare the corpus again")
    if path.stat().st_size == 0:
        raise UserError(f"{path} is empty; prepare the corpus again")
    return np.memmap(path, dtype=np.uint16, mode="r")


def build_token_datasets(
    dataset: str, data_root: Path, options: Mapping[str, Any] | None = None, augment: bool = False
) -> tuple[TokenWindows, TokenBlocks, DatasetInfo]:
    """Return (training windows of train.bin, evaluation blocks of val.bin, info) of a token corpus.

    Token windows are never augmented (`augment` is not used).

    ``info.num_classes`` is the vocabulary size and ``info.input_shape`` is ``(block_size,)``.
    Options: ``block_size`` (default 224) and, for ``text``, ``name`` (the corpus under DATA_ROOT/text).
    """
    defaults: dict[str, Any] = {"block_size": DEFAULT_BLOCK_SIZE}
    if dataset == "text":
        defaults["name"] = None
    values = read_options(dataset, options, defaults)
    block = int_option(dataset, "block_size", values["block_size"], minimum=1)
    folder = corpus_dir(dataset, data_root, values)
    meta = read_meta(folder, dataset, data_root)
    train = TokenWindows(_load(folder, "train", dataset, data_root), block, f"{folder / 'train.bin'}")
    test = TokenBlocks(_load(folder, "val", dataset, data_root), block, f"{folder / 'val.bin'}")
    info = DatasetInfo(dataset, int(meta["vocab_size"]), (block,), (), ())  # type: ignore[arg-type]
    return train, test, info
