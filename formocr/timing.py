"""Milliseconds per pipeline stage, summed over a document's pages (``timings_ms`` in the JSON)."""

from __future__ import annotations

import time


class StageTimer:
    """Adds the time since the last mark to a stage's total; stages run in sequence, so one clock suffices."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.t = time.perf_counter()

    def restart(self) -> None:
        self.t = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.totals[stage] = self.totals.get(stage, 0.0) + (now - self.t) * 1000.0
        self.t = now
