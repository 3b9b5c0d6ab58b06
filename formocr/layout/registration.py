"""The result of registering a page (:class:`Registration`), and cutting fields in the template frame with it.

Fields are cut in the template frame (:func:`warp_fields` warps only the neighbourhood of each field), so the
field reader always sees axis-aligned frames at their nominal boxes; result boxes go back to the deskewed page
through :meth:`Registration.to_page_box`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from formocr.layout.frames import project
from formocr.layout.template import Template
from formocr.objects import Box, CleanPage, FieldRegion

__all__ = ["FOUND", "Registration", "warp_fields"]


FOUND = 0.6  # a field's frame counts as found from this coverage


@dataclass(frozen=True)
class Registration:
    """Where a template lies on a deskewed page, and how sure we are.

    ``homography`` maps deskewed-page pixels to template-frame pixels, both at the page's dpi (the template frame
    is the form as :meth:`Template.page_size_px` draws it). ``quality`` is the length-weighted share of the
    printed frames and marks found under it (0..1); ``per_field`` the same per framed field. ``scale``,
    ``rotation_deg`` and ``offset_px`` (where the template's top-left corner lies on the page) describe it for
    people.
    """

    template: str
    homography: np.ndarray
    quality: float
    per_field: dict[str, float]
    scale: float
    rotation_deg: float
    offset_px: tuple[int, int]
    method: str  # homography | affine | similarity
    anchors: int  # corner/wall matches the final fit used
    rms_mm: float  # their residual
    dpi: float
    form: Template | None = field(default=None, repr=False, compare=False)

    @property
    def to_page(self) -> np.ndarray:
        """Template-frame pixels → deskewed-page pixels."""
        return np.linalg.inv(self.homography)

    @property
    def found(self) -> int:
        return sum(v >= FOUND for v in self.per_field.values())

    def to_page_box(self, box: Box, width: int | None = None, height: int | None = None) -> Box:
        """The page-pixel box around a template-frame box (clipped to the page when its size is given)."""
        pts = np.array([[box.x, box.y], [box.x2, box.y], [box.x, box.y2], [box.x2, box.y2]], np.float64)
        q = project(self.to_page, pts)
        x0, y0 = math.floor(q[:, 0].min() + 1e-6), math.floor(q[:, 1].min() + 1e-6)
        x1, y1 = math.ceil(q[:, 0].max() - 1e-6), math.ceil(q[:, 1].max() - 1e-6)
        out = Box(x0, y0, x1 - x0, y1 - y0)
        return out.clip(width, height) if width is not None and height is not None else out

    def to_dict(self) -> dict[str, object]:
        return {
            "template": self.template,
            "method": self.method,
            "quality": round(self.quality, 4),
            "score": round(self.quality, 4),  # the older name of the same figure
            "scale": round(self.scale, 4),
            "rotation_deg": round(self.rotation_deg, 3),
            "offset_px": list(self.offset_px),
            "homography": [[round(float(v), 8) for v in row] for row in self.homography],
            "anchors": self.anchors,
            "rms_mm": round(self.rms_mm, 3),
            "fields_found": self.found,
            "fields_total": len(self.per_field),
            "per_field": {k: round(v, 4) for k, v in self.per_field.items()},
        }


def warp_fields(
    clean: CleanPage, reg: Registration, template: Template, margin_mm: float = 2.0
) -> tuple[CleanPage, list[FieldRegion]]:
    """A clean page in the template frame holding only the fields' neighbourhoods, and the nominal regions.

    Only each field's box plus ``margin_mm`` is resampled (linear for grey, linear then 50 % for the ink mask), so
    a letter page with 30 fields costs a fraction of a full-page warp; the rest of the frame is blank paper,
    which the field reader never looks at. ``form_ink`` stays behind: readers must not see it.
    """
    dpi = clean.page.dpi
    W, H = template.page_size_px(dpi)
    g = clean.gray
    paper = int(np.median(np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]]))) if g.size else 255
    gray = np.full((H, W), paper, np.uint8)
    ink = np.zeros((H, W), bool)
    to_page = reg.to_page
    pad = round(margin_mm * dpi / 25.4)
    ph, pw = g.shape[:2]
    regions = [f.region(dpi) for f in template.fields]
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    for r in regions:
        b = Box(r.box.x - pad, r.box.y - pad, r.box.w + 2 * pad, r.box.h + 2 * pad).clip(W, H)
        if b.w <= 0 or b.h <= 0:
            continue
        src = reg.to_page_box(b)
        src = Box(src.x - 2, src.y - 2, src.w + 4, src.h + 4).clip(pw, ph)  # the page pixels it draws from
        if src.w <= 0 or src.h <= 0:
            continue
        M = (
            np.array([[1.0, 0.0, -src.x], [0.0, 1.0, -src.y], [0.0, 0.0, 1.0]])
            @ to_page
            @ np.array([[1.0, 0.0, b.x], [0.0, 1.0, b.y], [0.0, 0.0, 1.0]])
        )
        gray[b.y : b.y2, b.x : b.x2] = cv2.warpPerspective(
            g[src.y : src.y2, src.x : src.x2],
            M,
            (b.w, b.h),
            flags=flags,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=paper,
        )
        ink255 = cv2.threshold(clean.ink[src.y : src.y2, src.x : src.x2].view(np.uint8), 0, 255, cv2.THRESH_BINARY)[1]
        m = cv2.warpPerspective(ink255, M, (b.w, b.h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        ink[b.y : b.y2, b.x : b.x2] = m >= 128
    return CleanPage(page=clean.page, gray=gray, ink=ink, skew_deg=clean.skew_deg, binarizer=clean.binarizer), regions
