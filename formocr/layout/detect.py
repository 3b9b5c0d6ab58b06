"""Automatic mode: find the places on a form where people write numbers, without a template.

Why this way: printed frames are the one thing on a form that is both regular and easy to see. Handwriting and
printed text make short strokes; a field's frame is made of long thin straight lines. So the page's printed
structure is reduced to long horizontal segments, and fields are recognised from how those segments relate:

* a **box** is a pair of horizontal segments (top, bottom) joined by two walls, vertical lines covering the
  whole height between them; walls are measured column by column from a cumulative sum, so a gap in a
  broken printed line or a digit crossing the border costs a few per cent of coverage, not the field;
* a **comb** is a box whose inner walls fall on a regular grid with cells no wider than ~1.5 times their
  height (a table row has wider cells, and walls at irregular places split it into separate boxes); a
  handwritten "1" standing on the grid line's place cannot add a cell, one off the grid is ignored;
* an **underline** is a horizontal segment at least 10 mm long that is no box's edge and has no corner
  (no vertical line leaving either end): the writing area is the band above it.

Then each candidate is kept only if it holds handwriting: ink inside it, away from its own printed lines, in a
component at least ~2.6 mm and ~28 % of the field tall. Printed labels (2-2.5 mm capitals) and dust are
smaller, so empty boxes, table cells holding printed figures and rules under printed text are dropped.
Everything is measured at ~150 dpi (0.17 mm a pixel), which keeps a 300-dpi A4 page at a few tens of
milliseconds. Fields come back in reading order: rows top to bottom, left to right within a row.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from formocr.errors import InputError, TemplateError
from formocr.layout.template import Template, TemplateField
from formocr.objects import Box, CleanPage, FieldRegion, Page, Style

WORK_DPI = 150.0


@dataclass(frozen=True)
class DetectOptions:
    """Sizes in millimetres, so they mean the same at any resolution."""

    min_height_mm: float = 5.0  # boxes lower than this are not writing places (double rules, digit loops)
    max_height_mm: float = 22.0  # nor taller ones (page frames, stamp boxes, tables' outer frames)
    min_width_mm: float = 5.0
    min_underline_mm: float = 10.0
    max_line_mm: float = 1.0  # printed lines are thinner than this
    wall_cover: float = 0.9  # share of a box's inner height a wall must cover
    comb_max_aspect: float = 1.5  # comb cells are at most this much wider than tall
    writing_mm: float = 3.3  # handwriting inside a field is at least this tall (printed 2-2.5 mm capitals,
    # descenders and brackets included, stay below)...
    writing_share: float = 0.35  # ... and at least this share of the field's height
    underline_height_mm: float = 10.0  # writing area of an empty underline with nothing printed above it


@dataclass(frozen=True)
class _Seg:
    x0: int
    x1: int  # inclusive
    y0: int
    y1: int  # inclusive

    @property
    def yc(self) -> float:
        return (self.y0 + self.y1) / 2

    @property
    def length(self) -> int:
        return self.x1 - self.x0 + 1


@dataclass(frozen=True)
class _Cand:
    box: Box  # working pixels
    style: Style
    cells: int | None
    walls: tuple[tuple[int, int, bool], ...] = ()  # (x0, x1, full height) of the inner walls, working pixels


def _shrink(mask: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 0.999:
        return mask.astype(bool)
    small = cv2.resize(mask.astype(np.uint8) * 255, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return small > 64


def _h_segments(lay: np.ndarray, px_mm: float, opts: DetectOptions) -> tuple[list[_Seg], np.ndarray]:
    """Long thin horizontal runs of ink, broken pieces of one printed line joined together."""
    ink8 = lay.astype(np.uint8)
    k = max(5, round(3.0 * px_mm))
    runs = cv2.morphologyEx(ink8, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (k, 1)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(runs, connectivity=8)
    max_t = max(2.0, opts.max_line_mm * px_mm)
    pieces: list[tuple[_Seg, int]] = []
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        if area / w <= max_t and h <= max_t + 1:
            pieces.append((_Seg(x, x + w - 1, y, y + h - 1), w))
            continue
        # Thick somewhere: a stroke lying along the line (a digit crossing it), or bold print. A line keeps
        # a thin median thickness, and its own rows are those covered over half its length.
        sub = labels[y : y + h, x : x + w] == i
        if float(np.median(sub.sum(axis=0))) > max_t:
            continue
        rows = np.flatnonzero(sub.sum(axis=1) >= 0.5 * w)
        if rows.size and rows[-1] - rows[0] < max_t + 1:
            pieces.append((_Seg(x, x + w - 1, y + int(rows[0]), y + int(rows[-1])), w))
    pieces.sort(key=lambda p: (p[0].yc, p[0].x0))
    gap = max(3, round(2.0 * px_mm))
    merged: list[_Seg] = []
    used = [False] * len(pieces)
    for i, (s, filled) in enumerate(pieces):  # join collinear pieces (a broken line), left to right
        if used[i]:
            continue
        cur = s
        for j in range(i + 1, len(pieces)):
            t, tw = pieces[j]
            if t.yc - cur.yc > 2.5:
                break
            if not used[j] and abs(t.yc - cur.yc) <= 2.5 and -2 <= t.x0 - cur.x1 <= gap:
                cur = _Seg(cur.x0, max(cur.x1, t.x1), min(cur.y0, t.y0), max(cur.y1, t.y1))
                filled += tw
                used[j] = True
        # A printed line broken by the scan is mostly there; bars of neighbouring digits lined up are not.
        if filled >= 0.85 * cur.length:
            merged.append(cur)
    min_len = min(opts.min_width_mm, opts.min_underline_mm) * px_mm
    return [s for s in merged if s.length >= min_len], runs > 0


def _walls(cov: np.ndarray, x0: int, thr: float) -> list[tuple[int, int, bool]]:
    """Runs of columns (absolute x0, x1 inclusive) whose coverage reaches ``thr``, and whether they cover
    the whole height (a printed wall meets both lines; a digit's straight stem seldom does)."""
    on = cov >= thr
    if not on.any():
        return []
    d = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1
    return [(x0 + int(a), x0 + int(b), float(cov[a : b + 1].max()) >= 0.985) for a, b in zip(starts, ends)]


def _on_grid(walls: list[tuple[int, int, bool]], n: int) -> list[tuple[int, int, bool]]:
    """The inner walls standing where a regular grid of ``n`` cells between the outer walls puts one."""
    start, end = (walls[0][0] + walls[0][1]) / 2, (walls[-1][0] + walls[-1][1]) / 2
    pitch = (end - start) / n
    tol = max(1.5, 0.12 * pitch)
    inner = walls[1:-1]
    out = []
    for g in range(1, n):
        gaps = [(abs((w[0] + w[1]) / 2 - start - g * pitch), k) for k, w in enumerate(inner)]
        gap, k = min(gaps, default=(tol + 1, -1))
        if gap <= tol:
            out.append(inner[k])
    return out


def _grid(walls: list[tuple[int, int, bool]], h: int, opts: DetectOptions) -> int:
    """Cells of the most finely divided regular grid between the outer walls, or 0 when there is none.

    One inner wall in five may be missing (faint, broken by the scan, or merged with a stroke beside it):
    demanding them all made a 10-cell comb with one weak wall a 5-cell one, and its other walls read as 1s.
    """
    span = (walls[-1][0] + walls[-1][1]) / 2 - (walls[0][0] + walls[0][1]) / 2
    for n in range(len(walls) - 1 + (len(walls) - 1) // 4, 2, -1):
        pitch = span / n
        if pitch > opts.comb_max_aspect * h or pitch < 0.3 * h:
            continue
        if len(_on_grid(walls, n)) >= n - 1 - (n - 1) // 5:
            return n
    return 0


def _boxes(segs: list[_Seg], cum: np.ndarray, px_mm: float, opts: DetectOptions) -> tuple[list[_Cand], set[int]]:
    """Boxes and combs from pairs of horizontal segments joined by full-height walls."""
    hmin, hmax = opts.min_height_mm * px_mm, opts.max_height_mm * px_mm
    min_w = opts.min_width_mm * px_mm
    ys = [s.yc for s in segs]
    order = sorted(range(len(segs)), key=lambda i: ys[i])
    ys_sorted = [ys[i] for i in order]
    W = cum.shape[1]
    out: list[_Cand] = []
    edges: set[int] = set()
    for ti, t in enumerate(segs):
        claimed: list[tuple[int, int]] = []
        lo = bisect.bisect_left(ys_sorted, t.yc + hmin - 2)
        hi = bisect.bisect_right(ys_sorted, t.yc + hmax + 2)
        for k in range(lo, hi):
            bi = order[k]
            b = segs[bi]
            ox0, ox1 = max(t.x0, b.x0) - 2, min(t.x1, b.x1) + 2
            if ox1 - ox0 < min_w:
                continue
            r0, r1 = t.y1 + 1, b.y0  # rows strictly between the two lines
            if r1 - r0 < 3:
                continue
            ox0, ox1 = max(0, ox0), min(W - 1, ox1)
            cov = (cum[r1, ox0 : ox1 + 1] - cum[r0, ox0 : ox1 + 1]) / float(r1 - r0)
            for a, c in claimed:  # a nearer bottom line already closed this part of the top line
                cov[max(0, a - ox0) : max(0, c - ox0 + 1)] = 0
            walls = _walls(cov, ox0, opts.wall_cover)
            if len(walls) < 2:
                continue
            found = _split(walls, t, b, min_w, opts)
            for cand in found:
                out.append(cand)
                claimed.append((cand.box.x - 2, cand.box.x2 + 1))  # with its walls' outer columns
            if found:
                edges.update((ti, bi))
    return out, edges


def _split(walls: list[tuple[int, int, bool]], t: _Seg, b: _Seg, min_w: float, opts: DetectOptions) -> list[_Cand]:
    """The fields one pair of lines closes: a comb when the walls make a regular grid, else separate boxes."""
    y0, y1 = t.y0, b.y1
    h = b.y0 - t.y1 - 1
    # Walls nearly touching are one (a double line where two boxes meet).
    ws: list[tuple[int, int, bool]] = []
    for w in walls:
        if ws and w[0] - ws[-1][1] <= 0.12 * min_w:
            ws[-1] = (ws[-1][0], w[1], ws[-1][2] or w[2])
        else:
            ws.append(w)
    if len(ws) < 2:
        return []
    out: list[_Cand] = []
    # Runs of walls that are a comb's grid; cut the row into such runs greedily from the left.
    i = 0
    while i < len(ws) - 1:
        # Without a grid the box ends at the next wall meeting both lines (or the last one): a straight
        # stem of a 1, 4 or 9 nearly as tall as the box must not cut it in two.
        best_j = next((j for j in range(i + 1, len(ws)) if ws[j][2]), len(ws) - 1)
        best_n = 0
        for j in range(len(ws) - 1, i + 2, -1):
            n = _grid(ws[i : j + 1], h, opts)
            if n:
                best_j, best_n = j, n
                break
        a, c = ws[i], ws[best_j]
        # The coverage was measured on walls widened by a pixel each side: take that back.
        left, right = a[0] + (a[1] - a[0] >= 2), c[1] - (c[1] - c[0] >= 2)
        if right - left + 1 >= min_w:
            box = Box(left, y0, right - left + 1, y1 - y0 + 1)
            if best_n:
                # the walls on the grid only (a handwritten "1" standing like a wall is writing)
                out.append(_Cand(box, "comb", best_n, tuple(_on_grid(ws[i : best_j + 1], best_n))))
            else:
                out.append(_Cand(box, "box", None))
        i = best_j
    return out


def _outermost(cands: list[_Cand]) -> list[_Cand]:
    """Drop candidates lying inside another one: the loop of a handwritten 0, 6, 8 or 9 touching a border
    can look like a small box of its own; fields do not nest."""
    out = []
    for c in cands:
        b = c.box
        inside = any(
            o is not c
            and o.box.area > b.area
            and o.box.x - 2 <= b.x
            and b.x2 <= o.box.x2 + 2
            and o.box.y - 2 <= b.y
            and b.y2 <= o.box.y2 + 2
            for o in cands
        )
        if not inside:
            out.append(c)
    return out


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


def _corner(seg: _Seg, cum: np.ndarray, px_mm: float) -> bool:
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
    lay = _shrink(clean.layout_ink, scale)
    ink = lay if clean.form_ink is None else _shrink(clean.ink, scale)
    H, W = lay.shape
    segs, hmask = _h_segments(lay, px_mm, opts)
    # Column coverage of vertical strokes, one pixel of lean allowed, short breaks bridged.
    vert = cv2.morphologyEx(lay.astype(np.uint8), cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (1, 5)))
    vert = cv2.dilate(vert, np.ones((1, 3), np.uint8))
    cum = np.zeros((H + 1, W), np.int32)
    np.cumsum(vert, axis=0, out=cum[1:])
    cands, edges = _boxes(segs, cum, px_mm, opts)
    cands = _outermost(cands)
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
    s: _Seg,
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


def template_from_image(
    image_or_clean: np.ndarray | CleanPage,
    dpi: float | None = None,
    name: str = "auto",
    options: DetectOptions | None = None,
) -> Template:
    """A template from a BLANK form: every box, comb and underline becomes a digits field (millimetres).

    ``dpi`` is required for an image (its resolution) and, for a CleanPage, overrides the page's.
    """
    from formocr.preprocess import preprocess

    if isinstance(image_or_clean, CleanPage):
        clean = image_or_clean
        if dpi is not None and float(dpi) != clean.page.dpi:
            page = Page(clean.page.index, clean.page.image, float(dpi), clean.page.source)
            clean = CleanPage(page, clean.gray, clean.ink, clean.skew_deg, clean.binarizer, clean.form_ink)
    else:
        img = np.asarray(image_or_clean)
        if img.ndim not in (2, 3) or img.size == 0:
            raise InputError(f"expected a greyscale or colour image, got an array of shape {img.shape}")
        if dpi is None or not 50 <= float(dpi) <= 2400:
            raise InputError(f"the image's resolution must be given (50..2400 dpi), got {dpi!r}")
        clean = preprocess(Page(0, img, float(dpi), "<array>"))
    if not name:
        raise TemplateError("name: expected a non-empty string")
    regions = find_fields(clean, include_empty=True, options=options)
    if not regions:
        raise TemplateError("no boxes, combs or underlines found on this page", clean.page.source)
    k = 25.4 / clean.page.dpi
    h, w = clean.gray.shape
    width_mm, height_mm = round(w * k, 1), round(h * k, 1)
    fields = []
    for r in regions:
        b = r.box
        box_mm = (round(b.x * k, 1), round(b.y * k, 1), round(b.w * k, 1), round(b.h * k, 1))
        box_mm = (box_mm[0], box_mm[1], min(box_mm[2], width_mm - box_mm[0]), min(box_mm[3], height_mm - box_mm[1]))
        fields.append(TemplateField(r.name, "digits", box_mm, r.style, r.cells, {}, None))
    return Template(name, width_mm, height_mm, tuple(fields), source=str(clean.page.source))


def template_from_file(path: str | Path, dpi: float | None = None, name: str | None = None) -> Template:
    """:func:`template_from_image` on the first page of an image or PDF file (``dpi`` overrides the file's)."""
    from formocr.io import load_pages
    from formocr.preprocess import preprocess

    p = Path(path)
    pages = iter(load_pages(p, dpi=round(dpi) if dpi else 300))
    try:
        page = next(pages)
    except StopIteration:
        raise InputError("no pages in this file", p) from None
    if dpi is not None:
        page = Page(page.index, page.image, float(dpi), page.source)
    return template_from_image(preprocess(page), name=name or p.stem)
