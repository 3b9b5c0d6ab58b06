"""How the string reader's ensemble pools its members (stop 34, experiment): the shipped reader takes the
arithmetic mean of P(text) over every member's every view. Two other poolings, run through ``strings_accuracy.py``:

    python benchmarks/experiments/ensemble_mean.py geo --split val --n 1500 --seed 1
    python benchmarks/experiments/ensemble_mean.py frames --split val --n 1500 --seed 1

``geo``: the geometric mean of P(text) over members and views (a text any member finds unlikely loses), for
decoding, fusion's scores and the neighbours alike. ``frames``: the members' per-frame probabilities averaged
for each view (members read the same strip, so their frames line up), then one set of log-probabilities per
view, decoded and scored as the shipped reader decodes and scores views.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from formocr.recognize import strings as S
from formocr.recognize.ctc import string_probabilities, string_probability

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import run_benchmark  # noqa: E402

shipped_evidence = S.StringReader.evidence


def geo(ps: Sequence[Any] | np.ndarray, axis: int | None = None) -> Any:
    """Geometric mean of probabilities (over ``axis``; all of them by default)."""
    return np.exp(np.mean(np.log(np.maximum(np.asarray(ps, np.float64), 1e-300)), axis=axis))


def use_geo() -> None:
    def score(self: S.StringReader, ev: Any, text: str) -> float:
        return float(geo([string_probability(lp, text, self.alphabet) for lp in S._views(ev)]))

    orig_neighbours = S.StringReader.neighbours

    def neighbours(self: S.StringReader, ev: Any, text: str, constraint: Any, keep: int = 8,
                   changes_only: bool = False) -> list[tuple[str, float]]:
        lps = S._views(ev)
        every = orig_neighbours(self, ev, text, constraint, keep=10_000, changes_only=changes_only)
        texts = [t for t, _ in every]
        p = geo([string_probabilities(lp, texts, self.alphabet) for lp in lps], axis=0)
        order = sorted(range(1, len(texts)), key=lambda k: -p[k])[: max(0, keep - 1)]
        return [(texts[0], float(p[0]))] + [(texts[k], float(p[k])) for k in order]

    S.StringReader.score = score  # type: ignore[method-assign]
    S.StringReader.neighbours = neighbours  # type: ignore[method-assign]


def use_frames() -> None:
    def evidence(self: S.StringReader, strips: Any, batch_size: int = 32) -> list[Any]:
        out = []
        m = len(self.nets)
        for ev in shipped_evidence(self, strips, batch_size):
            n = len(ev) // m  # member-major: member 0's views, then member 1's ...
            pooled = []
            for j in range(n):
                p = np.mean([np.exp(ev[i * n + j]) for i in range(m)], axis=0)
                pooled.append(np.log(np.maximum(p, 1e-30)).astype(np.float32))
            out.append(tuple(pooled))
        return out

    S.StringReader.evidence = evidence  # type: ignore[method-assign]


def main() -> None:
    {"geo": use_geo, "frames": use_frames}[sys.argv[1]]()
    raise SystemExit(run_benchmark("strings_accuracy.py", sys.argv[2:]))


if __name__ == "__main__":
    main()
