"""rich progress bars for epochs and steps (loss, accuracy, ETA), or nothing when disabled."""

from __future__ import annotations

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


class RunProgress:
    """An epoch bar and a step bar; every method is a no-op when ``enabled`` is False."""

    def __init__(self, enabled: bool, total_epochs: int, first_epoch: int = 0) -> None:
        self.enabled = enabled
        self._progress: Progress | None = None
        self._epochs: TaskID | None = None
        self._steps: TaskID | None = None
        if enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._epochs = self._progress.add_task(
                "epochs", total=total_epochs, completed=first_epoch, status=""
            )

    def __enter__(self) -> RunProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start_epoch(self, epoch: int, steps: int) -> None:
        """Reset the step bar for a new epoch."""
        if self._progress is None:
            return
        if self._steps is not None:
            self._progress.remove_task(self._steps)
        self._steps = self._progress.add_task(f"epoch {epoch + 1}", total=steps, status="")

    def step(self, status: str) -> None:
        """Advance the step bar by one and show ``status``."""
        if self._progress is not None and self._steps is not None:
            self._progress.update(self._steps, advance=1, status=status)

    def end_epoch(self, status: str) -> None:
        """Advance the epoch bar and show ``status``."""
        if self._progress is not None and self._epochs is not None:
            self._progress.update(self._epochs, advance=1, status=status)

    def print(self, message: str) -> None:
        """Print a line above the bars."""
        if self._progress is not None:
            self._progress.console.print(message, markup=False, highlight=False)
