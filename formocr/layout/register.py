"""Register a deskewed page to a template: translation, rotation, scale and mild perspective, before fields are cut.

Why: a form is rarely scanned where its template says. It is shifted by centimetres on a scanner bed larger than
itself, printed or scanned a few per cent larger or smaller, turned a little beyond what deskew levels, and a
phone or a curled sheet adds perspective. Cutting fields at their nominal boxes then cuts beside the writing.

How, coarse to fine, all on the page's *long straight strokes* (printed rules and frames survive; handwriting,
stamps and text mostly do not), from :attr:`CleanPage.layout_ink` so drop-out colour frames count too:

1. **Coarse** (25 dpi): the template's field frames (rectangles, comb walls, underlines) are drawn at each scale
   0.88-1.12 and slid over the whole page (horizontal and vertical strokes correlated separately, so a
   horizontal rule cannot stand in for a wall). The best few (scale, offset) peaks are kept.
2. **Per field** (50 dpi): each field's whole frame, drawn through the current transform, is matched within
   ±6 mm of where it should be; an affine fit over the fields found (RANSAC) absorbs rotation and shear.
3. **Per corner** (100 dpi): each frame corner (and, for templates with few fields, each comb wall's ends) is
   matched within ±2 mm with sub-pixel peaks; a homography (or an affine map when the points cannot pin down
   perspective) is fitted with RANSAC, so a corner hidden under a stamp or a scribble is outvoted.

Quality is measured, not assumed: the share of each field's printed frame that lies on page strokes under the
final transform (tolerance 0.5 mm). A page whose quality stays below :data:`MIN_QUALITY`, or whose transform is
not a plausible scan (scale outside 0.8-1.25, anisotropy, strong perspective), raises
:class:`~formocr.errors.RegistrationError` instead of reading digits from the wrong places.

Fields are then cut in the template frame (:func:`warp_fields` warps only the neighbourhood of each field), so
the field reader always sees axis-aligned frames at their nominal boxes; result boxes go back to the deskewed
page through :meth:`Registration.to_page_box`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from formocr.errors import RegistrationError
from formocr.layout.template import Mark, Template, TemplateField
from formocr.objects import Box, CleanPage, FieldRegion

__all__ = ["MIN_QUALITY", "PageLines", "Registration", "frame_length_mm", "page_lines", "register", "warp_fields"]

MIN_QUALITY = 0.55  # share of the printed frames found on the page under the fitted transform
FOUND = 0.6  # a field's frame counts as found from this coverage
COARSE_DPI = 25.0
MID_DPI = 50.0
FINE_DPI = 100.0
SCALES = tuple(float(s) for s in np.round(np.arange(0.88, 1.1201, 0.02), 3))
SEARCH_MM = 45.0  # how far the form may hang over the page's edge in the coarse search (plus 15 % of its size)
FIELD_RADIUS_MM = 3.5
FIELD_MARGIN_MM = 3.0  # blank paper around a frame in its patch: a comb slipped by one cell leaves lines there
CORNER_RADIUS_MM = 2.0
PATCH_MM = 8.0
LINE_MM = 5.0  # shortest straight run that counts as a printed line
INSET_MM = 0.15  # printed borders lie inside the box: their centre line is half a 0.3 mm border inside
TOLERANCE_MM = 0.5

Segment = tuple[float, float, float, float]  # x0, y0, x1, y1 in template millimetres
Frame = TemplateField | Mark  # anything printed that registration aligns on (Template.frames)


def _segments(f: Frame) -> tuple[list[Segment], list[Segment]]:
    """The printed frame of a field or mark as horizontal and vertical segments (template mm, line centres)."""
    if f.style == "free":
        return [], []
    if isinstance(f, Mark) and f.kind == "line":
        x, y, w, h = f.box_mm  # a rule: zero height (horizontal) or zero width (vertical)
        seg = (x, y, x + w, y + h)
        return ([seg], []) if h == 0 else ([], [seg])
    x, y, w, h = f.box_mm
    i = INSET_MM
    x0, y0, x1, y1 = x + i, y + i, x + w - i, y + h - i
    if f.style == "line":
        return [(x, y1, x + w, y1)], []
    hs = [(x, y0, x + w, y0), (x, y1, x + w, y1)]
    vs = [(x0, y, x0, y + h), (x1, y, x1, y + h)]
    if f.style == "comb" and f.cells:
        vs += [(x + c * w / f.cells, y, x + c * w / f.cells, y + h) for c in range(1, f.cells)]
    return hs, vs


def frame_length_mm(template: Template) -> float:
    """Total length of the template's printed frames: how much evidence a registration can rest on."""
    return sum(_length(f) for f in template.frames)


def _anchors(f: Frame, walls: bool) -> list[tuple[float, float]]:
    """Points that pin a frame down in x and y: its corners (a rule's ends) and optionally comb wall ends."""
    if f.style == "free":
        return []
    x, y, w, h = f.box_mm
    if isinstance(f, Mark) and f.kind == "line":
        return [(x, y), (x + w, y + h)]
    if f.style == "line":
        return [(x, y + h), (x + w, y + h)]
    pts = [(x, y), (x + w, y), (x, y + h), (x + w, y + h)]
    if walls and f.style == "comb" and f.cells:
        for c in range(1, f.cells):
            pts += [(x + c * w / f.cells, y), (x + c * w / f.cells, y + h)]
    return pts


# ------------------------------------------------------------------------------------------------ page strokes


@dataclass(frozen=True)
class PageLines:
    """The page's long horizontal and vertical strokes at 100, 50 and 25 dpi; computed once per page."""

    fine_h: np.ndarray  # uint8 0/1 at FINE_DPI
    fine_v: np.ndarray
    fine: np.ndarray  # float32, both directions, softened (for matching)
    hit: np.ndarray  # bool, both directions dilated by the tolerance (for the quality measure)
    mid: np.ndarray  # float32 at MID_DPI, softened
    coarse_h: np.ndarray  # float32 at COARSE_DPI, softened
    coarse_v: np.ndarray
    dpi: float
    shape: tuple[int, int]  # the clean page's (height, width)


def page_lines(clean: CleanPage) -> PageLines:
    """Long straight strokes of ``clean.layout_ink`` (printed rules and frames, drop-out ink included)."""
    ink = clean.layout_ink
    dpi = clean.page.dpi
    scale = FINE_DPI / dpi
    ink255 = cv2.threshold(ink.view(np.uint8), 0, 255, cv2.THRESH_BINARY)[1]  # 0/255, one SIMD pass
    small = cv2.resize(ink255, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    small = (small > 60).astype(np.uint8)
    k = FINE_DPI / 25.4
    n = max(3, round(LINE_MM * k))
    h = cv2.morphologyEx(small, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (n, 1)))
    v = cv2.morphologyEx(small, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, n)))
    both = np.maximum(h, v)
    fine = cv2.GaussianBlur(both.astype(np.float32), (0, 0), 1.0)
    t = max(1, round(TOLERANCE_MM * k))
    hit = cv2.dilate(both, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * t + 1, 2 * t + 1))) > 0
    mid = cv2.resize(both.astype(np.float32), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    mid = cv2.GaussianBlur(mid, (0, 0), 1.0)
    q = COARSE_DPI / FINE_DPI
    ch = cv2.GaussianBlur(cv2.resize(h.astype(np.float32), None, fx=q, fy=q, interpolation=cv2.INTER_AREA), (0, 0), 1.0)
    cv = cv2.GaussianBlur(cv2.resize(v.astype(np.float32), None, fx=q, fy=q, interpolation=cv2.INTER_AREA), (0, 0), 1.0)
    return PageLines(h, v, fine, hit, mid, ch, cv, dpi, (int(ink.shape[0]), int(ink.shape[1])))


# ---------------------------------------------------------------------------------------------- the result


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
        q = _apply(self.to_page, pts)
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


def _apply(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    q = np.c_[pts, np.ones(len(pts))] @ H.T
    return q[:, :2] / q[:, 2:3]


def _px(H_mm: np.ndarray, dpi: float) -> np.ndarray:
    """A template-mm → page-mm map as template-px → page-px at ``dpi``."""
    k = dpi / 25.4
    S = np.diag([k, k, 1.0])
    return S @ H_mm @ np.linalg.inv(S)


# -------------------------------------------------------------------------------------------------- stages


def _draw(
    segs: list[Segment], H: np.ndarray, k: float, origin: tuple[float, float], size: tuple[int, int]
) -> np.ndarray:
    """Segments (template mm) through ``H`` (mm → page mm) into a float image at ``k`` px/mm from ``origin`` (px).

    One-pixel lines between whole pixels: the ends rounded here (to 1/16 px, then half up) exactly as OpenCV >= 4.13
    rounds sub-pixel ends given with ``shift``, which <= 4.12 rasterised differently (a patch drawn a pixel off moved
    corner matches and flipped RANSAC fits). A float image gets no anti-aliasing from LINE_AA in any release.
    """
    img = np.zeros((size[1], size[0]), np.float32)
    if not segs:
        return img
    pts = np.array([[s[0], s[1]] for s in segs] + [[s[2], s[3]] for s in segs], np.float64)
    q = _apply(H, pts) * k - np.array(origin)
    n = len(segs)
    for i in range(n):
        a = ((round(q[i, 0] * 16) + 8) >> 4, (round(q[i, 1] * 16) + 8) >> 4)
        b = ((round(q[n + i, 0] * 16) + 8) >> 4, (round(q[n + i, 1] * 16) + 8) >> 4)
        cv2.line(img, a, b, 1.0, 1, cv2.LINE_8)
    return img


def _coarse(lines: PageLines, template: Template) -> list[tuple[float, np.ndarray]]:
    """Best (score, similarity mm→mm) candidates over scale × translation of all frames at 25 dpi."""
    k = COARSE_DPI / 25.4
    hs: list[Segment] = []
    vs: list[Segment] = []
    for f in template.frames:
        a, b = _segments(f)
        hs += a
        vs += b
    ph, pw = lines.coarse_h.shape
    tw, th = template.width_mm * k * SCALES[-1], template.height_mm * k * SCALES[-1]
    pad_x = max(round((SEARCH_MM + 0.15 * template.width_mm) * k), math.ceil((tw - pw) / 2) + 3)
    pad_y = max(round((SEARCH_MM + 0.15 * template.height_mm) * k), math.ceil((th - ph) / 2) + 3)
    border = (pad_y, pad_y, pad_x, pad_x)
    page_h = cv2.copyMakeBorder(lines.coarse_h, *border, cv2.BORDER_CONSTANT, value=0)
    page_v = cv2.copyMakeBorder(lines.coarse_v, *border, cv2.BORDER_CONSTANT, value=0)
    found: list[tuple[float, float, float, float]] = []
    for s in SCALES:
        S = np.diag([s, s, 1.0])
        size = (math.ceil(template.width_mm * k * s) + 2, math.ceil(template.height_mm * k * s) + 2)
        if size[0] >= page_h.shape[1] or size[1] >= page_h.shape[0]:
            continue
        res = np.zeros((page_h.shape[0] - size[1] + 1, page_h.shape[1] - size[0] + 1), np.float32)
        norm = 0.0
        for segs, page, horizontal in ((hs, page_h, True), (vs, page_v, False)):
            if not segs:
                continue
            line = _draw(segs, S, k, (-1, -1), size)
            # Page strokes running beside a frame line (1.5-3 mm off: a stamp's double rule, bold lettering)
            # count against a position, so dense ink cannot outscore the form's own thin frames.
            wide, narrow = ((1, 7), (1, 3)) if horizontal else ((7, 1), (3, 1))
            near = cv2.dilate(line, cv2.getStructuringElement(cv2.MORPH_RECT, wide))
            band = np.clip(near - cv2.dilate(line, cv2.getStructuringElement(cv2.MORPH_RECT, narrow)), 0, 1)
            line = cv2.GaussianBlur(line, (0, 0), 1.0)
            norm += float((line * line).sum())
            kernel = line - 0.7 * band * (float(line.sum()) / max(float(band.sum()), 1e-6))
            res += cv2.matchTemplate(page, kernel, cv2.TM_CCORR)
        if norm <= 0:
            continue
        res /= norm
        for _ in range(2):  # two peaks per scale: the second may be the right one when something else mimics it
            _, best, _, (x, y) = cv2.minMaxLoc(res)
            dx, dy = _subpixel(res, x, y)
            found.append((float(best), s, x + dx, y + dy))
            r = max(2, round(8 * k))
            res[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1] = 0
    found.sort(reverse=True)
    out: list[tuple[float, np.ndarray]] = []
    for score, s, fx, fy in found:
        ox, oy = (fx - pad_x - 1) / k, (fy - pad_y - 1) / k
        if any(abs(o[1][0, 2] - ox) < 6 and abs(o[1][1, 2] - oy) < 6 and abs(o[1][0, 0] - s) < 0.05 for o in out):
            continue
        out.append((score, np.array([[s, 0.0, ox], [0.0, s, oy], [0.0, 0.0, 1.0]])))
        if len(out) == 3:
            break
    return out


def _subpixel(res: np.ndarray, x: int, y: int) -> tuple[float, float]:
    """Parabola through the peak and its neighbours, per axis."""
    dx = dy = 0.0
    if 0 < x < res.shape[1] - 1:
        a, b, c = res[y, x - 1], res[y, x], res[y, x + 1]
        d = a - 2 * b + c
        if d < 0:
            dx = float(np.clip(0.5 * (a - c) / d, -0.5, 0.5))
    if 0 < y < res.shape[0] - 1:
        a, b, c = res[y - 1, x], res[y, x], res[y + 1, x]
        d = a - 2 * b + c
        if d < 0:
            dy = float(np.clip(0.5 * (a - c) / d, -0.5, 0.5))
    return dx, dy


def _match(page: np.ndarray, patch: np.ndarray, x0: int, y0: int, radius: int) -> tuple[float, float, float] | None:
    """Where ``patch`` (meant to lie at x0, y0 of ``page``) fits best within ``radius`` px: (dx, dy, score)."""
    ph, pw = patch.shape
    H, W = page.shape
    wx0, wy0 = x0 - radius, y0 - radius
    wx1, wy1 = x0 + pw + radius, y0 + ph + radius
    if wx0 < 0 or wy0 < 0 or wx1 > W or wy1 > H:
        # Near the page edge: pad with blank paper, so a frame partly off the page is still judged by what is on.
        window = np.zeros((wy1 - wy0, wx1 - wx0), np.float32)
        sx0, sy0, sx1, sy1 = max(0, wx0), max(0, wy0), min(W, wx1), min(H, wy1)
        if sx1 <= sx0 or sy1 <= sy0:
            return None
        window[sy0 - wy0 : sy1 - wy0, sx0 - wx0 : sx1 - wx0] = page[sy0:sy1, sx0:sx1]
    else:
        window = page[wy0:wy1, wx0:wx1]
    res = cv2.matchTemplate(window, patch, cv2.TM_CCOEFF_NORMED)
    # Over blank paper the normalized correlation is 0/0 (reported as 1): the window under the patch must hold
    # at least a fifth of the patch's own ink.
    s = cv2.integral(window)
    ry, rx = res.shape
    inked = s[ph : ph + ry, pw : pw + rx] - s[:ry, pw : pw + rx] - s[ph : ph + ry, :rx] + s[:ry, :rx]
    res = np.nan_to_num(res, nan=0.0, posinf=0.0, neginf=0.0)
    res[inked < 0.2 * float(patch.sum())] = 0.0
    _, best, _, (x, y) = cv2.minMaxLoc(res)
    sx, sy = _subpixel(res, x, y)
    return x + sx - radius, y + sy - radius, float(best)


def _per_field(
    lines: PageLines, template: Template, H: np.ndarray, min_score: float = 0.4
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each framed field matched whole at 50 dpi near where ``H`` puts it: (template corners, page corners)."""
    k = MID_DPI / 25.4
    radius = round(FIELD_RADIUS_MM * k)
    out = []
    for f in template.frames:
        hs, vs = _segments(f)
        if not hs and not vs:
            continue
        corners = np.array(_anchors(f, False), np.float64)
        q = _apply(H, corners) * k
        m = round(FIELD_MARGIN_MM * k)
        ox, oy = math.floor(q[:, 0].min()) - m, math.floor(q[:, 1].min()) - m
        size = (math.ceil(q[:, 0].max()) - ox + m + 1, math.ceil(q[:, 1].max()) - oy + m + 1)
        patch = cv2.GaussianBlur(_draw(hs + vs, H, k, (ox, oy), size), (0, 0), 1.0)
        hit = _match(lines.mid, patch, ox, oy, radius)
        if hit is None or hit[2] < min_score:
            continue
        out.append((corners, _apply(H, corners) + np.array([hit[0], hit[1]]) / k))
    return out


def _per_anchor(
    lines: PageLines,
    template: Template,
    H: np.ndarray,
    walls: bool,
    radius_mm: float,
    diagonal: bool = False,
    min_score: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Frame corners (and comb wall ends) matched at 100 dpi with sub-pixel peaks: template mm ↔ page mm."""
    k = FINE_DPI / 25.4
    radius = max(2, round(radius_mm * k))
    half = PATCH_MM / 2
    n = round(PATCH_MM * k)
    src, dst = [], []
    for f in template.frames:
        hs, vs = _segments(f)
        segs = hs + vs
        pts = _anchors(f, walls)
        if diagonal and len(pts) == 4:
            pts = [pts[0], pts[3]]
        for ax, ay in pts:
            c = _apply(H, np.array([[ax, ay]], np.float64))[0] * k
            ox, oy = round(c[0] - half * k), round(c[1] - half * k)
            patch = cv2.GaussianBlur(_draw(segs, H, k, (ox, oy), (n, n)), (0, 0), 1.0)
            if patch.sum() <= 0:
                continue
            m = _match(lines.fine, patch, ox, oy, radius)
            if m is None or m[2] < min_score:
                continue
            src.append((ax, ay))
            dst.append(((c[0] + m[0]) / k, (c[1] + m[1]) / k))
    return np.array(src, np.float64).reshape(-1, 2), np.array(dst, np.float64).reshape(-1, 2)


def _fit(
    src: np.ndarray, dst: np.ndarray, template: Template, allow_perspective: bool, thresh_mm: float
) -> tuple[np.ndarray, str, np.ndarray] | None:
    """The best model the points support (homography, affine, similarity), RANSAC then least squares on inliers."""
    n = len(src)
    if n < 2:
        return None
    span_x = np.ptp(src[:, 0]) / template.width_mm
    span_y = np.ptp(src[:, 1]) / template.height_mm
    s32, d32 = src.astype(np.float32), dst.astype(np.float32)
    if allow_perspective and n >= 10 and span_x > 0.35 and span_y > 0.35:
        Hm, mask = cv2.findHomography(s32, d32, cv2.RANSAC, thresh_mm, maxIters=500, confidence=0.995)
        if Hm is not None and mask is not None and mask.sum() >= 8:
            inl = mask.ravel() > 0
            Hl, _ = cv2.findHomography(s32[inl], d32[inl], 0)
            if Hl is not None:
                return Hl, "homography", inl
    if n >= 3 and span_x > 0.1 and span_y > 0.05:
        A, mask = cv2.estimateAffine2D(s32, d32, method=cv2.RANSAC, ransacReprojThreshold=thresh_mm, refineIters=10)
        if A is not None and mask is not None and mask.sum() >= 3:
            return np.vstack([A, [0.0, 0.0, 1.0]]), "affine", mask.ravel() > 0
    A, mask = cv2.estimateAffinePartial2D(s32, d32, method=cv2.RANSAC, ransacReprojThreshold=thresh_mm, refineIters=10)
    if A is None or mask is None:
        return None
    return np.vstack([A, [0.0, 0.0, 1.0]]), "similarity", mask.ravel() > 0


def _on_strokes(lines: PageLines, H: np.ndarray, segs: list[Segment]) -> float:
    """Share of points every 0.5 mm along ``segs`` (template mm) that ``H`` puts on page strokes (±0.5 mm)."""
    if not segs:
        return 0.0
    k = FINE_DPI / 25.4
    hgt, wid = lines.hit.shape
    pts = []
    for x0, y0, x1, y1 in segs:
        m = max(2, math.ceil(math.hypot(x1 - x0, y1 - y0) / 0.5))
        t = np.linspace(0.0, 1.0, m)
        pts.append(np.c_[x0 + t * (x1 - x0), y0 + t * (y1 - y0)])
    q = np.rint(_apply(H, np.concatenate(pts)) * k).astype(np.int64)
    inside = (q[:, 0] >= 0) & (q[:, 0] < wid) & (q[:, 1] >= 0) & (q[:, 1] < hgt)
    hits = np.zeros(len(q), bool)
    hits[inside] = lines.hit[q[inside, 1], q[inside, 0]]
    return float(hits.mean())


def _overruns(hs: list[Segment], vs: list[Segment]) -> list[Segment]:
    """Where a frame's outer lines would continue 1.5-4 mm past its ends: blank on a form that fits.

    A comb slipped by one cell, or a box matched onto part of a longer rule, covers its own frame well but has
    print running on past its ends; this is what tells them apart.
    """
    if not hs or not vs:
        return []
    a, b = 1.5, 4.0
    out: list[Segment] = []
    for x0, y0, x1, _ in hs:
        out += [(x0 - b, y0, x0 - a, y0), (x1 + a, y0, x1 + b, y0)]
    for x0, y0, _, y1 in (vs[0], vs[1]):
        out += [(x0, y0 - b, x0, y0 - a), (x0, y1 + a, x0, y1 + b)]
    return out


def _coverage(lines: PageLines, template: Template, H: np.ndarray) -> dict[str, float]:
    """Per frame (field or mark): the share of it on page strokes under ``H``, less half the share of overrun."""
    out = {}
    for f in template.frames:
        hs, vs = _segments(f)
        if not hs and not vs:
            continue
        over = _overruns(hs, vs)
        penalty = 0.5 * _on_strokes(lines, H, over) if over else 0.0
        out[f.name] = max(0.0, _on_strokes(lines, H, hs + vs) - penalty)
    return out


def _length(f: Frame) -> float:
    hs, vs = _segments(f)
    return sum(abs(s[2] - s[0]) + abs(s[3] - s[1]) for s in hs + vs)


def _quality(template: Template, per_field: dict[str, float]) -> float:
    """Frame-length-weighted mean of the per-frame scores: a long comb or rule says more than a small box."""
    weights = {f.name: _length(f) for f in template.frames}
    total = sum(weights[n] for n in per_field)
    return sum(per_field[n] * weights[n] for n in per_field) / total if total > 0 else 0.0


def _describe(H: np.ndarray, template: Template) -> tuple[float, float, float, float, float]:
    """Scale x, scale y, rotation (deg, counter-clockwise as displayed), shear and perspective of ``H`` (mm → mm).

    Perspective is the largest distance (as a share of the form's diagonal) between where ``H`` and its affine
    approximation at the centre put the form's corners.
    """
    cx, cy = template.width_mm / 2, template.height_mm / 2
    e = 1.0
    p = _apply(H, np.array([[cx, cy], [cx + e, cy], [cx, cy + e]], np.float64))
    J = np.c_[(p[1] - p[0]) / e, (p[2] - p[0]) / e]
    sx, sy = float(np.hypot(*J[:, 0])), float(np.hypot(*J[:, 1]))
    rot = -math.degrees(math.atan2(J[1, 0], J[0, 0]))
    shear = float(abs(np.dot(J[:, 0], J[:, 1])) / max(sx * sy, 1e-9))
    corners = np.array(
        [[0, 0], [template.width_mm, 0], [0, template.height_mm], [template.width_mm, template.height_mm]], np.float64
    )
    affine = (corners - [cx, cy]) @ J.T + p[0]
    diag = math.hypot(template.width_mm, template.height_mm)
    persp = float(np.max(np.hypot(*(_apply(H, corners) - affine).T)) / diag)
    return sx, sy, rot, shear, persp


def _implausible(H: np.ndarray, template: Template) -> str | None:
    sx, sy, rot, shear, persp = _describe(H, template)
    if not (0.8 <= sx <= 1.25 and 0.8 <= sy <= 1.25):
        return f"scale {sx:.2f}×{sy:.2f} outside 0.8-1.25"
    if abs(sx / sy - 1) > 0.08 or shear > 0.08:
        return f"the form would be stretched ({sx:.3f}×{sy:.3f}, shear {shear:.3f})"
    if abs(rot) > 10:
        return f"rotation {rot:.1f}° left after deskew"
    if persp > 0.05:
        return f"perspective moves a corner by {100 * persp:.1f}% of the diagonal"
    return None


def _refine(
    lines: PageLines, template: Template, H0: np.ndarray, walls: bool, diagonal: bool = False
) -> tuple[np.ndarray, str, int, float]:
    """Per-field then per-corner matches from the coarse guess ``H0``: (H mm → mm, method, anchors, rms mm)."""
    H, method = H0, "similarity"
    pairs = _per_field(lines, template, H) if len(template.frames) > 1 else []
    radii: tuple[float, ...] = (CORNER_RADIUS_MM, 0.75)
    if len(pairs) == 1:  # one frame: its shift, the coarse scale
        H = H.copy()
        H[:2, 2] += (pairs[0][1] - _apply(H, pairs[0][0])).mean(axis=0)
    elif pairs:
        src = np.concatenate([a for a, _ in pairs])
        dst = np.concatenate([b for _, b in pairs])
        fitted = _fit(src, dst, template, allow_perspective=False, thresh_mm=1.5)
        if fitted is not None:
            H, method = fitted[0], fitted[1]
    else:
        # A single frame (an envelope's comb): matched whole it can slip onto the digits' upright strokes,
        # so its corners and walls go straight to a wider corner search and outvote such strokes.
        radii = (3.0, CORNER_RADIUS_MM, 0.75)
    anchors, rms = 0, float("nan")
    for radius in radii:
        src, dst = _per_anchor(lines, template, H, walls, radius, diagonal)
        fitted = _fit(src, dst, template, allow_perspective=True, thresh_mm=0.6)
        if fitted is None:
            break
        H, method, inl = fitted
        anchors = int(inl.sum())
        res = _apply(H, src[inl]) - dst[inl]
        rms = float(np.sqrt(np.mean(np.sum(res**2, axis=1)))) if anchors else float("nan")
    return H, method, anchors, rms


def register(clean: CleanPage, template: Template, lines: PageLines | None = None) -> Registration:
    """Align ``template`` to the deskewed page; :class:`RegistrationError` when it does not fit well enough.

    ``lines`` lets a caller trying several templates on one page extract the page's strokes once.
    """
    lines = lines or page_lines(clean)
    dpi = clean.page.dpi
    if not template.frames:
        raise RegistrationError(
            f"page {clean.page.number}: template {template.name!r} has no printed frames to register on",
            clean.page.source,
        )
    corners = sum(len(_anchors(f, False)) for f in template.frames)
    walls = corners < 24
    diagonal = corners > 60  # many fields: two opposite corners each are plenty
    best: tuple[float, np.ndarray, str, int, float, dict[str, float]] | None = None
    why = "no printed frame of the template was found on the page"
    for _, H0 in _coarse(lines, template):
        H, method, anchors, rms = _refine(lines, template, H0, walls, diagonal)
        bad = _implausible(H, template)
        if bad is not None:
            why = f"the best fit is not a plausible scan: {bad}"
            continue
        cover = _coverage(lines, template, H)
        q = _quality(template, cover)
        if best is None or q > best[0]:
            best = (q, H, method, anchors, rms, {f.name: cover[f.name] for f in template.fields if f.name in cover})
        if q >= 0.97:
            break  # the frames are all there: no other candidate can do better
    if best is None or best[0] < MIN_QUALITY:
        if best is not None:
            why = f"only {100 * best[0]:.0f}% of its printed frames were found (need {100 * MIN_QUALITY:.0f}%)"
        raise RegistrationError(
            f"page {clean.page.number}: cannot register template {template.name!r}: {why}", clean.page.source
        )
    q, H, method, anchors, rms, per_field = best
    sx, sy, rot, _, _ = _describe(H, template)
    to_page = _px(H, dpi)
    origin = _apply(to_page, np.zeros((1, 2)))[0]
    return Registration(
        template=template.name,
        homography=np.linalg.inv(to_page),
        quality=q,
        per_field=per_field,
        scale=(sx + sy) / 2,
        rotation_deg=rot,
        offset_px=(round(origin[0]), round(origin[1])),
        method=method,
        anchors=anchors,
        rms_mm=rms if math.isfinite(rms) else 0.0,
        dpi=dpi,
        form=template,
    )


# ------------------------------------------------------------------------------------------ cutting fields


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
