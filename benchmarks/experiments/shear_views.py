"""Sheared views for the string reader (stop 29, not shipped; docs/string-reader-log.md "Where the fused errors lie"):
every member also reads view 0's strip sheared by each given amount, as more views to decode and score.

    python benchmarks/experiments/shear_views.py 0.2,-0.2 --split val --n 1500 --seed 1

The first argument lists the shears (horizontal pixels per pixel of height, about the strip's middle row); the
rest go to ``strings_accuracy.py``, which then runs with ``StringReader.field_strips`` adding those views.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from formocr.recognize import strings as S

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import run_benchmark  # noqa: E402

shipped = S.StringReader.field_strips


def shear(strip: np.ndarray, s: float) -> np.ndarray:
    """``strip`` sheared by ``s`` about its middle row, widened so that no ink leaves it (0 is the paper)."""
    h, w = strip.shape
    m = int(np.ceil(abs(s) * h / 2)) + 1
    warp = np.array([[1, s, m - s * h / 2], [0, 1, 0]], np.float32)
    out = cv2.warpAffine(strip.astype(np.float32), warp, (w + 2 * m, h), flags=cv2.INTER_LINEAR, borderValue=0.0)
    return np.asarray(out)


def main() -> None:
    shears = [float(s) for s in sys.argv[1].split(",") if s]

    def field_strips(self: S.StringReader, *args: Any, **kwargs: Any) -> tuple[S.FieldStrips, S.StripGeometry]:
        made, geom = shipped(self, *args, **kwargs)

        def more(views: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
            return (*views, *(shear(views[0], s) for s in shears)) if views else views

        return S.FieldStrips(more(made.ink), more(made.grey), more(made.box)), geom

    S.StringReader.field_strips = field_strips  # type: ignore[method-assign]
    raise SystemExit(run_benchmark("strings_accuracy.py", sys.argv[2:]))


if __name__ == "__main__":
    main()
