"""Segmentation: the digits inside one field, as connected components in reading order.

Real handwriting does not give one component per digit. A 5's top bar or a 4's stem often floats free, a dry pen
breaks a stroke, and dots, commas and dashes sit between digits of amounts and dates. The rules here:

* printed borders (box edges, comb separators) are removed first, keeping strokes that cross them;
* components much smaller than the field's digit height are separators when they sit where separators sit
  (a dot or comma on the baseline, a dash at mid-height), otherwise noise or a fragment;
* fragments whose horizontal extent overlaps a digit's are merged into it (the open 5, the detached bar);
* in comb fields every cell holds at most one digit, so everything in a cell is one digit;
* a component much wider than a digit is split at the thinnest column (two digits touching).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from formocr.lines import NO_WALL, WALL_BETWEEN, WALL_LEFT, WALL_RIGHT, remove_lines
from formocr.objects import Box, CleanPage, Component, FieldRegion

MIN_CONTRAST = 30  # grey levels handwriting must lie below the field's paper


@dataclass(frozen=True)
class SegmentOptions:
    min_area_frac: float = 0.004  # components smaller than this share of the field height² are noise
    separator_height: float = 0.42  # components below this share of the digit height may be separators
    split_width: float = 1.6  # a component this many typical digit widths wide is taken as touching digits...
    split_aspect: float = 0.9  # ... if it is also at least this much wider than tall


def _components(ink: np.ndarray) -> list[tuple[Box, np.ndarray]]:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    out = []
    for i in range(1, n):
        x, y, w, h, _area = (int(v) for v in stats[i])
        out.append((Box(x, y, w, h), labels[y : y + h, x : x + w] == i))
    return out


def merge_parts(boxes: list[tuple[Box, np.ndarray]]) -> tuple[Box, np.ndarray]:
    """Pieces (box, mask) as one: their union box and the masks laid into it."""
    box = boxes[0][0]
    for b, _ in boxes[1:]:
        box = box.union(b)
    mask = np.zeros((box.h, box.w), bool)
    for b, m in boxes:
        mask[b.y - box.y : b.y2 - box.y, b.x - box.x : b.x2 - box.x] |= m
    return box, mask


def is_mark(w: int, h: int, area: int, field_h_px: float, px_mm: float, opts: SegmentOptions = SegmentOptions()
            ) -> bool:
    """Is a component of this size writing (a digit, a fragment, a pen dot) rather than a speck?

    A pen dot is at least ~0.3 mm across; scanner dust is smaller. Anything else must have a share of the
    field height squared. The string reader's strip applies the same rule, so both readers drop the same specks.
    """
    dot = 0.3 * px_mm
    return area >= opts.min_area_frac * field_h_px**2 or (w >= dot and h >= dot)


def field_ink(clean: CleanPage, region: FieldRegion) -> tuple[np.ndarray, Box]:
    """The field's ink without printed lines, and the crop's box in page pixels."""
    ink, box, _ = field_cut(clean, region)
    return ink, box


def field_cut(clean: CleanPage, region: FieldRegion) -> tuple[np.ndarray, Box, np.ndarray]:
    """As :func:`field_ink`, and the printed lines it took out (same crop): a reader of the box's grey paints
    them out away from the strokes."""
    dpi = clean.page.dpi
    pad = max(2, round(0.6 * dpi / 25.4))  # look 0.6 mm beyond the box: strokes overrun borders
    box = Box(region.box.x - pad, region.box.y - pad, region.box.w + 2 * pad, region.box.h + 2 * pad)
    box = box.clip(clean.ink.shape[1], clean.ink.shape[0])
    crop = clean.ink[box.y : box.y2, box.x : box.x2]
    if region.style == "free":
        return crop.copy(), box, np.zeros(crop.shape, bool)
    # Printed borders run the whole width (horizontal) or the whole height (vertical walls and comb cell
    # walls); handwriting strokes are shorter. A very tall, perfectly straight "1" spanning 85% of the box
    # would be taken for a wall: that is the limit of this rule.
    min_h = max(8, round(max(0.6 * region.box.h, 0.4 * region.box.w)))
    if region.style == "comb" and region.cells:
        min_h = max(8, round(min(region.box.w * 0.4, 0.8 * region.box.w / region.cells)))
    min_v = max(8, round(0.85 * region.box.h))
    if region.style == "line":
        # An underlined blank has one printed line, horizontal, along the bottom: no vertical lines to take out
        # (a tall straight "1" is writing here), and a horizontal run must be longer than any digit's bar.
        min_h = max(8, round(max(1.2 * region.box.h, 0.4 * region.box.w)))
        # Blank rows above and below, and a vertical length twice the crop's: no column can pass for a line.
        # (Morphology treats the image's edge as ink, so a stroke reaching the edge could otherwise.)
        padded = np.pad(crop, ((3, 3), (0, 0)))
        cleaned, lines = remove_lines(
            padded, min_len_px=min_h, max_thickness_px=max(2, round(0.6 * dpi / 25.4)),
            min_len_v_px=2 * padded.shape[0] + 1,
        )
        cleaned, lines = cleaned[3:-3], lines[3:-3]
    else:
        cleaned, lines = remove_lines(
            crop, min_len_px=min_h, max_thickness_px=max(2, round(0.6 * dpi / 25.4)), min_len_v_px=min_v,
            walls=_wall_columns(region, box, dpi),
        )
    # print a bare crop's analysis left out stays out of the ink; the string reader's grey still shows it, as the
    # grey strips it learnt from did (only ``lines`` are painted out of them)
    printed = lines if clean.print_ink is None else lines | clean.print_ink[box.y : box.y2, box.x : box.x2]
    cleaned |= _faint_strokes(clean.gray[box.y : box.y2, box.x : box.x2], crop, printed, dpi)
    # Whatever lies outside the printed box (beyond the border) belongs to neighbouring print, not this field,
    # except strokes that start inside: keep components that have ink inside the box.
    inner = np.zeros(cleaned.shape, bool)
    t = max(1, round(0.25 * dpi / 25.4))
    ix, iy = region.box.x - box.x + t, region.box.y - box.y + t
    inner[max(0, iy) : iy + region.box.h - 2 * t, max(0, ix) : ix + region.box.w - 2 * t] = True
    n, labels = cv2.connectedComponents(cleaned.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[np.unique(labels[inner & cleaned])] = True
    keep[0] = False
    return keep[labels], box, lines


def _wall_columns(region: FieldRegion, crop: Box, dpi: float) -> np.ndarray | None:
    """Per column of the crop, which printed wall of the field can lie there (codes of ``remove_lines``).

    The field's box comes from registration or detection, good to about a millimetre; a vertical run anywhere
    else is a tall "1" (or the stem of a 4 or 7) written inside the box, not a wall. None (anywhere) for a comb
    whose cell count is not known.
    """
    if region.style == "comb" and not region.cells:
        return None
    tol = max(2.0, 1.5 * dpi / 25.4)
    walls = [(float(region.box.x), WALL_LEFT), (float(region.box.x2), WALL_RIGHT)]
    if region.style == "comb" and region.cells:
        step = region.box.w / region.cells
        walls += [(region.box.x + k * step, WALL_BETWEEN) for k in range(1, region.cells)]
        tol = max(2.0, min(tol, 0.25 * step))
    cols = np.arange(crop.w, dtype=np.float32) + crop.x
    codes = np.full(crop.w, NO_WALL, np.int64)
    for x, code in walls:
        codes[np.abs(cols - x) <= tol] = code
    return codes


def _faint_strokes(gray: np.ndarray, ink: np.ndarray, lines: np.ndarray, dpi: float) -> np.ndarray:
    """Ink the page threshold missed: light pencil or ballpoint next to dark printed borders (``lines``: the
    print found in the field, never taken back).

    A page-wide threshold is pulled towards the black print, so a faint digit can fall on the paper side of
    it. Inside one field, with the printed lines painted over by the paper's tone, Otsu separates the
    handwriting from the paper alone (still requiring a clear contrast, so an empty field stays empty).
    """
    near = cv2.dilate(lines.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    free = ~near & ~ink
    if gray.size == 0 or not free.any():
        return np.zeros(gray.shape, bool)
    g = gray.copy()
    hist = np.bincount(g[free], minlength=256)
    paper = float(np.searchsorted(np.cumsum(hist), free.sum() / 2))  # median, without a sort
    g[near] = np.uint8(paper)
    t, _ = cv2.threshold(g, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # Specks are left to the size rules of the segmenter, which judge them against the field's digits.
    return (g <= min(float(t), paper - MIN_CONTRAST)) & ~near


def segment_field(clean: CleanPage, region: FieldRegion, opts: SegmentOptions = SegmentOptions()) -> list[Component]:
    """Digits and separators of one field, left to right, boxes in page pixels."""
    ink, crop_box = field_ink(clean, region)
    return segment_ink(ink, crop_box, region, clean.page.dpi, opts)


def segment_ink(ink: np.ndarray, crop_box: Box, region: FieldRegion, dpi: float,
                opts: SegmentOptions = SegmentOptions(), separators: str = ".,-") -> list[Component]:
    """As :func:`segment_field`, on ink already cut by :func:`field_ink` (which the string reader shares).

    ``separators`` are the marks the field may hold; in a digits-only field a small mark is a fragment of a
    digit (the detached bar of a 5, a dot of a broken stroke) or noise, never a separator.
    """
    if region.style == "comb" and region.cells:
        comps = _segment_comb(ink, crop_box, region, opts)
    else:
        comps = _segment_line(ink, crop_box, region, opts, dpi / 25.4, separators)
    return sorted(comps, key=lambda c: c.box.x + c.box.w / 2)


def thin_strokes(ink: np.ndarray, crop_box: Box, region: FieldRegion, dpi: float, comps: list[Component],
                 opts: SegmentOptions = SegmentOptions()) -> tuple[int, ...]:
    """Where, among the digits, a stroke as tall as a digit stands that the speck rule left out as too thin.

    A fine nib's "1" can be two pixels wide where a pen dot must be three: both readers lose it ("13." reads "3"),
    and telling it from a scratch or a rule's end takes a person. Counted only beside the digits and within their
    rows, it sends the field to review. Positions count digits and such strokes from 1, left to right (separators
    not counted): where each stroke would stand.
    """
    digits = [c.box.shifted(-crop_box.x, -crop_box.y) for c in comps if c.kind == "digit"]
    if not digits or region.style == "comb":  # a comb's cells fix its digits; thin print ticks are no writing
        return ()
    digit_h = float(np.median([b.h for b in digits]))
    top, bottom = min(b.y for b in digits), max(b.y2 for b in digits)
    left, right = min(b.x for b in digits) - digit_h, max(b.x2 for b in digits) + digit_h
    _, _, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    thin = []
    for x, y, w, h, area in stats[1:].tolist():
        b = Box(x, y, w, h)
        if is_mark(w, h, area, region.box.h, dpi / 25.4, opts) or not 0.6 <= h / digit_h <= 1.5:
            continue
        within = min(b.y2, bottom) - max(b.y, top) >= 0.7 * h
        if within and left <= b.x and b.x2 <= right and all(x_overlap(b, d) <= 0.5 for d in digits):
            thin.append(b.x + b.w / 2)
    return tuple(1 + k + sum(d.x + d.w / 2 < cx for d in digits) for k, cx in enumerate(sorted(thin)))


def _segment_comb(ink: np.ndarray, crop_box: Box, region: FieldRegion, opts: SegmentOptions) -> list[Component]:
    assert region.cells
    cell_w = region.box.w / region.cells
    min_area = opts.min_area_frac * region.box.h**2
    parts = [(b, m) for b, m in _components(ink) if m.sum() >= min_area]
    by_cell: dict[int, list[tuple[Box, np.ndarray]]] = {}
    for b, m in parts:
        _, xs = np.nonzero(m)
        cx = b.x + float(xs.mean()) + crop_box.x - region.box.x
        cell = int(np.clip(cx // cell_w, 0, region.cells - 1))
        by_cell.setdefault(cell, []).append((b, m))
    out = []
    for cell in sorted(by_cell):
        group = by_cell[cell]
        biggest = max(b.h for b, _ in group)
        group = [g for g in group if g[0].h >= 0.2 * biggest or g[1].sum() >= 4 * min_area]
        box, mask = merge_parts(group)
        if max(box.h, box.w) < 0.2 * region.box.h:
            continue  # a speck in an empty cell (a flat "2" or "5" is still taller or wider than this)
        out.append(Component(box.shifted(crop_box.x, crop_box.y), mask, "digit", None, len(group)))
    return out


def _segment_line(ink: np.ndarray, crop_box: Box, region: FieldRegion, opts: SegmentOptions, px_mm: float,
                  separators: str = ".,-") -> list[Component]:
    parts = [(b, m) for b, m in _components(ink) if is_mark(b.w, b.h, int(m.sum()), region.box.h, px_mm, opts)]
    if not parts:
        return []
    heights = sorted(b.h for b, _ in parts)
    digit_h = float(np.percentile(heights, 75)) if len(heights) > 2 else float(max(heights))
    big = [p for p in parts if p[0].h >= opts.separator_height * digit_h]
    small = [p for p in parts if p[0].h < opts.separator_height * digit_h]
    # Merge digit fragments whose horizontal spans overlap (open 5, detached bar of a 4 or a 7).
    big.sort(key=lambda p: p[0].x)
    groups: list[list[tuple[Box, np.ndarray]]] = []
    for p in big:
        if groups and x_overlap(merge_parts(groups[-1])[0], p[0]) > 0.45:
            groups[-1].append(p)
        else:
            groups.append([p])
    # A one-digit field: marks within half a digit's height of each other may be one digit written in strokes
    # apart (a 4's arm, a 9's loop): they go to arbitrate as one doubtful cut, and the classifier says whether
    # they are one digit or two (then the field holds more than it may). A small piece there is that digit's.
    one = region.constraints.get("max_length") == 1
    near = 0.5 * digit_h
    digits = [(*merge_parts(g), len(g)) for g in groups]
    cluster = list(range(len(digits)))
    for i in range(1, len(digits)):
        if one and _gap(digits[i - 1][0], digits[i][0]) <= near:
            cluster[i] = cluster[i - 1]
    top = min((b.y for b, _, _ in digits), default=0)
    bottom = max((b.y2 for b, _, _ in digits), default=ink.shape[0])
    seps = []
    for b, m in small:
        host = next((i for i, (db, _, _) in enumerate(digits) if x_overlap(db, b) > 0.5), None)
        if host is None and one and digits:
            gap, k = min((_gap(db, b), k) for k, (db, _, _) in enumerate(digits))
            host = k if gap <= near else None
        ch = _separator_char(b, top, bottom)
        if ch is not None and ch not in separators:
            ch = None
        if ch is None and host is not None:
            db, dm, n = digits[host]
            mb, mm = merge_parts([(db, dm), (b, m)])
            digits[host] = (mb, mm, n + 1)
        elif ch is not None and (ch == "-" or m.sum() >= 0.45 * b.w * b.h):  # dots are solid blobs
            seps.append(Component(b.shifted(crop_box.x, crop_box.y), m, "separator", ch, 1))
    out = list(seps)
    narrow = sorted(b.w for b, _, _ in digits if b.w < 0.9 * b.h)
    digit_w = float(np.median(narrow)) if len(narrow) >= 2 else 0.62 * digit_h
    for gi, (b, m, n) in enumerate(digits):
        together = cluster.count(cluster[gi]) > 1
        pieces = [(b, m)] if together else _split_touching(b, m, digit_w, opts)
        group = len(digits) + cluster[gi] if together else gi if len(pieces) > 1 else -1
        for sb, sm in pieces:
            out.append(Component(sb.shifted(crop_box.x, crop_box.y), sm, "digit", None, n, group))
    return out


def _gap(a: Box, b: Box) -> int:
    """Pixels between two boxes side by side (negative where their spans overlap)."""
    return max(a.x, b.x) - min(a.x2, b.x2)


def x_overlap(a: Box, b: Box) -> float:
    """How much of the narrower box's width the two boxes' horizontal spans share (0 to 1)."""
    inter = min(a.x2, b.x2) - max(a.x, b.x)
    return max(0.0, inter) / max(1, min(a.w, b.w))


def _separator_char(b: Box, top: int, bottom: int) -> str | None:
    """A small mark's meaning from where it sits between the digits' top and bottom lines."""
    h = max(1, bottom - top)
    cy = (b.y + b.y2) / 2
    rel = (cy - top) / h
    if b.w > 1.8 * b.h and 0.3 < rel < 0.75:
        return "-"
    if rel > 0.72:
        return "," if b.y2 > bottom + 0.1 * h and b.h > 1.3 * b.w else "."
    return None


def _split_touching(b: Box, m: np.ndarray, digit_w: float, opts: SegmentOptions) -> list[tuple[Box, np.ndarray]]:
    """Split a component much wider than the field's digits (and wider than tall) at its thinnest columns."""
    n = round(b.w / max(1.0, digit_w))
    if b.w < opts.split_width * digit_w or b.w < opts.split_aspect * b.h or n < 2:
        return [(b, m)]
    cols = m.sum(axis=0).astype(np.float32)
    cuts = []
    for k in range(1, n):
        centre = int(b.w * k / n)
        lo, hi = max(1, centre - b.w // (3 * n)), min(b.w - 1, centre + b.w // (3 * n))
        cuts.append(lo + int(np.argmin(cols[lo:hi])) if hi > lo else centre)
    out = []
    edges = [0, *cuts, b.w]
    for x0, x1 in zip(edges[:-1], edges[1:]):
        piece = m[:, x0:x1]
        ys = np.nonzero(piece.any(axis=1))[0]
        if len(ys) == 0:
            continue
        out.append((Box(b.x + x0, b.y + int(ys[0]), x1 - x0, int(ys[-1] - ys[0] + 1)), piece[ys[0] : ys[-1] + 1]))
    return out
