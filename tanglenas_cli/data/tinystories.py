"""TinyStories for the nanoGPT space: stories tokenised once into ``train.bin`` / ``val.bin`` (uint16).

``tanglenas prepare-data tinystories`` follows the TangleNAS pipeline: the Hugging Face dataset
``roneneldan/TinyStories`` (splits ``train`` and ``validation``, field ``text``), GPT-2 BPE through
tiktoken's ``encode_ordinary`` with the end-of-text token (50256) after every story, and flat uint16
token files DATA_ROOT/tinystories/{train,val}.bin plus ``meta.json`` (see :mod:`tanglenas_cli.data.text`).

Offline, ``--from FILE_OR_DIR`` reads local copies instead:

* ``.txt`` -- stories separated by ``<|endoftext|>`` (TinyStoriesV2-GPT4-train.txt / -valid.txt);
* ``.json`` -- a list of objects with a ``story`` or ``text`` key (the shards of
  TinyStories_all_data.tar.gz), ``.jsonl`` -- one such object per line;
* a folder of such files -- files whose name contains ``val`` (``valid``, ``validation``) form the
  validation split, the others the training split.

Without a validation part the last ``val_portion`` of the stories is held out. Stories are stripped;
empty ones are skipped. Tokens stream to disk in batches of stories, so the 2 GB training file never
needs all its token ids in memory at once.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any

import numpy as np

from tanglenas_cli.data.files import one_line, staging_dir
from tanglenas_cli.data.paths import dataset_dir
from tanglenas_cli.data.text import Tokenizer, make_tokenizer, write_token_files
from tanglenas_cli.errors import UserError

HF_DATASET = "roneneldan/TinyStories"
SEPARATOR = "<|endoftext|>"
SUFFIXES = (".txt", ".json", ".jsonl")
BATCH_STORIES = 1024
ENCODE_THREADS = 8
_OFFLINE_HINT = (
    "without internet, copy TinyStoriesV2-GPT4-train.txt and TinyStoriesV2-GPT4-valid.txt (or the "
    "extracted TinyStories_all_data shards) to this machine and pass --from FILE_OR_DIR"
)


# ----------------------------------------------------------------------------------------------------
# Reading stories
# ----------------------------------------------------------------------------------------------------


def _open_error(path: Path, error: BaseException) -> UserError:
    if isinstance(error, UnicodeDecodeError):
        return UserError(f"{path} is not UTF-8 text")
    return UserError(f"cannot read {path}: {one_line(error)}")


def _txt_stories(path: Path) -> Iterator[str]:
    """Yield the stories of a text file, split at every ``<|endoftext|>`` (line by line: linear time)."""
    current: list[str] = []
    try:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if SEPARATOR not in line:
                    current.append(line)
                    continue
                parts = line.split(SEPARATOR)
                current.append(parts[0])
                yield "".join(current)
                yield from parts[1:-1]
                current = [parts[-1]]
    except (UnicodeDecodeError, OSError) as error:
        raise _open_error(path, error) from None
    yield "".join(current)


def _story_of(item: Any, path: Path, where: str) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        for key in ("story", "text"):
            if isinstance(item.get(key), str):
                return item[key]
    raise UserError(f"{path} {where}: expected an object with a 'story' or 'text' string")


def _json_stories(path: Path) -> Iterator[str]:
    """Yield the stories of a JSON list of objects (one shard of TinyStories_all_data, ~100 MB)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, OSError) as error:
        raise _open_error(path, error) from None
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(data, list):
        raise UserError(f"{path} is not a JSON list of stories (objects with a 'story' or 'text' key)")
    for index, item in enumerate(data):
        yield _story_of(item, path, f"item {index}")


def _jsonl_stories(path: Path) -> Iterator[str]:
    """Yield the stories of a JSON-lines file (one object per line; blank lines are skipped)."""
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except json.JSONDecodeError as error:
                    raise UserError(f"{path} line {number} is not valid JSON ({error.msg})") from None
                yield _story_of(item, path, f"line {number}")
    except (UnicodeDecodeError, OSError) as error:
        raise _open_error(path, error) from None


def _file_stories(path: Path) -> Iterator[str]:
    if path.suffix == ".json":
        return _json_stories(path)
    if path.suffix == ".jsonl":
        return _jsonl_stories(path)
    return _txt_stories(path)


def _files_stories(paths: list[Path]) -> Iterator[str]:
    for path in paths:
        yield from _file_stories(path)


def _is_validation(path: Path) -> bool:
    return "val" in path.name.lower()


def _check_file(path: Path) -> None:
    name = path.name.lower()
    if name.endswith((".tar", ".tar.gz", ".tgz")):
        raise UserError(
            f"{path} is an archive; unpack it first (tar xzf {path.name} -C DIR) and pass --from DIR"
        )
    if path.suffix not in SUFFIXES:
        raise UserError(f"{path}: expected a .txt, .json or .jsonl file of stories, or a folder of them")


@dataclass
class _Splits:
    """Where the stories come from: training stories, and validation stories if the source has them."""

    train: Iterable[str]
    val: Iterable[str] | None
    label: str  # for meta.json and the messages
    val_label: str = ""


def _local_splits(source: Path) -> _Splits:
    """Return the splits of a local file or folder (files are only opened while tokenising)."""
    if source.is_file():
        _check_file(source)
        return _Splits(_file_stories(source), None, str(source))
    files = sorted(
        p
        for p in source.rglob("*")
        if p.is_file()
        and p.suffix in SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(source).parts)
    )
    if not files:
        archives = [p.name for p in source.iterdir() if p.name.lower().endswith((".tar.gz", ".tgz", ".tar"))]
        hint = f"; unpack {archives[0]} first" if archives else ""
        raise UserError(f"no .txt, .json or .jsonl files of stories in {source}{hint}")
    val = [p for p in files if _is_validation(p)]
    train = [p for p in files if not _is_validation(p)]
    if not train:
        raise UserError(
            f"{source} holds only validation files ({', '.join(p.name for p in val)}); add the training "
            "files (names without 'val')"
        )
    val_label = ", ".join(p.name for p in val)
    return _Splits(_files_stories(train), _files_stories(val) if val else None, str(source), val_label)


def _hf_column(split: Any, name: str) -> Iterator[str]:
    if "text" not in split.column_names:
        raise UserError(f"the {name} split of {HF_DATASET} has no 'text' field ({split.column_names})")
    for batch in split.iter(batch_size=BATCH_STORIES):
        for text in batch["text"]:
            yield "" if text is None else str(text)


def _hub_splits() -> _Splits:
    """Return the splits of ``roneneldan/TinyStories`` from the Hugging Face Hub (or its cache)."""
    try:
        import datasets
    except ImportError:
        raise UserError(
            f"the 'datasets' package is needed to download {HF_DATASET}; {_OFFLINE_HINT}"
        ) from None
    try:
        loaded = datasets.load_dataset(HF_DATASET)
    except Exception as error:  # no network, hub errors, a broken cache: all end the same way
        reason = f"{type(error).__name__}: {one_line(error, 120)}"
        raise UserError(f"cannot download {HF_DATASET} ({reason}); {_OFFLINE_HINT}") from None
    if "train" not in loaded:
        raise UserError(f"{HF_DATASET} has no 'train' split (found: {', '.join(loaded)})")
    val = _hf_column(loaded["validation"], "validation") if "validation" in loaded else None
    return _Splits(_hf_column(loaded["train"], "train"), val, f"hf:{HF_DATASET}", "validation split")


# ----------------------------------------------------------------------------------------------------
# Tokenising
# ----------------------------------------------------------------------------------------------------


def _batches(stories: Iterable[str], size: int) -> Iterator[list[str]]:
    cleaned = (s for s in (story.strip() for story in stories) if s)
    iterator = iter(cleaned)
    while batch := list(islice(iterator, size)):
        yield batch


def encode_stories(coder: Tokenizer, stories: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Return (the tokens of ``stories``, each followed by end of text, as uint16; tokens per story)."""
    if coder.encoder is None:
        encoded = [list(story.encode("utf-8")) for story in stories]
    elif len(stories) > 1:
        encoded = coder.encoder.encode_ordinary_batch(stories, num_threads=ENCODE_THREADS)
    else:
        encoded = [coder.encoder.encode_ordinary(stories[0])]
    lengths = np.fromiter((len(ids) + 1 for ids in encoded), dtype=np.int64, count=len(encoded))
    flat = chain.from_iterable(chain(ids, (coder.eot,)) for ids in encoded)
    tokens = np.fromiter(flat, dtype=np.uint16, count=int(lengths.sum()))
    return tokens, lengths


@dataclass
class _Written:
    tokens: int
    ends: np.ndarray  # the token offset after each story

    @property
    def stories(self) -> int:
        return len(self.ends)


def _write_stories(stories: Iterable[str], coder: Tokenizer, path: Path, what: str) -> _Written:
    """Tokenise ``stories`` batch by batch, appending uint16 tokens to ``path``."""
    lengths: list[np.ndarray] = []
    total = 0
    progress = sys.stderr.isatty()
    with path.open("wb") as out:
        for batch in _batches(stories, BATCH_STORIES):
            tokens, counts = encode_stories(coder, batch)
            tokens.tofile(out)
            lengths.append(counts)
            total += len(tokens)
            if progress and len(lengths) % 200 == 0:
                done = sum(len(c) for c in lengths)
                print(f"\r{what}: {done:,} stories, {total:,} tokens", end="", file=sys.stderr, flush=True)
    if progress and lengths:
        print(file=sys.stderr)
    ends = np.cumsum(np.concatenate(lengths)) if lengths else np.zeros(0, dtype=np.int64)
    return _Written(total, ends)


def _stories(count: int) -> str:
    return f"{count:,} {'story' if count == 1 else 'stories'}"


def _held_out(count: int, val_portion: float) -> int:
    return min(count - 1, max(1, round(count * val_portion)))


def prepare_tinystories(data_root: Path, source: Path | None = None, tokenizer: str = "gpt2",
                        tokenizer_file: Path | None = None, val_portion: float = 0.1,
                        name: str | None = None) -> str:  # fmt: skip
    """Tokenise TinyStories (the Hub, or ``source``: a local file or folder) into DATA_ROOT/tinystories.

    Return a one-line summary. ``val_portion`` of the stories is held out only when the source has no
    validation part. An earlier prepared copy is replaced only once the new one is complete.
    """
    if name is not None:
        raise UserError("--name applies to text corpora only; tinystories goes to DATA_ROOT/tinystories")
    if not 0 < val_portion < 1:
        raise UserError(f"--val-portion must be in (0, 1), got {val_portion}")
    data_root = Path(data_root).expanduser()
    coder = make_tokenizer(tokenizer, Path(tokenizer_file) if tokenizer_file is not None else None)
    if source is not None:
        source = Path(source).expanduser()
        if not source.exists():
            raise UserError(f"--from path not found: {source}")
        splits = _local_splits(source)
    else:
        splits = _hub_splits()
    target = dataset_dir(data_root, "tinystories")
    with staging_dir(data_root) as scratch:
        train = _write_stories(splits.train, coder, scratch / "train.tokens", "train")
        if train.stories == 0:
            raise UserError(f"no stories found in {splits.label}")
        tokens = np.memmap(scratch / "train.tokens", dtype=np.uint16, mode="r")
        if splits.val is not None:
            val = _write_stories(splits.val, coder, scratch / "val.tokens", "validation")
            if val.stories == 0:
                raise UserError(
                    f"no stories found in the validation part of {splits.label} ({splits.val_label})"
                )
            counts = (train.stories, val.stories)
            val_tokens = np.memmap(scratch / "val.tokens", dtype=np.uint16, mode="r")
            held = f"validation from {splits.val_label}"
        else:
            if train.stories < 2:
                raise UserError(f"{splits.label} holds one story; at least two are needed to hold one out")
            kept = train.stories - _held_out(train.stories, val_portion)
            cut = int(train.ends[kept - 1])
            tokens, val_tokens = tokens[:cut], tokens[cut:]
            counts = (kept, train.stories - kept)
            held = f"last {_stories(counts[1])} held out"
        write_token_files(target, coder, tokens, val_tokens, splits.label, tokenizer_file)
        train_count, val_count = len(tokens), len(val_tokens)
        del tokens, val_tokens
    return (
        f"tinystories: {train_count:,} train tokens ({_stories(counts[0])}) and {val_count:,} validation "
        f"tokens ({_stories(counts[1])}; {held}), {coder.name}, in {target}"
    )
