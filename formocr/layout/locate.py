"""Find the template's fields on a deskewed page by matching their printed frames.

The pipeline registers pages with :mod:`formocr.layout.register` (translation, rotation, scale, perspective);
:func:`choose_registration` picks the built-in template that registers best. :func:`align` is the older
translation-only matcher, kept for callers that know their page is the template's size and merely shifted.

A scanner shifts every page a little, so the template's nominal boxes are only a starting point. Each field's
printed frame (its rectangle, and the cell walls of a comb) is drawn as a small picture and matched against the
page's ink around the nominal position at about 100 dpi (normalized cross-correlation). Fields whose frame is
found take its position; the others follow the median shift of those found. The match scores are reported as the
page's alignment quality.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from formocr.errors import RegistrationError, TemplateError
from formocr.layout.register import Registration, frame_length_mm, page_lines, register
from formocr.layout.template import BUILTIN, Template, TemplateField, load_template
from formocr.objects import CleanPage, FieldRegion

WORK_DPI = 100.0
FOUND_SCORE = 0.35


@dataclass(frozen=True)
class Alignment:
    template: str
    offset_px: tuple[int, int]
    score: float  # mean normalized correlation of the field frames, 0..1
    found: int  # fields whose frame was found
    total: int
    per_field: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "template": self.template,
            "offset_px": list(self.offset_px),
            "score": round(self.score, 4),
            "fields_found": self.found,
            "fields_total": self.total,
        }


def _frame(f: TemplateField, k: float, thick: int) -> np.ndarray:
    w, h = max(3, round(f.box_mm[2] * k)), max(3, round(f.box_mm[3] * k))
    pad = thick + 2
    img = np.zeros((h + 2 * pad, w + 2 * pad), np.float32)
    cv2.rectangle(img, (pad, pad), (pad + w, pad + h), 1.0, thick)
    if f.style == "comb" and f.cells:
        for c in range(1, f.cells):
            x = pad + round(c * w / f.cells)
            cv2.line(img, (x, pad), (x, pad + h), 1.0, thick)
    return img


def _line_image(ink: np.ndarray, scale: float, k: float) -> np.ndarray:
    """Only the long straight strokes of the page (printed rules and frames), softened for a tolerant match.

    Handwriting and printed text inside and around the frames would otherwise pull the match off.
    """
    small = cv2.resize(ink.astype(np.uint8) * 255, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    small = (small > 60).astype(np.uint8)
    horiz = cv2.morphologyEx(small, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (round(5 * k), 1)))
    vert = cv2.morphologyEx(small, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, round(5 * k))))
    return cv2.GaussianBlur(np.maximum(horiz, vert).astype(np.float32), (0, 0), 1.0)


def align(clean: CleanPage, template: Template, search_mm: float = 15.0, refine_mm: float = 2.0
          ) -> tuple[list[FieldRegion], Alignment]:
    """Field regions in page pixels, and how well the template fits this page.

    The page's shift is found for all frames together (the sum of their correlation maps), which is
    unambiguous even where identical boxes repeat at a pitch smaller than the search radius; each frame then
    refines its own position within ``refine_mm``.
    """
    dpi = clean.page.dpi
    scale = WORK_DPI / dpi
    k = WORK_DPI / 25.4
    thick = max(1, round(0.35 * k))
    radius = round(search_mm * k)
    fine = max(1, round(refine_mm * k))
    lines = _line_image(clean.layout_ink, scale, k)
    margin = radius + fine + 4
    page = cv2.copyMakeBorder(lines, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=0)
    maps: dict[str, np.ndarray] = {}
    for f in template.fields:
        if f.style == "free":
            continue
        frame = cv2.GaussianBlur(_frame(f, k, thick), (0, 0), 1.0)
        pad = thick + 2
        fh, fw = frame.shape
        x0 = round(f.box_mm[0] * k) - pad + margin - radius - fine
        y0 = round(f.box_mm[1] * k) - pad + margin - radius - fine
        window = page[max(0, y0) : y0 + fh + 2 * (radius + fine), max(0, x0) : x0 + fw + 2 * (radius + fine)]
        if y0 < 0 or x0 < 0 or window.shape[0] < fh + 2 * (radius + fine) or window.shape[1] < fw + 2 * (radius + fine):
            continue  # the frame lies (partly) beyond the page: this template does not fit
        score = cv2.matchTemplate(window, frame, cv2.TM_CCOEFF_NORMED)
        # Over blank paper the normalized correlation is 0/0, which OpenCV reports as a perfect 1: require
        # the window under the frame's box to hold at least a fifth of the frame's own ink.
        s = cv2.integral(window)
        ry, rx = score.shape
        ink = s[fh : fh + ry, fw : fw + rx] - s[:ry, fw : fw + rx] - s[fh : fh + ry, :rx] + s[:ry, :rx]
        score[ink < 0.2 * float(frame.sum())] = 0.0
        maps[f.name] = np.nan_to_num(score, nan=0.0, posinf=0.0, neginf=0.0)
    if not maps:
        alignment = Alignment(template.name, (0, 0), 0.0, 0, 0, {})
        return [f.region(dpi) for f in template.fields], alignment
    total = np.sum([m[fine:-fine, fine:-fine] for m in maps.values()], axis=0)
    _, _, _, (gx, gy) = cv2.minMaxLoc(total)
    gdx, gdy = gx - radius, gy - radius
    found: dict[str, tuple[int, int]] = {}
    scores: dict[str, float] = {}
    for name, m in maps.items():
        local = m[gy : gy + 2 * fine + 1, gx : gx + 2 * fine + 1]
        _, best, _, (lx, ly) = cv2.minMaxLoc(local)
        scores[name] = float(best)
        if best >= FOUND_SCORE:
            found[name] = (gdx + lx - fine, gdy + ly - fine)
    inv = 1.0 / scale
    regions = []
    for f in template.fields:
        dx, dy = found.get(f.name, (gdx, gdy))
        regions.append(f.region(dpi, offset=(round(dx * inv), round(dy * inv))))
    alignment = Alignment(
        template=template.name,
        offset_px=(round(gdx * inv), round(gdy * inv)),
        score=float(np.mean(list(scores.values()))),
        found=len(found),
        total=len(scores),
        per_field=scores,
    )
    return regions, alignment


def choose_registration(clean: CleanPage, candidates: list[Template] | None = None) -> tuple[Template, Registration]:
    """Register every candidate (built-ins by default) that could lie on the page, and keep the best.

    The page's aspect ratio says nothing when a form lies on a larger scanner bed, so candidates are judged by
    registration itself: among those that register (quality >= MIN_QUALITY), the one whose frames explain the
    most printed line length (quality × frame length) wins. That is what separates a cheque from an envelope
    whose single comb resembles part of the cheque's account comb: both may fit, the cheque explains more.
    """
    temps = candidates if candidates is not None else [load_template(n) for n in BUILTIN]
    h, w = clean.gray.shape
    dpi = clean.page.dpi
    lines = page_lines(clean)
    best: tuple[float, Template, Registration] | None = None
    # Most frame length first: once a template explains more line length than the next one has in all, no
    # later candidate can win, and the rest are not tried.
    for t in sorted(temps, key=frame_length_mm, reverse=True):
        if best is not None and best[0] >= frame_length_mm(t):
            break
        tw, th = t.page_size_px(dpi)
        if tw * 0.88 > w * 1.25 or th * 0.88 > h * 1.25:
            continue  # even at the smallest scale, over a fifth of the form would lie off this page
        try:
            reg = register(clean, t, lines)
        except RegistrationError:
            continue
        explained = reg.quality * frame_length_mm(t)
        if best is None or explained > best[0]:
            best = (explained, t, reg)
    if best is None:
        # No template registers. This is where automatic field finding (no template) is to be tried before
        # giving up; until then the document fails as before.
        raise TemplateError(
            f"page {clean.page.number}: no built-in template fits this page ({w}×{h} px at {dpi:g} dpi); "
            "give --template",
            clean.page.source,
        )
    return best[1], best[2]


def choose_template(clean: CleanPage, candidates: list[Template] | None = None
                    ) -> tuple[list[FieldRegion], Registration]:
    """The best-registering template's field regions in deskewed-page pixels, and its registration."""
    t, reg = choose_registration(clean, candidates)
    h, w = clean.gray.shape
    regions = [replace(r, box=reg.to_page_box(r.box, w, h)) for r in (f.region(clean.page.dpi) for f in t.fields)]
    return regions, reg
