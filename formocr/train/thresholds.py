"""Review thresholds per kind of field, chosen on the real development fields a calibration was measured on.

Why: one threshold for every field is as cautious as the kind whose confidence is least trustworthy. A kind whose
accepted readings stay right often enough at a lower chance can post more of them without review; the others keep
:data:`formocr.options.REVIEW_THRESHOLD`.

The fields are the cases ``benchmarks/real_accuracy.py --cases`` writes (each with its set, kind, half, confidence,
whether something else than the confidence sends it to review, and whether it is right). For each kind the
threshold is the lowest of :data:`GRID` below the default at which
- the kind's half-``A`` fields, pooled over its sets, are accepted at least ``target`` right at the low end of the
  95% Wilson interval (chosen there),
- its half-``B`` fields, pooled, show the same (confirmed there), and
- every set of the kind, whole, shows the same (the figure the README reports).
A case that only regroups another set's fields (``view``) is left out, so no field counts twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from formocr.calibration import KINDS
from formocr.errors import ConfigError
from formocr.options import REVIEW_THRESHOLD
from formocr.score import wilson_low
from formocr.train.fieldcal import is_right

GRID = (0.9, 0.95, 0.98, 0.99)  # below the default; the benchmark's sweep


@dataclass(frozen=True)
class DevCase:
    """One development field as read: what the rule needs of a benchmark case."""

    set: str
    kind: str
    half: str  # "A" chooses, "B" confirms
    confidence: float
    other_reasons: bool  # reviewed for a reason the confidence does not decide
    right: bool


def load_cases(path: str | Path) -> list[DevCase]:
    """The cases of a ``real_accuracy.py --cases`` file, views left out; a file not of that shape is an error."""
    out = []
    try:
        lines = Path(path).read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the cases: {getattr(e, 'strerror', None) or e}", str(path)) from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            c = json.loads(line)
            if c.get("view"):
                continue
            case = DevCase(str(c["set"]), str(c["kind"]), str(c["half"]), float(c["confidence"]),
                           bool(c["other_reasons"]), is_right(str(c["value"]), str(c["truth"])))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ConfigError(f"line {n}: not a case of benchmarks/real_accuracy.py --cases ({e})", str(path)) from None
        if case.kind not in KINDS or case.half not in ("A", "B"):
            raise ConfigError(f"line {n}: kind {case.kind!r} or half {case.half!r} unknown", str(path))
        out.append(case)
    if not out:
        raise ConfigError("no cases in the file", str(path))
    return out


def _bound(cases: Iterable[DevCase], t: float) -> tuple[int, int, float]:
    acc = [c for c in cases if c.confidence >= t and not c.other_reasons]
    right = sum(c.right for c in acc)
    return len(acc), len(acc) - right, wilson_low(right, len(acc)) or 0.0


def choose_thresholds(cases: Sequence[DevCase], target: float = 0.995) -> dict[str, dict[str, Any]]:
    """Per kind present in ``cases``: the chosen threshold (None: the default stands) and the figures behind it."""
    out: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        mine = [c for c in cases if c.kind == kind]
        if not mine:
            continue
        sets = sorted({c.set for c in mine})
        chosen: dict[str, Any] = {"threshold": None, "sets": sets}
        for t in GRID:
            a, b = _bound((c for c in mine if c.half == "A"), t), _bound((c for c in mine if c.half == "B"), t)
            whole = {s: _bound((c for c in mine if c.set == s), t) for s in sets}
            if min(a[2], b[2], *(w[2] for w in whole.values())) >= target:
                def fig(v: tuple[int, int, float]) -> dict[str, Any]:
                    return {"accepted": v[0], "wrong": v[1], "low95": round(v[2], 6)}
                chosen = {"threshold": t, "sets": sets, "A": fig(a), "B": fig(b),
                          "whole": {s: fig(w) for s, w in whole.items()}}
                break
        out[kind] = chosen
    return out


def thresholds_of(choice: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The kinds given a threshold of their own (those left at the default are not written)."""
    return {k: float(v["threshold"]) for k, v in choice.items()
            if v["threshold"] is not None and v["threshold"] < REVIEW_THRESHOLD}
