"""The printed part of a synthetic form: frames, comb walls, labels, date slashes, titles and decoration text.

Field borders are drawn *inside* the template box: a box's outline covers the outermost ``border`` pixels of its
box (0.3 mm, 4 px at 300 dpi); comb cell separators (0.25 mm, 3 px at 300 dpi) are centred on
``x + round(i * w / cells)``. Labels are printed above their field, their baseline 1.2 mm above the box's top edge
(cap height 2.2 mm; brackets, a font's tallest glyphs, at most 1.35 cap heights: see :func:`_size_unit`). A date
comb's slashes are printed *below* the comb (starting 0.6 mm under its bottom edge) at the group boundaries.
"""

from __future__ import annotations

import cv2
import numpy as np

from formocr.layout.template import Mark, Template, TemplateField
from formocr.objects import Box
from formocr.synth.handwriting import Writer, render_scribble

__all__ = [
    "BORDER_MM",
    "BRACKET_CAPS",
    "CELL_LINE_MM",
    "LABEL_CAP_MM",
    "LABEL_GAP_MM",
    "SLASH_GAP_MM",
    "SLASH_MM",
    "Printer",
    "cap_height",
    "decorate",
    "print_field",
]


BORDER_MM = 0.3
CELL_LINE_MM = 0.25
LABEL_CAP_MM = 2.2
LABEL_GAP_MM = 1.2
SLASH_GAP_MM = 0.6
SLASH_MM = 2.2


class Printer:
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


def cap_height(font: int) -> float:
    return _ink_height("H", font)


def _size_unit(font: int) -> float:
    """What printed text is sized by, in pixels at fontScale 1: the cap height, unless the brackets reach further
    than BRACKET_CAPS cap heights. Common typefaces' brackets span about 1.3 caps, and so do OpenCV 5's fonts (the
    cap height wins there, so nothing changes); OpenCV 4's Hershey fonts have brackets of 1.5 caps, so there the
    brackets set the size (caps 10 % lower) and a 2.2 mm label's "(" stays print-sized, below what the field finder
    takes for handwriting (formocr.layout.detect)."""
    return max(cap_height(font), _ink_height("(", font) / BRACKET_CAPS)


def _date_groups(f: TemplateField) -> list[int]:
    order = f.constraints.get("order", "DMY")
    return [4, 2, 2] if order == "YMD" else [2, 2, 4]


def print_field(p: Printer, f: TemplateField, box: Box) -> None:
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


def decorate(p: Printer, t: Template, rng: np.random.Generator, hand: np.ndarray, writer: Writer) -> None:
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
    for f in t.fields:
        if f.name.startswith("letters_"):
            _letters(p, hand, writer, rng, f)


def _letters(p: Printer, hand: np.ndarray, writer: Writer, rng: np.random.Generator, field: TemplateField) -> None:
    """The field's label copied letter by letter into its box by hand (a script face, one glyph at a time, each
    shifted, sized and turned a little): the letter boxes of handwriting-sample forms, which a digit reader must
    decide about quickly, not read."""
    x, y, w, h = (p.px(v) for v in field.box_mm)
    text = (field.label or "").replace(" ", "")
    if not text or w < 8 or h < 8:
        return
    strip = np.zeros((h, w), np.float32)
    size = 0.55 * h
    scale = cv2.getFontScaleFromHeight(cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, max(4, round(size)))
    thick = max(1, round(writer.pen * size * 0.9))
    step = (w - 0.1 * h) / len(text)
    for i, ch in enumerate(text):
        glyph = np.zeros((h, max(4, round(step * 1.6))), np.uint8)
        gy = round(h * 0.72 + rng.normal(0, 0.04) * h)
        cv2.putText(glyph, ch, (round(0.15 * step), gy), cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
                    scale * float(rng.uniform(0.85, 1.1)), 255, thick, cv2.LINE_AA)
        m = cv2.getRotationMatrix2D((glyph.shape[1] / 2, h / 2), float(rng.normal(0, 4)), 1.0)
        m[0, 1] += float(np.tan(writer.slant))
        turned = cv2.warpAffine(glyph, m, (glyph.shape[1], h)).astype(np.float32) / 255.0
        gx = round(0.05 * h + i * step + float(rng.normal(0, 0.05)) * step)
        gx0, gx1 = max(0, gx), min(w, gx + turned.shape[1])
        if gx1 > gx0:
            np.maximum(strip[:, gx0:gx1], turned[:, gx0 - gx : gx1 - gx], out=strip[:, gx0:gx1])
    region = hand[y : y + h, x : x + w]
    np.maximum(region, strip[: region.shape[0], : region.shape[1]], out=region)


def _scribble(
    p: Printer,
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
