"""Digits handed over alone: a crop cut tight round a digit or two, or a digit set's tile, given the paper round it
that a field's box would leave, so that what tells print from writing in a bare crop (:mod:`formocr.crop`) does not
take the digit's own strokes for rules or a frame; and a tile stored light on dark turned dark on light.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from formocr.crop import STROKES_FILL, flag_runs
from formocr.objects import Page
from formocr.preprocess import to_gray

TIGHT_PIECES = 3  # a digit cut tight is one mark, or two or three where a thin stroke broke ...
TIGHT_EDGE = 0.06  # ... lying no further than this share of the crop's height from any of its sides
STROKE_WIDTH = 0.75  # a pen's stroke is thinner than this share of the crop's height; a shadow's dark mass is not
# A digit set's tile cut to its digit's height and centred across (USPS's 16 px, a sorter's cut): this many pixels
# tall at most, with at most this share of its height of paper on either side. A register cell is far taller, and
# its column rule beside the writing is no such centred mark.
TILE_PX = 64
TILE_SIDE = 0.5
TILE_FILL = 0.5  # a square tile's digit fills at least this share of its height or width (MNIST's 20 px of 28) ...
TILE_OFF = 0.2  # ... its box's centre this share of the tile's side from the tile's centre at most
RULE_THIN = 0.15  # a piece this many times as tall as it is wide, or flatter, running across this share of the
RULE_SPAN = 0.7  # tile and past the rest on both sides is a ruled line (a digit's loose bar stops at its stem)
SHEET_FILL = 0.9  # a light patch whose outline fills this share of its rectangle is a sheet, not a bold digit
LIGHT_SHARE = 0.45  # writing light on dark is a minority of the crop ...
BOLD_SHARE = 0.8  # ... but a bold digit stretched to fill a digit set's tile (USPS's 16 px) lights up to this share
BOLD_PX = 32  # ... of a tile this small at most (no photograph's bright middle is)
TILE_DARK_PX = 128  # a crop light on dark is turned over only up to this size: a digit set's tile, not a photo


def paper_up(page: Page) -> Page:
    """A small crop of light writing on a dark ground (digit sets store MNIST's and USPS's tiles so) turned dark on
    light, as every reader learnt it; any other crop as it is. Its ground is dark when its border and most of it
    are, and its writing is what is clearly lighter: a minority of it (of a digit set's tile, up to four fifths: a
    bold digit stretched to fill USPS's 16 px), in strokes (paper beside a scanner's black
    margin runs along the crop's edge, a sheet or a label photographed on a dark table is a rectangle, and a shadow
    leaves the paper far lighter than this)."""
    image = page.image
    if image.dtype != np.uint8 or min(image.shape[:2]) < 4 or max(image.shape[:2]) > TILE_DARK_PX:
        return page
    gray = to_gray(image)
    ring = np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])
    ground = float(np.median(ring))
    if ground >= 96:
        return page
    light = (gray > ground + 64).astype(np.uint8)
    bold = max(gray.shape[:2]) <= BOLD_PX  # a digit set's tile: a bold digit may light most of it
    if not 0.01 <= float(light.mean()) <= (BOLD_SHARE if bold else LIGHT_SHARE):
        return page
    if not bold and float(np.median(gray)) >= 96:
        return page
    _, labels, stats, _ = cv2.connectedComponentsWithStats(light, connectivity=8)
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    _, _, bw, bh, area = (int(v) for v in stats[k])
    if min(bw, bh) > 0.3 * min(gray.shape[:2]):
        # A broad patch is paper when, filled, it runs along the crop's edge (beside a wide black margin), or when
        # it is a sheet's or a label's rectangle, upright or turned; a bold digit on a tile's dark ground meets the
        # edge at its strokes' ends only, and its outline is rounder.
        patch = labels == k
        sides = (patch[0], patch[-1], patch[:, 0], patch[:, -1])
        along = max(max((b - a for a, b in flag_runs(side)), default=0) / len(side) for side in sides)
        if (along >= 0.5 and area > STROKES_FILL * bw * bh) or _sheet_like(patch):
            return page
    return replace(page, image=255 - image[..., :3] if image.ndim == 3 else 255 - image)


def _sheet_like(patch: np.ndarray) -> bool:
    """Whether a light patch's outline, its holes (the writing on it) filled, fills the smallest rectangle round it,
    upright or turned, as a sheet or a label does; a bold digit's outline is rounder (a 0's is an ellipse, π/4)."""
    contours, _ = cv2.findContours(patch.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    outline = max(contours, key=cv2.contourArea)
    (_, _), (rw, rh), _ = cv2.minAreaRect(outline)
    return float(cv2.contourArea(outline)) > SHEET_FILL * max(rw * rh, 1.0)


def _centred_tile(stats: np.ndarray, pieces: np.ndarray, area: np.ndarray, x: int, cw: int, w: int, h: int) -> bool:
    """Whether writing that runs from the crop's top to its bottom, with paper beside it, is one digit of a tile cut
    to its height: a small crop, the mark centred across it with at most :data:`TILE_SIDE` of the height of paper
    either side, every piece standing over the largest (a digit's pieces, not a rule beside a number)."""
    if h > TILE_PX or max(x, w - x - cw) > TILE_SIDE * h or abs(x + cw / 2 - w / 2) > 0.1 * w:
        return False
    return _over_largest(stats, pieces, area)


def _over_largest(stats: np.ndarray, pieces: np.ndarray, area: np.ndarray) -> bool:
    """Whether every piece's centre stands over the largest piece: a digit's pieces, not a rule beside a number."""
    big = pieces[int(np.argmax(area[pieces - 1]))]
    centres = stats[pieces, cv2.CC_STAT_LEFT] + stats[pieces, cv2.CC_STAT_WIDTH] / 2
    left, right = stats[big, cv2.CC_STAT_LEFT], stats[big, cv2.CC_STAT_LEFT] + stats[big, cv2.CC_STAT_WIDTH]
    return bool(((centres >= left) & (centres <= right)).all())


def _boxed_tile(labels: np.ndarray, stats: np.ndarray, pieces: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """Whether writing with paper all round it is one digit of a digit set's square tile (MNIST's and CVL's 28×28:
    the digit scaled to 20 px and centred): a small, nearly square crop, the mark at least half its size and
    centred in it, every piece standing over the largest, no piece a ruled line (flat, across most of the tile and
    past the other pieces on both sides)."""
    x, y, cw, ch = box
    h, w = labels.shape
    area = stats[1:, cv2.CC_STAT_AREA]
    if max(h, w) > TILE_PX or not 2 / 3 <= w / h <= 3 / 2 or max(cw / w, ch / h) < TILE_FILL:
        return False
    if min(x, y, w - x - cw, h - y - ch) < 1:
        return False
    if abs(x + cw / 2 - w / 2) > TILE_OFF * w or abs(y + ch / 2 - h / 2) > TILE_OFF * h:
        return False
    lefts, widths = stats[pieces, cv2.CC_STAT_LEFT], stats[pieces, cv2.CC_STAT_WIDTH]
    rights, heights = lefts + widths, stats[pieces, cv2.CC_STAT_HEIGHT]
    for k in range(len(pieces)):  # a ruled line over or under a digit in a small box's crop, not a 7's or 5's bar
        others = np.arange(len(pieces)) != k
        flat = heights[k] <= RULE_THIN * widths[k] and widths[k] >= RULE_SPAN * w
        if flat and others.any() and (lefts[k] < lefts[others].min()) and (rights[k] > rights[others].max()):
            return False
    return _over_largest(stats, pieces, area)


def _encloses(labels: np.ndarray, pieces: np.ndarray) -> bool:
    """Whether a piece's loop holds another piece: a circle or a box drawn round the digit, not a digit's pieces."""
    for j in pieces if len(pieces) > 1 else ():
        outside = cv2.copyMakeBorder((labels == j).astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
        cv2.floodFill(outside, None, (0, 0), 2)
        if np.isin(labels[outside[1:-1, 1:-1] == 0], pieces[pieces != j]).any():
            return True
    return False


def with_room(page: Page) -> tuple[Page, int]:
    """A crop cut tight round a digit or two (cut to their ink, as digit data sets and sorting machines hand them
    over), given the paper round it that a field's box would leave: a third of its height on every side; and how
    many pixels were added on each side (0: the crop as it was), to map what is found back into the caller's crop.

    Cut to its ink, a digit runs from edge to edge, and what tells print from writing in a bare crop (strokes
    from edge to edge are rules, rows inked across the whole width are ruled lines) would take it for print. The
    writing is at most three pieces (a small digit's thin strokes break), specks aside, and strokes, not a dark
    mass (nor one as thick as the crop is tall: a lamp's shadow binarized with the digits inside it); a printed
    frame cut tight is no such mark: its outline is inked along both its top and bottom rows or
    both its sides. (A digit on a ruled line, cut tight, keeps the line along one edge as a 7 keeps its bar; given
    paper, the line is no longer as wide as the crop, and is read with the digit.) A digit set's tile cut to its
    digit's height only, the digit centred across it (USPS's 16 px zip-code digits), has paper at its sides: it is
    such a crop when it is small and the mark one centred digit (:func:`_centred_tile`); otherwise a "1" or a 9's
    stem from its top to its bottom edge is taken for a rule and left out. So is MNIST's square tile, paper all
    round the digit (:func:`_boxed_tile`): otherwise a 0's or a 5's loop is found as a printed box. A circle or a
    box drawn round the digit, whose loop holds it, is no digit's stroke: such a crop keeps the bare crop's road."""
    gray = to_gray(page.image)
    h, w = gray.shape[:2]
    if h < 8 or w < 4 or int(gray.max()) - int(gray.min()) < 32:
        return page, 0
    _, ink = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    area = stats[1:, cv2.CC_STAT_AREA]
    pieces = 1 + np.flatnonzero(area >= 0.02 * area.sum()) if n > 1 else np.zeros(0, int)
    if not 1 <= len(pieces) <= TIGHT_PIECES:
        return page, 0
    writing = np.isin(labels, pieces)
    x, y, cw, ch = cv2.boundingRect(writing.astype(np.uint8))
    near = max(2, round(TIGHT_EDGE * h))  # paper this narrow at most on each side
    mass = int(area[pieces - 1].sum()) > STROKES_FILL * cw * ch and cw > 0.3 * ch  # a straight "1" fills its box
    if mass:
        return page, 0
    if max(y, h - y - ch) > near:
        if not _boxed_tile(labels, stats, pieces, (x, y, cw, ch)):
            return page, 0
    elif max(x, w - x - cw) > near and not _centred_tile(stats, pieces, area, x, cw, w, h):
        return page, 0
    # a paper border first: the transform takes the image's edge for ink, and a stroke along it would count double
    bordered = cv2.copyMakeBorder(writing.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    if 2 * float(cv2.distanceTransform(bordered, cv2.DIST_L2, 3).max()) > STROKE_WIDTH * h:
        return page, 0  # a lamp's shadow binarized into one dark mass with the digits in it
    mark = writing[y : y + ch, x : x + cw]
    rows, cols = mark.mean(axis=1), mark.mean(axis=0)
    one = h <= TILE_PX and cw <= 0.3 * ch  # a tile's upright "1" inks its box's edges as a frame's outline would
    framed = (rows[:2].max() >= 0.9 and rows[-2:].max() >= 0.9) or (cols[:2].max() >= 0.9 and cols[-2:].max() >= 0.9)
    if (framed and not one) or _encloses(labels, pieces):
        return page, 0  # a frame's outline, or a circle or a box drawn round the digit
    pad = max(2, round(h / 3))
    image = page.image
    paper = np.percentile(image.reshape(h * w, -1), 90, axis=0)
    value = [float(v) for v in paper] if image.ndim == 3 else float(paper[0])
    return replace(page, image=cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=value)), pad
