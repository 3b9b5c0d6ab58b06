"""Automatic mode: find the places on a form where people write numbers, without a template.

Why this way: printed frames are the one thing on a form that is both regular and easy to see. Handwriting and
printed text make short strokes; a field's frame is made of long thin straight lines. So the page's printed
structure is reduced to long horizontal segments, and fields are recognised from how those segments relate:

* a **box** is a pair of horizontal segments joined by two walls, and a **comb** a box whose inner walls fall on
  a regular grid (both found by :mod:`formocr.layout.boxes`);
* an **underline** is a horizontal segment at least 10 mm long that is no box's edge and has no corner
  (no vertical line leaving either end): the writing area is the band above it.

Then each candidate is kept only if it holds handwriting: ink inside it, away from its own printed lines, in a
component at least ~2.6 mm and ~28 % of the field tall. Printed labels (2-2.5 mm capitals) and dust are
smaller, so empty boxes, table cells holding printed figures and rules under printed text are dropped.
Everything is measured at ~150 dpi (0.17 mm a pixel), which keeps a 300-dpi A4 page at a few tens of
milliseconds. Fields come back in reading order: rows top to bottom, left to right within a row.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from formocr.layout.boxes import DetectOptions, HSegment, find_boxes, h_segments, outermost, shrink
from formocr.objects import Box, CleanPage, FieldRegion, Style

__all__ = ["WORK_DPI", "DetectOptions", "find_fields"]


WORK_DPI = 150.0


def _writing(
    ink: np.ndarray,
    lines: np.ndarray,
    x0: int,
    y0: int,
    x1: int,
    y1: int,
    field_h: float,
    px_mm: float,
    opts: DetectOptions,
) -> tuple[int, int] | None:
    """Top and bottom rows of the handwriting in a window (None when there is none).

    Handwriting is a component at least ``writing_mm`` and ``writing_share`` of the field tall; printed
    captions and dust are smaller.
    """
    H, W = ink.shape
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    crop = (ink[y0:y1, x0:x1] & ~lines[y0:y1, x0:x1]).astype(np.uint8)
    if not crop.any():
        return None
    n, _, stats, _ = cv2.connectedComponentsWithStats(crop, connectivity=8)
    need = max(opts.writing_mm * px_mm, opts.writing_share * field_h)
    tall = [stats[i] for i in range(1, n) if stats[i][3] >= need and stats[i][4] >= 0.5 * need]
    if not tall:
        return None
    return y0 + min(int(s[1]) for s in tall), y0 + max(int(s[1] + s[3]) for s in tall)


def _corner(seg: HSegment, cum: np.ndarray, px_mm: float) -> bool:
    """Does a vertical line leave either end of the segment (a box or frame corner)?"""
    H = cum.shape[0] - 1
    reach = max(4, round(2.5 * px_mm))
    for x in (seg.x0, seg.x1):
        xa, xb = max(0, x - 2), min(cum.shape[1], x + 3)
        for ra, rb in ((max(0, seg.y0 - reach), seg.y0), (seg.y1 + 1, min(H, seg.y1 + 1 + reach))):
            if rb - ra < reach // 2:
                continue
            cov = (cum[rb, xa:xb] - cum[ra, xa:xb]) / float(rb - ra)
            if cov.size and float(cov.max()) >= 0.85:
                return True
    return False


def _reading_order(items: list[tuple[Box, Any]]) -> list[tuple[Box, Any]]:
    """Rows top to bottom (a field joins a row when its middle lies within the row's first field), then x."""
    rows: list[list[tuple[Box, Any]]] = []
    for it in sorted(items, key=lambda it: (it[0].y + it[0].h / 2, it[0].x)):
        b = it[0]
        mid = b.y + b.h / 2
        if rows:
            r = rows[-1][0][0]
            if r.y <= mid <= r.y2 or b.y <= r.y + r.h / 2 <= b.y2:
                rows[-1].append(it)
                continue
        rows.append([it])
    return [it for row in rows for it in sorted(row, key=lambda it: it[0].x)]


def find_fields(
    clean: CleanPage, include_empty: bool = False, options: DetectOptions | None = None
) -> list[FieldRegion]:
    """Every box, comb and underlined blank holding handwriting, in reading order, in page pixels.

    ``include_empty`` also returns the ones nobody wrote in (for making a template from a blank form).
    Fields are named field_1, field_2, ... in reading order, type "digits" without constraints.
    """
    opts = options or DetectOptions()
    dpi = float(clean.page.dpi)
    scale = min(1.0, WORK_DPI / dpi)
    px_mm = dpi * scale / 25.4
    lay = shrink(clean.layout_ink, scale)
    ink = lay if clean.form_ink is None else shrink(clean.ink, scale)
    H, W = lay.shape
    segs, hmask = h_segments(lay, px_mm, opts)
    # Column coverage of vertical strokes, one pixel of lean allowed, short breaks bridged.
    vert = cv2.morphologyEx(lay.astype(np.uint8), cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (1, 5)))
    vert = cv2.dilate(vert, np.ones((1, 3), np.uint8))
    cum = np.zeros((H + 1, W), np.int32)
    np.cumsum(vert, axis=0, out=cum[1:])
    cands, edges = find_boxes(segs, cum, px_mm, opts)
    cands = outermost(cands)
    # Printed lines (the long segments, the candidates' walls), so the writing test sees only what is inside.
    # Not every horizontal run: the bar of a 5 or a 7 is one, and cutting it out would cut the digit up.
    lines = np.zeros_like(lay)
    for sg in segs:
        lines[sg.y0 : sg.y1 + 1, sg.x0 : sg.x1 + 1] = hmask[sg.y0 : sg.y1 + 1, sg.x0 : sg.x1 + 1]
    t = max(1, round(0.5 * px_mm))
    for c in cands:
        b = c.box
        lines[b.y : b.y2, b.x : b.x + t + 1] = True
        lines[b.y : b.y2, b.x2 - t - 1 : b.x2] = True
        for a, e, _ in c.walls:
            lines[b.y : b.y2, a : e + 1] = True
    found: list[tuple[Box, tuple[Style, int | None]]] = []
    inset = max(1, round(0.45 * px_mm))
    for c in cands:
        b = c.box
        wr = _writing(ink, lines, b.x + inset, b.y + inset, b.x2 - inset, b.y2 - inset, b.h, px_mm, opts)
        if wr is not None or include_empty:
            found.append((b, (c.style, c.cells)))
    # Underlines: free-ended segments that are no box's edge and lie in no box.
    boxes = [c.box for c in cands]
    areas: list[Box] = []
    # Longest first: a digit's long bottom stroke just above a blank's line lies in that blank's area.
    for i in sorted(range(len(segs)), key=lambda i: -segs[i].length):
        s = segs[i]
        if i in edges or s.length < opts.min_underline_mm * px_mm:
            continue
        if any(b.x <= s.x0 + 2 and s.x1 - 2 <= b.x2 and b.y <= s.y0 and s.y1 <= b.y2 for b in boxes + areas):
            continue
        if _corner(s, cum, px_mm):
            continue
        box = _underline_area(s, ink, lines, boxes, px_mm, opts, include_empty)
        if box is not None:
            areas.append(box)
            found.append((box, ("line", None)))
    inv = 1.0 / scale
    regions = []
    for k, (b, (style, cells)) in enumerate(_reading_order(found), 1):
        x0, y0 = round(b.x * inv), round(b.y * inv)
        x1, y1 = round(b.x2 * inv), round(b.y2 * inv)
        box = Box(x0, y0, x1 - x0, y1 - y0).clip(clean.ink.shape[1], clean.ink.shape[0])
        regions.append(FieldRegion(f"field_{k}", "digits", box, style, cells, {}))
    return regions


def _underline_area(
    s: HSegment,
    ink: np.ndarray,
    lines: np.ndarray,
    boxes: list[Box],
    px_mm: float,
    opts: DetectOptions,
    include_empty: bool,
) -> Box | None:
    """The writing area above an underline: up to the handwriting's top, or to the print above it."""
    reach = round(15 * px_mm)
    x0, x1 = s.x0, s.x1 + 1
    top = max(0, s.y0 - reach)
    bottom = s.y1 + 1
    area = ink[top:bottom, x0:x1] & ~lines[top:bottom, x0:x1]
    for b in boxes:  # ink inside a box belongs to that box
        ya, yb = max(top, b.y), min(bottom, b.y2)
        xa, xb = max(x0, b.x), min(x1, b.x2)
        if ya < yb and xa < xb:
            area[ya - top : yb - top, xa - x0 : xb - x0] = False
    _, _, stats, _ = cv2.connectedComponentsWithStats(area.astype(np.uint8), connectivity=8)
    need = opts.writing_mm * px_mm
    near = 6.0 * px_mm  # handwriting sits on (or near, or across) its line
    rel_line = s.y0 - top
    writing = [st for st in stats[1:] if st[3] >= need and st[4] >= 0.5 * need and rel_line - (st[1] + st[3]) <= near]
    if writing:
        w_top = top + min(int(st[1]) for st in writing)
        span = s.y1 + 1 - w_top
        y0 = max(top, round(w_top - 0.2 * span))
        above = [st for st in stats[1:] if top + st[1] + st[3] <= w_top - 1]
        if above:  # do not reach into printed text above the writing
            ceiling = top + max(int(st[1] + st[3]) for st in above)
            y0 = max(y0, min(w_top - 1, ceiling + round(0.3 * px_mm)))
        if span < opts.writing_share * (s.y1 + 1 - y0):
            return None
        return Box(x0, y0, x1 - x0, s.y1 + 1 - y0)
    if not include_empty:
        return None
    others = [st for st in stats[1:] if st[4] >= 3]
    if others:
        ceiling = top + max(int(st[1] + st[3]) for st in others)
        y0 = min(s.y0 - round(opts.min_height_mm * px_mm), ceiling + round(1.0 * px_mm))
    else:
        y0 = s.y0 - round(opts.underline_height_mm * px_mm)
    y0 = max(top, y0)
    return Box(x0, y0, x1 - x0, s.y1 + 1 - y0)
