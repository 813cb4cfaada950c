"""Replace the text between a README's ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` markers."""

from __future__ import annotations

from pathlib import Path


def fill_block(readme: Path, name: str, text: str) -> bool:
    """Put ``text`` between the markers of ``name`` in ``readme``; False if the file or a marker is absent."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    content = readme.read_text() if readme.is_file() else ""
    if start not in content or end not in content:
        return False
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{text.rstrip()}\n{end}{tail}")
    return True
