"""A table of named entries of one kind (spaces, datasets, optimizers) with the one "unknown <kind>" error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, TypeVar

from tanglenas_cli.errors import UserError, unknown_name_message

Entry = TypeVar("Entry")


class Registry(Generic[Entry]):
    """Entries by name, listed in the order they were added."""

    def __init__(self, kind: str, entries: Mapping[str, Entry]) -> None:
        self.kind = kind
        self._entries = dict(entries)

    def names(self) -> list[str]:
        """Return every name, in order."""
        return list(self._entries)

    def add(self, name: str, entry: Entry) -> None:
        """Add ``entry`` as ``name`` (replacing an entry of that name, in its place)."""
        self._entries[name] = entry

    def get(self, name: str) -> Entry:
        """Return the entry of ``name``; UserError ("unknown <kind> 'x'; choose one of: ...") otherwise."""
        if name not in self._entries:
            raise UserError(unknown_name_message(self.kind, name, self.names()))
        return self._entries[name]
