"""Random numeric forms for automatic mode (no template): field finding must be measured on layouts it never saw.

:func:`random_layout` makes a :class:`~formocr.layout.template.Template` for an A4 or US-letter page with rows of
boxes, combs (4-10 cells) and underlined blanks, each with a printed label (above it, or to its left), and
decoys a field finder must ignore: paragraphs and headings of printed text, tables (ruled grids whose cells
hold printed words and figures), rules with printed entries on them, and fields nobody filled in.

Everything is expressed with the template format, so :func:`formocr.synth.forms.render_form` prints it: a
printed text line is a ``free`` field (no border) whose ``label`` is the text, a table is a grid of ``box``
fields. Names tell the roles apart:

* ``field_N``: a field to fill in (the ground truth; N in reading order);
* ``empty_N``: a real field left blank (a template lists it; automatic mode must not report it);
* ``text_N``, ``table_N``, ``rule_N``: printed decoration;
* ``letters_N``: a box of handwritten letters (:func:`sample_form_layout`), not a digit field.

:func:`layout_values` gives the values for render_form ("" for everything but ``field_N``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from formocr.layout.template import Template, TemplateField
from formocr.synth.printer import LABEL_CAP_MM, LABEL_GAP_MM
from formocr.synth.values import random_value

PAGES = {"a4": (210.0, 297.0), "letter": (215.9, 279.4)}
MARGIN_MM = 14.0  # the renderer draws a frame 8 mm in; content stays inside it with room to spare
TOP_MM = 32.0  # below the renderer's title and instruction line
BOTTOM_MM = 20.0  # above its footer

_TEXT = (
    "please complete all items using black or blue ink the office will return forms that are not signed "
    "each household member must report income from wages benefits and other sources for the last year "
    "see notes overleaf before you write enter amounts in whole units only do not write outside the boxes"
)
_WORDS = _TEXT.split(" ")
_LABELS = (
    "Item",
    "Account no.",
    "Amount",
    "Quantity",
    "Reference",
    "Member ID",
    "Code",
    "Units",
    "Total",
    "Phone",
    "Year",
    "Invoice",
    "Count",
    "Serial",
    "Batch",
    "Zone",
    "Unit price",
    "Lot",
)
_TABLE_HEAD = ("Year", "Item", "Code", "Units", "Rate", "Total", "Ref", "Notes", "Qty", "Date")


# Hershey Simplex at scale 1, in pixels: each character's advance and the cap height, as OpenCV 5.0 measures them
# (cv2.getTextSize of a string is the sum of its characters' advances plus one). Fixed here, not asked of cv2,
# because how many words fit a line decides how many random draws a layout takes: OpenCV 5.1 draws some glyphs a
# pixel wider, and every later draw of the same seed, so every field, value and writer, came out different.
_ADVANCE = {
    " ": 7, "#": 20, "%": 21, "&": 20, "'": 6, "(": 17, ")": 17, ",": 7, "-": 13, ".": 7, "/": 13, ":": 7, ";": 7,
    **dict.fromkeys("0123456789", 17),
    "A": 19, "B": 19, "C": 19, "D": 19, "E": 17, "F": 16, "G": 19, "H": 20, "I": 7, "J": 18, "K": 17, "L": 16,
    "M": 22, "N": 20, "O": 19, "P": 18, "Q": 19, "R": 18, "S": 17, "T": 16, "U": 20, "V": 18, "W": 23, "X": 18,
    "Y": 18, "Z": 17, "a": 15, "b": 17, "c": 15, "d": 17, "e": 16, "f": 11, "g": 17, "h": 17, "i": 6, "j": 7,
    "k": 14, "l": 7, "m": 25, "n": 17, "o": 16, "p": 17, "q": 17, "r": 10, "s": 14, "t": 11, "u": 17, "v": 15,
    "w": 23, "x": 15, "y": 15, "z": 14,
}  # fmt: skip
_CAP = 21.0


def text_width_mm(s: str, cap_mm: float = LABEL_CAP_MM) -> float:
    """How wide the renderer prints ``s`` at a cap height of ``cap_mm`` (to within a pixel a glyph, whatever the
    OpenCV release; a character outside the table counts as a digit)."""
    return (sum(_ADVANCE.get(c, 17) for c in s) + 1) * cap_mm / _CAP


def _sentence(rng: np.random.Generator, width_mm: float) -> str:
    words: list[str] = []
    while True:
        w = _WORDS[int(rng.integers(0, len(_WORDS)))]
        if text_width_mm(" ".join([*words, w])) > width_mm:
            return " ".join(words) or w
        words.append(w)


class _Builder:
    def __init__(self, rng: np.random.Generator, width: float, height: float) -> None:
        self.rng, self.width, self.height = rng, width, height
        self.fields: list[TemplateField] = []
        self.counts: dict[str, int] = {}

    def name(self, role: str) -> str:
        self.counts[role] = self.counts.get(role, 0) + 1
        return f"{role}_{self.counts[role]}"

    def text(self, s: str, x: float, baseline: float) -> None:
        """A printed line with its baseline at ``baseline`` (a borderless field carrying it as its label)."""
        w = min(text_width_mm(s) + 1.0, self.width - x - 1.0)
        self.fields.append(
            TemplateField(self.name("text"), "digits", (x, baseline + LABEL_GAP_MM, w, 1.0), "free", None, {}, s)
        )


def random_layout(
    rng: np.random.Generator,
    page: str | None = None,
    empty_prob: float = 0.2,
    decoys: bool = True,
    name: str = "random_form",
) -> Template:
    """A random numeric form; its ``field_N`` fields are the ones to fill in (see the module docstring)."""
    size = page or ("a4" if rng.random() < 0.5 else "letter")
    width, height = PAGES[size]
    b = _Builder(rng, width, height)
    y = TOP_MM
    bottom = height - BOTTOM_MM
    left, right = MARGIN_MM, width - MARGIN_MM
    while True:
        kind = rng.choice(
            ["fields", "paragraph", "heading", "table", "rules"],
            p=[0.6, 0.12, 0.1, 0.1, 0.08] if decoys else [1, 0, 0, 0, 0],
        )
        if kind == "fields":
            used = _field_row(b, y, left, right, bottom, empty_prob)
        elif kind == "paragraph":
            used = _paragraph(b, y, left, right, bottom)
        elif kind == "heading":
            used = _heading(b, y, left, bottom)
        elif kind == "table":
            used = _table(b, y, left, right, bottom)
        else:
            used = _rules(b, y, left, right, bottom)
        if used is None:
            break
        y += used + float(rng.uniform(5.0, 10.0))
    if not any(f.name.startswith("field_") for f in b.fields):  # a page that asks for something
        return random_layout(rng, size, empty_prob, decoys, name)
    return _renumber(Template(name, width, height, tuple(b.fields)))


def sample_form_layout(rng: np.random.Generator, name: str = "handwriting_sample_form") -> Template:
    """A handwriting-sample form on US letter: instructions, 30 numeric boxes of 2-6 digits in six rows, two long
    boxes for the alphabet in lower and upper case (``letters_1``, ``letters_2``, written in by
    :func:`formocr.synth.printer.decorate`), and printed paragraphs: the kind of page no built-in template
    describes, read in automatic mode, whose long letter boxes must not cost more than their share."""
    width, height = PAGES["letter"]
    b = _Builder(rng, width, height)
    left, right = MARGIN_MM, width - MARGIN_MM
    y = TOP_MM
    y += (_paragraph(b, y, left, right - 25.0, height) or 0.0) + 6.0
    item = 0
    for _ in range(6):
        digits = [int(rng.integers(2, 7)) for _ in range(5)]
        slot = (right - left) / 5
        for k, n in enumerate(digits):
            item += 1
            w = min(slot - 6.0, 6.5 * n + 5.0)
            b.fields.append(TemplateField(b.name("field"), "digits", (round(left + k * slot, 1), round(y + 4.0, 1),
                                                                      round(w, 1), 11.0),
                                          "box", None, {"min_length": 1, "max_length": n}, f"Item {item}"))
        y += 22.0
    for alphabet in ("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"):
        b.fields.append(TemplateField(b.name("letters"), "digits", (left, round(y + 4.0, 1), right - left, 13.0),
                                      "box", None, {}, alphabet))
        y += 24.0
    for _ in range(2):
        used = _paragraph(b, y, left, right - 25.0, height - BOTTOM_MM)
        if used is None:
            break
        y += used + 4.0
    return _renumber(Template(name, width, height, tuple(b.fields)))


def _renumber(t: Template) -> Template:
    """``field_N`` numbered 1.. in reading order (the rows were made top to bottom, each left to right)."""
    real = [f for f in t.fields if f.name.startswith("field_")]
    names = {f.name: f"field_{i}" for i, f in enumerate(real, 1)}
    fields = tuple(replace(f, name=names.get(f.name, f.name)) for f in t.fields)
    return replace(t, fields=fields)


def _field_row(b: _Builder, y: float, left: float, right: float, bottom: float, empty_prob: float) -> float | None:
    rng = b.rng
    n = int(rng.integers(1, 4))
    items: list[tuple[str, float, float, int | None]] = []  # style, w, h, cells
    for _ in range(n):
        style = str(rng.choice(["box", "comb", "line"], p=[0.4, 0.35, 0.25]))
        if style == "comb":
            k = int(rng.integers(4, 11))
            h = float(rng.uniform(8.5, 12.0))
            cw = float(rng.uniform(0.6, 0.95)) * h
            items.append((style, round(k * cw, 1), round(h, 1), k))
        else:
            h = float(rng.uniform(9.0, 14.0)) if style == "box" else float(rng.uniform(9.0, 12.0))
            items.append((style, round(float(rng.uniform(28.0, 70.0)), 1), round(h, 1), None))
    label_top = LABEL_GAP_MM + LABEL_CAP_MM + 0.8
    row_h = max(h for _, _, h, _ in items) + label_top
    if y + row_h > bottom:
        return None
    x = left
    placed = 0
    for style, w, h, cells in items:
        beside = rng.random() < 0.3  # label to the left of the field instead of above it
        label = str(rng.choice(_LABELS))
        if label == "Item":
            label = f"Item {int(rng.integers(1, 40))}"
        lw = text_width_mm(label) + 3.0 if beside else 0.0
        if x + lw + w > right:
            continue
        fy = y + label_top + (row_h - label_top - h) / 2 if style != "line" else y + row_h - h
        fx = x + lw
        if beside:
            # baseline a little above the field's bottom (the line of a blank, the middle of a box)
            base = fy + h - 1.0 if style == "line" else fy + h / 2 + LABEL_CAP_MM / 2
            b.text(label, x, base)
        role = "empty" if rng.random() < empty_prob else "field"
        cons = {"min_length": 1, "max_length": cells if cells else int(np.clip(w / (0.5 * h), 2, 10))}
        b.fields.append(
            TemplateField(
                b.name(role),
                "digits",
                (round(fx, 1), round(fy, 1), w, h),
                style,
                cells,
                cons,
                None if beside else label,
            )
        )
        placed += 1
        x = fx + w + float(rng.uniform(8.0, 22.0))
    return row_h if placed else 0.0


def _paragraph(b: _Builder, y: float, left: float, right: float, bottom: float) -> float | None:
    lines = int(b.rng.integers(2, 6))
    lead = 4.2
    if y + lines * lead + 2 > bottom:
        return None
    for i in range(lines):
        width = (right - left) * (float(b.rng.uniform(0.5, 0.9)) if i == lines - 1 else 1.0)
        b.text(_sentence(b.rng, width), left, y + LABEL_CAP_MM + i * lead)
    return lines * lead


def _heading(b: _Builder, y: float, left: float, bottom: float) -> float | None:
    if y + 6 > bottom:
        return None
    words = [_WORDS[int(b.rng.integers(0, len(_WORDS)))].upper() for _ in range(int(b.rng.integers(2, 5)))]
    b.text(f"SECTION {int(b.rng.integers(1, 9))} - " + " ".join(words), left, y + LABEL_CAP_MM + 1.0)
    return 4.0


def _table(b: _Builder, y: float, left: float, right: float, bottom: float) -> float | None:
    """A ruled grid whose cells hold printed words and figures: boxes a field finder must not report."""
    rng = b.rng
    rows, cols = int(rng.integers(2, 5)), int(rng.integers(2, 6))
    ch = float(rng.uniform(6.5, 9.0))
    cw = min(float(rng.uniform(22.0, 40.0)), (right - left) / cols)
    if y + rows * ch > bottom:
        return None
    heads = [str(h) for h in rng.choice(_TABLE_HEAD, cols, replace=False)]
    for r in range(rows):
        for c in range(cols):
            x0, y0 = round(left + c * cw, 1), round(y + r * ch, 1)
            b.fields.append(TemplateField(b.name("table"), "digits", (x0, y0, round(cw, 1), round(ch, 1)), "box"))
            if r == 0:
                s = heads[c]
            elif rng.random() < 0.8:
                s = f"{rng.uniform(0, 9999):.2f}" if rng.random() < 0.5 else str(int(rng.integers(1, 99999)))
            else:
                continue
            b.text(s, x0 + 2.0, y0 + ch / 2 + LABEL_CAP_MM / 2)
    return rows * ch


def _rules(b: _Builder, y: float, left: float, right: float, bottom: float) -> float | None:
    """Horizontal rules with printed entries sitting on them (a ruled list): no one writes here."""
    rng = b.rng
    n = int(rng.integers(2, 5))
    lead = float(rng.uniform(6.0, 8.0))
    w = float(rng.uniform(0.5, 1.0)) * (right - left)
    if y + n * lead > bottom:
        return None
    for i in range(n):
        y2 = y + (i + 1) * lead
        b.fields.append(TemplateField(b.name("rule"), "digits", (left, round(y2 - 4.0, 1), round(w, 1), 4.0), "line"))
        b.text(_sentence(rng, w * float(rng.uniform(0.3, 0.9))), left + 1.0, y2 - 1.0)
    return n * lead


def layout_values(template: Template, rng: np.random.Generator) -> dict[str, str]:
    """Values for render_form: random digits for every ``field_N``, blank for everything else."""
    return {f.name: random_value(f, rng) if f.name.startswith("field_") else "" for f in template.fields}


def fillable(template: Template) -> Template:
    """The template a user would write for this form: its real fields (filled or not), no decoration."""
    keep = tuple(f for f in template.fields if f.name.startswith(("field_", "empty_")))
    return replace(template, fields=keep)
