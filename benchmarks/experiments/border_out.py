"""Grey-box strips with the printed border painted out away from the strokes: a check made at the end of stop 24
(README "The grey of the whole box"), untrained, with the shipped members.

    python benchmarks/experiments/border_out.py R strings_accuracy.py --split val --n 1500 --seed 3
    python benchmarks/experiments/border_out.py R pipeline_accuracy.py --pages 200 --show-errors

R: millimetres. Pixels that border removal took as printed lines (``remove_lines``' line mask) and that lie more
than R from the field's kept ink are set to paper in the box's grey, so a border running through the ink's box
no longer draws a bar across the field; strokes along the border near the ink stay. The second argument names
the benchmark, the rest are its arguments.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import formocr.segment as seg
from formocr.recognize import strings as S

HERE = Path(__file__).resolve().parent
lines_of: dict[int, np.ndarray] = {}  # id of a field's ink → its printed-line mask (same crop)
_remove_lines = seg.remove_lines
_field_ink = seg.field_ink
_field_strips = S.StringReader.field_strips
last: list[np.ndarray] = []  # the line masks remove_lines gave during the current field_ink call


def remove_lines(*a: Any, **k: Any) -> tuple[np.ndarray, np.ndarray]:
    cleaned, lines = _remove_lines(*a, **k)
    last.append(lines)
    return cleaned, lines


def field_ink(clean: Any, region: Any) -> tuple[np.ndarray, Any]:
    last.clear()
    ink, box = _field_ink(clean, region)
    lines_of[id(ink)] = last[-1] if last and last[-1].shape == ink.shape else np.zeros(ink.shape, bool)
    return ink, box


def main() -> None:
    radius_mm, bench, args = float(sys.argv[1]), sys.argv[2], sys.argv[3:]

    def field_strips(self: S.StringReader, ink: np.ndarray, field_h_px: float, dpi: float,
                     gray: np.ndarray | None = None, comb: bool = False) -> tuple[S.FieldStrips, S.StripGeometry]:
        lines = lines_of.get(id(ink))
        if gray is None or lines is None or not lines.any() or comb:
            return _field_strips(self, ink, field_h_px, dpi, gray, comb)
        kept = S._kept(ink, field_h_px, dpi)
        r = max(1, round(radius_mm * dpi / 25.4))
        near = cv2.dilate(kept.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)).astype(bool)
        g = np.asarray(gray).copy()
        free = ~lines & ~cv2.dilate(kept.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        paper = np.median(g[free]) if free.any() else np.median(g)
        g[lines & ~near & ~kept] = paper
        return _field_strips(self, ink, field_h_px, dpi, g, comb)

    seg.remove_lines = remove_lines
    seg.field_ink = field_ink
    import formocr.read as read_mod
    read_mod.field_ink = field_ink
    S.StringReader.field_strips = field_strips  # type: ignore[method-assign]
    sys.argv = [bench, *args]
    sys.path.insert(0, str(HERE.parent))
    runpy.run_path(str(HERE.parent / bench), run_name="__main__")


if __name__ == "__main__":
    main()
