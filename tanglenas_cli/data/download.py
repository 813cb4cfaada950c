"""Running a torchvision download with a network timeout, turning failure into a one-line UserError."""

from __future__ import annotations

import socket
import tarfile
from collections.abc import Callable
from typing import TypeVar

from tanglenas_cli.data.files import one_line
from tanglenas_cli.errors import UserError

T = TypeVar("T")
NETWORK_TIMEOUT_S = 60.0
_DOWNLOAD_ERRORS = (OSError, RuntimeError, EOFError, ValueError, tarfile.TarError)


def download(what: str, fetch: Callable[[], T], offline_hint: str) -> T:
    """Return `fetch()` run with a socket timeout; UserError('could not download ...; <hint>') if it fails."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(NETWORK_TIMEOUT_S)
    try:
        return fetch()
    except _DOWNLOAD_ERRORS as error:
        raise UserError(f"could not download {what} ({one_line(error, 120)}); {offline_hint}") from None
    finally:
        socket.setdefaulttimeout(previous)
