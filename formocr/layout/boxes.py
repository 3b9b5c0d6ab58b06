"""Printed structure found without a template: long horizontal lines, and the boxes and combs they close.

A **box** is a pair of horizontal segments (top, bottom) joined by two walls, vertical lines covering the whole
height between them; walls are measured column by column from a cumulative sum, so a gap in a broken printed line
or a digit crossing the border costs a few per cent of coverage, not the field. A **comb** is a box whose inner
walls fall on a regular grid with cells no wider than ~1.5 times their height (a table row has wider cells, and
walls at irregular places split it into separate boxes); a handwritten "1" standing on the grid line's place
cannot add a cell, one off the grid is ignored.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import cv2
import numpy as np

from formocr.objects import Box, Style

__all__ = ["Candidate", "DetectOptions", "HSegment", "find_boxes", "h_segments", "outermost", "shrink"]


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
class HSegment:
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
class Candidate:
    box: Box  # working pixels
    style: Style
    cells: int | None
    walls: tuple[tuple[int, int, bool], ...] = ()  # (x0, x1, full height) of the inner walls, working pixels


def shrink(mask: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 0.999:
        return mask.astype(bool)
    small = cv2.resize(mask.astype(np.uint8) * 255, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return small > 64


def h_segments(lay: np.ndarray, px_mm: float, opts: DetectOptions) -> tuple[list[HSegment], np.ndarray]:
    """Long thin horizontal runs of ink, broken pieces of one printed line joined together."""
    ink8 = lay.astype(np.uint8)
    k = max(5, round(3.0 * px_mm))
    runs = cv2.morphologyEx(ink8, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (k, 1)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(runs, connectivity=8)
    max_t = max(2.0, opts.max_line_mm * px_mm)
    pieces: list[tuple[HSegment, int]] = []
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        if area / w <= max_t and h <= max_t + 1:
            pieces.append((HSegment(x, x + w - 1, y, y + h - 1), w))
            continue
        # Thick somewhere: a stroke lying along the line (a digit crossing it), or bold print. A line keeps
        # a thin median thickness, and its own rows are those covered over half its length.
        sub = labels[y : y + h, x : x + w] == i
        if float(np.median(sub.sum(axis=0))) > max_t:
            continue
        rows = np.flatnonzero(sub.sum(axis=1) >= 0.5 * w)
        if rows.size and rows[-1] - rows[0] < max_t + 1:
            pieces.append((HSegment(x, x + w - 1, y + int(rows[0]), y + int(rows[-1])), w))
    pieces.sort(key=lambda p: (p[0].yc, p[0].x0))
    gap = max(3, round(2.0 * px_mm))
    merged: list[HSegment] = []
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
                cur = HSegment(cur.x0, max(cur.x1, t.x1), min(cur.y0, t.y0), max(cur.y1, t.y1))
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


def find_boxes(segs: list[HSegment], cum: np.ndarray, px_mm: float, opts: DetectOptions
               ) -> tuple[list[Candidate], set[int]]:
    """Boxes and combs from pairs of horizontal segments joined by full-height walls."""
    hmin, hmax = opts.min_height_mm * px_mm, opts.max_height_mm * px_mm
    min_w = opts.min_width_mm * px_mm
    ys = [s.yc for s in segs]
    order = sorted(range(len(segs)), key=lambda i: ys[i])
    ys_sorted = [ys[i] for i in order]
    W = cum.shape[1]
    out: list[Candidate] = []
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


def _split(walls: list[tuple[int, int, bool]], t: HSegment, b: HSegment, min_w: float, opts: DetectOptions
           ) -> list[Candidate]:
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
    out: list[Candidate] = []
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
                out.append(Candidate(box, "comb", best_n, tuple(_on_grid(ws[i : best_j + 1], best_n))))
            else:
                out.append(Candidate(box, "box", None))
        i = best_j
    return out


def outermost(cands: list[Candidate]) -> list[Candidate]:
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
