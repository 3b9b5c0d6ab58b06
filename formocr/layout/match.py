"""Matching a template's frames against the page's strokes: the coarse search, per-frame and per-corner matches,
and the fit of a transform to the matched points.

Coarse (25 dpi): every frame drawn at each scale 0.88-1.12 and slid over the whole page, horizontal and vertical
strokes correlated apart. Per field (50 dpi): each whole frame matched near where the current transform puts it.
Per corner (100 dpi): corners and comb wall ends matched with sub-pixel peaks. :func:`fit_transform` fits the
best model the points support (homography, affine, similarity) with RANSAC.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from formocr.layout.frames import Segment, draw_segments, frame_anchors, frame_segments, project
from formocr.layout.strokes import COARSE_DPI, FINE_DPI, MID_DPI, PageLines
from formocr.layout.template import Template

__all__ = ["CORNER_RADIUS_MM", "coarse_candidates", "fit_transform", "match_anchors", "match_fields"]


SCALES = tuple(float(s) for s in np.round(np.arange(0.88, 1.1201, 0.02), 3))
SEARCH_MM = 45.0  # how far the form may hang over the page's edge in the coarse search (plus 15 % of its size)
FIELD_RADIUS_MM = 3.5
FIELD_MARGIN_MM = 3.0  # blank paper around a frame in its patch: a comb slipped by one cell leaves lines there
CORNER_RADIUS_MM = 2.0
PATCH_MM = 8.0


def coarse_candidates(lines: PageLines, template: Template) -> list[tuple[float, np.ndarray]]:
    """Best (score, similarity mm→mm) candidates over scale × translation of all frames at 25 dpi."""
    k = COARSE_DPI / 25.4
    hs: list[Segment] = []
    vs: list[Segment] = []
    for f in template.frames:
        a, b = frame_segments(f)
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
            line = draw_segments(segs, S, k, (-1, -1), size)
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


def match_fields(
    lines: PageLines, template: Template, H: np.ndarray, min_score: float = 0.4
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each framed field matched whole at 50 dpi near where ``H`` puts it: (template corners, page corners)."""
    k = MID_DPI / 25.4
    radius = round(FIELD_RADIUS_MM * k)
    out = []
    for f in template.frames:
        hs, vs = frame_segments(f)
        if not hs and not vs:
            continue
        corners = np.array(frame_anchors(f, False), np.float64)
        q = project(H, corners) * k
        m = round(FIELD_MARGIN_MM * k)
        ox, oy = math.floor(q[:, 0].min()) - m, math.floor(q[:, 1].min()) - m
        size = (math.ceil(q[:, 0].max()) - ox + m + 1, math.ceil(q[:, 1].max()) - oy + m + 1)
        patch = cv2.GaussianBlur(draw_segments(hs + vs, H, k, (ox, oy), size), (0, 0), 1.0)
        hit = _match(lines.mid, patch, ox, oy, radius)
        if hit is None or hit[2] < min_score:
            continue
        out.append((corners, project(H, corners) + np.array([hit[0], hit[1]]) / k))
    return out


def match_anchors(
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
        hs, vs = frame_segments(f)
        segs = hs + vs
        pts = frame_anchors(f, walls)
        if diagonal and len(pts) == 4:
            pts = [pts[0], pts[3]]
        for ax, ay in pts:
            c = project(H, np.array([[ax, ay]], np.float64))[0] * k
            ox, oy = round(c[0] - half * k), round(c[1] - half * k)
            patch = cv2.GaussianBlur(draw_segments(segs, H, k, (ox, oy), (n, n)), (0, 0), 1.0)
            if patch.sum() <= 0:
                continue
            m = _match(lines.fine, patch, ox, oy, radius)
            if m is None or m[2] < min_score:
                continue
            src.append((ax, ay))
            dst.append(((c[0] + m[0]) / k, (c[1] + m[1]) / k))
    return np.array(src, np.float64).reshape(-1, 2), np.array(dst, np.float64).reshape(-1, 2)


def fit_transform(
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
