"""Synthetic filled-in scanned forms with exact ground truth.

Why: the pipeline needs sample scans we may commit and benchmarks with known answers, in every variation a
scanner and a writer produce (skew, blur, noise, uneven light, JPEG, writing that touches a border). A page is
built in three layers: the printed form (borders, labels, decoration text that a reader must ignore:
:mod:`formocr.synth.printer`), the handwriting (from :mod:`formocr.synth.handwriting`), and the scan
(:class:`~formocr.synth.degrade.Degrade`). Values: :mod:`formocr.synth.values`; files: :mod:`formocr.synth.files`.

Geometry conventions (the pipeline relies on them):

* Field borders are drawn *inside* the template box: a box's outline covers the outermost ``border`` pixels of
  its box (0.3 mm, 4 px at 300 dpi); comb cell separators (0.25 mm, 3 px at 300 dpi) are centred on
  ``x + round(i * w / cells)``. ``free`` fields have no border.
* Labels are printed above their field, their baseline 1.2 mm above the box's top edge (cap height 2.2 mm;
  brackets, a font's tallest glyphs, at most 1.35 cap heights: see :func:`formocr.synth.printer._size_unit`).
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

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from formocr.layout.template import Template, TemplateField
from formocr.objects import Box
from formocr.synth.degrade import Degrade, occlude, pick, scan
from formocr.synth.handwriting import DigitSource, Writer, render_string
from formocr.synth.printer import BORDER_MM, Printer, decorate, print_field
from formocr.synth.values import comb_text, random_value

__all__ = ["SynthPage", "render_form"]


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
    digits: DigitSource | None = None,
) -> list[tuple[str, Box]]:
    """Write ``text`` as a line in a box field: left-aligned-ish, vertically centred, inside the border."""
    pad = border + 2
    ix0, iy0, iw, ih = box.x + pad, box.y + pad, box.w - 2 * pad, box.h - 2 * pad
    height = box.h * rng.uniform(0.5, 0.72) / writer.height_scale
    img, chars = render_string(text, writer, rng, max(6, round(height)), digits=digits)
    for _ in range(4):  # too wide or too tall for the box: write smaller, as people do
        over = max(img.shape[1] / (iw * 0.96), img.shape[0] / ih)
        if over <= 1.0:
            break
        height = height / over * 0.97
        img, chars = render_string(text, writer, rng, max(6, round(height)), digits=digits)
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
    digits: DigitSource | None = None,
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
        img, chars = render_string(ch, writer, rng, max(6, round(height)), digits=digits)
        over = max(img.shape[1] / (cw * 0.92), img.shape[0] / chh)
        if over > 1.0:
            img, chars = render_string(ch, writer, rng, max(6, round(height / over * 0.95)), digits=digits)
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
    digits: DigitSource | None = None,
) -> SynthPage:
    """Print ``template``, fill it in by hand and scan it; every field gets a value (random when missing).

    A value of "" leaves its field blank. ``degrade`` None means a perfect scan. With ``color`` the page is
    BGR: the form printed in a drop-out colour, the writing in ballpoint blue or black; otherwise uint8 grey.
    With ``digits`` (:func:`formocr.synth.strings.writer_digits`: one real person's scanned digits, or a bank
    of many people's) the digits are real handwriting; otherwise the stroke renderer draws them.
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
    p = Printer(W, H, dpi)
    hand = np.zeros((H, W), np.float32)
    chars: dict[str, list[tuple[str, Box]]] = {}
    boxes: dict[str, Box] = {}
    for f in template.fields:
        box = f.region(dpi).box
        boxes[f.name] = box
        print_field(p, f, box)
        value = vals[f.name]
        if not value:
            chars[f.name] = []
        elif f.style == "comb":
            chars[f.name] = _write_comb(comb_text(f, value), f, box, writer, rng, hand, p.k, digits)
        else:
            border = max(1, p.px(BORDER_MM)) if f.style == "box" else 0
            chars[f.name] = _write_line(value, box, border, writer, rng, hand, touch_border_prob, digits)
    for m in template.marks:
        p.mark(m)
    decorate(p, template, rng, hand, writer)

    paper = float(rng.integers(deg.paper[0], deg.paper[1] + 1))
    form_alpha = p.layer.astype(np.float32) / 255.0
    if color:
        form_ink = np.array(pick(rng, [(60, 60, 235), (90, 170, 90), (200, 150, 60)]), np.float32)
        pen_ink = np.array(pick(rng, [(150, 40, 20), (40, 30, 30), (120, 50, 40)]), np.float32)
        paper_c = np.array([paper * 0.97, paper * 0.99, paper], np.float32)
        img = paper_c[None, None, :] * (1 - form_alpha[..., None] * (1 - form_ink / 255.0))
        img = img * (1 - hand[..., None] * (1 - pen_ink / 255.0))
    else:
        form_ink_g = float(rng.integers(0, 50))
        img = paper * (1 - form_alpha * (1 - form_ink_g / 255.0)) * (1 - hand * (1 - writer.ink / 255.0))

    if deg.stamps or deg.scribbles:
        img = occlude(img, deg, rng, writer, boxes, p.k, color)

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
    img = scan(img, deg, rng)
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


def _warp_box(b: Box, M: np.ndarray, W: int, H: int) -> Box:
    """The axis-aligned box around ``b``'s corners after the affine (2×3) or homography (3×3) ``M``."""
    pts = np.array([[b.x, b.y, 1], [b.x2, b.y, 1], [b.x, b.y2, 1], [b.x2, b.y2, 1]], np.float64)
    q = pts @ M.T
    if M.shape[0] == 3:
        q = q[:, :2] / q[:, 2:3]
    x0, y0 = math.floor(q[:, 0].min()), math.floor(q[:, 1].min())
    x1, y1 = math.ceil(q[:, 0].max()), math.ceil(q[:, 1].max())
    return Box(x0, y0, x1 - x0, y1 - y0).clip(W, H)
