"""A tabular NAS benchmark held in memory: architecture key -> metrics, with look-up and ranking."""

from __future__ import annotations

import bisect
import math
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tanglenas_cli.errors import UserError

from .toy_keys import KNOWN_TOY_BENCHMARKS, toy_benchmark_of_key

_MAX_KEY_IN_MESSAGE = 300


def _plain_value(value: Any, key: str, field: str, source: Path) -> float | str:
    """Return a numeric field as a plain float and a text field as str; UserError for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    raise UserError(
        f"benchmark {source}: field '{field}' of architecture {_short(key)} has unsupported type "
        f"{type(value).__name__} (expected a number or a string)"
    )


def _short(key: str) -> str:
    """Return `key` quoted and cut to a length that keeps an error message readable."""
    text = repr(key)
    return text if len(text) <= _MAX_KEY_IN_MESSAGE else text[: _MAX_KEY_IN_MESSAGE - 3] + "..."


class TabularBenchmark:
    """Metrics of every architecture of a search space, keyed by the architecture's benchmark key.

    ``name`` says which benchmark it is (a space names its benchmark the same way).
    """

    def __init__(self, name: str, path: Path, entries: Mapping[str, Mapping[str, Any]]) -> None:
        self.name = name
        self.path = Path(path)
        self.entries: dict[str, dict[str, float | str]] = {
            str(key): {str(field): _plain_value(value, key, field, self.path) for field, value in row.items()}
            for key, row in entries.items()
        }
        self._sorted_values: dict[str, list[float]] = {}
        self._metric_names: list[str] | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, path={str(self.path)!r}, entries={len(self)})"

    def query(self, key: str) -> dict[str, Any]:
        """Return a copy of the metrics of architecture `key`; UserError if the benchmark lacks it."""
        row = self.entries.get(key)
        if row is None:
            raise UserError(
                f"architecture {_short(key)} is not in benchmark {self.path}{self._missing_hint(key)}"
            )
        return dict(row)

    def metrics(self) -> list[str]:
        """Return the names of the numeric metrics, in the order of the first entry that has them."""
        if self._metric_names is None:
            names: dict[str, None] = {}
            for row in self.entries.values():
                for field, value in row.items():
                    if isinstance(value, float):
                        names.setdefault(field, None)
            self._metric_names = list(names)
        return list(self._metric_names)

    def rank(
        self, key: str, metric: str = "test_acc", higher_is_better: bool = True
    ) -> tuple[int, int, float]:
        """Return (1-based rank, entries ranked, % of entries strictly worse) of `key` by `metric`."""
        value = self._metric_value(key, metric)
        ordered = self._sorted(metric)
        total = len(ordered)
        below = bisect.bisect_left(ordered, value)
        above = total - bisect.bisect_right(ordered, value)
        better, worse = (above, below) if higher_is_better else (below, above)
        return better + 1, total, 100.0 * worse / total

    def best(self, metric: str = "test_acc", higher_is_better: bool = True) -> tuple[str, dict[str, Any]]:
        """Return (key, metrics) of the best architecture by `metric`; the first one in file order on ties."""
        self._check_metric(metric)
        best_key: str | None = None
        best_value = 0.0
        for key, row in self.entries.items():
            value = row.get(metric)
            if not isinstance(value, float) or math.isnan(value):
                continue
            if best_key is None or (value > best_value if higher_is_better else value < best_value):
                best_key, best_value = key, value
        if best_key is None:
            raise UserError(f"benchmark {self.path} has no numeric value for metric '{metric}'")
        return best_key, dict(self.entries[best_key])

    def _check_metric(self, metric: str) -> None:
        """Raise UserError unless `metric` is one of the numeric metrics."""
        if metric not in self.metrics():
            raise UserError(
                f"unknown metric '{metric}' for benchmark {self.path} (one of: {', '.join(self.metrics())})"
            )

    def _metric_value(self, key: str, metric: str) -> float:
        """Return the numeric value of `metric` for `key`; UserError if it has none."""
        self._check_metric(metric)
        value = self.query(key).get(metric)
        if not isinstance(value, float) or math.isnan(value):
            raise UserError(
                f"architecture {_short(key)} has no value for '{metric}' in benchmark {self.path}"
            )
        return value

    def _sorted(self, metric: str) -> list[float]:
        """Return the ascending values of `metric` over all entries with one (sorted once, then cached)."""
        ordered = self._sorted_values.get(metric)
        if ordered is None:
            ordered = sorted(
                value
                for row in self.entries.values()
                if isinstance(value := row.get(metric), float) and not math.isnan(value)
            )
            self._sorted_values[metric] = ordered
        return ordered

    def _missing_hint(self, key: str) -> str:
        """Return a hint (starting with '; ') on why `key` is missing, or '' when there is nothing to say."""
        if not self.entries:
            return "; the benchmark is empty"
        example = next(iter(self.entries))
        key_benchmark = toy_benchmark_of_key(key)
        own_benchmark = toy_benchmark_of_key(example)
        if key_benchmark is not None and own_benchmark is not None and key_benchmark != own_benchmark:
            return (
                f"; the key looks like a {key_benchmark} architecture, whose benchmark is "
                f"{KNOWN_TOY_BENCHMARKS[key_benchmark]}, not this {own_benchmark} benchmark"
            )
        compact = "".join(key.split())
        for candidate in self.entries:
            if "".join(candidate.split()) == compact:
                return f"; did you mean {_short(candidate)}? (keys must match exactly, spaces included)"
        return f"; keys are the exact architecture repr strings, e.g. {_short(example)}"
