"""The official NAS-Bench-201 / NATS-Bench files, read one architecture at a time through their own APIs.

* NATS-Bench `simple` folders (`NATS-tss-v1_0-3ffb9-simple/`, `NATS-sss-v1_0-50262-simple/`: a
  `meta.pickle.pbz2` and one `NNNNNN.pickle.pbz2` per architecture) via
  `nats_bench.create(folder, 'tss'|'sss', fast_mode=True)` and `get_more_info(index, dataset, hp,
  is_random=False)` (the mean over seeds; hp '200' for tss, '90' for sss).
* The NAS-Bench-201 `.pth` file via `nas_201_api`'s `ArchResults` (the 200-epoch results, mean over seeds).

Both need the optional packages (`pip install 'tanglenas[nb201]'`), and both unpickle: the `.pickle.pbz2`
files and the `.pth` are Python pickles, and loading a pickle can run code stored in it. They are only
opened when the user names them (`--from`, `--benchmark`). Each architecture's results are dropped once its
row is produced, so a conversion never holds all of them (the official API, loaded whole, can take ~28 GB).

Columns: `{dataset}_train` (train accuracy), `{dataset}_test` and, for cifar100 and imagenet16-120,
`{dataset}_valid`, as the APIs report them (CIFAR-10 `ori-test` after training on train+valid; CIFAR-100 /
ImageNet16-120 `x-test` and `x-valid`). `cifar10_valid` is the `x-valid` accuracy of the separate
`cifar10-valid` runs (trained on the train split only).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tanglenas_cli.errors import UserError

from . import nb201_keys as keys
from .nb201 import RowSource

INSTALL_HINT = "pip install 'tanglenas[nb201]' (or: pip install nats_bench nas-bench-201)"

# tanglenas dataset name -> the official API's dataset name.
OFFICIAL_DATASETS: dict[str, str] = {
    "cifar10": "cifar10",
    "cifar100": "cifar100",
    "imagenet16-120": "ImageNet16-120",
}
CIFAR10_VALID_DATASET = "cifar10-valid"
# The training schedule queried in each NATS space: 200 epochs (topology), 90 epochs (size).
NATS_HPS: dict[str, str] = {"tss": "200", "sss": "90"}
NATS_BENCHMARKS: dict[str, str] = {"tss": keys.NB201_BENCHMARK, "sss": keys.NATS_SSS_BENCHMARK}
NATS_META_FILE = "meta.pickle.pbz2"
_NATS_ARCH_FILE = re.compile(r"^(\d+)\.pickle\.pbz2$")

# Evaluation sets of the NB201 `.pth` per dataset: (split, official set name).
_PTH_SETS: dict[str, tuple[tuple[str, str], ...]] = {
    "cifar10": (("train", "train"), ("test", "ori-test")),
    "cifar100": (("train", "train"), ("valid", "x-valid"), ("test", "x-test")),
    "imagenet16-120": (("train", "train"), ("valid", "x-valid"), ("test", "x-test")),
}


def open_official_source(path: Path) -> RowSource:
    """Return the rows of a NATS-Bench `simple` folder or a NAS-Bench-201 `.pth` file."""
    path = Path(path)
    if path.is_dir():
        return nats_source(path)
    if path.suffix.lower() == ".pth":
        if not path.is_file():
            what = "is not a file" if path.exists() else "does not exist"
            raise UserError(f"benchmark file {path} {what}")
        return nb201_pth_source(path)
    raise UserError(f"{path} is neither a NATS-Bench folder nor a NAS-Bench-201 .pth file")


def _one_line(error: BaseException) -> str:
    """Return `error` as one short line."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _put(row: dict[str, float], column: str, value: Any) -> None:
    """Store `value` under `column` when it is a finite number."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value)):
        row[column] = float(value)


# --- NATS-Bench folders -------------------------------------------------------------------------------------


def nats_architecture_indices(directory: Path) -> list[int]:
    """Return the architecture indices that `directory` holds a `NNNNNN.pickle.pbz2` file for, ascending."""
    try:
        names = [entry.name for entry in directory.iterdir()]
    except OSError as error:
        raise UserError(f"cannot list {directory}: {error.strerror or error}") from None
    return sorted(int(match.group(1)) for name in names if (match := _NATS_ARCH_FILE.match(name)))


def _import_nats_bench() -> Any:
    """Return the `nats_bench` module; UserError with the install command when it is missing."""
    try:
        import nats_bench
    except ImportError:
        raise UserError(f"reading NATS-Bench folders needs the nats_bench package: {INSTALL_HINT}") from None
    return nats_bench


def open_nats_api(directory: Path) -> tuple[Any, str]:
    """Return (`nats_bench` API in fast mode, 'tss' or 'sss') for a NATS-Bench `simple` folder.

    The kind is taken from the folder's meta data (its first architecture string), not trusted from its name.
    """
    if not (directory / NATS_META_FILE).is_file():
        raise UserError(
            f"{directory} is not a NATS-Bench 'simple' folder: it has no {NATS_META_FILE} "
            "(expected e.g. NATS-tss-v1_0-3ffb9-simple/ or NATS-sss-v1_0-50262-simple/)"
        )
    nats_bench = _import_nats_bench()
    kind = "sss" if "sss" in directory.name.lower() else "tss"
    for _attempt in range(2):
        try:
            api = nats_bench.create(str(directory), kind, fast_mode=True, verbose=False)
            first = str(api.meta_archs[0]) if len(api) else ""
        except Exception as error:  # nats_bench raises assertions, ValueError, OSError, pickle errors
            raise UserError(f"nats_bench cannot open {directory}: {_one_line(error)}") from None
        found = "sss" if keys.nb201_benchmark_of_key(first) == keys.NATS_SSS_BENCHMARK else "tss"
        if found == kind:
            return api, kind
        kind = found
    raise UserError(f"{directory}: cannot tell whether it is a NATS-Bench tss or sss folder")


def nats_row(api: Any, index: int, hp: str) -> dict[str, float]:
    """Return the compact-table row of architecture `index`: mean accuracies over seeds, via get_more_info."""
    row: dict[str, float] = {}
    for dataset, official in OFFICIAL_DATASETS.items():
        info = api.get_more_info(index, official, hp=hp, is_random=False)
        _put(row, keys.column_name(dataset, "train"), info.get("train-accuracy"))
        if dataset != "cifar10":
            _put(row, keys.column_name(dataset, "valid"), info.get("valid-accuracy"))
        _put(row, keys.column_name(dataset, "test"), info.get("test-accuracy"))
    try:
        info = api.get_more_info(index, CIFAR10_VALID_DATASET, hp=hp, is_random=False)
    except (KeyError, ValueError, AssertionError):
        return row  # a benchmark without the separate cifar10-valid runs
    _put(row, keys.column_name("cifar10", "valid"), info.get("valid-accuracy"))
    return row


def _forget(api: Any, index: int) -> None:
    """Drop what the API cached for architecture `index` so memory stays at one architecture."""
    cached = getattr(api, "arch2infos_dict", None)
    if isinstance(cached, dict):
        cached.pop(index, None)
    evaluated = getattr(api, "evaluated_indexes", None)
    if isinstance(evaluated, set):
        evaluated.discard(index)


def nats_source(directory: Path) -> RowSource:
    """Return the rows of a NATS-Bench `simple` folder (tss: NB201 strings; sss: size strings), one by one."""
    api, kind = open_nats_api(directory)
    benchmark, hp = NATS_BENCHMARKS[kind], NATS_HPS[kind]
    indices = nats_architecture_indices(directory)
    if not indices:
        raise UserError(f"{directory} holds no architecture files (NNNNNN.pickle.pbz2)")
    total = len(api)
    outside = [index for index in indices if not 0 <= index < total]
    if outside:
        raise UserError(
            f"{directory}: architecture file {outside[0]:06d} is outside the {total:,} of its meta data"
        )

    def rows() -> Iterator[tuple[str, dict[str, float]]]:
        for index in indices:
            try:
                key = keys.check_key(benchmark, str(api.arch(index)))
                row = nats_row(api, index, hp)
            except UserError:
                raise
            except Exception as error:  # nats_bench raises assertions, KeyError, OSError, pickle errors
                raise UserError(
                    f"nats_bench cannot read architecture {index} of {directory} (hp={hp}): "
                    f"{_one_line(error)}"
                ) from None
            finally:
                _forget(api, index)
            if not row:
                raise UserError(f"{directory}: architecture {index} has no accuracies at hp={hp}")
            yield key, row

    return RowSource(
        benchmark, keys.NB201_COLUMNS, rows(), f"NATS-Bench {kind} folder ({len(indices):,} architectures)"
    )


# --- the NAS-Bench-201 .pth ---------------------------------------------------------------------------------


def load_nb201_pth(path: Path) -> dict[str, Any]:
    """Load the NAS-Bench-201 `.pth` file (a dict of `meta_archs`, `arch2infos`, `evaluated_indexes`).

    This calls `torch.load(..., weights_only=False)`: the official file stores Python objects that torch's
    safe loader (the default since torch 2.6) refuses, and an unrestricted load runs whatever code the pickle
    holds. It is only ever called for a file the user names explicitly (`prepare-data nb201-bench --from
    FILE`, `bench-query --benchmark FILE`): never load a downloaded or unknown .pth with it.
    """
    try:
        import torch
    except ImportError:
        raise UserError(f"reading {path} needs torch") from None
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch.load raises many error types for corrupt or foreign files
        raise UserError(f"cannot load {path} as a NAS-Bench-201 .pth file: {_one_line(error)}") from None
    missing = [key for key in ("meta_archs", "arch2infos") if not isinstance(data, dict) or key not in data]
    if missing:
        raise UserError(f"{path} is not a NAS-Bench-201 file: it lacks {', '.join(missing)}")
    return data


def nb201_pth_source(path: Path) -> RowSource:
    """Return the rows of the NAS-Bench-201 `.pth` file via `nas_201_api.ArchResults` (200-epoch results)."""
    try:
        from nas_201_api import ArchResults
    except ImportError:
        raise UserError(f"reading {path} needs the nas-bench-201 package: {INSTALL_HINT}") from None
    data = load_nb201_pth(path)
    meta_archs = list(data["meta_archs"])
    infos = data["arch2infos"]
    del data

    def metric(results: Any, dataset: str, set_name: str) -> Any:
        try:
            return results.get_metrics(dataset, set_name, iepoch=None, is_random=False)["accuracy"]
        except (KeyError, ValueError, AssertionError, TypeError):
            return None

    def rows() -> Iterator[tuple[str, dict[str, float]]]:
        for index in sorted(infos):
            info = infos.pop(index)  # drop each architecture once read
            try:
                key = keys.check_key(keys.NB201_BENCHMARK, str(meta_archs[index]))
                results = ArchResults.create_from_state_dict(info["full"])
            except UserError as error:
                raise UserError(f"{path}: architecture {index}: {error}") from None
            except Exception as error:  # nas_201_api asserts on malformed state dicts
                raise UserError(f"{path}: cannot read architecture {index}: {_one_line(error)}") from None
            row: dict[str, float] = {}
            for dataset, official in OFFICIAL_DATASETS.items():
                for split, set_name in _PTH_SETS[dataset]:
                    _put(row, keys.column_name(dataset, split), metric(results, official, set_name))
            _put(row, keys.column_name("cifar10", "valid"), metric(results, CIFAR10_VALID_DATASET, "x-valid"))
            if not row:
                raise UserError(f"{path}: architecture {index} has no 200-epoch accuracies")
            yield key, row

    return RowSource(
        keys.NB201_BENCHMARK, keys.NB201_COLUMNS, rows(), f"NAS-Bench-201 file ({len(infos):,} architectures)"
    )
