"""A template's printed frames as line segments in millimetres, and drawing them through a transform.

Registration aligns on what is printed (:attr:`Template.frames`: framed fields and marks), so every stage sees a
frame as the same horizontal and vertical segments (line centres, inset by half a border) and the same anchor
points (corners, rule ends, comb wall ends).
"""

from __future__ import annotations

import cv2
import numpy as np

from formocr.layout.template import Mark, Template, TemplateField

__all__ = [
    "INSET_MM",
    "Frame",
    "Segment",
    "draw_segments",
    "frame_anchors",
    "frame_length",
    "frame_length_mm",
    "frame_segments",
    "project",
]


INSET_MM = 0.15  # printed borders lie inside the box: their centre line is half a 0.3 mm border inside

Segment = tuple[float, float, float, float]  # x0, y0, x1, y1 in template millimetres
Frame = TemplateField | Mark  # anything printed that registration aligns on (Template.frames)


def frame_segments(f: Frame) -> tuple[list[Segment], list[Segment]]:
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
    return sum(frame_length(f) for f in template.frames)


def frame_length(f: Frame) -> float:
    """Printed length of one frame in mm: how much a registration's quality weighs it."""
    hs, vs = frame_segments(f)
    return sum(abs(s[2] - s[0]) + abs(s[3] - s[1]) for s in hs + vs)


def frame_anchors(f: Frame, walls: bool) -> list[tuple[float, float]]:
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


def project(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Points (N×2) through the homography ``H``."""
    q = np.c_[pts, np.ones(len(pts))] @ H.T
    return q[:, :2] / q[:, 2:3]


def draw_segments(
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
    q = project(H, pts) * k - np.array(origin)
    n = len(segs)
    for i in range(n):
        a = ((round(q[i, 0] * 16) + 8) >> 4, (round(q[i, 1] * 16) + 8) >> 4)
        b = ((round(q[n + i, 0] * 16) + 8) >> 4, (round(q[n + i, 1] * 16) + 8) >> 4)
        cv2.line(img, a, b, 1.0, 1, cv2.LINE_8)
    return img
