"""Synthetic filled-in scanned forms with exact ground truth.

Why: the pipeline needs sample scans we may commit and benchmarks with known answers, in every variation a
scanner and a writer produce (skew, blur, noise, uneven light, JPEG, writing that touches a border). A page is
built in three layers: the printed form (borders, labels, decoration text that a reader must ignore), the
handwriting (from :mod:`formocr.synth.handwriting`), and the scan (:class:`Degrade`).

Geometry conventions (the pipeline relies on them):

* Field borders are drawn *inside* the template box: a box's outline covers the outermost ``border`` pixels of
  its box (0.3 mm, 4 px at 300 dpi); comb cell separators (0.25 mm, 3 px at 300 dpi) are centred on
  ``x + round(i * w / cells)``. ``free`` fields have no border.
* Labels are printed above their field, their baseline 1.2 mm above the box's top edge (cap height 2.2 mm;
  brackets, a font's tallest glyphs, at most 1.35 cap heights: see :func:`_size_unit`).
* A date comb holds only digits, one per cell (DDMMYYYY for DMY); the form prints small slashes *below* the
  comb (starting 0.6 mm under its bottom edge) at the group boundaries (2|2|4, or 4|2|2 for YMD), outside
  the writing area. The field's value still has its slashes ("03/11/2026"), as the pipeline outputs it.
* ``skew_deg`` is the angle the page content was rotated by, counter-clockwise positive (OpenCV's
  ``getRotationMatrix2D`` convention) around the page centre; a deskewer must rotate by ``-skew_deg``.
* The scan geometry is one homography (:attr:`SynthPage.homography`) from the template frame (the form's
  pixels at ``dpi``) to the final image: mild perspective (each form corner moved), then scale and rotation
  about the form's centre, then the offset, on a scanner bed that may be larger than the form (``margin_mm``,
  paper-coloured). Stamps and extra scribbles are drawn on the paper before the scan, so they move with it.
"""

from __future__ import annotations

import calendar
import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from formocr.layout.template import Mark, Template, TemplateField
from formocr.objects import Box
from formocr.synth.handwriting import Writer, render_scribble, render_string

__all__ = [
    "Degrade",
    "SynthPage",
    "comb_text",
    "random_value",
    "render_form",
    "save_pdf",
    "save_tiff",
    "truth_dict",
    "write_truth",
]

BORDER_MM = 0.3
CELL_LINE_MM = 0.25
LABEL_CAP_MM = 2.2
LABEL_GAP_MM = 1.2
SLASH_GAP_MM = 0.6
SLASH_MM = 2.2

# --- values -------------------------------------------------------------------------------------------------


def _digits(rng: np.random.Generator, n: int, first_nonzero: bool = False) -> str:
    s = "".join(str(int(d)) for d in rng.integers(0, 10, n))
    if first_nonzero and n > 1 and s[0] == "0":
        s = str(int(rng.integers(1, 10))) + s[1:]
    return s


def random_value(f: TemplateField, rng: np.random.Generator) -> str:
    """A plausible value for ``f``, formatted as the pipeline outputs it ("03/11/2026", "1250.00", ...).

    Digits fields respect ``min_length``/``max_length`` (default 1..10) and a comb's cell count; for amounts
    ``min_length``/``max_length`` bound the number of integer digits (default 1..6).
    """
    c = f.constraints
    if f.type == "digits":
        hi = int(c.get("max_length", 10))
        if f.style == "comb" and f.cells:
            hi = min(hi, f.cells)
        lo = min(int(c.get("min_length", 1)), hi)
        return _digits(rng, int(rng.integers(lo, hi + 1)))
    if f.type == "postal_code":
        if "pattern" in c:
            for n in (6, 5, 4, 7, 3, 8, 9, 10):
                s = _digits(rng, n)
                if re.fullmatch(c["pattern"], s):
                    return s
            raise ValueError(f"field {f.name!r}: cannot invent a postal code for pattern {c['pattern']!r}")
        if c.get("country") == "US":
            return _digits(rng, 5)
        return str(int(rng.integers(1, 9))) + _digits(rng, 5)  # CN: 6 digits, first 1-8
    if f.type == "date":
        y = int(rng.integers(1990, 2036))
        m = int(rng.integers(1, 13))
        d = int(rng.integers(1, calendar.monthrange(y, m)[1] + 1))
        order = c.get("order", "DMY")
        if order == "MDY":
            return f"{m:02d}/{d:02d}/{y:04d}"
        if order == "YMD":
            return f"{y:04d}/{m:02d}/{d:02d}"
        return f"{d:02d}/{m:02d}/{y:04d}"
    if f.type == "amount":
        decimals = int(c.get("decimals", 2))
        hi = max(1, min(6, int(c.get("max_length", 6))))
        lo = max(1, min(int(c.get("min_length", 1)), hi))
        n = int(rng.choice(np.arange(lo, hi + 1), p=_amount_len_weights(lo, hi)))
        whole = _digits(rng, n, first_nonzero=True)
        if n == 1 and rng.random() < 0.1:
            whole = "0"
        if decimals == 0:
            return whole
        frac = "0" * decimals if rng.random() < 0.4 else _digits(rng, decimals)
        return f"{whole}.{frac}"
    raise ValueError(f"field {f.name!r}: unknown type {f.type!r}")


def _amount_len_weights(lo: int, hi: int) -> np.ndarray:
    w = np.array([{1: 0.1, 2: 0.25, 3: 0.3, 4: 0.2, 5: 0.1, 6: 0.05}.get(n, 0.05) for n in range(lo, hi + 1)])
    return w / w.sum()


def comb_text(f: TemplateField, value: str) -> str:
    """What is written in a comb's cells for ``value``: its digits only, one per cell.

    Amounts are right-aligned so the decimals land in the last cells (the dot is printed by the form, not
    written); everything else fills from the left.
    """
    text = re.sub(r"\D", "", value)
    cells = f.cells or len(text)
    if len(text) > cells:
        raise ValueError(f"field {f.name!r}: {value!r} has {len(text)} digits for {cells} cells")
    return text.rjust(cells) if f.type == "amount" else text


# --- the scan -----------------------------------------------------------------------------------------------


@dataclass
class Degrade:
    """How the scan spoils the page. Ranges are sampled per page from the ``rng`` given to render_form.

    ``lighting`` is the darkest factor of a smooth brightness gradient/shadow over the page (1.0 = even);
    ``speckle`` is the fraction of pixels hit by salt-and-pepper dust; ``paper`` the paper's grey range.
    ``skew_deg`` fixes the rotation exactly (else uniform in ±``max_skew``).

    Registration geometry (all off by default, so older seeds render the very same pages): ``scale`` is the
    range of the print/scan scale; ``perspective`` moves each corner of the form by up to that share of the
    form's width in x and of its height in y (0.01: a keystone of at most 2 %); ``margin_mm`` is the range of
    the scanner bed's margin around the form on each side (the page image grows, paper-coloured); ``stamps``
    ink stamps (round or rectangular, red, blue or black) and ``scribbles`` extra handwritten scribbles land on
    the paper; ``occluders_avoid_fields`` keeps them off the field boxes
    (reading them is not the point), otherwise they may cover anything.
    """

    max_skew: float = 5.0
    skew_deg: float | None = None
    max_offset_mm: float = 0.0
    blur_sigma: tuple[float, float] = (0.0, 0.0)
    noise_std: tuple[float, float] = (0.0, 0.0)
    speckle: float = 0.0
    lighting: tuple[float, float] = (1.0, 1.0)
    jpeg_quality: tuple[int, int] | None = None
    paper: tuple[int, int] = (255, 255)
    scale: tuple[float, float] = (1.0, 1.0)
    perspective: float = 0.0
    margin_mm: tuple[float, float] = (0.0, 0.0)
    stamps: int = 0
    scribbles: int = 0
    occluders_avoid_fields: bool = True

    @classmethod
    def none(cls) -> Degrade:
        """A perfect scan: no rotation, no noise, white paper."""
        return cls(max_skew=0.0)

    @classmethod
    def random(cls, rng: np.random.Generator, max_skew: float = 5.0) -> Degrade:
        """A moderate random degradation, like an office scanner or a phone scan on a good day."""
        top_blur = float(rng.uniform(0.0, 1.0))
        return cls(
            max_skew=max_skew,
            max_offset_mm=float(rng.uniform(0.0, 3.0)),
            blur_sigma=(0.0, top_blur),
            noise_std=(0.0, float(rng.uniform(0.0, 6.0))),
            speckle=float(rng.uniform(0.0, 3e-4)),
            lighting=(float(rng.uniform(0.65, 1.0)), 1.0),
            jpeg_quality=(60, 95) if rng.random() < 0.5 else None,
            paper=(int(rng.integers(225, 256)), 255),
        )

    @classmethod
    def registration(cls, rng: np.random.Generator, max_skew: float = 5.0) -> Degrade:
        """:meth:`random`'s scanner plus the hard geometry registration must undo.

        Scale 0.9-1.1, offsets up to ±40 mm on a bed with 45-60 mm of margin (so the form stays on the bed),
        corners moved by up to 1 % of the form's size, one stamp and one or two scribbles off the fields.
        """
        d = cls.random(rng, max_skew=max_skew)
        d.max_offset_mm = 40.0
        d.scale = (0.9, 1.1)
        d.perspective = 0.01
        d.margin_mm = (45.0, 60.0)
        d.stamps = 1
        d.scribbles = int(rng.integers(1, 3))
        return d


@dataclass
class SynthPage:
    """A rendered page and its ground truth, in the final (skewed, shifted) page's pixels."""

    image: np.ndarray
    values: dict[str, str]
    char_boxes: dict[str, list[tuple[str, Box]]]
    skew_deg: float
    offset_px: tuple[int, int]
    dpi: int
    template: str
    field_boxes: dict[str, Box] = field(default_factory=dict)
    writer: Writer | None = None
    homography: np.ndarray = field(default_factory=lambda: np.eye(3))  # template frame px → final image px


# --- printing the form --------------------------------------------------------------------------------------


class _Printer:
    """Draws the printed part of a form into an ink layer (255 = ink), in millimetres."""

    def __init__(self, width: int, height: int, dpi: int) -> None:
        self.k = dpi / 25.4
        self.layer = np.zeros((height, width), np.uint8)

    def px(self, mm: float) -> int:
        return round(mm * self.k)

    def text(
        self,
        s: str,
        x_mm: float,
        base_mm: float,
        cap_mm: float,
        bold: bool = False,
        font: int = cv2.FONT_HERSHEY_SIMPLEX,
    ) -> tuple[int, int]:
        """Print ``s`` with its baseline at ``base_mm``; returns the text's pixel width and height."""
        scale = cap_mm * self.k / _size_unit(font)
        th = max(1, round(self.k * (0.32 if bold else 0.2) * cap_mm / 2.2))
        cv2.putText(self.layer, s, (self.px(x_mm), self.px(base_mm)), font, scale, 255, th, cv2.LINE_AA)
        (w, h), _ = cv2.getTextSize(s, font, scale, th)
        return w, h

    def text_width_mm(self, s: str, cap_mm: float, font: int = cv2.FONT_HERSHEY_SIMPLEX) -> float:
        scale = cap_mm * self.k / _size_unit(font)
        return cv2.getTextSize(s, font, scale, 1)[0][0] / self.k

    def hline(self, x0_mm: float, x1_mm: float, y_mm: float, t_mm: float = 0.2) -> None:
        t = max(1, self.px(t_mm))
        y = self.px(y_mm)
        self.layer[y : y + t, self.px(x0_mm) : self.px(x1_mm)] = 255

    def vline(self, x_mm: float, y0_mm: float, y1_mm: float, t_mm: float = 0.2) -> None:
        t = max(1, self.px(t_mm))
        x = self.px(x_mm)
        self.layer[self.px(y0_mm) : self.px(y1_mm), x : x + t] = 255

    def mark(self, m: Mark) -> None:
        """A template mark: rules are drawn on their centre line, boxes with their lines inside."""
        if m.kind == "box":
            x, y, w, h = m.mm
            self.frame(Box(self.px(x), self.px(y), self.px(w), self.px(h)), max(1, self.px(0.25)))
            return
        x, y, w, h = m.box_mm
        if h == 0:
            self.hline(x, x + w, y - 0.1)
        else:
            self.vline(x - 0.1, y, y + h)

    def frame(self, box: Box, t: int) -> None:
        """A rectangle whose lines lie inside ``box``."""
        x, y, w, h = box.x, box.y, box.w, box.h
        self.layer[y : y + t, x : x + w] = 255
        self.layer[y + h - t : y + h, x : x + w] = 255
        self.layer[y : y + h, x : x + t] = 255
        self.layer[y : y + h, x + w - t : x + w] = 255


_INK_CACHE: dict[tuple[str, int], float] = {}
BRACKET_CAPS = 1.35  # the tallest a bracket may print, in cap heights


def _ink_height(s: str, font: int) -> float:
    """Measured ink height of ``s`` at fontScale 1 (getTextSize's height includes more than the ink)."""
    if (s, font) not in _INK_CACHE:
        img = np.zeros((80, 80), np.uint8)
        cv2.putText(img, s, (5, 60), font, 1.0, 255, 1, cv2.LINE_8)
        ys = np.nonzero(img.any(axis=1))[0]
        _INK_CACHE[s, font] = float(ys.max() - ys.min() + 1)
    return _INK_CACHE[s, font]


def _cap_height(font: int) -> float:
    return _ink_height("H", font)


def _size_unit(font: int) -> float:
    """What printed text is sized by, in pixels at fontScale 1: the cap height, unless the brackets reach further
    than BRACKET_CAPS cap heights. Common typefaces' brackets span about 1.3 caps, and so do OpenCV 5's fonts (the
    cap height wins there, so nothing changes); OpenCV 4's Hershey fonts have brackets of 1.5 caps, so there the
    brackets set the size (caps 10 % lower) and a 2.2 mm label's "(" stays print-sized, below what the field finder
    takes for handwriting (formocr.layout.detect)."""
    return max(_cap_height(font), _ink_height("(", font) / BRACKET_CAPS)


def _date_groups(f: TemplateField) -> list[int]:
    order = f.constraints.get("order", "DMY")
    return [4, 2, 2] if order == "YMD" else [2, 2, 4]


def _print_field(p: _Printer, f: TemplateField, box: Box) -> None:
    border = max(1, p.px(BORDER_MM))
    if f.style == "line":
        # An underlined blank: one baseline along the bottom of the box (the box is the writing area above it).
        p.layer[box.y2 - border : box.y2, box.x : box.x2] = 255
    elif f.style != "free":
        p.frame(box, border)
    if f.style == "comb" and f.cells:
        t = max(1, p.px(CELL_LINE_MM))
        for i in range(1, f.cells):
            cx = box.x + round(i * box.w / f.cells)
            p.layer[box.y : box.y2, cx - t // 2 : cx - t // 2 + t] = 255
        if f.type == "date" and f.cells == 8:
            i = 0
            for g in _date_groups(f)[:-1]:
                i += g
                cx_mm = (box.x + i * box.w / f.cells) / p.k
                top = box.y2 / p.k + SLASH_GAP_MM
                w = SLASH_MM * 0.45
                x0, y0 = p.px(cx_mm + w / 2), p.px(top)
                x1, y1 = p.px(cx_mm - w / 2), p.px(top + SLASH_MM)
                cv2.line(p.layer, (x0, y0), (x1, y1), 255, max(1, p.px(0.2)), cv2.LINE_AA)
    if f.label:
        p.text(f.label, box.x / p.k, box.y / p.k - LABEL_GAP_MM, LABEL_CAP_MM)


def _decorate(p: _Printer, t: Template, rng: np.random.Generator, hand: np.ndarray, writer: Writer) -> None:
    """Printed titles, rules and numbers that are not fields (and a few handwritten words), per template."""
    w_mm, h_mm = t.width_mm, t.height_mm
    if t.name == "cheque":
        p.frame(Box(p.px(2.5), p.px(2.5), p.px(w_mm - 5), p.px(h_mm - 5)), max(1, p.px(0.25)))
        p.text("FORMOCR SAVINGS BANK", 10, 12, 3.6, bold=True, font=cv2.FONT_HERSHEY_DUPLEX)
        p.text("1 Example Street, Springfield", 10, 17, 1.8)
        p.text(f"No. {int(rng.integers(1, 999999)):06d}", 98, 12, 2.6, bold=True)
        p.text("PAY TO THE", 10, 27.5, 1.8)
        p.text("ORDER OF", 10, 31, 1.8)
        p.hline(30, 128, 31.4)
        p.text("$", 132.2, 43.5, 5.0, bold=True)
        p.hline(10, 108, 44.5)
        p.text("DOLLARS", 110, 44.5, 2.2)
        p.text("MEMO", 10, 59, 1.8)
        p.hline(22, 80, 59.4)
        p.hline(118, 196, 61.5)
        p.text("AUTHORIZED SIGNATURE", 140, 65, 1.6)
        micr = f"|:{int(rng.integers(10**8, 10**9)):09d}|:  {int(rng.integers(10**6, 10**7)):07d}"
        p.text(micr, 110, 84.5, 2.6, font=cv2.FONT_HERSHEY_PLAIN)
        _scribble(p, hand, writer, rng, (34, 24.5, 80, 6))  # payee
        _scribble(p, hand, writer, rng, (12, 37.5, 90, 6))  # amount in words
        _scribble(p, hand, writer, rng, (128, 53, 50, 8))  # signature
    elif t.name == "envelope":  # the stamp box and address rules are the template's marks
        p.text("STAMP", w_mm - 29.5, 24, 2.4)
        p.text("FROM:", 118, 96, 2.0)
        p.text(f"POSTCODE {int(rng.integers(1, 9))}{int(rng.integers(0, 10**5)):05d}", 150, 103, 2.4)
        for y in (52, 66, 80):
            _scribble(p, hand, writer, rng, (45 + rng.uniform(0, 10), y - 7.5, rng.uniform(70, 120), 6.5))
    else:
        margin = 8.0
        p.frame(
            Box(p.px(margin), p.px(margin), p.px(w_mm - 2 * margin), p.px(h_mm - 2 * margin)),
            max(1, p.px(0.3)),
        )
        title = "NUMERIC SURVEY FORM" if t.name == "numeric_form" else t.name.upper().replace("_", " ")
        cap = 5.0
        tw = p.text_width_mm(title, cap, cv2.FONT_HERSHEY_DUPLEX)
        top = min(f.box_mm[1] for f in t.fields)
        if top > 24:
            p.text(title, (w_mm - tw) / 2, 17, cap, bold=True, font=cv2.FONT_HERSHEY_DUPLEX)
            p.text("Write one digit per box in boxed items. Use black or blue ink.", margin + 6, 24, 2.0)
        if h_mm - 2 * margin > 40:
            p.text(f"Form NF-{len(t.fields)}  rev. 2", margin + 6, h_mm - margin - 4, 1.8)
            p.text("Page 1 of 1", w_mm - margin - 28, h_mm - margin - 4, 1.8)


def _scribble(
    p: _Printer,
    hand: np.ndarray,
    writer: Writer,
    rng: np.random.Generator,
    box_mm: tuple[float, float, float, float],
) -> None:
    """Handwritten words (not digits) inside box_mm: on real forms they sit on the printed lines."""
    x, y, w, h = (p.px(v) for v in box_mm)
    img = render_scribble(writer, rng, w, max(4, round(h * 0.55)))
    ih, iw = min(img.shape[0], h), min(img.shape[1], w)
    img = img[:ih, :iw]
    oy = y + h - ih
    region = hand[oy : oy + ih, x : x + iw]
    np.maximum(region, img[: region.shape[0], : region.shape[1]], out=region)


# --- handwriting into fields --------------------------------------------------------------------------------


def _paste(hand: np.ndarray, img: np.ndarray, x: int, y: int) -> None:
    H, W = hand.shape
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(W, x + img.shape[1]), min(H, y + img.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    region = hand[y0:y1, x0:x1]
    np.maximum(region, img[y0 - y : y1 - y, x0 - x : x1 - x], out=region)


def _write_line(
    text: str,
    box: Box,
    border: int,
    writer: Writer,
    rng: np.random.Generator,
    hand: np.ndarray,
    touch_border_prob: float,
) -> list[tuple[str, Box]]:
    """Write ``text`` as a line in a box field: left-aligned-ish, vertically centred, inside the border."""
    pad = border + 2
    ix0, iy0, iw, ih = box.x + pad, box.y + pad, box.w - 2 * pad, box.h - 2 * pad
    height = box.h * rng.uniform(0.5, 0.72) / writer.height_scale
    img, chars = render_string(text, writer, rng, max(6, round(height)))
    for _ in range(4):  # too wide or too tall for the box: write smaller, as people do
        over = max(img.shape[1] / (iw * 0.96), img.shape[0] / ih)
        if over <= 1.0:
            break
        height = height / over * 0.97
        img, chars = render_string(text, writer, rng, max(6, round(height)))
    inset_max = max(0, iw - img.shape[1])
    x = ix0 + round(min(inset_max, box.w * rng.uniform(0.02, 0.12)))
    free = max(0, ih - img.shape[0])
    y = iy0 + round(np.clip(free / 2 + rng.normal(0, 0.12) * ih, 0, free))
    if rng.random() < touch_border_prob:
        # the writing runs onto the printed line: from just touching its inner edge to well across it
        top = min(b.y for _, b in chars)
        bottom = max(b.y2 for _, b in chars)
        over = round(rng.uniform(0.0, 1.0) * border + rng.uniform(0.0, 0.12) * (bottom - top))
        down = rng.random() < 0.7  # the bottom line more often than the top one
        y = box.y2 - border + over - bottom if down else box.y + border - over - top
    _paste(hand, img, x, y)
    return [(ch, b.shifted(x, y)) for ch, b in chars]


def _write_comb(
    text: str,
    f: TemplateField,
    box: Box,
    writer: Writer,
    rng: np.random.Generator,
    hand: np.ndarray,
    k: float,
) -> list[tuple[str, Box]]:
    """One digit per cell, each 55-80 % of the cell height with some wandering inside the cell."""
    cells = f.cells or max(1, len(text))
    border = max(1, round(BORDER_MM * k))
    out: list[tuple[str, Box]] = []
    for i, ch in enumerate(text):
        if ch == " ":
            continue
        cx0 = box.x + round(i * box.w / cells) + border + 1
        cx1 = box.x + round((i + 1) * box.w / cells) - border - 1
        cy0, cy1 = box.y + border + 1, box.y2 - border - 1
        cw, chh = cx1 - cx0, cy1 - cy0
        height = box.h * rng.uniform(0.55, 0.8) / writer.height_scale
        img, chars = render_string(ch, writer, rng, max(6, round(height)))
        over = max(img.shape[1] / (cw * 0.92), img.shape[0] / chh)
        if over > 1.0:
            img, chars = render_string(ch, writer, rng, max(6, round(height / over * 0.95)))
        fx, fy = max(0, cw - img.shape[1]), max(0, chh - img.shape[0])
        x = cx0 + round(np.clip(fx / 2 + rng.normal(0, 0.08) * cw, 0, fx))
        y = cy0 + round(np.clip(fy / 2 + rng.normal(0, 0.08) * chh, 0, fy))
        _paste(hand, img, x, y)
        out.extend((c, b.shifted(x, y)) for c, b in chars)
    return out


# --- the page -----------------------------------------------------------------------------------------------


def render_form(
    template: Template,
    values: dict[str, str] | None,
    rng: np.random.Generator,
    dpi: int = 300,
    writer: Writer | None = None,
    degrade: Degrade | None = None,
    touch_border_prob: float = 0.15,
    color: bool = False,
) -> SynthPage:
    """Print ``template``, fill it in by hand and scan it; every field gets a value (random when missing).

    A value of "" leaves its field blank. ``degrade`` None means a perfect scan. With ``color`` the page is
    BGR: the form printed in a drop-out colour, the writing in ballpoint blue or black; otherwise uint8 grey.
    """
    vals = dict(values or {})
    for f in template.fields:
        if f.name not in vals:
            vals[f.name] = random_value(f, rng)
    unknown = sorted(set(vals) - {f.name for f in template.fields})
    if unknown:
        raise ValueError(f"values for fields not in template {template.name!r}: {', '.join(unknown)}")
    writer = writer or Writer.random(rng)
    deg = degrade or Degrade.none()
    W, H = template.page_size_px(dpi)
    p = _Printer(W, H, dpi)
    hand = np.zeros((H, W), np.float32)
    chars: dict[str, list[tuple[str, Box]]] = {}
    boxes: dict[str, Box] = {}
    for f in template.fields:
        box = f.region(dpi).box
        boxes[f.name] = box
        _print_field(p, f, box)
        value = vals[f.name]
        if not value:
            chars[f.name] = []
        elif f.style == "comb":
            chars[f.name] = _write_comb(comb_text(f, value), f, box, writer, rng, hand, p.k)
        else:
            border = max(1, p.px(BORDER_MM)) if f.style == "box" else 0
            chars[f.name] = _write_line(value, box, border, writer, rng, hand, touch_border_prob)
    for m in template.marks:
        p.mark(m)
    _decorate(p, template, rng, hand, writer)

    paper = float(rng.integers(deg.paper[0], deg.paper[1] + 1))
    form_alpha = p.layer.astype(np.float32) / 255.0
    if color:
        form_ink = np.array(_pick(rng, [(60, 60, 235), (90, 170, 90), (200, 150, 60)]), np.float32)
        pen_ink = np.array(_pick(rng, [(150, 40, 20), (40, 30, 30), (120, 50, 40)]), np.float32)
        paper_c = np.array([paper * 0.97, paper * 0.99, paper], np.float32)
        img = paper_c[None, None, :] * (1 - form_alpha[..., None] * (1 - form_ink / 255.0))
        img = img * (1 - hand[..., None] * (1 - pen_ink / 255.0))
    else:
        form_ink_g = float(rng.integers(0, 50))
        img = paper * (1 - form_alpha * (1 - form_ink_g / 255.0)) * (1 - hand * (1 - writer.ink / 255.0))

    if deg.stamps or deg.scribbles:
        img = _occlude(img, deg, rng, writer, boxes, p.k, color)

    skew = deg.skew_deg if deg.skew_deg is not None else float(rng.uniform(-deg.max_skew, deg.max_skew))
    off_mm = deg.max_offset_mm
    offset = (round(rng.uniform(-off_mm, off_mm) * p.k), round(rng.uniform(-off_mm, off_mm) * p.k))
    # New geometry draws from the rng only when asked for, so the pages of older seeds do not change.
    scale = float(rng.uniform(*deg.scale)) if deg.scale != (1.0, 1.0) else 1.0
    persp: np.ndarray = np.eye(3)
    if deg.perspective > 0:
        corners = np.array([[0, 0], [W, 0], [W, H], [0, H]], np.float32)
        moved = corners + rng.uniform(-deg.perspective, deg.perspective, (4, 2)).astype(np.float32) * [W, H]
        persp = cv2.getPerspectiveTransform(corners, moved.astype(np.float32))
    ml = mt = mr = mb = 0
    if deg.margin_mm != (0.0, 0.0):
        ml, mt, mr, mb = (round(rng.uniform(*deg.margin_mm) * p.k) for _ in range(4))
    M = cv2.getRotationMatrix2D((W / 2, H / 2), skew, scale)
    M[:, 2] += (offset[0] + ml, offset[1] + mt)
    Hm = np.vstack([M, [0.0, 0.0, 1.0]]) @ persp
    Wc, Hc = W + ml + mr, H + mt + mb
    if skew != 0.0 or offset != (0, 0) or not np.allclose(Hm, np.eye(3)) or (Wc, Hc) != (W, H):
        border_value = (paper,) * 3 if not color else tuple(float(v) for v in paper_c)
        if deg.perspective > 0:
            img = cv2.warpPerspective(
                img, Hm, (Wc, Hc), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border_value
            )
        else:
            img = cv2.warpAffine(
                img, M, (Wc, Hc), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border_value
            )
        chars = {n: [(c, _warp_box(b, Hm, Wc, Hc)) for c, b in cs] for n, cs in chars.items()}
        boxes = {n: _warp_box(b, Hm, Wc, Hc) for n, b in boxes.items()}
    img = _scan(img, deg, rng)
    return SynthPage(
        img,
        vals,
        chars,
        float(skew),
        (int(offset[0] + ml), int(offset[1] + mt)),
        int(dpi),
        template.name,
        boxes,
        writer,
        Hm,
    )


def _pick(rng: np.random.Generator, options: Sequence[tuple[int, int, int]]) -> tuple[int, int, int]:
    return options[int(rng.integers(0, len(options)))]


def _warp_box(b: Box, M: np.ndarray, W: int, H: int) -> Box:
    """The axis-aligned box around ``b``'s corners after the affine (2×3) or homography (3×3) ``M``."""
    pts = np.array([[b.x, b.y, 1], [b.x2, b.y, 1], [b.x, b.y2, 1], [b.x2, b.y2, 1]], np.float64)
    q = pts @ M.T
    if M.shape[0] == 3:
        q = q[:, :2] / q[:, 2:3]
    x0, y0 = math.floor(q[:, 0].min()), math.floor(q[:, 1].min())
    x1, y1 = math.ceil(q[:, 0].max()), math.ceil(q[:, 1].max())
    return Box(x0, y0, x1 - x0, y1 - y0).clip(W, H)


_STAMP_COLOURS = [(40, 40, 200), (170, 70, 30), (45, 40, 40)]  # BGR: red, blue, black
_STAMP_WORDS = ["PAID", "RECEIVED", "APPROVED", "COPY", "POSTED", "VERIFIED"]


def _place(
    rng: np.random.Generator, w: int, h: int, W: int, H: int, boxes: dict[str, Box], pad: int, avoid: bool
) -> tuple[int, int] | None:
    """Top-left corner for a ``w``×``h`` occluder on a ``W``×``H`` form: off the field boxes when asked.

    When asked to avoid the fields and 40 random tries all touch one (a crowded form), there is no occluder:
    a stamp over the digits tests reading through stamps, not registration.
    """
    best, best_cost = (0, 0), math.inf
    for _ in range(40 if avoid else 1):
        x = int(rng.integers(-w // 4, max(1, W - 3 * w // 4)))
        y = int(rng.integers(-h // 4, max(1, H - 3 * h // 4)))
        cost = 0.0
        if avoid:
            for b in boxes.values():
                ox = min(x + w, b.x2 + pad) - max(x, b.x - pad)
                oy = min(y + h, b.y2 + pad) - max(y, b.y - pad)
                cost += max(0, ox) * max(0, oy)
        if cost < best_cost:
            best, best_cost = (x, y), cost
            if cost == 0:
                break
    return None if avoid and best_cost > 0 else best


def _stamp(rng: np.random.Generator, k: float) -> np.ndarray:
    """An ink stamp as float32 alpha: a round (double ring) or rectangular (double frame) stamp with a word."""
    word = _STAMP_WORDS[int(rng.integers(0, len(_STAMP_WORDS)))]
    t = max(2, round(rng.uniform(0.5, 0.9) * k))
    if rng.random() < 0.5:
        d = round(rng.uniform(25, 40) * k)
        layer = np.zeros((d + 4, d + 4), np.uint8)
        c = (d // 2 + 2, d // 2 + 2)
        cv2.circle(layer, c, d // 2, 255, t, cv2.LINE_AA)
        cv2.circle(layer, c, round(d * 0.36), 255, max(1, t // 2), cv2.LINE_AA)
        for a in np.linspace(0, 2 * math.pi, 16, endpoint=False):  # dots between the rings
            r = d * 0.43
            cv2.circle(layer, (round(c[0] + r * math.cos(a)), round(c[1] + r * math.sin(a))), t, 255, -1)
        width = d * 0.6
    else:
        w, h = round(rng.uniform(40, 60) * k), round(rng.uniform(16, 26) * k)
        layer = np.zeros((h + 4, w + 4), np.uint8)
        cv2.rectangle(layer, (2, 2), (w + 1, h + 1), 255, t)
        g = 2 * t + 2
        cv2.rectangle(layer, (2 + g, 2 + g), (w + 1 - g, h + 1 - g), 255, max(1, t // 2))
        width = w * 0.75
    (tw, th), _ = cv2.getTextSize(word, cv2.FONT_HERSHEY_DUPLEX, 1.0, 2)
    fs = width / tw
    org = (round((layer.shape[1] - tw * fs) / 2), round((layer.shape[0] + th * fs) / 2))
    # Rubber stamps print heavy type, stems about 0.3 of the cap height. OpenCV 5 draws any thickness from 2 up as
    # its bold face (stems 0.32 caps; these pixels do not depend on the figure), while OpenCV 4's Hershey fonts are
    # strokes of a pen ``thickness`` pixels wide: the pen is sized so, not left at the frame's line width.
    heavy = max(t, round(0.3 * fs * _cap_height(cv2.FONT_HERSHEY_DUPLEX)))
    cv2.putText(layer, word, org, cv2.FONT_HERSHEY_DUPLEX, fs, 255, heavy, cv2.LINE_AA)
    angle = float(rng.uniform(-30, 30))
    hh, ww = layer.shape
    R = cv2.getRotationMatrix2D((ww / 2, hh / 2), angle, 1.0)
    side = round(math.hypot(ww, hh))
    R[:, 2] += np.array([(side - ww) / 2, (side - hh) / 2])
    alpha = cv2.warpAffine(layer, R, (side, side), flags=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    # Uneven inking: some parts of a rubber stamp print faintly.
    grain = cv2.resize(rng.uniform(0.35, 1.0, (8, 8)).astype(np.float32), (side, side), interpolation=cv2.INTER_CUBIC)
    return np.clip(alpha * grain * float(rng.uniform(0.6, 0.95)), 0, 1)


def _occlude(
    img: np.ndarray,
    deg: Degrade,
    rng: np.random.Generator,
    writer: Writer,
    boxes: dict[str, Box],
    k: float,
    color: bool,
) -> np.ndarray:
    """Stamps and scribbles on the paper (multiplied into ``img``, grey or BGR): what registration must ignore."""
    H, W = img.shape[:2]
    pad = round(2 * k)
    marks: list[tuple[np.ndarray, np.ndarray]] = []
    for _ in range(deg.stamps):
        alpha = _stamp(rng, k)
        marks.append((alpha, np.array(_pick(rng, _STAMP_COLOURS), np.float32)))
    for _ in range(deg.scribbles):
        alpha = render_scribble(writer, rng, round(rng.uniform(30, 80) * k), round(rng.uniform(3, 5) * k))
        marks.append((alpha, np.full(3, float(writer.ink), np.float32)))
    for alpha, bgr in marks:
        h, w = alpha.shape
        spot = _place(rng, w, h, W, H, boxes, pad, deg.occluders_avoid_fields)
        if spot is None:
            continue
        x, y = spot
        x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
        if x1 <= x0 or y1 <= y0:
            continue
        a = alpha[y0 - y : y1 - y, x0 - x : x1 - x]
        if color:
            img[y0:y1, x0:x1] *= 1 - a[..., None] * (1 - bgr / 255.0)
        else:
            grey = float(bgr[0] * 0.114 + bgr[1] * 0.587 + bgr[2] * 0.299)
            img[y0:y1, x0:x1] *= 1 - a * (1 - grey / 255.0)
    return img


def _scan(img: np.ndarray, deg: Degrade, rng: np.random.Generator) -> np.ndarray:
    """Lighting, blur, noise, dust and JPEG, in the order a scanner adds them."""
    H, W = img.shape[:2]
    lo = rng.uniform(*deg.lighting)
    if lo < 1.0:
        gh, gw = max(2, H // 32), max(2, W // 32)
        yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
        a = rng.uniform(0, 2 * math.pi)
        ramp = (np.cos(a) * xx / gw + np.sin(a) * yy / gh).astype(np.float32)
        cy, cx = rng.uniform(0, gh), rng.uniform(0, gw)
        blob = np.exp(-(((yy - cy) / (gh * 0.6)) ** 2 + ((xx - cx) / (gw * 0.6)) ** 2)).astype(np.float32)
        field_ = ramp - ramp.min()
        field_ = field_ / max(float(field_.max()), 1e-6) * 0.6 + blob * 0.4
        gain = 1.0 - (1.0 - lo) * field_ / max(float(field_.max()), 1e-6)
        gain = cv2.resize(gain, (W, H), interpolation=cv2.INTER_LINEAR)
        img = img * (gain[..., None] if img.ndim == 3 else gain)
    sigma = rng.uniform(*deg.blur_sigma)
    if sigma > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    std = rng.uniform(*deg.noise_std)
    if std > 0:
        img = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(std)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if deg.speckle > 0:
        n = int(deg.speckle * H * W)
        ys, xs = rng.integers(0, H, n), rng.integers(0, W, n)
        dark = rng.random(n) < 0.7  # dust shows as dark specks more often than as holes in the ink
        specks = rng.integers(0, 90, int(dark.sum())).astype(np.uint8)
        out[ys[dark], xs[dark]] = specks[:, None] if out.ndim == 3 else specks
        out[ys[~dark], xs[~dark]] = 255
    if deg.jpeg_quality is not None:
        q = int(rng.integers(deg.jpeg_quality[0], deg.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return out


# --- files --------------------------------------------------------------------------------------------------


def _pil(img: np.ndarray) -> Image.Image:
    if img.ndim == 3:
        return Image.fromarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    return Image.fromarray(img, mode="L") if img.dtype == np.uint8 else Image.fromarray(img.astype(np.uint8))


_FIXED_DATE = time.gmtime(1767225600)  # 2026-01-01, Pillow wants a struct_time


def save_pdf(pages: Sequence[np.ndarray], path: str | Path, dpi: int = 300, quality: int = 85) -> None:
    """A multi-page PDF whose pages rasterise back (poppler at ``dpi``) to the same pixel size.

    Greyscale pages are stored as 'L' images (JPEG-compressed by Pillow at ``quality``), which keeps a page
    well under 1 MB. The file dates are fixed so that the same pages give the same bytes.
    """
    if not pages:
        raise ValueError("no pages to save")
    ims = [_pil(p) for p in pages]
    ims[0].save(
        str(path),
        "PDF",
        save_all=True,
        append_images=ims[1:],
        resolution=float(dpi),
        quality=quality,
        creationDate=_FIXED_DATE,
        modDate=_FIXED_DATE,
        producer="formocr.synth",
    )


def save_tiff(pages: Sequence[np.ndarray], path: str | Path, dpi: int = 300) -> None:
    """A multi-page TIFF (deflate-compressed, lossless) with the resolution tag set to ``dpi``."""
    if not pages:
        raise ValueError("no pages to save")
    ims = [_pil(p) for p in pages]
    ims[0].save(
        str(path),
        "TIFF",
        save_all=True,
        append_images=ims[1:],
        compression="tiff_adobe_deflate",
        dpi=(dpi, dpi),
    )


def truth_dict(page: SynthPage) -> dict[str, Any]:
    """The ground truth of one page, JSON-ready: values as the pipeline should output them, and char boxes."""
    return {
        "template": page.template,
        "width": int(page.image.shape[1]),
        "height": int(page.image.shape[0]),
        "dpi": page.dpi,
        "skew_deg": round(page.skew_deg, 4),
        "offset_px": list(page.offset_px),
        "fields": dict(page.values),
        "field_boxes": {n: b.to_list() for n, b in page.field_boxes.items()},
        "chars": {n: [[c, b.to_list()] for c, b in cs] for n, cs in page.char_boxes.items()},
    }


def write_truth(
    path: str | Path,
    source: str,
    pages: Sequence[SynthPage],
    seed: int | Sequence[int],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the ground-truth JSON for a file of ``pages`` and return it."""
    names = {p.template for p in pages}
    doc: dict[str, Any] = {
        "source": source,
        "template": names.pop() if len(names) == 1 else None,
        "seed": seed if isinstance(seed, int) else list(seed),
        "generator": "formocr.synth (project stroke renderer; no dataset images)",
        "pages": [{"page": i + 1, **truth_dict(p)} for i, p in enumerate(pages)],
    }
    if extra:
        doc.update(extra)
    Path(path).write_text(_compact_json(doc) + "\n", encoding="utf-8")
    return doc


def _compact_json(doc: Any) -> str:
    """Indented JSON with each box, and each [char, box] pair, on one line: readable and diff-friendly."""
    text = json.dumps(doc, indent=1, ensure_ascii=False)
    text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    return re.sub(r'\[\s+("(?:[^"\\]|\\.)*"),\s+(\[[^\[\]]*\])\s+\]', r"[\1, \2]", text)
