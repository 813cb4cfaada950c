"""Terminal output of the CLI: one-line errors on stderr, results as tables or JSON."""

import json
import os
from collections.abc import Mapping
from typing import Any

import typer
from rich.console import Console
from rich.text import Text


def print_error(message: str) -> None:
    """Print `message` as one `error:` line on stderr."""
    console = Console(stderr=True, soft_wrap=True, highlight=False)
    console.print(Text.assemble(("error: ", "bold red"), " ".join(message.split())))


def print_note(message: str) -> None:
    """Print ``message`` as one line on stderr (on the first process only, under a launcher)."""
    if os.environ.get("RANK", "0") == "0":
        Console(stderr=True, soft_wrap=True, highlight=False).print(message, markup=False)


def print_result(result: Any, as_json: bool = False) -> None:
    """Print what an engine function returned: a mapping as a table (or JSON), anything else as text."""
    if result is None:
        return
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    console = Console(highlight=False)  # values are never broken across lines (paths stay copyable)
    if isinstance(result, Mapping):
        width = max((len(str(key)) for key in result), default=0)
        for key, value in result.items():
            line = Text(f"{key!s:<{width}}", style="bold")
            line.append(f"  {value}")
            console.print(line, soft_wrap=True)
    else:
        console.print(str(result), markup=False, soft_wrap=True)
