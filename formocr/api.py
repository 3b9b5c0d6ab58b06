"""Reading one field the caller already found: ``read_field`` and ``read_postal_code``.

Why a separate entry point: many users have their own layout code (a cheque scanner that cuts the amount strip,
a sorting machine that finds the postal-code boxes) and only want the digits. Both functions go down the
pipeline's own road, not a copy of it: :func:`formocr.preprocess.preprocess` (greyscale, deskew, colour drop-out,
binarization) on the crop, then :class:`formocr.read.FieldReader` with one :class:`FieldRegion` covering the
field, so a crop reads exactly as the same field on a whole page would.

Where the field lies in the crop: when the crop holds a printed frame (a box, a comb, drop-out colour included)
the frame is found from the crop's long straight strokes and becomes the field's box (so comb cells line up
whatever margin the caller left); otherwise the whole crop is the field.

Resolution: ``dpi=None`` assumes the field (the printed frame when there is one, else the crop) is 10 mm tall,
the usual height of a handwriting box (postal-code boxes 8-12 mm, cheque amount boxes 9-13 mm); pass ``dpi``
when it is known. Models are loaded once per process (per options) and shared by every call.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from formocr.errors import ConfigError, RegistrationError, TemplateError
from formocr.fields import POSTAL_PATTERNS
from formocr.io import load_pages
from formocr.layout.template import FIELD_TYPES, STYLES, check_constraints
from formocr.objects import Box, CleanPage, FieldRegion, FieldResult, Page, PostalCode
from formocr.options import Options
from formocr.preprocess import preprocess, to_gray

__all__ = ["FieldReaderAPI", "read_field", "read_postal_code"]

FIELD_HEIGHT_MM = 10.0  # assumed height of a field when no dpi is given
ENVELOPE_MAX_ASPECT = 2.5  # wider than this (w/h) is a cut-out field, not an envelope (DL 2.0, US #10 2.3)
ENVELOPE_MIN_SIDE = 300  # px: smaller images are crops whatever their shape
FRAME_SEEN = 0.35  # share of the postal field's frame registration must find before the envelope road is trusted


def _check_constraints(field_type: str, c: dict[str, Any]) -> dict[str, Any]:
    """The template format's rules per type (one check for both); unknown keys and bad values are a ConfigError
    naming the key."""
    given = {k: v for k, v in c.items() if v is not None}
    check_constraints(field_type, given)
    return given


@dataclass(frozen=True)
class Frame:
    """A printed frame found in a crop: its box (borders inside, as in templates) and comb cells (0 = none)."""

    box: Box
    cells: int


def find_frame(layout_ink: np.ndarray) -> Frame | None:
    """The printed rectangle (and comb walls) of a crop, from its long straight strokes; None without one.

    A frame needs a top and a bottom line running most of the crop's width; its sides are the outermost
    vertical strokes spanning the frame's height (else the ends of the lines). Three or more evenly spaced
    walls make a comb.
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
    cells = 0
    if len(cols):
        walls = np.split(cols, np.flatnonzero(np.diff(cols) > 1) + 1)
        if len(walls) >= 2:
            x0, x1 = int(walls[0][0]), int(walls[-1][-1]) + 1
        # A comb: walls at every 1/n of the frame (a tall "1" may stand anywhere, but not at all of them).
        is_wall = np.zeros(w + 1, bool)
        is_wall[cols] = True
        tol = max(2, round(0.01 * (x1 - x0)))
        for n in range(min(40, (x1 - x0) // 8), 2, -1):
            at = [x0 + round(i * (x1 - x0) / n) for i in range(1, n)]
            if all(is_wall[max(0, a - tol) : a + tol + 1].any() for a in at):
                cells = n
                break
    if x1 - x0 < 8:
        return None
    return Frame(Box(x0, y0, x1 - x0, fh), cells)


def _load(image: str | Path | np.ndarray, options: Options) -> Page:
    """The first page of a path, or an array, with the loader's own checks (typed errors naming the problem)."""
    if not isinstance(image, (str, Path, np.ndarray)):
        raise ConfigError(f"image must be a numpy array or a path, not a {type(image).__name__}")
    from formocr.io import LoadLimits

    pages = load_pages(image, dpi=options.dpi, limits=LoadLimits(max_pixels=options.max_pixels, max_pages=1))
    return next(iter(pages))


class FieldReaderAPI:
    """Loaded models and options for :meth:`read_field` / :meth:`read_postal_code`; hold one to reuse them.

    The module-level functions keep one per distinct :class:`Options` (models are shared between them).
    """

    def __init__(self, options: Options | None = None) -> None:
        from formocr.pipeline import Pipeline

        self.options = options or Options()
        self.pipeline = Pipeline(self.options.replace(template=None))
        self._envelope: dict[str, Any] = {}
        self._lock = threading.Lock()

    # --- one field ----------------------------------------------------------------------------------------

    def read_field(self, image: str | Path | np.ndarray, field_type: str, *, style: str = "box",
                   cells: int | None = None, dpi: float | None = None, name: str = "field",
                   **constraints: Any) -> FieldResult:
        """Read one field cut out by the caller (see :func:`formocr.read_field`)."""
        if field_type not in FIELD_TYPES:
            raise ConfigError(f"field_type: {field_type!r} is not one of {', '.join(FIELD_TYPES)}")
        if style not in STYLES:
            raise ConfigError(f"style: {style!r} is not one of {', '.join(STYLES)}")
        if cells is not None and (not isinstance(cells, int) or isinstance(cells, bool) or not 1 <= cells <= 64):
            raise ConfigError(f"cells: expected an integer 1..64, got {cells!r}")
        if cells is not None and style != "comb":
            raise ConfigError("cells: only comb fields have cells")
        cons = _check_constraints(field_type, constraints)
        page = _load(image, self.options)
        return self._read_crop(page, field_type, style, cells, dpi, name, cons)[0]

    def _read_crop(self, page: Page, field_type: str, style: str, cells: int | None, dpi: float | None,
                   name: str, cons: dict[str, Any]) -> tuple[FieldResult, Frame | None]:
        clean, region, frame = self.prepare_crop(page, field_type, style, cells, dpi, name, cons)
        work = self.pipeline.reader.read(clean, [region])
        return work[0].result, frame

    def prepare_crop(self, page: Page, field_type: str = "digits", style: str = "box", cells: int | None = None,
                     dpi: float | None = None, name: str = "field", cons: dict[str, Any] | None = None
                     ) -> tuple[CleanPage, FieldRegion, Frame | None]:
        """A caller's crop as the field reader sees it: preprocessed at the resolution its frame or writing gives,
        print around the writing left out, and the field's region. Training cuts real crops through this very
        road, so what the string reader learns from is what it reads."""
        page = without_margins(page)
        if dpi is not None:
            if isinstance(dpi, bool) or not isinstance(dpi, (int, float)) or not 50 <= dpi <= 2400:
                raise ConfigError(f"dpi: expected a number in 50..2400, got {dpi!r}")
            page = replace(page, dpi=float(dpi))
            clean = preprocess(page, self.pipeline.pre)
            frame = find_frame(clean.layout_ink) if style != "free" else None
        else:
            # First pass at a guess, only to find the frame; the resolution then follows from its height, or, in a
            # bare crop, from the height of the writing itself (a 200-px cell with 20-px digits is not a 10-mm field).
            guess = replace(page, dpi=_dpi_for(page.height))
            clean = preprocess(guess, self.pipeline.pre)
            frame = find_frame(clean.layout_ink) if style != "free" else None
            around = writing_box(clean) if frame is None else None
            est = _dpi_for(frame.box.h if frame is not None else around.h if around is not None else page.height)
            if abs(est - guess.dpi) > 0.15 * guess.dpi:
                clean = preprocess(replace(page, dpi=est), self.pipeline.pre)
                if frame is not None:  # a bare crop stays bare: its rules at another scale are still no frame
                    frame = find_frame(clean.layout_ink)
        if style == "comb":
            cells = cells or (frame.cells if frame is not None and frame.cells else None)
            if cells is None:
                raise ConfigError("cells: a comb field needs its number of cells (none could be counted)")
        box = frame.box if frame is not None else Box(0, 0, clean.gray.shape[1], clean.gray.shape[0])
        if frame is None:  # a bare crop: a scanner's margin or a printed rule along it is not writing
            clean = replace(clean, ink=clean.ink & ~crop_print(clean.ink, clean.gray))
            if dpi is None:
                box = writing_box(clean, print_removed=True) or box
        region = FieldRegion(name=name, type=field_type, box=box, style=style, cells=cells,  # type: ignore[arg-type]
                             constraints=cons or {})
        return clean, region, frame

    # --- postal codes -------------------------------------------------------------------------------------

    def read_postal_code(self, image: str | Path | np.ndarray, country: str = "CN", *,
                         dpi: float | None = None, template: str | None = None) -> PostalCode:
        """Read a postal code from a whole envelope or a crop (see :func:`formocr.read_postal_code`)."""
        if country not in POSTAL_PATTERNS:
            raise ConfigError(f"country: expected {' or '.join(POSTAL_PATTERNS)}, got {country!r}")
        page = _load(image, self.options)
        tmpl = template or ("envelope" if country == "CN" else None)
        if tmpl is not None and looks_like_envelope(page.width, page.height):
            found = self._from_envelope(page, tmpl, country, dpi)
            if found is not None:
                return found
        return self._from_crop(page, country, dpi)

    def _envelope_pipeline(self, template: str) -> Any:
        from formocr.pipeline import Pipeline

        with self._lock:
            p = self._envelope.get(template)
            if p is None:
                p = Pipeline(self.options.replace(template=template), classifier=self.pipeline.classifier,
                             strings=self.pipeline.strings)
                self._envelope[template] = p
            return p

    def _from_envelope(self, page: Page, template: str, country: str, dpi: float | None) -> PostalCode | None:
        from formocr.layout.template import load_template
        from formocr.timing import StageTimer

        pipe = self._envelope_pipeline(template)
        if dpi is None:
            # The template knows the envelope's size: the resolution follows from the image's width.
            t = load_template(template)
            dpi = page.width / (t.width_mm / 25.4)
        try:
            work = pipe.process_page(replace(page, dpi=float(dpi)), StageTimer())
        except (RegistrationError, TemplateError):
            return None
        fields = [f for f in work.result.fields if f.type == "postal_code"]
        # the field's printed frame must be where registration put it (registration None: an auto-mode page)
        reg = work.registration
        if not fields or reg is None or reg.per_field.get(fields[0].name, 0.0) < FRAME_SEEN:
            return None
        f = fields[0]
        if f.box.w <= 0 or not f.raw:
            return None
        return _postal(f, country, "envelope")

    def _from_crop(self, page: Page, country: str, dpi: float | None) -> PostalCode:
        # Comb boxes when the crop shows them (CN envelopes), else a box or free writing.
        guess = replace(page, dpi=float(dpi) if dpi is not None else _dpi_for(page.height))
        clean = preprocess(guess, self.pipeline.pre)
        frame = find_frame(clean.layout_ink)
        style = "free" if frame is None else ("comb" if frame.cells >= 3 else "box")
        cells = frame.cells if frame is not None and frame.cells >= 3 else None
        result, _ = self._read_crop(page, "postal_code", style, cells, dpi, "postal_code", {"country": country})
        return _postal(result, country, "crop")


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
    n_left = int(np.argmin(margin)) if not margin.all() else w
    n_right = int(np.argmin(margin[::-1])) if not margin.all() else w
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


def writing_box(clean: CleanPage, print_removed: bool = False) -> Box | None:
    """The box around a bare crop's writing, print and specks left out, padded by a third of its height above
    and below and half of it at the sides (the margins a field's frame would leave); None when there is none."""
    ink = clean.ink if print_removed else clean.ink & ~crop_print(clean.ink, clean.gray)
    h, w = ink.shape
    n, _, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    if n <= 1:
        return None
    st = stats[1:]
    x, y, cw, ch, area = (st[:, k] for k in range(5))
    # a stroke running on past the crop's top and bottom, one nearly as wide as the crop, or a thin one nearly as
    # tall as it (a rule's piece) is print; a wide mark that tall is writing a tight crop holds (touching digits)
    through, wide = (y == 0) & (y + ch >= h), cw >= 0.9 * w
    tall = (ch >= 0.8 * h) & (cw <= 0.3 * ch)
    flat = (cw >= 6 * ch) & (ch <= 0.1 * h)  # a piece of a ruled line
    ok = ~(through | tall | wide | flat) & (area >= 6) & (ch >= 3)
    if not ok.any():
        return None
    # the writing is the line around the heaviest stroke: dust, print and a neighbour's strokes lie off it; in a
    # tall crop, a mark wholly inside its top or bottom eighth is the form's imprint or the next row's writing
    cy = y + ch / 2
    rim = (ch < 0.3 * h) & ((y + ch <= h / 8) | (y >= h - h / 8))
    pick = ok & ~rim if (ok & ~rim).any() else ok
    main = int(np.argmax(np.where(pick, area, -1)))
    my0, my1 = y[main], y[main] + ch[main]
    mh = max(int(ch[main]), 1)
    on_line = (cy >= my0 - 0.6 * mh) & (cy <= my1 + 0.6 * mh) & (ch >= 0.2 * mh)
    # a thin stroke as tall as a tight crop but no taller than the writing is its "1"; a rule outgrows the writing
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


def crop_print(ink: np.ndarray, gray: np.ndarray | None = None, full: float = 0.9, ragged: float = 0.4
               ) -> np.ndarray:
    """What in a caller's crop is print around the writing, not writing: columns inked over nearly the crop's whole
    height (a scanner's black margin, a printed column rule; a margin's ragged edge with it) and rows inked over
    nearly its whole width (a ruled line). Pen strokes never cover a column or row of a crop that holds more than
    them, so what is left is the writing; a crop of nothing but print comes back empty, to be reviewed."""
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
            for a, b in _runs(grown):  # a stroke inside a crop cut tight round the writing is writing
                if a > 0 and b < w and _tall_writing_beside(np.where(_cols(w, a, b), ink & ~out, False)):
                    grown[a:b] = False
            out[:, grown] = True
        else:
            out[grown, :] = True
    out &= ink
    # a stroke running through the crop from its top edge to its bottom edge goes on beyond it: print
    n, labels, stats, _ = cv2.connectedComponentsWithStats((ink & ~out).astype(np.uint8), connectivity=8)
    through = np.zeros(n, bool)
    top, tall = stats[1:, cv2.CC_STAT_TOP], stats[1:, cv2.CC_STAT_HEIGHT]
    through[1:] = (top <= 1) & (top + tall >= h - 1) & ~_tight(stats, w, h)
    out |= through[labels]
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
            rule[k] = len(np.unique(pieces[labels == k])) >= 2
    return out | (rule[labels] & (rest > 0))


def _cols(w: int, a: int, b: int) -> np.ndarray:
    """A row mask of the columns outside [a, b)."""
    m = np.ones(w, bool)
    m[a:b] = False
    return m[None, :]


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    d = np.diff(np.r_[0, flags.astype(np.int8), 0])
    return list(zip(np.nonzero(d == 1)[0].tolist(), np.nonzero(d == -1)[0].tolist()))


def _tall_marks(stats: np.ndarray, w: int, h: int, share: float = 0.8) -> np.ndarray:
    """Per component (connected-components ``stats`` without the background row): a mark of the writing as tall
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


def looks_like_envelope(width: int, height: int) -> bool:
    """Whole envelope or a cut-out field, by shape: envelopes are at most 2.5× as wide as tall."""
    return min(width, height) >= ENVELOPE_MIN_SIDE and width / max(1, height) <= ENVELOPE_MAX_ASPECT


def _dpi_for(field_px: int) -> float:
    return float(min(1200.0, max(75.0, field_px / (FIELD_HEIGHT_MM / 25.4))))


def _postal(f: FieldResult, country: str, source: str) -> PostalCode:
    why = list(f.why)
    needs = f.needs_review
    digits = [c for c in f.chars if c.char.isdigit()]
    want = {"CN": (6,), "US": (5, 9)}[country]
    if len(digits) not in want and not any("postal-code pattern" in w for w in why):
        why.append(f"{len(digits)} digits, a {country} postal code has {' or '.join(map(str, want))}")
    needs = needs or bool(why)
    return PostalCode(
        value=f.value, confidence=float(f.confidence), digits=tuple(f.chars), needs_review=needs, why=tuple(why),
        box=f.box, country=country, source=source, raw=f.raw,  # type: ignore[arg-type]
    )


# --- module-level functions with a cached reader ----------------------------------------------------------

_READERS: dict[Options, FieldReaderAPI] = {}
_READERS_LOCK = threading.Lock()


def reader_for(options: Options | None = None) -> FieldReaderAPI:
    """The process's reader for ``options`` (built on first use; models load once)."""
    opts = options or Options()
    with _READERS_LOCK:
        r = _READERS.get(opts)
        if r is None:
            r = _READERS[opts] = FieldReaderAPI(opts)
        return r


def read_field(image: str | Path | np.ndarray, field_type: str, *, style: str = "box", cells: int | None = None,
               dpi: float | None = None, options: Options | None = None, **constraints: Any) -> FieldResult:
    """Read one field the caller has already cut out (a cheque amount strip, a box, a line of digits).

    ``image``: a numpy array (grey H×W or BGR H×W×3, uint8) or an image/PDF path (first page). ``field_type``:
    digits | amount | date | postal_code; ``constraints`` those of the template format for that type
    (digits/amount: ``min_length``, ``max_length``; amount: ``decimals``; date: ``order``; postal_code:
    ``country`` CN|US or ``pattern``); an unknown key is a :class:`ConfigError` naming it. ``style``: box (a
    printed rectangle, or just a crop of writing), comb (``cells`` boxes; counted from the print when omitted)
    or free. ``dpi``: see the module doc (None = the field is taken to be 10 mm tall). Bad images raise the
    loader's typed errors (:class:`~formocr.errors.EmptyInputError`, ``UnsupportedInputError``,
    ``UnreadableInputError``).
    """
    return reader_for(options).read_field(image, field_type, style=style, cells=cells, dpi=dpi, **constraints)


def read_postal_code(image: str | Path | np.ndarray, country: str = "CN", *, dpi: float | None = None,
                     template: str | None = None, options: Options | None = None) -> PostalCode:
    """Read a postal code (CN: 6 digits; US: ZIP or ZIP+4) from a whole envelope or a cut-out field.

    An image no more than 2.5× as wide as tall (and at least 300 px on its short side) is taken for a whole
    envelope: the code is located by the pipeline with ``template`` (default: the built-in ``envelope``, the
    Chinese layout; for US give a template of your envelope) and, when the template does not register, the
    image is read as a crop after all. Anything wider or smaller is read as the field itself (a comb when the
    crop shows evenly spaced walls). ``needs_review`` is set when the confidence is low, a character is
    doubtful, or the code does not fit the country's pattern.
    """
    return reader_for(options).read_postal_code(image, country, dpi=dpi, template=template)
