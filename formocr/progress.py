"""Progress on stderr, drawn by rich as OCRmyPDF and kraken draw theirs: only on a terminal, never on stdout.

One bar for every long job (a batch, a training run). Off a terminal nothing is drawn, so a log file or a pipe
gets only the lines a job prints on purpose (:meth:`Bar.note`).
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress


class Bar:
    """A bar for ``total`` steps labelled ``label``, with a free text after the count; ``enabled`` None: shown
    when ``stream`` (stderr by default) is a terminal."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        console = Console(file=self.stream, force_terminal=True if enabled else None, highlight=False)
        self._rich = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=console,
                                  auto_refresh=False, transient=True, disable=not enabled)
        self._task = self._rich.add_task(label, total=max(total, 0), info="")
        if enabled:
            self._rich.start()

    def update(self, done: int, info: str = "", total: int | None = None) -> None:
        if not self.enabled:
            return
        if total is not None:
            self._rich.update(self._task, total=total)
        self._rich.update(self._task, completed=done, info=info)
        self._rich.refresh()

    def note(self, text: str) -> None:
        """A line printed above the bar (or alone, off a terminal)."""
        if self.enabled:
            self._rich.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._rich.stop()
            self.enabled = False
