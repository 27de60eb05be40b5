"""Progress bars for the operator commands: on stderr, and only when stderr is a terminal.

A command's output (stdout) stays clean for scripts; a bar that nobody sees (stderr redirected
to a file or a pipe) is not drawn at all.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported when a bar is drawn: the CLI starts without it
    from rich.progress import Progress, TaskID

__all__ = ["Bar", "bar"]


class Bar:
    """One task of a progress display; every method is a no-op when the display is off."""

    def __init__(self, progress: Progress | None, task: TaskID | None) -> None:
        self._progress = progress
        self._task = task

    def advance(self, amount: int = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, amount)

    def update(
        self,
        *,
        completed: int | None = None,
        total: int | None = None,
        description: str | None = None,
    ) -> None:
        if self._progress is None or self._task is None:
            return
        fields: dict[str, object] = {}
        if completed is not None:
            fields["completed"] = completed
        if total is not None:
            fields["total"] = total
        if description is not None:
            fields["description"] = description
        self._progress.update(self._task, **fields)  # type: ignore[arg-type]


@contextmanager
def bar(
    description: str, total: int | None = None, *, enabled: bool | None = None
) -> Iterator[Bar]:
    """A progress bar on stderr for the duration of the block (``total`` None: a spinner and a
    count). ``enabled`` None: drawn only when stderr is a terminal."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield Bar(None, None)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(file=sys.stderr)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    with progress:
        yield Bar(progress, progress.add_task(description, total=total))
