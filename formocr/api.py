"""Reading one field the caller already found: ``read_field`` and ``read_postal_code``.

Why a separate entry point: many users have their own layout code (a cheque scanner that cuts the amount strip,
a sorting machine that finds the postal-code boxes) and only want the digits. Both functions go down the
pipeline's own road, not a copy of it: :func:`formocr.preprocess.preprocess` (greyscale, deskew, colour drop-out,
binarization) on the crop, then :class:`formocr.read.FieldReader` with one :class:`FieldRegion` covering the
field, so a crop reads exactly as the same field on a whole page would.

Where the field lies in the crop: when the crop holds a printed frame (a box, a comb, drop-out colour included)
the frame is found from the crop's long straight strokes and becomes the field's box (so comb cells line up
whatever margin the caller left); otherwise the whole crop is the field. A field with a ``pattern`` handed over in
a crop of several lines of writing (a register's date cell: the year, the day, the month) is read line by line when
its whole reading is not accepted, and the line the pattern fits is the field (``readings["line"]`` says which).

Resolution: ``dpi=None`` assumes the field (the printed frame when there is one, else the crop) is 10 mm tall,
the usual height of a handwriting box (postal-code boxes 8-12 mm, cheque amount boxes 9-13 mm); pass ``dpi``
when it is known. Models are loaded once per process (per options) and shared by every call.
"""

from __future__ import annotations

import difflib
import threading
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from formocr.calibration import is_patterned
from formocr.crop import Frame, crop_print, find_frame, without_margins, writing_box
from formocr.errors import ConfigError, PageTooSmallError, RegistrationError, TemplateError
from formocr.fields import POSTAL_PATTERNS, interpret
from formocr.io import load_pages
from formocr.layout.template import FIELD_TYPES, STYLES, check_constraints
from formocr.objects import Box, CleanPage, FieldRegion, FieldResult, Page, PostalCode
from formocr.options import Options
from formocr.preprocess import preprocess, to_gray
from formocr.textlines import line_rows, text_lines
from formocr.tiles import paper_up, with_room

__all__ = ["FieldReaderAPI", "read_field", "read_postal_code"]

FIELD_HEIGHT_MM = 10.0  # assumed height of a field when no dpi is given
ENVELOPE_MAX_ASPECT = 2.5  # wider than this (w/h) is a cut-out field, not an envelope (DL 2.0, US #10 2.3)
ENVELOPE_MIN_SIDE = 300  # px: smaller images are crops whatever their shape
FRAME_SEEN = 0.35  # share of the postal field's frame registration must find before the envelope road is trusted
ALL_PRINT = 0.1  # a bare crop whose writing left beside its print is under this share of its ink is "all print"


READ_FIELD_KEYWORDS = ("style", "cells", "dpi", "name", "options")


def _check_constraints(field_type: str, c: dict[str, Any]) -> dict[str, Any]:
    """The template format's rules per type (one check for both); unknown keys and bad values are a ConfigError
    naming the key."""
    given = {k: v for k, v in c.items() if v is not None}
    for key in given:  # a slip in one of read_field's own keywords lands among the constraints
        if key == "options":
            raise ConfigError("options: formocr.read_field takes them; a FieldReaderAPI is given its options when "
                              "made: FieldReaderAPI(options)")
        close = difflib.get_close_matches(key, READ_FIELD_KEYWORDS, n=1, cutoff=0.7)
        if close:
            raise ConfigError(f"unknown keyword {key!r} (did you mean {close[0]!r}?)")
    check_constraints(field_type, given)
    return given


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
        page = paper_up(_load(image, self.options))
        if is_patterned(field_type, cons) and style != "comb":
            return self._read_lines(page, field_type, style, dpi, name, cons)
        return self._read_crop(page, field_type, style, cells, dpi, name, cons)[0]

    def _read_lines(self, page: Page, field_type: str, style: str, dpi: float | None, name: str,
                    cons: dict[str, Any]) -> FieldResult:
        """A patterned field, perhaps in a crop of several lines of writing (a register's date cell: year, day,
        month). The crop is read whole first, as any field; when that reading is not accepted and the crop holds
        several lines, each is read as the field, top to bottom: the first reading accepted is the field, else the
        most confident of all that the pattern allows (the whole crop's included, in case the locator split one
        line), else the most confident. The pattern tells which line is the field's. Each line is deskewed on its
        own, so its boxes, moved down to the line's place, are the crop's to within that line's skew."""
        whole = self._read_crop(page, field_type, style, None, dpi, name, cons)[0]
        if not whole.needs_review:
            return whole
        lines = text_lines(to_gray(page.image))
        if len(lines) < 2:
            return whole

        def rank(f: FieldResult) -> tuple[bool, float]:  # a reading the pattern allows before any that it does not
            return not interpret(field_type, f.raw, cons).problems, f.confidence

        best, best_rank = whole, rank(whole)
        for k in range(len(lines)):
            y0, y1 = line_rows(page.height, lines, k)
            try:
                f = self._read_crop(replace(page, image=page.image[y0:y1]), field_type, style, None, dpi, name,
                                    cons)[0]
            except PageTooSmallError:  # a speck's or a tick's "line", under a millimetre at the caller's dpi
                continue
            f = replace(f.mapped(partial(Box.shifted, dx=0, dy=y0)),
                        readings={**f.readings, "line": {"read": k + 1, "of": len(lines)}})
            if not f.needs_review:
                return f
            if (r := rank(f)) > best_rank:
                best, best_rank = f, r
        return best

    def _read_crop(self, page: Page, field_type: str, style: str, cells: int | None, dpi: float | None,
                   name: str, cons: dict[str, Any]) -> tuple[FieldResult, Frame | None]:
        clean, region, frame, pad = self.prepare_crop(page, field_type, style, cells, dpi, name, cons)
        result = self.pipeline.reader.read(clean, [region])[0].result
        if pad:  # boxes found in the paper added round a tight crop, back in the caller's crop
            h, w = page.image.shape[:2]
            result = result.mapped(lambda b: b.shifted(-pad, -pad).clip(w, h))
        return result, frame

    def prepare_crop(self, page: Page, field_type: str = "digits", style: str = "box", cells: int | None = None,
                     dpi: float | None = None, name: str = "field", cons: dict[str, Any] | None = None
                     ) -> tuple[CleanPage, FieldRegion, Frame | None, int]:
        """A caller's crop as the field reader sees it: preprocessed at the resolution its frame or writing gives,
        print around the writing left out, the field's region, and the paper added on each side of a crop cut
        tight round its digit (:func:`formocr.tiles.with_room`; 0 for any other), which the clean page's
        coordinates are offset by. Training cuts real crops through this very road, so what the string reader
        learns from is what it reads."""
        if dpi is not None and (isinstance(dpi, bool) or not isinstance(dpi, (int, float)) or not 50 <= dpi <= 2400):
            raise ConfigError(f"dpi: expected a number in 50..2400, got {dpi!r}")
        page, pad = with_room(without_margins(page))
        printed: np.ndarray | None = None  # a bare crop's print, once found for the clean page it was found in
        frame: Frame | None = None
        if pad:
            # A crop cut tight round a digit or two is all writing: no frame or print is looked for in it, the whole
            # of it with its room is the field (read as a box, no printed line is taken out of it either), and it is
            # not levelled: one or two digits make no line to level, and their slant is their writer's.
            page = replace(page, dpi=float(dpi) if dpi is not None else _dpi_for(page.height))
            clean = preprocess(page, replace(self.pipeline.pre, deskew=False))
            style = "free" if style == "box" else style
        elif dpi is not None:
            page = replace(page, dpi=float(dpi))
            clean = preprocess(page, self.pipeline.pre)
            frame = find_frame(clean.layout_ink) if style != "free" else None
        else:
            # First pass at a guess, only to find the frame; the resolution then follows from its height, or, in a
            # bare crop, from the height of the writing itself (a 200-px cell with 20-px digits is not a 10-mm field).
            guess = replace(page, dpi=_dpi_for(page.height))
            clean = preprocess(guess, self.pipeline.pre)
            frame = find_frame(clean.layout_ink) if style != "free" else None
            around = None
            if frame is None:
                printed = crop_print(clean.ink, clean.gray)
                around = writing_box(replace(clean, ink=clean.ink & ~printed), print_removed=True)
            est = _dpi_for(frame.box.h if frame is not None else around.h if around is not None else page.height)
            if abs(est - guess.dpi) > 0.15 * guess.dpi:
                clean = preprocess(replace(page, dpi=est), self.pipeline.pre)
                printed = None
                if frame is not None:  # a bare crop stays bare: its rules at another scale are still no frame
                    frame = find_frame(clean.layout_ink)
        if style == "comb":
            cells = cells or (frame.cells if frame is not None and frame.cells else None)
            if cells is None:
                raise ConfigError("cells: a comb field needs its number of cells (none could be counted)")
        box = frame.box if frame is not None else Box(0, 0, clean.gray.shape[1], clean.gray.shape[0])
        if frame is None and not pad:  # a bare crop: a scanner's margin or a printed rule along it is not writing
            if printed is None:
                printed = crop_print(clean.ink, clean.gray)
            kept = clean.ink & ~printed
            # Print stays out of the field (the faint-stroke pass may not take it back) unless it was nearly all the
            # ink: a digit cut so tight that it passes for a rule is then found again, as faint ink.
            writing = int(kept.sum()) >= ALL_PRINT * int(clean.ink.sum())
            clean = replace(clean, ink=kept, print_ink=printed if writing else None)
            if dpi is None:
                box = writing_box(clean, print_removed=True) or box
        region = FieldRegion(name=name, type=field_type, box=box, style=style, cells=cells,  # type: ignore[arg-type]
                             constraints=cons or {})
        return clean, region, frame, pad

    # --- postal codes -------------------------------------------------------------------------------------

    def read_postal_code(self, image: str | Path | np.ndarray, country: str = "CN", *,
                         dpi: float | None = None, template: str | None = None) -> PostalCode:
        """Read a postal code from a whole envelope or a crop (see :func:`formocr.read_postal_code`)."""
        if country not in POSTAL_PATTERNS:
            raise ConfigError(f"country: expected {' or '.join(POSTAL_PATTERNS)}, got {country!r}")
        page = paper_up(_load(image, self.options))
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
    or free. With a ``pattern``, a crop of several lines of writing whose whole reading is not accepted is read
    line by line: the first line whose reading is accepted, else the most confident reading the pattern allows
    (else the most confident), is the field.
    ``dpi``: see the module doc (None = the field is taken to be 10 mm tall). Bad images raise the loader's typed
    errors (:class:`~formocr.errors.EmptyInputError`, ``UnsupportedInputError``,
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
