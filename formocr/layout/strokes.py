"""The page's long straight strokes (printed rules and frames) at the resolutions registration works at.

Handwriting, stamps and text mostly make short strokes, so what is left after an opening with long kernels is the
printed structure; it is computed once per page and shared by every template tried on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from formocr.objects import CleanPage

__all__ = ["COARSE_DPI", "FINE_DPI", "LINE_MM", "MID_DPI", "TOLERANCE_MM", "PageLines", "page_lines"]


COARSE_DPI = 25.0
MID_DPI = 50.0
FINE_DPI = 100.0
LINE_MM = 5.0  # shortest straight run that counts as a printed line
TOLERANCE_MM = 0.5


@dataclass(frozen=True)
class PageLines:
    """The page's long horizontal and vertical strokes at 100, 50 and 25 dpi; computed once per page."""

    fine_h: np.ndarray  # uint8 0/1 at FINE_DPI
    fine_v: np.ndarray
    fine: np.ndarray  # float32, both directions, softened (for matching)
    hit: np.ndarray  # bool, both directions dilated by the tolerance (for the quality measure)
    mid: np.ndarray  # float32 at MID_DPI, softened
    coarse_h: np.ndarray  # float32 at COARSE_DPI, softened
    coarse_v: np.ndarray
    dpi: float
    shape: tuple[int, int]  # the clean page's (height, width)


def page_lines(clean: CleanPage) -> PageLines:
    """Long straight strokes of ``clean.layout_ink`` (printed rules and frames, drop-out ink included)."""
    ink = clean.layout_ink
    dpi = clean.page.dpi
    scale = FINE_DPI / dpi
    ink255 = cv2.threshold(ink.view(np.uint8), 0, 255, cv2.THRESH_BINARY)[1]  # 0/255, one SIMD pass
    small = cv2.resize(ink255, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    small = (small > 60).astype(np.uint8)
    k = FINE_DPI / 25.4
    n = max(3, round(LINE_MM * k))
    h = cv2.morphologyEx(small, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (n, 1)))
    v = cv2.morphologyEx(small, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, n)))
    both = np.maximum(h, v)
    fine = cv2.GaussianBlur(both.astype(np.float32), (0, 0), 1.0)
    t = max(1, round(TOLERANCE_MM * k))
    hit = cv2.dilate(both, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * t + 1, 2 * t + 1))) > 0
    mid = cv2.resize(both.astype(np.float32), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    mid = cv2.GaussianBlur(mid, (0, 0), 1.0)
    q = COARSE_DPI / FINE_DPI
    ch = cv2.GaussianBlur(cv2.resize(h.astype(np.float32), None, fx=q, fy=q, interpolation=cv2.INTER_AREA), (0, 0), 1.0)
    cv = cv2.GaussianBlur(cv2.resize(v.astype(np.float32), None, fx=q, fy=q, interpolation=cv2.INTER_AREA), (0, 0), 1.0)
    return PageLines(h, v, fine, hit, mid, ch, cv, dpi, (int(ink.shape[0]), int(ink.shape[1])))
