"""What a caller's crop holds besides the writing, and where the writing is.

A crop cut by the caller may hold a printed frame (a box or a comb), and, when it has none, print along it: a
scanner's black margin, printed column rules (whole, in the pieces a light scan leaves, or leaning across a skewed
scan), ruled lines, a form's imprint. None of it is writing, and each would otherwise pass for a "1" or set the
field's scale. A crop cut tight round the writing is the other case: its digits run nearly from edge to edge, and a
"1" there is writing, not a rule.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from formocr.objects import Box, CleanPage, Page
from formocr.preprocess import to_gray


@dataclass(frozen=True)
class Frame:
    """A printed frame found in a crop: its box (borders inside, as in templates) and comb cells (0 = none)."""

    box: Box
    cells: int


def find_frame(layout_ink: np.ndarray) -> Frame | None:
    """The printed rectangle (and comb walls) of a crop, from its long straight strokes; None without one.

    A frame needs a top and a bottom line running most of the crop's width; its sides are the outermost
    vertical strokes joining them (else the ends of the lines): a digit's stem, however tall, is no side. Three
    or more evenly spaced walls make a comb.
    """
    ink8 = np.asarray(layout_ink).astype(np.uint8)
    h, w = ink8.shape
    if h < 8 or w < 8:
        return None
    horiz = cv2.morphologyEx(ink8, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (max(8, w // 3), 1)))
    rows = np.flatnonzero(horiz.sum(axis=1) >= 0.4 * w)
    if len(rows) < 2:
        return None
    runs = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)
    top, bottom = runs[0], runs[-1]
    y0, y1 = int(top[0]), int(bottom[-1]) + 1
    if len(runs) < 2 or y1 - y0 < 0.2 * h or y1 - y0 < 8:
        return None
    fh = y1 - y0
    tall = cv2.getStructuringElement(cv2.MORPH_RECT, (1, max(4, round(0.7 * fh))))
    vert = cv2.morphologyEx(ink8[y0:y1], cv2.MORPH_OPEN, tall)
    cols = np.flatnonzero(vert.sum(axis=0) >= 0.7 * fh)
    xs = np.flatnonzero(horiz[y0:y1].any(axis=0))
    x0, x1 = int(xs[0]), int(xs[-1]) + 1
    cells, walled = 0, False
    if len(cols):
        walls = np.split(cols, np.flatnonzero(np.diff(cols) > 1) + 1)
        # a printed wall runs from the top line into the bottom one; a digit's stem inside the box stops short of one
        reach = [np.asarray(vert[:, g].any(axis=1)) for g in walls]
        joined = [g for g, r in zip(walls, reach) if r[: len(top) + 2].any() and r[fh - len(bottom) - 2 :].any()]
        walled = len(joined) >= 2
        if walled:
            x0, x1 = int(joined[0][0]), int(joined[-1][-1]) + 1
        # A comb: walls at every 1/n of the frame (a tall "1" may stand anywhere, but not at all of them).
        is_wall = np.zeros(w + 1, bool)
        is_wall[cols] = True
        tol = max(2, round(0.01 * (x1 - x0)))
        for n in range(min(40, (x1 - x0) // 8), 2, -1):
            at = [x0 + round(i * (x1 - x0) / n) for i in range(1, n)]
            if all(is_wall[max(0, a - tol) : a + tol + 1].any() for a in at):
                cells = n
                break
    # a printed box's walls are joined by straight lines running from one to the other; a loop's sides are not
    boxed = walled and all(horiz[r, x0:x1].any(axis=0).mean() >= 0.8 for r in (top, bottom))
    if x1 - x0 < 8 or (not boxed and _own_strokes(ink8, horiz.astype(bool), Box(x0, y0, x1 - x0, fh))):
        return None
    return Frame(Box(x0, y0, x1 - x0, fh), cells)


OWN_STROKES = 0.9  # share of a "frame's" inside ink joined to its lines above which the lines are the writing's


def _own_strokes(ink8: np.ndarray, lines: np.ndarray, box: Box) -> bool:
    """Whether the top and bottom "lines" of a frame without side walls are strokes of the writing itself: a digit
    cut tight round its ink has a straight top and a loop's flat bottom as long as the crop is wide. A printed
    frame's lines touch some of the writing inside (a digit across the bottom line) but not all of it; a digit's
    strokes are all joined to them (on register cells the share is at most 0.8, on tight single digits at least
    0.93). A box, walls joined by its lines, is print whatever touches it."""
    _, labels = cv2.connectedComponents(ink8, connectivity=8)
    ids = np.unique(labels[lines])
    inside = np.zeros(lines.shape, bool)
    inside[box.y : box.y2, box.x : box.x2] = True
    other = inside & (ink8 > 0) & ~lines
    n = int(other.sum())
    return n > 0 and int((other & np.isin(labels, ids[ids > 0])).sum()) >= OWN_STROKES * n


def without_margins(page: Page) -> Page:
    """The crop with a scanner's black margin along its left or right side painted paper-white: columns dark over
    nearly the whole height, and the ragged edge beside them. A margin is no writing, and its edge would
    otherwise pass for a frame or a "1"."""
    gray = to_gray(page.image)
    h, w = gray.shape[:2]
    if h < 8 or w < 8:
        return page
    paper = float(np.percentile(gray, 90))
    dark = (gray < 0.45 * paper).mean(axis=0)
    margin = dark >= 0.9
    if not margin.any():
        return page
    for side in (1, -1):  # grow each margin run over its ragged edge
        idx = range(w) if side == 1 else range(w - 1, -1, -1)
        prev = False
        for i in idx:
            if prev and not margin[i] and dark[i] >= 0.2:
                margin[i] = True
            prev = bool(margin[i])
    # a margin lies along a side; a dark column inside is a rule (crop_print's) or, in a tight crop, a "1"
    n_left, n_right = (w, w) if margin.all() else (int(np.argmin(margin)), int(np.argmin(margin[::-1])))
    margin[:] = False
    margin[:n_left] = True
    margin[w - n_right :] = True
    if not margin.any():
        return page
    edge = np.nonzero(margin)[0]
    image = page.image.copy()
    fill = np.median(page.image[:, ~margin].reshape(-1, *page.image.shape[2:]), axis=0) if (~margin).any() else 255
    image[:, edge] = np.asarray(fill, image.dtype)
    return replace(page, image=image)


STROKES_FILL = 0.6  # a pen's strokes cover at most this share of their box; a scanner margin's dark mass more


def writing_box(clean: CleanPage, print_removed: bool = False) -> Box | None:
    """The box around a bare crop's writing, print and specks left out, padded by a third of its height above
    and below and half of it at the sides (the margins a field's frame would leave); None when there is none."""
    ink = clean.ink if print_removed else clean.ink & ~crop_print(clean.ink, clean.gray)
    if ink.size == 0:
        return None
    h, w = ink.shape
    n, _, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    if n <= 1:
        return None
    st = stats[1:]
    x, y, cw, ch, area = (st[:, k] for k in range(5))
    # a thin stroke running on past the crop's top and bottom, or a mark nearly as wide as the crop, is print (a
    # wider one from edge to edge is a digit of a crop cut tight round the writing); a thin one two fifths as tall as
    # the crop is a rule's piece or a margin's edge unless it is a "1" as tall as the writing beside it (joined
    # below); a wide mark that tall is writing a tight crop holds (touching digits)
    through, wide = (y == 0) & (y + ch >= h) & (cw < 0.3 * ch), cw >= 0.9 * w
    tall = (ch >= 0.4 * h) & (cw <= 0.3 * ch)
    flat = (cw >= 6 * ch) & (ch <= 0.1 * h)  # a piece of a ruled line
    ok = ~(through | tall | wide | flat) & (area >= 6) & (ch >= 3)
    if not ok.any():
        return None
    # the writing is the line around the heaviest stroke: dust, print and a neighbour's strokes lie off it; a mark
    # under a third of the crop's height wholly inside its top or bottom eighth, or cut by its top or bottom edge
    # with its middle in the outer sixth, is the form's imprint or the next row's writing (only a tall crop has
    # room for one)
    cy = y + ch / 2
    cut = ((y <= 0) & (cy <= h / 6)) | ((y + ch >= h) & (cy >= h - h / 6))
    rim = (ch < 0.3 * h) & ((y + ch <= h / 8) | (y >= h - h / 8) | cut)
    pick = ok & ~rim if (ok & ~rim).any() else ok
    # the line is found from a digit's shape: an underline or a rule's piece may be heavier than the digits over it
    # (not from a dot or a speck beside a "1")
    heavy = area >= LINE_SHAPE_AREA * np.max(np.where(pick, area, 0))
    shaped = pick & heavy & (cw < LINE_SHAPE * ch) & (ch < LINE_SHAPE * cw)
    pick = shaped if shaped.any() else pick
    main = int(np.argmax(np.where(pick, area, -1)))
    my0, my1 = y[main], y[main] + ch[main]
    mh = max(int(ch[main]), 1)
    on_line = (cy >= my0 - 0.6 * mh) & (cy <= my1 + 0.6 * mh) & (ch >= 0.2 * mh)
    # a thin stroke that tall but no taller than the writing is its "1"; a rule or a margin's edge outgrows it
    digit_high = tall & ~through & ~wide & (area >= 6) & (ch <= 1.3 * mh)
    reach = np.where(ok | digit_high, 1.5 * mh, -np.inf)
    kept = {main}
    grew = True
    while grew:  # join neighbours along the line, a few digit heights apart at most
        grew = False
        lo = min(x[k] for k in kept)
        hi = max(x[k] + cw[k] for k in kept)
        for k in np.nonzero(on_line & np.isfinite(reach))[0]:
            if int(k) not in kept and x[k] <= hi + reach[k] and x[k] + cw[k] >= lo - reach[k]:
                kept.add(int(k))
                grew = True
    ks = sorted(kept)
    x0, y0 = int(x[ks].min()), int(y[ks].min())
    x1, y1 = int((x[ks] + cw[ks]).max()), int((y[ks] + ch[ks]).max())
    ph, pw = max(2, (y1 - y0) // 3), max(2, (y1 - y0) // 2)
    x0, y0, x1, y1 = max(0, x0 - pw), max(0, y0 - ph), min(w, x1 + pw), min(h, y1 + ph)
    return Box(x0, y0, x1 - x0, y1 - y0)


LINE_SHAPE = 3.0  # a mark this many times wider than tall, or taller than wide, is no digit to find the line from
LINE_SHAPE_AREA = 0.3  # ... nor is one lighter than this share of the heaviest mark
RULE_WIDTH = 0.25  # a printed column rule, its soft sides included, is at most this share of the crop's height wide


def crop_print(ink: np.ndarray, gray: np.ndarray | None = None, full: float = 0.9, ragged: float = 0.4
               ) -> np.ndarray:
    """What in a caller's crop is print around the writing, not writing: columns inked over nearly the crop's whole
    height (a scanner's black margin, a printed column rule; a margin's ragged edge with it) and rows inked over
    nearly its whole width (a ruled line), strokes running on past its top and bottom, a thin rule in pieces, and
    the hairline a light scan leaves of a rule.
    Pen strokes cover no such column or row unless the crop is cut tight round them: then a mark as tall as the
    crop and as wide as a digit stands beside them, and they stay writing. What is left is the writing; a crop of
    nothing but print comes back empty, to be reviewed."""
    h, w = ink.shape
    out = np.zeros(ink.shape, bool)
    if h < 4 or w < 4:
        return out
    if gray is not None:  # a black margin the binarizer took for background is still print
        paper = float(np.percentile(gray, 90))
        ink = ink | (gray < 0.45 * paper)
    for axis, n in ((1, h), (0, w)):  # ruled lines first: they are not the writing's height
        cover = ink.mean(axis=axis)
        hit = cover >= full
        if not hit.any():
            continue
        grown = hit.copy()
        for i in np.nonzero(hit)[0]:  # a margin's ragged edge and a rule's soft sides go with it
            for step in (-1, 1):
                j = i + step
                while 0 <= j < n and not grown[j] and (cover[j] >= ragged or abs(j - i) <= 1):
                    grown[j] = True
                    j += step
        if axis == 0:
            left = ink & ~out  # the ruled lines already out
            for a, b in flag_runs(grown):  # a stroke inside a crop cut tight round the writing is writing
                if a == 0 or b == w:
                    continue
                beside = left.copy()
                beside[:, a:b] = False
                # ... and so is one as wide as a digit with its soft sides (an "8" cut tight): a rule is thin, and
                # a dark band that wide (a scanner's margin short of the side) is no strokes
                wide = b - a > RULE_WIDTH * h and ink[:, a:b].mean() < STROKES_FILL
                if wide or _tall_writing_beside(beside):
                    grown[a:b] = False
            out[:, grown] = True
        else:
            out[grown, :] = True
    out &= ink
    # a stroke running through the crop from its top edge to its bottom edge goes on beyond it: print
    n, labels, stats, _ = cv2.connectedComponentsWithStats((ink & ~out).astype(np.uint8), connectivity=8)
    through = np.zeros(n, bool)
    top, tall = stats[1:, cv2.CC_STAT_TOP], stats[1:, cv2.CC_STAT_HEIGHT]
    # (unless the crop is cut tight round writing as tall as it: then the mark is that writing or stands beside it)
    through[1:] = (top <= 1) & (top + tall >= h - 1) & ~_tall_marks(stats, w, h).any()
    out |= through[labels]
    out |= _sloping_rules(ink & ~out)
    # ... and so does a thin column rule that a light scan broke into pieces: bridged down the crop, it runs
    # (nearly) from edge to edge, thin for its length
    rest = (ink & ~out).astype(np.uint8)
    bridged = cv2.morphologyEx(rest, cv2.MORPH_CLOSE, np.ones((max(3, h // 8), 1), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bridged, connectivity=8)
    top, tall, area = stats[1:, cv2.CC_STAT_TOP], stats[1:, cv2.CC_STAT_HEIGHT], stats[1:, cv2.CC_STAT_AREA]
    rule = np.zeros(n, bool)
    rule[1:] = (top <= 0.05 * h) & (top + tall >= 0.95 * h) & (area <= 0.03 * w * tall) & ~_tight(stats, w, h)
    if rule.any():  # ... in pieces: one whole stroke that tall is the "1" of a crop cut tight round the writing
        _, pieces = cv2.connectedComponents(rest, connectivity=8)
        for k in np.nonzero(rule)[0]:
            rule[k] = len(np.unique(pieces[(labels == k) & (rest > 0)])) >= 2
    out |= rule[labels] & (rest > 0)
    return out | _hairlines(ink & ~out)


HAIRLINE = 1.5  # a rule's remnant a light scan leaves is at most this many pixels thick on average ...
HAIRLINE_TALL = 0.2  # ... at least this share of the crop's height tall ...
HAIRLINE_OVER = 1.5  # ... and this many times the height of the writing's heaviest marks: a fine nib's "1" is not


def _hairlines(ink: np.ndarray) -> np.ndarray:
    """Hairline pieces of a rule or a margin's edge that the scan left short of the crop's ends: a stroke a pixel
    wide, a fifth of the crop tall or more, and well taller than the digits beside it (a fine nib's "1" as tall as
    the digits is writing, and the speck rule then sends its field to review)."""
    h, w = ink.shape
    _, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    tall, area = stats[:, cv2.CC_STAT_HEIGHT], stats[:, cv2.CC_STAT_AREA]
    hair = (tall >= HAIRLINE_TALL * h) & (area <= HAIRLINE * tall) & (stats[:, cv2.CC_STAT_WIDTH] <= 0.2 * tall)
    hair[0] = False
    others = np.flatnonzero(~hair[1:]) + 1
    if not hair.any() or not len(others):
        return np.zeros(ink.shape, bool)
    heaviest = others[np.argsort(-area[others], kind="stable")[:3]]
    hair &= tall >= HAIRLINE_OVER * tall[heaviest].max()
    hair[1:] &= ~_tight(stats, w, h)
    return hair[labels] if hair.any() else np.zeros(ink.shape, bool)


SLOPE = 0.2  # a rule of a skewed scan runs down the crop leaning by at most this share of its height (about 11°)


def _sloping_rules(ink: np.ndarray) -> np.ndarray:
    """Straight strokes from the crop's top edge to its bottom edge, leaning as a rule of a skewed scan does, in a crop
    taller than its writing. Another stroke joined to one (an underline run into it) leaves it no thin mark of its
    own, so it is found as a line."""
    h = ink.shape[0]
    out = np.zeros(ink.shape, bool)
    segs = cv2.HoughLinesP(ink.astype(np.uint8), 1, np.pi / 360, threshold=max(8, int(0.6 * h)),
                           minLineLength=int(0.9 * h), maxLineGap=max(2, h // 20))
    if segs is None:
        return out
    mask = np.zeros(ink.shape, np.uint8)
    for x0, y0, x1, y1 in segs.reshape(-1, 4):
        lean = abs(int(x1) - int(x0))  # an upright one is a column the rules above judged, with their guards
        if min(y0, y1) <= 0.05 * h and max(y0, y1) >= 0.95 * h and max(2, 0.03 * h) <= lean <= SLOPE * h:
            cv2.line(mask, (int(x0), int(y0)), (int(x1), int(y1)), 1, 3)
    if not mask.any():
        return out
    found = (cv2.dilate(mask, np.ones((3, 3), np.uint8)) > 0) & ink
    # in a crop cut round a line of writing as tall as it, such a stroke is a "1" beside the other digits
    _, _, stats, _ = cv2.connectedComponentsWithStats((ink & ~found).astype(np.uint8), connectivity=8)
    return out if _tall_marks(stats, ink.shape[1], h).any() else found


def flag_runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    d = np.diff(np.r_[0, flags.astype(np.int8), 0])
    return list(zip(np.nonzero(d == 1)[0].tolist(), np.nonzero(d == -1)[0].tolist()))


def _tall_marks(stats: np.ndarray, w: int, h: int, share: float = 0.8) -> np.ndarray:
    """Per component (connected-components ``stats``, the background's first row dropped): a mark of the writing as tall
    as the crop (``share`` of its height, at least a third as wide as tall, clear of the crop's sides), as a "7"
    or a "4" is in a crop cut tight round it; print is thin (a rule) or short (a ruled line, a word)."""
    x, cw = stats[1:, cv2.CC_STAT_LEFT], stats[1:, cv2.CC_STAT_WIDTH]
    ch, area = stats[1:, cv2.CC_STAT_HEIGHT], stats[1:, cv2.CC_STAT_AREA]
    return (ch >= share * h) & (cw >= 0.3 * ch) & (area >= 6) & (x > 0) & (x + cw < w)


def _tight(stats: np.ndarray, w: int, h: int) -> np.ndarray:
    """Per component: whether *another* is a mark as tall as the crop (:func:`_tall_marks`), so a stroke from
    edge to edge is as tall as the writing beside it, not a rule running past it."""
    tall = _tall_marks(stats, w, h)
    return (tall.sum() - tall) > 0


def _tall_writing_beside(ink: np.ndarray) -> bool:
    """Whether ``ink`` (a crop's ink with a column run taken out) holds a mark as tall as the crop."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    return bool(_tall_marks(stats, ink.shape[1], ink.shape[0]).any())
