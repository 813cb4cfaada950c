"""prepare-data tinystories: local .txt / .json / .jsonl copies, the Hub (monkeypatched), holdout, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from support import invoke

from tanglenas_cli.data.registry import build_datasets
from tanglenas_cli.data.text import make_tokenizer
from tanglenas_cli.data.tinystories import encode_stories, prepare_tinystories

RANKS = Path(
    os.environ.get("TANGLENAS_GPT2_RANKS", Path.home() / ".cache" / "tanglenas-test" / "gpt2.tiktoken")
)
EOT = 256  # end of text of the bytes tokenizer
TRAIN_STORIES = ["Once upon a time, a cat sat.", "Tom had a red ball.\nHe liked it.", "The sun was hot."]
VAL_STORIES = ["Lily ran home.", "A dog barked."]


def prepare(*args: object):
    result = invoke("prepare-data", "tinystories", *args)
    return result


def expected(stories: list[str]) -> list[int]:
    ids: list[int] = []
    for story in stories:
        ids.extend(story.encode("utf-8"))
        ids.append(EOT)
    return ids


def read(root: Path) -> tuple[list[int], list[int], dict]:
    folder = root / "tinystories"
    meta = json.loads((folder / "meta.json").read_text())
    train = np.fromfile(folder / "train.bin", dtype=np.uint16).tolist()
    val = np.fromfile(folder / "val.bin", dtype=np.uint16).tolist()
    assert meta["train_tokens"] == len(train) and meta["val_tokens"] == len(val)
    return train, val, meta


def v2_text(stories: list[str]) -> str:
    """The layout of TinyStoriesV2-GPT4-*.txt: stories separated by an <|endoftext|> line."""
    return "\n<|endoftext|>\n".join(stories) + "\n"


def test_txt_files_with_separators_in_a_folder(tmp_path: Path):
    source = tmp_path / "src"
    source.mkdir()
    # blank stories, stray whitespace, an inline separator: stripped, skipped and split
    (source / "TinyStoriesV2-GPT4-train.txt").write_text(
        "\n" + v2_text(TRAIN_STORIES[:2]) + "<|endoftext|>\n  \n<|endoftext|>\n" + TRAIN_STORIES[2] + "\n"
    )
    (source / "TinyStoriesV2-GPT4-valid.txt").write_text(
        VAL_STORIES[0] + "<|endoftext|>" + VAL_STORIES[1] + "<|endoftext|>\n"
    )
    result = prepare("--from", source, "--data-root", tmp_path / "root", "--tokenizer", "bytes")
    assert result.exit_code == 0, result.output
    assert "3 stories" in result.output and "2 stories" in result.output
    train, val, meta = read(tmp_path / "root")
    assert train == expected(TRAIN_STORIES) and val == expected(VAL_STORIES)
    assert meta["tokenizer"] == "bytes" and meta["eot"] == EOT and meta["vocab_size"] == 257
    assert sum(t == EOT for t in train) == 3 and train[-1] == EOT and val[-1] == EOT
    assert not [p for p in (tmp_path / "root").iterdir() if p.name.startswith(".")]  # no staging left


def test_json_and_jsonl_shards_with_a_valid_file(tmp_path: Path):
    source = tmp_path / "shards"
    source.mkdir()
    shard = [{"story": TRAIN_STORIES[0], "summary": "x", "source": "GPT-4"}, {"story": "  "}]
    (source / "data00.json").write_text(json.dumps(shard))
    (source / "data01.json").write_text(json.dumps([{"text": TRAIN_STORIES[1]}]))
    (source / "data02.jsonl").write_text(json.dumps({"story": TRAIN_STORIES[2]}) + "\n\n")
    (source / "val.jsonl").write_text("".join(json.dumps({"text": s}) + "\n" for s in VAL_STORIES))
    (source / "notes.md").write_text("ignored")
    result = prepare("--from", source, "--data-root", tmp_path, "--tokenizer", "bytes")
    assert result.exit_code == 0, result.output
    train, val, meta = read(tmp_path)
    assert train == expected(TRAIN_STORIES) and val == expected(VAL_STORIES)
    assert meta["source"] == str(source)


def test_single_file_holds_out_the_last_stories(tmp_path: Path):
    stories = [f"Story number {i} is short." for i in range(10)]
    source = tmp_path / "stories.txt"
    source.write_text(v2_text(stories))
    result = prepare("--from", source, "--data-root", tmp_path, "--tokenizer", "bytes", "--val-portion", 0.2)
    assert result.exit_code == 0, result.output
    train, val, _ = read(tmp_path)
    assert train == expected(stories[:8]) and val == expected(stories[8:])
    # at least one story on each side
    summary = prepare_tinystories(tmp_path, source, "bytes", val_portion=0.01)
    train, val, _ = read(tmp_path)
    assert val == expected(stories[9:]) and "(1 story; last 1 story held out)" in summary
    prepare_tinystories(tmp_path, source, "bytes", val_portion=0.99)
    train, val, _ = read(tmp_path)
    assert train == expected(stories[:1])


def fake_hub(monkeypatch: pytest.MonkeyPatch, splits: dict[str, list[str]] | Exception) -> list[tuple]:
    calls: list[tuple] = []

    def load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        if isinstance(splits, Exception):
            raise splits
        return datasets.DatasetDict({k: datasets.Dataset.from_dict({"text": v}) for k, v in splits.items()})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_hub_splits_train_and_validation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    calls = fake_hub(monkeypatch, {"train": [*TRAIN_STORIES, ""], "validation": VAL_STORIES})
    result = prepare("--data-root", tmp_path, "--tokenizer", "bytes")
    assert result.exit_code == 0, result.output
    assert calls == [(("roneneldan/TinyStories",), {})]
    train, val, meta = read(tmp_path)
    assert train == expected(TRAIN_STORIES) and val == expected(VAL_STORIES)
    assert meta["source"] == "hf:roneneldan/TinyStories"


def test_hub_without_validation_holds_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    fake_hub(monkeypatch, {"train": TRAIN_STORIES + VAL_STORIES})
    summary = prepare_tinystories(tmp_path, tokenizer="bytes", val_portion=0.4)
    train, val, _ = read(tmp_path)
    assert train == expected(TRAIN_STORIES) and val == expected(VAL_STORIES) and "held out" in summary


def test_network_failure_suggests_from(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    fake_hub(monkeypatch, ConnectionError("Couldn't reach 'roneneldan/TinyStories' on the Hub"))
    result = prepare("--data-root", tmp_path / "root", "--tokenizer", "bytes")
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "ConnectionError" in result.output and "--from" in result.output
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--from", "EMPTY"], "no stories found"),
    (["--from", "EMPTYDIR"], "no .txt, .json or .jsonl"),
    (["--from", "ARCHIVEDIR"], "unpack"),
    (["--from", "ONLYVAL"], "only validation"),
    (["--from", "EMPTYVAL"], "validation part"),
    (["--from", "ONE"], "at least two"),
    (["--from", "CORRUPT"], "not valid JSON"),
    (["--from", "BADLINE"], "line 2 is not valid JSON"),
    (["--from", "NOTLIST"], "not a JSON list"),
    (["--from", "NOKEY"], "'story' or 'text'"),
    (["--from", "BINARY"], "not UTF-8"),
    (["--from", "BINARYJSON"], "not UTF-8"),
    (["--from", "CSV"], "expected a .txt, .json or .jsonl"),
    (["--from", "GOOD", "--val-portion", "0"], "val-portion"),
    (["--from", "GOOD", "--val-portion", "1.5"], "val-portion"),
    (["--from", "GOOD", "--name", "x"], "--name"),
    (["--from", "GOOD", "--tokenizer", "sentencepiece"], "gpt2 or bytes"),
    (["--from", "GOOD", "--tokenizer", "gpt2", "--tokenizer-file", "NOFILE"], "not found"),
    (["--from", "GOOD", "--tokenizer", "gpt2", "--tokenizer-file", "GOOD"], "ranks file"),
    (["--from", "NOFILE"], "not found"),
])  # fmt: skip
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], fragment: str):
    files = tmp_path / "in"
    files.mkdir()
    paths = {name: files / name for name in ("EMPTYDIR", "ARCHIVEDIR", "ONLYVAL", "EMPTYVAL")}
    for folder in paths.values():
        folder.mkdir()
    (paths["ARCHIVEDIR"] / "TinyStories_all_data.tar.gz").write_bytes(b"\x1f\x8b")
    (paths["ONLYVAL"] / "valid.txt").write_text(v2_text(VAL_STORIES))
    (paths["EMPTYVAL"] / "train.txt").write_text(v2_text(TRAIN_STORIES))
    (paths["EMPTYVAL"] / "valid.txt").write_text("<|endoftext|>\n \n")
    contents: dict[str, str | bytes] = {
        "EMPTY.txt": "\n<|endoftext|>\n\n<|endoftext|>\n",
        "ONE.txt": "Just one story.\n",
        "CORRUPT.json": '[{"story": "a"',
        "BADLINE.jsonl": '{"story": "a"}\n{"story": \n',
        "NOTLIST.json": '{"story": "a"}',
        "NOKEY.json": '[{"story": "a"}, {"title": "b"}]',
        "BINARY.txt": b"Once\xff\xfe upon\n<|endoftext|>\nb\n",
        "BINARYJSON.json": b'[{"story": "\xff"}]',
        "CSV.csv": "story\na\n",
        "GOOD.txt": v2_text(TRAIN_STORIES),
    }
    for name, content in contents.items():
        path = files / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
        paths[Path(name).stem] = path
    paths["NOFILE"] = files / "missing.txt"
    root = tmp_path / "root"
    result = prepare("--data-root", root, "--tokenizer", "bytes", *[paths.get(a, a) for a in args])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert fragment in result.output
    assert not root.exists() or not any(root.iterdir())


def test_failing_run_keeps_the_prepared_copy(tmp_path: Path):
    good = tmp_path / "good.txt"
    good.write_text(v2_text(TRAIN_STORIES + VAL_STORIES))
    assert prepare("--from", good, "--data-root", tmp_path / "root", "--tokenizer", "bytes").exit_code == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "root" / "tinystories").iterdir()}
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train.txt").write_text(v2_text(TRAIN_STORIES))  # fails late: after the training tokens
    (bad / "valid.jsonl").write_text('{"story": "fine"}\n{broken\n')
    result = prepare("--from", bad, "--data-root", tmp_path / "root", "--tokenizer", "bytes")
    assert result.exit_code == 2 and "not valid JSON" in result.output
    after = {p.name: p.read_bytes() for p in (tmp_path / "root" / "tinystories").iterdir()}
    assert after == before
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["tinystories"]


def test_build_datasets_reads_the_prepared_corpus(tmp_path: Path):
    stories = [f"Story {i}: the little fox found a shiny stone." for i in range(20)]
    (tmp_path / "s.txt").write_text(v2_text(stories))
    prepare_tinystories(tmp_path, tmp_path / "s.txt", "bytes", val_portion=0.25)
    train, test, info = build_datasets("tinystories", tmp_path, {"block_size": 16})
    assert info.num_classes == 257 and tuple(info.input_shape) == (16,)
    tokens = np.array(expected(stories[:15]))
    assert train.num_tokens == len(tokens) and len(train) == len(tokens) - 16
    x, y = train[5]
    assert torch.equal(x, torch.from_numpy(tokens[5:21])) and torch.equal(y, torch.from_numpy(tokens[6:22]))
    val_tokens = np.array(expected(stories[15:]))
    assert len(test) == (len(val_tokens) - 1) // 16
    x, y = test[1]
    assert torch.equal(x, torch.from_numpy(val_tokens[16:32])) and torch.equal(y[:-1], x[1:])


def test_gpt2_tokens_from_the_ranks_file(tmp_path: Path):
    if not RANKS.is_file():
        pytest.skip(f"GPT-2 ranks not found: {RANKS} (.ci/run fetches them)")
    coder = make_tokenizer("gpt2", RANKS)
    tokens, lengths = encode_stories(coder, ["Hello world", "Hello world"])
    assert tokens.tolist() == [15496, 995, 50256] * 2 and lengths.tolist() == [3, 3]
    source = tmp_path / "src"
    source.mkdir()
    (source / "TinyStoriesV2-GPT4-train.txt").write_text(v2_text(TRAIN_STORIES))
    (source / "TinyStoriesV2-GPT4-valid.txt").write_text(v2_text(VAL_STORIES))
    result = prepare("--from", source, "--data-root", tmp_path, "--tokenizer-file", RANKS)
    assert result.exit_code == 0, result.output
    train, val, meta = read(tmp_path)
    assert meta["tokenizer"] == "gpt2" and meta["eot"] == 50256 and meta["vocab_size"] == 50257
    assert meta["tokenizer_file"] == str(RANKS.resolve())
    want = [i for s in TRAIN_STORIES for i in [*coder.encoder.encode_ordinary(s), 50256]]
    assert train == want and val.count(50256) == 2 and val[-1] == 50256
    assert coder.decode(val).strip() == "".join(VAL_STORIES)
    _, _, info = build_datasets("tinystories", tmp_path, {"block_size": 4})
    assert info.num_classes == 50257
