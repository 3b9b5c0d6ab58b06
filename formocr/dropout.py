"""Colour drop-out: the form's print in a light colour taken out of the grey image, the pen's ink kept.

On a colour page, the form's ink colour is estimated from its long printed lines (accepted only when most of that
ink is saturated, of one hue and light: a dark blue line is a pen); in optical density each pixel is split
between the print colour and the pen colour by least squares, and the print's share is divided out of ``gray``,
so a pen stroke crossing a line keeps its own density. Grey pages and black print are left as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from formocr.binarize import mm_to_px, odd_window

__all__ = ["DROPOUT_COLORS", "Dropout", "drop_out", "estimate_dropout", "is_colour"]


# Optical-density directions (B, G, R) of the usual drop-out inks: red/pink print absorbs green and blue light,
# green absorbs red and blue, light blue absorbs mostly red. Explicit ``dropout`` colours start from these.
DROPOUT_COLORS: dict[str, tuple[float, float, float]] = {
    "red": (1.0, 1.0, 0.06),
    "green": (1.0, 0.4, 1.0),
    "blue": (0.17, 0.37, 1.0),
}

_LOG = np.log(np.maximum(np.arange(256, dtype=np.float64), 0.5)).astype(np.float32)
_LUMA = np.array([0.114, 0.587, 0.299], np.float32)  # cv2's BGR → grey weights
_DROP_DPI = 100.0
_LINE_MM = 8.0  # printed rules and box edges are longer than any pen stroke of a digit
_SATURATED = 0.4  # 1 - min/max of a pixel's channel densities: neutral (black, grey) ink stays below
_COHERENT_DEG = 15.0  # colour spread of one printed ink
_MAX_FORM_DENSITY = 1.2  # drop-out inks are light: a luminance density above this is a pen, not the form
_DROP_GAIN = 1.15  # a half-covered edge pixel projects a little short of its coverage; err towards removal


@dataclass(frozen=True)
class Dropout:
    """The form's drop-out ink on one page: optical density -ln(ink/paper) per channel (B, G, R) at full cover.

    ``luma_density`` is the same for the grey image, i.e. how much darker the print makes the paper in ``gray``.
    """

    density: tuple[float, float, float]
    luma_density: float
    source: str  # "auto" or the colour named in the options

    @property
    def bgr(self) -> tuple[int, int, int]:
        """The print's colour on white paper, for reports."""
        b, g, r = (round(255 * math.exp(-d)) for d in self.density)
        return b, g, r


def is_colour(image: np.ndarray) -> bool:
    return image.ndim == 3 and image.shape[2] >= 3


def _paper_bgr(small: np.ndarray, dpi: float) -> np.ndarray:
    """Paper colour per channel at the working resolution: strokes and thin print closed away."""
    k = odd_window(mm_to_px(4.0, dpi))
    return cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))


def _density(pixels: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """Optical density per channel (float32, ≥ 0) of uint8 BGR ``pixels`` against their ``paper``."""
    return np.maximum(_LOG[paper] - _LOG[pixels], 0.0)


def _chroma(od: np.ndarray) -> np.ndarray:
    hi = od.max(axis=-1)
    return 1.0 - od.min(axis=-1) / np.maximum(hi, 1e-6)


def estimate_dropout(image: np.ndarray, dpi: float, mode: str = "auto") -> Dropout | None:
    """The drop-out ink of a colour page (deskewed BGR), or None when the form is printed in black/grey.

    "auto" looks at the page's long straight strokes (rules, box edges, comb walls: longer than any pen stroke)
    at ~100 dpi. The form is taken to be printed in a drop-out colour only when most of that line ink is
    saturated and of one hue, and light (a dark blue straight line is a pen's underline, not the form). A
    colour name ("red", "green", "blue") skips those checks and takes the page's ink nearest that hue. The
    density at full coverage comes from the full-resolution pixels of those lines (their darkest cores), since
    at 100 dpi a 0.2 mm line is only partly covered.
    """
    if mode == "none" or not is_colour(image):
        return None
    bgr = np.ascontiguousarray(image[..., :3])
    scale = min(1.0, _DROP_DPI / dpi) if dpi > 0 else 1.0
    small = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 0.9 else bgr
    sdpi = dpi * scale
    od = _density(small, _paper_bgr(small, sdpi))
    dark = od.sum(axis=2) > 0.3
    if mode == "auto":
        n = max(5, round(mm_to_px(_LINE_MM, sdpi)))
        ink8 = dark.astype(np.uint8)
        horiz = cv2.morphologyEx(ink8, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (n, 1)))
        vert = cv2.morphologyEx(ink8, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, n)))
        where = (horiz > 0) | (vert > 0)
        pix = od[where]
        if len(pix) < 30:
            return None
        sat = _chroma(pix) > _SATURATED
        if sat.mean() < 0.5:
            return None
        unit = pix[sat] / np.linalg.norm(pix[sat], axis=1, keepdims=True)
        d = np.median(unit, axis=0)
        d /= np.linalg.norm(d)
        close = unit @ d > math.cos(math.radians(_COHERENT_DEG))
        if close.sum() < 0.4 * len(pix):
            return None
        sel = np.zeros(where.shape, bool)
        ys, xs = np.nonzero(where)
        sel[ys[sat][close], xs[sat][close]] = True
    else:
        d0 = np.array(DROPOUT_COLORS[mode], np.float32)
        d0 /= np.linalg.norm(d0)
        ys, xs = np.nonzero(dark)
        pix = od[ys, xs]
        unit = pix / np.maximum(np.linalg.norm(pix, axis=1, keepdims=True), 1e-6)
        close = unit @ d0 > math.cos(math.radians(25.0))
        if close.sum() < 20:
            return None
        d = np.mean(unit[close], axis=0)
        d /= np.linalg.norm(d)
        sel = np.zeros(dark.shape, bool)
        sel[ys[close], xs[close]] = True
    # Full coverage from the full-resolution pixels under the selected (small) pixels.
    if small is not bgr:
        sel = cv2.resize(sel.astype(np.uint8), (bgr.shape[1], bgr.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
        paper_full = cv2.resize(_paper_bgr(small, sdpi), (bgr.shape[1], bgr.shape[0]), interpolation=cv2.INTER_NEAREST)
    else:
        paper_full = _paper_bgr(small, sdpi)
    fy, fx = np.nonzero(sel)
    fod = _density(bgr[fy, fx], paper_full[fy, fx])
    fnorm = np.maximum(np.linalg.norm(fod, axis=1), 1e-6)
    # Refine the hue at full resolution (at 100 dpi a line pixel also holds some paper and pen), then take the
    # density of the line cores from pixels tightly of that hue: a pen stroke crossing the line, even a blue
    # pen on light-blue print, lies further off it than the print's own noise.
    near = (fnorm > 0.3) & (fod @ d.astype(np.float32) > fnorm * math.cos(math.radians(_COHERENT_DEG)))
    if near.sum() < 20:
        return None
    d = np.median(fod[near] / fnorm[near, None], axis=0)
    d /= np.linalg.norm(d)
    proj = fod @ d.astype(np.float32)
    along = (proj > 0.1) & (proj > fnorm * math.cos(math.radians(8.0)))
    if along.sum() < 20:
        return None
    density = d * float(np.percentile(proj[along], 95))
    luma = float(-math.log(float(np.dot(_LUMA, np.exp(-density)))))
    if mode == "auto" and luma > _MAX_FORM_DENSITY:
        return None
    b, g, r = (float(v) for v in density)
    return Dropout((b, g, r), luma, mode)


def _pen_direction(od: np.ndarray, form: np.ndarray) -> np.ndarray | None:
    """The unit density direction of the page's other dark ink (the pen), or None when there is hardly any.

    Only clearly dark pixels far in hue from the print count; a pen of the print's own hue gives no distinct
    direction and the plain projection is used instead.
    """
    along = od @ form
    off = np.linalg.norm(od - along[:, None] * form[None, :], axis=1)
    # Dark, and off the print's direction by more than its own noise (absolute, not an angle: a black pen is
    # only ~20° from green print, but at its density that is a large distance).
    other = od[(off > 0.3) & (np.linalg.norm(od, axis=1) > 1.0)]
    if len(other) < 50:
        return None
    d = np.median(other / np.linalg.norm(other, axis=1, keepdims=True), axis=0)
    n = float(np.linalg.norm(d))
    if n < 1e-6 or float(d @ form) / n > math.cos(math.radians(10.0)):
        return None
    return (d / n).astype(np.float32)


def drop_out(image: np.ndarray, gray: np.ndarray, dropout: Dropout, dpi: float,
             min_contrast: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """``gray`` with the drop-out ink taken out, and the mask of pixels it lightened by ``min_contrast`` or more.

    Per pixel, the coverage of form ink is the projection of its optical density on the ink's density
    (clipped to one layer of print), and that much of the print's grey density is divided out. Paper under
    the print comes back as paper; a pen stroke crossing a line keeps its own density (print and pen densities
    add), so it stays dark; a pen stroke off the print loses at most one layer of the light print's density.
    ``image`` is the BGR page in the same frame as ``gray``.
    """
    bgr = np.ascontiguousarray(image[..., :3])
    scale = min(1.0, _DROP_DPI / dpi) if dpi > 0 else 1.0
    small = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 0.9 else bgr
    paper_small = _paper_bgr(small, dpi * scale)
    paper_gray = cv2.cvtColor(paper_small, cv2.COLOR_BGR2GRAY)
    # Candidates: anything visibly darker than the paper (most of a page is paper and is left alone).
    sh, sw = paper_gray.shape
    ry, rx = sh / gray.shape[0], sw / gray.shape[1]
    local = cv2.resize(paper_gray, (gray.shape[1], gray.shape[0]), interpolation=cv2.INTER_NEAREST)
    ys, xs = np.nonzero(cv2.subtract(local, gray) > 6)
    out = gray.copy()
    removed = np.zeros(gray.shape, bool)
    if len(ys) == 0:
        return out, removed
    sy = np.minimum((ys * ry).astype(np.int64), sh - 1)
    sx = np.minimum((xs * rx).astype(np.int64), sw - 1)
    od = _density(bgr[ys, xs], paper_small[sy, sx])
    f = np.array(dropout.density, np.float32)
    fn = float(np.linalg.norm(f))
    pen = _pen_direction(od, f / fn)
    if pen is None:
        # No other ink to tell apart: the projection on the print's density is its coverage.
        cover = np.clip(_DROP_GAIN * (od @ f) / (fn * fn), 0.0, 1.0)
    else:
        # Two inks, two unknowns per pixel (least squares over the three channels): a pen stroke's own
        # density no longer counts as print, so strokes off the print keep their full darkness.
        # Faint "pen" in a pixel of print is the print's own colour lost to blur and JPEG's halved chroma
        # (the print looks greyer than it is); only a clear pen density switches to the two-ink split.
        basis = np.stack([f, pen], axis=1)  # 3×2
        coef = od @ np.linalg.pinv(basis).T.astype(np.float32)
        split = np.clip(_DROP_GAIN * coef[:, 0], 0.0, 1.0)
        alone = np.clip(_DROP_GAIN * (od @ f) / (fn * fn), 0.0, 1.0)
        w = np.clip((coef[:, 1] - 0.3) / 0.5, 0.0, 1.0)
        cover = w * split + (1.0 - w) * alone
    g = gray[ys, xs].astype(np.float32)
    lifted = np.minimum(g * np.exp(cover * np.float32(dropout.luma_density)), np.maximum(g, local[ys, xs]))
    new = np.rint(lifted).astype(np.uint8)
    out[ys, xs] = new
    removed[ys, xs] = new.astype(np.int16) - g.astype(np.int16) >= min_contrast
    return out, removed
