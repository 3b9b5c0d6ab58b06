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
final transform (tolerance 0.5 mm). A page whose quality stays below :data:`MIN_QUALITY`, on which none of the
fields' own frames is found, or whose transform is not a plausible scan (scale outside 0.8-1.25, anisotropy,
strong perspective), raises :class:`~formocr.errors.RegistrationError` instead of reading digits from the wrong
places.

Page strokes: :mod:`formocr.layout.strokes`; frames as segments: :mod:`formocr.layout.frames`; the matching
stages: :mod:`formocr.layout.match`; the result and cutting fields with it: :mod:`formocr.layout.registration`.
"""

from __future__ import annotations

import math

import numpy as np

from formocr.errors import RegistrationError
from formocr.layout.frames import Segment, frame_anchors, frame_length, frame_segments, project
from formocr.layout.match import CORNER_RADIUS_MM, coarse_candidates, fit_transform, match_anchors, match_fields
from formocr.layout.registration import FOUND, Registration
from formocr.layout.strokes import FINE_DPI, PageLines, page_lines
from formocr.layout.template import Template
from formocr.objects import CleanPage

__all__ = ["MIN_QUALITY", "register"]


MIN_QUALITY = 0.55  # share of the printed frames found on the page under the fitted transform


def _px(H_mm: np.ndarray, dpi: float) -> np.ndarray:
    """A template-mm → page-mm map as template-px → page-px at ``dpi``."""
    k = dpi / 25.4
    S = np.diag([k, k, 1.0])
    return S @ H_mm @ np.linalg.inv(S)


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
    q = np.rint(project(H, np.concatenate(pts)) * k).astype(np.int64)
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
        hs, vs = frame_segments(f)
        if not hs and not vs:
            continue
        over = _overruns(hs, vs)
        penalty = 0.5 * _on_strokes(lines, H, over) if over else 0.0
        out[f.name] = max(0.0, _on_strokes(lines, H, hs + vs) - penalty)
    return out


def _quality(template: Template, per_field: dict[str, float]) -> float:
    """Frame-length-weighted mean of the per-frame scores: a long comb or rule says more than a small box."""
    weights = {f.name: frame_length(f) for f in template.frames}
    total = sum(weights[n] for n in per_field)
    return sum(per_field[n] * weights[n] for n in per_field) / total if total > 0 else 0.0


def _describe(H: np.ndarray, template: Template) -> tuple[float, float, float, float, float]:
    """Scale x, scale y, rotation (deg, counter-clockwise as displayed), shear and perspective of ``H`` (mm → mm).

    Perspective is the largest distance (as a share of the form's diagonal) between where ``H`` and its affine
    approximation at the centre put the form's corners.
    """
    cx, cy = template.width_mm / 2, template.height_mm / 2
    e = 1.0
    p = project(H, np.array([[cx, cy], [cx + e, cy], [cx, cy + e]], np.float64))
    J = np.c_[(p[1] - p[0]) / e, (p[2] - p[0]) / e]
    sx, sy = float(np.hypot(*J[:, 0])), float(np.hypot(*J[:, 1]))
    rot = -math.degrees(math.atan2(J[1, 0], J[0, 0]))
    shear = float(abs(np.dot(J[:, 0], J[:, 1])) / max(sx * sy, 1e-9))
    corners = np.array(
        [[0, 0], [template.width_mm, 0], [0, template.height_mm], [template.width_mm, template.height_mm]], np.float64
    )
    affine = (corners - [cx, cy]) @ J.T + p[0]
    diag = math.hypot(template.width_mm, template.height_mm)
    persp = float(np.max(np.hypot(*(project(H, corners) - affine).T)) / diag)
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
    lines: PageLines, template: Template, H0: np.ndarray, walls: bool, diagonal: bool = False,
    give_up_below: float | None = None,
) -> tuple[np.ndarray, str, int, float] | None:
    """Per-field then per-corner matches from the coarse guess ``H0``: (H mm → mm, method, anchors, rms mm).

    With ``give_up_below``, a fit whose quality after the per-field stage is below it is dropped (None): the corners
    only settle what is already found to a fraction of a millimetre."""
    H, method = H0, "similarity"
    pairs = match_fields(lines, template, H) if len(template.frames) > 1 else []
    radii: tuple[float, ...] = (CORNER_RADIUS_MM, 0.75)
    if len(pairs) == 1:  # one frame: its shift, the coarse scale
        H = H.copy()
        H[:2, 2] += (pairs[0][1] - project(H, pairs[0][0])).mean(axis=0)
    elif pairs:
        src = np.concatenate([a for a, _ in pairs])
        dst = np.concatenate([b for _, b in pairs])
        fitted = fit_transform(src, dst, template, allow_perspective=False, thresh_mm=1.5)
        if fitted is not None:
            H, method = fitted[0], fitted[1]
    else:
        # A single frame (an envelope's comb): matched whole it can slip onto the digits' upright strokes,
        # so its corners and walls go straight to a wider corner search and outvote such strokes.
        radii = (3.0, CORNER_RADIUS_MM, 0.75)
    if give_up_below is not None and _quality(template, _coverage(lines, template, H)) < give_up_below:
        return None
    anchors, rms = 0, float("nan")
    for radius in radii:
        src, dst = match_anchors(lines, template, H, walls, radius, diagonal)
        fitted = fit_transform(src, dst, template, allow_perspective=True, thresh_mm=0.6)
        if fitted is None:
            break
        H, method, inl = fitted
        anchors = int(inl.sum())
        res = project(H, src[inl]) - dst[inl]
        rms = float(np.sqrt(np.mean(np.sum(res**2, axis=1)))) if anchors else float("nan")
    return H, method, anchors, rms


def register(clean: CleanPage, template: Template, lines: PageLines | None = None,
             give_up_below: float | None = None) -> Registration:
    """Align ``template`` to the deskewed page; :class:`RegistrationError` when it does not fit well enough.

    ``lines`` lets a caller trying several templates on one page extract the page's strokes once.
    ``give_up_below``: a candidate fit whose quality after the per-field stage is below it is dropped, not refined
    (the automatic choice, which takes only near-complete fits, uses it; see :mod:`formocr.layout.locate`).
    """
    lines = lines or page_lines(clean)
    dpi = clean.page.dpi
    if not template.frames:
        raise RegistrationError(
            f"page {clean.page.number}: template {template.name!r} has no printed frames to register on",
            clean.page.source,
        )
    corners = sum(len(frame_anchors(f, False)) for f in template.frames)
    walls = corners < 24
    diagonal = corners > 60  # many fields: two opposite corners each are plenty
    best: tuple[float, np.ndarray, str, int, float, dict[str, float]] | None = None
    why = "no printed frame of the template was found on the page"
    for _, H0 in coarse_candidates(lines, template):
        fit = _refine(lines, template, H0, walls, diagonal, give_up_below)
        if fit is None:
            why = f"no fit reached {give_up_below:.0%} of its frames at the per-field stage"
            continue
        H, method, anchors, rms = fit
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
    if per_field and not any(v >= FOUND for v in per_field.values()):
        raise RegistrationError(
            f"page {clean.page.number}: cannot register template {template.name!r}: none of its {len(per_field)} "
            "field frame(s) was found on the page (its other print lines up with something else)",
            clean.page.source,
        )
    sx, sy, rot, _, _ = _describe(H, template)
    to_page = _px(H, dpi)
    origin = project(to_page, np.zeros((1, 2)))[0]
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
