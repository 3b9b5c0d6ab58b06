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
from formocr.progress import Bar


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
    """A :class:`BatchObserver` for a terminal (a :class:`formocr.progress.Bar`). ``enabled`` None: show the bar
    when ``stream`` is a TTY."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None, verbose: bool = False,
                 interval: float = 0.2) -> None:  # fmt: skip
        self.stream = stream if stream is not None else sys.stderr
        self.bar = Bar(0, "batch", self.stream, enabled)
        self.verbose = verbose
        self.interval = interval
        self.total = 0
        self.done = 0
        self.skip = 0
        self.pages = 0
        self.t0 = time.monotonic()
        self._last = 0.0

    @property
    def enabled(self) -> bool:
        return self.bar.enabled

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
        self.bar.close()

    # -- drawing ------------------------------------------------------------------------------------------

    def note(self, text: str) -> None:
        """Print a line above the bar."""
        self.bar.note(text)

    def rates(self) -> str:
        """What the bar says after the count, e.g. ``docs (3 already done) · 2.30 docs/s · 5.10 pages/s``."""
        elapsed = max(time.monotonic() - self.t0, 1e-9)
        skipped = f" ({self.skip} already done)" if self.skip else ""
        return f"docs{skipped} · {self.done / elapsed:.2f} docs/s · {self.pages / elapsed:.2f} pages/s"

    def line(self) -> str:
        """The bar's text without the bar, e.g. ``120/200 docs · 2.30 docs/s · 5.10 pages/s · ETA 0:00:35``."""
        seen = self.done + self.skip
        elapsed = max(time.monotonic() - self.t0, 1e-9)
        dps = self.done / elapsed
        eta = _clock((self.total - seen) / dps) if dps > 0 else "?"
        return f"{seen}/{self.total} {self.rates()} · ETA {eta}"

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval and self.done + self.skip < self.total:
            return
        self._last = now
        self.bar.update(self.done + self.skip, self.rates(), total=self.total)
