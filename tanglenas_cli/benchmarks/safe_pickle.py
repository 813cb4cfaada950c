"""Load benchmark pickles without running arbitrary code: only an allow-list of globals may be referenced."""

from __future__ import annotations

import importlib
import io
import pickle
from pathlib import Path
from typing import Any

from tanglenas_cli.errors import UserError

# Globals a benchmark pickle may reference, as (module, name). Containers, strings, numbers, booleans and
# None are rebuilt by pickle's own opcodes and need no global. The toy-cell benchmark stores numpy float64
# scalars, which pickle as `numpy.core.multiarray.scalar(numpy.dtype(...), raw_bytes)`; numpy 2.x writes the
# same function as `numpy._core.multiarray.scalar`. Nothing else is allowed.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "dtype"),
    }
)


def _numpy_multiarray_scalar() -> Any:
    """Return numpy's scalar constructor from whichever module spelling this numpy provides."""
    for module_name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return importlib.import_module(module_name).scalar
        except (ImportError, AttributeError):
            continue
    raise UserError("this numpy has no multiarray.scalar; cannot read numpy scalars in a benchmark pickle")


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose find_class resolves only the allow-listed globals."""

    def __init__(self, file: io.BufferedIOBase, source: Path) -> None:
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        """Resolve an allow-listed global; refuse every other one with a UserError."""
        if (module, name) not in ALLOWED_GLOBALS:
            allowed = ", ".join(sorted(f"{m}.{n}" for m, n in ALLOWED_GLOBALS))
            raise UserError(
                f"refusing to load {self._source}: it references the global '{module}.{name}', "
                f"which a benchmark pickle may not use (allowed: {allowed})"
            )
        if name == "scalar":
            return _numpy_multiarray_scalar()
        import numpy

        return numpy.dtype

    def persistent_load(self, pid: Any) -> Any:
        """Refuse persistent ids: benchmark pickles never use them."""
        raise UserError(f"refusing to load {self._source}: it uses persistent ids, which are not allowed")


def load_pickle(path: Path) -> Any:
    """Unpickle `path` allowing only plain data and numpy scalars; UserError on anything else."""
    path = Path(path)
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise UserError(f"pickle file {path} {what}")
    try:
        with path.open("rb") as handle:
            data = _RestrictedUnpickler(handle, path).load()
    except UserError:
        raise
    except OSError as error:
        raise UserError(f"cannot read pickle file {path}: {error.strerror or error}") from None
    except EOFError:
        raise UserError(f"{path} is empty or truncated: not a complete pickle") from None
    except Exception as error:  # a corrupt stream can raise almost any error from the opcodes it decodes
        reason = " ".join(str(error).split()) or type(error).__name__
        raise UserError(f"{path} is not a valid pickle (corrupt or truncated): {reason}") from None
    return data
