"""Printed-line removal inside a field's crop: long thin borders and comb walls erased, crossing strokes kept.

Used per field by :mod:`formocr.segment` (never on the whole page): what counts as a line depends on the field's
digit size and on where its walls are printed.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["NO_WALL", "WALL_BETWEEN", "WALL_LEFT", "WALL_RIGHT", "remove_lines"]


_CROSS_SLOPES = (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)  # dx/dy: strokes up to ~63° from upright


def _path_hits(rest: np.ndarray, reach: int, slope: float, downward: bool) -> np.ndarray:
    """Pixels from which a straight path of ``slope`` (dx per row) meets ``rest`` within ``reach`` rows.

    Upward when ``downward`` is False (rows y-1..y-reach at x - slope·k), downward otherwise (x + slope·k).
    """
    half = math.ceil(abs(slope) * reach)
    kernel = np.zeros((reach + 1, 2 * half + 1), np.uint8)
    # dilate(x, y) = max over kernel cells (i, j) of src(x + j - ax, y + i - ay)
    for k in range(1, reach + 1):
        dx = round(slope * k)
        if downward:
            kernel[k, half + dx] = 1
        else:
            kernel[reach - k, half - dx] = 1
    anchor = (half, 0 if downward else reach)
    return cv2.dilate(rest, kernel, anchor=anchor, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0


def _crossings(lines: np.ndarray, rest: np.ndarray, reach: int) -> np.ndarray:
    """Pixels of horizontal ``lines`` that a stroke passes straight through (ink above and below, in line).

    Works band by band (the rows holding line pixels, plus ``reach`` either side), so a field crop with two
    borders costs two thin strips instead of the whole crop, for each of the slopes tried.
    """
    out = np.zeros(lines.shape, bool)
    if not lines.any() or not rest.any():
        return out
    rows = np.flatnonzero(lines.any(axis=1))
    breaks = np.flatnonzero(np.diff(rows) > 2 * reach + 1)
    starts = np.concatenate([[rows[0]], rows[breaks + 1]])
    ends = np.concatenate([rows[breaks], [rows[-1]]])
    for y0, y1 in zip(starts, ends):
        a, b = max(0, int(y0) - reach), min(lines.shape[0], int(y1) + reach + 1)
        band_rest = rest[a:b]
        if not band_rest.any():
            continue
        hit = np.zeros(band_rest.shape, bool)
        for slope in _CROSS_SLOPES:
            hit |= _path_hits(band_rest, reach, slope, downward=False) & _path_hits(band_rest, reach, slope, True)
        out[a:b] |= hit
    return out & (lines > 0)


def _lines(ink8: np.ndarray, min_len: int, max_thick: int, horizontal: bool) -> np.ndarray:
    """Long thin runs along one axis: opening with a long 1-px kernel, minus anything too thick."""
    along = (min_len, 1) if horizontal else (1, min_len)
    gap = (3, 1) if horizontal else (1, 3)
    # Bridge 1-px breaks of scanned hairlines before requiring a full run.
    closed = cv2.morphologyEx(ink8, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, gap))
    runs = cv2.morphologyEx(closed, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, along))
    runs = cv2.bitwise_and(runs, ink8)
    if not runs.any():
        return runs
    across = (1, max_thick + 1) if horizontal else (max_thick + 1, 1)
    thick = cv2.morphologyEx(runs, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, across))
    lines = cv2.subtract(runs, thick)
    # Include the ragged edge rows/columns of a scanned line.
    grow = (1, 3) if horizontal else (3, 1)
    return cv2.dilate(lines, cv2.getStructuringElement(cv2.MORPH_RECT, grow)) & ink8


NO_WALL, WALL_LEFT, WALL_RIGHT, WALL_BETWEEN = 0, 1, 2, 3  # a box's left side has the writing on its right


def _border_thickness(h_lines: np.ndarray) -> int | None:
    """Mean thickness of the horizontal borders (pixels per vertical run), None when there are none."""
    on = h_lines > 0
    runs = int(np.count_nonzero(on[0])) + int(np.count_nonzero(on[1:] & ~on[:-1]))
    return max(1, round(int(on.sum()) / runs)) if runs else None


def _thin_walls(v_lines: np.ndarray, h_lines: np.ndarray, walls: np.ndarray) -> np.ndarray:
    """Cut each vertical line back to the borders' thickness where a stroke running along it made it thicker."""
    t = _border_thickness(h_lines)
    if t is None or not v_lines.any():
        return v_lines
    keep = t + 1  # a scanned line's ragged edge
    n, lab, stats, _ = cv2.connectedComponentsWithStats(v_lines, connectivity=8)
    out = v_lines.copy()
    for k in range(1, n):
        x, y, w, h = (int(v) for v in stats[k, :4])
        if w <= keep:
            continue
        sub = lab[y : y + h, x : x + w] == k
        codes = walls[x : x + w][sub.any(axis=0)]
        side = int(np.bincount(codes, minlength=4)[1:].argmax()) + 1
        centre = int(sub.sum(axis=0).argmax())
        for r in range(h):
            cols = np.flatnonzero(sub[r])
            if len(cols) <= keep:
                continue
            if side == WALL_LEFT:
                lo = int(cols.min())
            elif side == WALL_RIGHT:
                lo = int(cols.max()) - keep + 1
            else:
                lo = centre - keep // 2
            drop = cols[(cols < lo) | (cols >= lo + keep)]
            out[y + r, x + drop] = 0
    return out


def remove_lines(
    ink: np.ndarray, min_len_px: int, max_thickness_px: int, min_len_v_px: int | None = None,
    walls: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Erase long printed horizontal/vertical lines (box borders, combs) but keep strokes that cross them.

    Returns ``(clean ink, line mask)``; the line mask holds every detected line pixel, crossings included, so
    a caller can still find the borders. A line pixel is given back to the strokes when there is non-line ink
    just above and just below it (left and right for vertical lines): a handwritten 4 or 7 running through a
    box edge stays one piece instead of being cut in two.

    Any straight run of ink at least ``min_len_px`` long (``min_len_v_px`` for vertical runs, by default the
    same) and at most ``max_thickness_px`` thick counts as a line, so choose the lengths above the tallest
    stroke a digit can have (e.g. 1.2× the expected digit height) and below the border's length.

    ``walls`` (one code per column, :data:`NO_WALL` ... :data:`WALL_BETWEEN`) says where vertical lines may
    lie, when the caller knows where the walls are printed: a tall straight "1" elsewhere is then writing,
    however long and thin it is. A wall is also no thicker than the horizontal borders printed with it: where
    a vertical run is thicker, a stroke lies along the wall (a "1" written against a box's side), and only the
    wall's own width is taken, on its outer side (the middle, for a comb's inner walls).
    """
    mask = np.asarray(ink).astype(bool)
    min_v = int(min_len_px if min_len_v_px is None else min_len_v_px)
    if mask.ndim != 2 or mask.size == 0 or min(min_len_px, min_v) < 2:
        return mask.copy(), np.zeros(mask.shape, bool)
    ink8 = mask.astype(np.uint8)
    max_t = max(1, int(max_thickness_px))
    h_lines = _lines(ink8, int(min_len_px), max_t, horizontal=True)
    v_lines = _lines(ink8, min_v, max_t, horizontal=False)
    if walls is not None:
        codes = np.asarray(walls)
        v_lines[:, codes == NO_WALL] = 0
        v_lines = _thin_walls(v_lines, h_lines, codes)
    line = cv2.bitwise_or(h_lines, v_lines)
    if not line.any():
        return mask.copy(), np.zeros(mask.shape, bool)
    rest = cv2.subtract(ink8, line)
    reach = max_t + 3  # across the line (its ragged edge included) to the stroke on the other side
    restore = _crossings(h_lines, rest, reach) | _crossings(v_lines.T, rest.T, reach).T
    clean = (rest > 0) | restore
    return clean, line > 0
