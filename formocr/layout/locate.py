"""Find the template's fields on a deskewed page by matching their printed frames.

A scanner shifts every page a little, so the template's nominal boxes are only a starting point. Each field's
printed frame (its rectangle, and the cell walls of a comb) is drawn as a small picture and matched against the
page's ink around the nominal position at about 100 dpi (normalized cross-correlation). Fields whose frame is
found take its position; the others follow the median shift of those found. The match scores are reported as the
page's alignment quality.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from formocr.errors import TemplateError
from formocr.layout.template import BUILTIN, Template, TemplateField, load_template
from formocr.objects import Box, CleanPage, FieldRegion

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


def align(clean: CleanPage, template: Template, search_mm: float = 15.0) -> tuple[list[FieldRegion], Alignment]:
    """Field regions in page pixels, and how well the template fits this page."""
    dpi = clean.page.dpi
    scale = WORK_DPI / dpi
    small = cv2.resize(clean.ink.astype(np.float32), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (3, 3), 0)
    k = WORK_DPI / 25.4
    thick = max(1, round(0.35 * k))
    radius = round(search_mm * k)
    found: dict[str, tuple[int, int, float]] = {}
    scores: dict[str, float] = {}
    for f in template.fields:
        if f.style == "free":
            continue
        frame = _frame(f, k, thick)
        pad = thick + 2
        x0 = round(f.box_mm[0] * k) - pad - radius
        y0 = round(f.box_mm[1] * k) - pad - radius
        fh, fw = frame.shape
        sx0, sy0 = max(0, x0), max(0, y0)
        sx1 = min(small.shape[1], x0 + fw + 2 * radius)
        sy1 = min(small.shape[0], y0 + fh + 2 * radius)
        window = small[sy0:sy1, sx0:sx1]
        if window.shape[0] < fh or window.shape[1] < fw:
            scores[f.name] = 0.0
            continue
        res = cv2.matchTemplate(window, frame, cv2.TM_CCOEFF_NORMED)
        _, best, _, loc = cv2.minMaxLoc(res)
        scores[f.name] = float(best)
        if best >= FOUND_SCORE:
            dx = (sx0 + loc[0]) - (x0 + radius)
            dy = (sy0 + loc[1]) - (y0 + radius)
            found[f.name] = (dx, dy, float(best))
    if found:
        gdx = int(np.median([v[0] for v in found.values()]))
        gdy = int(np.median([v[1] for v in found.values()]))
    else:
        gdx = gdy = 0
    regions = []
    inv = 1.0 / scale
    for f in template.fields:
        dx, dy = (found[f.name][0], found[f.name][1]) if f.name in found else (gdx, gdy)
        regions.append(f.region(dpi, offset=(round(dx * inv), round(dy * inv))))
    framed = [s for s in scores.values()]
    alignment = Alignment(
        template=template.name,
        offset_px=(round(gdx * inv), round(gdy * inv)),
        score=float(np.mean(framed)) if framed else 0.0,
        found=len(found),
        total=len(framed),
        per_field=scores,
    )
    return regions, alignment


def choose_template(clean: CleanPage, candidates: list[Template] | None = None) -> tuple[list[FieldRegion], Alignment]:
    """Align every candidate whose page shape fits, and keep the best-scoring one."""
    temps = candidates if candidates is not None else [load_template(n) for n in BUILTIN]
    h, w = clean.gray.shape
    best: tuple[list[FieldRegion], Alignment] | None = None
    for t in temps:
        tw, th = t.page_size_px(clean.page.dpi)
        if abs(w / h - tw / th) / (tw / th) > 0.08:
            continue
        regions, al = align(clean, t)
        if best is None or al.score > best[1].score:
            best = (regions, al)
    if best is None or best[1].found == 0:
        raise TemplateError(
            f"page {clean.page.number}: no built-in template fits this page ({w}×{h} px at {clean.page.dpi:g} dpi); "
            "give --template",
            clean.page.source,
        )
    return best
