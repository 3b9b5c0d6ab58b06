"""The lines of writing in a crop several lines tall (a register's date cell: the year, the day, the month).

:func:`formocr.read_field` reads such a crop line by line when the field has a pattern, so the line the pattern
fits is the field; training cuts its register lines with the same locator.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["line_crop", "line_rows", "text_lines"]


def _cell_ink(gray: np.ndarray, low: float = 0.08, share: float = 0.35) -> np.ndarray:
    """The writing in a cell: pixels darker than their paper, without long straight strokes.

    Rules across the cell and column lines or scanner margins down it are found first, as straight runs of at least
    two thirds of the width or half of the height, and left out; only then is the cell's own ink strength taken
    (its 99.5th percentile), so a black margin does not set the bar above faint pencil. Near-black pixels help
    find the straight strokes, but count as writing only where they are darker than their own paper."""
    g = gray.astype(np.float32)
    h, w = g.shape
    paper = cv2.dilate(gray, np.ones((15, 15), np.uint8)).astype(np.float32)  # the paper under the strokes
    darkness = np.clip(1.0 - g / np.maximum(paper, 1.0), 0.0, 1.0)
    loose = ((darkness > low) | (g < 60)).astype(np.uint8)
    down = cv2.morphologyEx(loose, cv2.MORPH_OPEN, np.ones((max(3, h // 2), 1), np.uint8))
    across = cv2.morphologyEx(loose, cv2.MORPH_OPEN, np.ones((1, max(3, 2 * w // 3)), np.uint8))
    straight = cv2.dilate(np.maximum(down, across), np.ones((3, 3), np.uint8)) > 0
    rest = darkness[~straight]
    strong = float(np.percentile(rest, 99.5)) if rest.size else 0.0
    return (darkness > max(low, share * strong)) & ~straight


def _split_line(profile: np.ndarray, y0: int, y1: int, min_height: int, out: list[tuple[int, int]]) -> None:
    """Append rows y0..y1 to ``out``, cut where the ink profile (smoothed over 5 rows) falls under 35% of the
    lower of its highest points on either side: two lines that touch (a descender meeting the next line's top).
    Each part keeps at least ``min_height`` rows."""
    seg = np.convolve(profile[y0:y1], np.ones(5) / 5, mode="same")
    if len(seg) >= 2 * min_height + 4:
        k = min_height + int(np.argmin(seg[min_height : len(seg) - min_height]))
        if seg[k] < 0.35 * min(seg[:k].max(), seg[k:].max()):
            _split_line(profile, y0, y0 + k, min_height, out)
            _split_line(profile, y0 + k, y1, min_height, out)
            return
    out.append((y0, y1))


def text_lines(gray: np.ndarray, min_height: int = 8) -> list[tuple[int, int]]:
    """The rows (y0, y1) of a cell's lines of writing, top to bottom, from its ink's row profile; ``gray`` is a
    uint8 cell several lines tall (a column line is a straight run of half its height).

    Ruled lines, column lines and the scanner's margins are left out first (:func:`_cell_ink`). Rows with ink are
    then grouped; gaps of a few rows inside a line (a loop's top, a dot) do not split it, a deep valley between
    two touching lines does. Last, each line is checked against the strokes it holds (:func:`_own_strokes`)."""
    if min_height < 1:
        raise ValueError(f"min_height must be at least 1, not {min_height}")
    h, w = gray.shape
    if h < 2 * min_height or w < 4:
        return []
    ink = _cell_ink(gray)
    opened = cv2.morphologyEx(ink.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    profile = opened.sum(axis=1).astype(np.float32)
    if profile.max() <= 0:
        return []
    on = profile > max(2.0, 0.06 * float(profile.max()))
    lines: list[tuple[int, int]] = []
    y = 0
    while y < h:
        if not on[y]:
            y += 1
            continue
        y0 = y
        gap = 0
        while y < h and (on[y] or gap < 3):
            gap = 0 if on[y] else gap + 1
            y += 1
        y1 = y - gap
        if y1 - y0 >= min_height:
            _split_line(profile, y0, y1, min_height, lines)
    return _own_strokes(ink, lines)


def _own_strokes(ink: np.ndarray, lines: list[tuple[int, int]], thin: float = 0.6, tail: float = 0.6,
                 min_px: int = 6) -> list[tuple[int, int]]:
    """The located lines checked against the strokes they hold. Each stroke (a connected piece of ink of at least
    ``min_px`` pixels) belongs to the line nearest its centre.

    A line apart from the one above it (not cut from it at a valley) whose ink is at least ``tail`` other lines'
    strokes is no line of its own and is left out: the end of a stroke hanging down (a year's long tail), or the
    top of a tall letter or of a line standing above the rows the profile found for it. A line below the first
    thinner than ``thin`` of the tallest grows towards its own strokes (none taller than 1.5 times the tallest
    line), by at most half the tallest line's height each way and never into its neighbours: hairline strokes fall
    under the row profile's bar, so only a loop's rows were found and the digits' tops were cut off. The first line
    and thicker lines stay as located: the readers learnt their lines from this locator, and growing every line to
    all its strokes cost register years more than it gave."""
    if not lines:
        return lines
    _, labels, stats, centres = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    tops = np.array([y0 for y0, _ in lines], np.float64)
    bottoms = np.array([y1 for _, y1 in lines], np.float64)
    cy = centres[:, 1:2]  # each stroke's centre row against every line's rows: 0 inside, else the distance
    gap = np.where((cy >= tops) & (cy < bottoms), 0.0, np.minimum(np.abs(cy - tops), np.abs(cy - bottoms)))
    owner = np.where(stats[:, cv2.CC_STAT_AREA] >= min_px, np.argmin(gap, axis=1), -1)
    owner[0] = -1  # the background
    kept: list[int] = []
    for k, (y0, y1) in enumerate(lines):
        held = labels[y0:y1].ravel()
        held = held[owner[held] >= 0]
        apart = k > 0 and y0 > lines[k - 1][1]
        if not apart or held.size == 0 or np.mean(owner[held] != k) < tail:
            kept.append(k)  # the first line is always kept
    tallest = max(lines[k][1] - lines[k][0] for k in kept)
    heights = stats[:, cv2.CC_STAT_HEIGHT]
    out = [lines[k] for k in kept]
    for j in range(1, len(kept)):
        y0, y1 = out[j]
        mine = (owner == kept[j]) & (heights <= 1.5 * tallest)
        if y1 - y0 >= thin * tallest or not mine.any():
            continue
        reach = tallest // 2
        top = max(y0 - reach, int(stats[mine, cv2.CC_STAT_TOP].min()))
        bottom = min(y1 + reach, int((stats[mine, cv2.CC_STAT_TOP] + heights[mine]).max()))
        below = out[j + 1][0] if j + 1 < len(out) else ink.shape[0]
        out[j] = (int(max(out[j - 1][1], min(y0, top))), int(min(below, max(y1, bottom))))
    return out


def line_rows(height: int, lines: list[tuple[int, int]], k: int) -> tuple[int, int]:
    """Rows y0..y1 of line ``k`` of :func:`text_lines` with a quarter of its height above and below (the margins a
    field's frame would leave), within a crop ``height`` rows tall."""
    y0, y1 = lines[k]
    pad = max(2, (y1 - y0) // 4)
    return max(0, y0 - pad), min(height, y1 + pad)


def line_crop(gray: np.ndarray, lines: list[tuple[int, int]], k: int) -> np.ndarray | None:
    """Line ``k`` of :func:`text_lines` cut out of its cell (:func:`line_rows`), or None when the cell has fewer
    lines."""
    if len(lines) <= k:
        return None
    y0, y1 = line_rows(gray.shape[0], lines, k)
    return gray[y0:y1]
