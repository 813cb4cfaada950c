"""What a run shows while it runs: rich progress bars on a terminal, plain periodic lines otherwise
(a log file, CI, ``nohup``), and the same lines appended to the run directory's ``run.log``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

RUN_LOG = "run.log"
PLAIN_STEP_SECONDS = 30.0  # without a terminal: a step line at most this often
STATUS_SECONDS = 0.5  # on a terminal: the step bar's loss and accuracy refreshed at most this often


def append_log(log: Path | None, lines: Iterable[str]) -> None:
    """Append ``lines`` to the run log ``log``, each stamped with the time (no-op without a log)."""
    if log is None:
        return
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    with log.open("a", encoding="utf-8") as handle:
        handle.writelines(f"{stamp} {line}\n" for line in lines)


class RunProgress:
    """An epoch bar and a step bar (``enabled`` on a terminal), plain lines (``enabled``, no terminal),
    or nothing; every epoch line also goes to ``log``."""

    def __init__(
        self, enabled: bool, total_epochs: int, first_epoch: int = 0, log: Path | None = None
    ) -> None:
        self.total, self.log, self._first = total_epochs, log, first_epoch
        self._console = Console(stderr=True, highlight=False)
        self._plain = enabled and not self._console.is_terminal
        self._progress: Progress | None = None
        self._epochs: TaskID | None = None
        self._steps: TaskID | None = None
        self._epoch, self._step, self._step_total, self._last_line = 0, 0, 0, 0.0
        self._last_status = 0.0
        if enabled and not self._plain:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=self._console,
                transient=False,
            )
            self._epochs = self._progress.add_task(
                "epochs", total=total_epochs, completed=first_epoch, status=""
            )

    def __enter__(self) -> RunProgress:
        verb = f"resumed at epoch {self._first + 1}" if self._first else "started"
        append_log(self.log, [f"{verb}; {self.total} epochs"])
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
        if kind is not None:
            reason = "interrupted" if issubclass(kind, KeyboardInterrupt) else f"stopped: {error}"
            append_log(self.log, [f"{reason} (epoch {self._epoch + 1}, step {self._step})"])

    def _line(self, text: str) -> None:
        if self._plain:
            self._console.print(text, markup=False)
        self._last_line = time.monotonic()

    def start_epoch(self, epoch: int, steps: int) -> None:
        """Reset the step bar for a new epoch."""
        self._epoch, self._step, self._step_total = epoch, 0, steps
        if self._progress is None:
            return
        if self._steps is not None:
            self._progress.remove_task(self._steps)
        self._steps = self._progress.add_task(f"epoch {epoch + 1}", total=steps, status="")

    def step(self, status: Callable[[], str]) -> None:
        """Advance the step bar by one; ``status()`` (e.g. the running loss) is called only when shown.

        The bar's text is refreshed at most every STATUS_SECONDS, so reading a loss off a GPU does not
        stall every step; plain output prints a line every PLAIN_STEP_SECONDS.
        """
        self._step += 1
        now = time.monotonic()
        if self._progress is not None and self._steps is not None:
            if now - self._last_status >= STATUS_SECONDS or self._step == self._step_total:
                self._progress.update(self._steps, advance=1, status=status())
                self._last_status = now
            else:
                self._progress.advance(self._steps)
        elif self._plain and now - self._last_line >= PLAIN_STEP_SECONDS:
            where = f"epoch {self._epoch + 1}/{self.total} step {self._step}/{self._step_total}"
            self._line(f"{where} | {status()}")

    def end_epoch(self, status: str) -> None:
        """Advance the epoch bar and show ``status``; log the epoch's line."""
        line = f"epoch {self._epoch + 1}/{self.total} | {status}"
        append_log(self.log, [line])
        self._line(line)
        if self._progress is not None and self._epochs is not None:
            self._progress.update(self._epochs, advance=1, status=status)

    def print(self, message: str) -> None:
        """Print a line above the bars (plain: a line) and log it."""
        append_log(self.log, [message])
        if self._progress is not None:
            self._progress.console.print(message, markup=False, highlight=False)
        else:
            self._line(message)
