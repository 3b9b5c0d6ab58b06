"""What a batch tells a person while it runs: a one-line progress bar and a line per failed document.

The bar (documents and pages per second, ETA) redraws in place on stderr and only when stderr is a terminal;
in a log file or a pipe it would be noise. Failures are printed either way, one line each, so stderr is also
the list of what needs a person.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO

from formocr.batch.record import RecordSummary


class BatchObserver(Protocol):
    """What :func:`formocr.batch.run_batch` reports while it runs (all calls come from the driver thread)."""

    def started(self, total: int) -> None: ...

    def skipped(self, summary: RecordSummary) -> None: ...

    def finished(self, summary: RecordSummary) -> None: ...

    def close(self) -> None: ...


def _clock(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """A :class:`BatchObserver` for a terminal. ``enabled`` None: show the bar when ``stream`` is a TTY."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None, verbose: bool = False,
                 interval: float = 0.2, width: int = 24) -> None:  # fmt: skip
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.verbose = verbose
        self.interval = interval
        self.width = width
        self.total = 0
        self.done = 0
        self.skip = 0
        self.pages = 0
        self.t0 = time.monotonic()
        self._drawn = False
        self._last = 0.0

    # -- observer -----------------------------------------------------------------------------------------

    def started(self, total: int) -> None:
        self.total = total
        self.t0 = time.monotonic()
        self._draw(force=True)

    def skipped(self, summary: RecordSummary) -> None:
        self.skip += 1
        self._draw()

    def finished(self, summary: RecordSummary) -> None:
        self.done += 1
        self.pages += summary.pages
        if summary.error is not None:
            self.note(f"formocr: error: {summary.error.message}")
        elif self.verbose and summary.review:
            self.note(f"formocr: {summary.source}: needs review: {', '.join(summary.review)}")
        self._draw()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False

    # -- drawing ------------------------------------------------------------------------------------------

    def note(self, text: str) -> None:
        """Print a line above the bar (the bar is redrawn under it)."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self._drawn = False
        self.stream.write(text + "\n")
        self.stream.flush()
        self._draw(force=True)

    def line(self) -> str:
        """The bar's text, e.g. ``[######......] 120/200 docs · 2.3 docs/s · 5.1 pages/s · ETA 0:00:35``."""
        seen = self.done + self.skip
        frac = seen / self.total if self.total else 1.0
        fill = int(frac * self.width)
        elapsed = max(time.monotonic() - self.t0, 1e-9)
        dps, pps = self.done / elapsed, self.pages / elapsed
        left = self.total - seen
        eta = _clock(left / dps) if dps > 0 else "?"
        skipped = f" ({self.skip} already done)" if self.skip else ""
        return (f"[{'#' * fill}{'.' * (self.width - fill)}] {seen}/{self.total} docs{skipped} · "
                f"{dps:.2f} docs/s · {pps:.2f} pages/s · ETA {eta}")  # fmt: skip

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval and self.done + self.skip < self.total:
            return
        self._last = now
        self.stream.write("\r\x1b[K" + self.line())
        self.stream.flush()
        self._drawn = True
