"""Page clean-up before layout (greyscale, deskew, binarize, despeckle) and printed-line removal for crops.

Angles follow OpenCV (:func:`cv2.getRotationMatrix2D`): degrees, positive = counter-clockwise as the image
is displayed (y axis pointing down). :func:`estimate_skew` returns the *page's* rotation in that convention: a
page whose content was turned by ``rotate(level, a)`` measures ``a``, and :func:`deskew` (``rotate`` by
``-a``) levels it again. :class:`~formocr.objects.CleanPage.skew_deg` stores that measured angle.

Everything works in pixels but takes the resolution (dpi) so physical sizes (window, speckle) stay the same at
any scan resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from formocr.errors import ConfigError, PageTooSmallError
from formocr.objects import CleanPage, Page
from formocr.options import DROPOUT_MODES

__all__ = [
    "BINARIZERS",
    "DROPOUT_COLORS",
    "Dropout",
    "PreprocessOptions",
    "binarize",
    "deskew",
    "drop_out",
    "estimate_dropout",
    "estimate_skew",
    "mm_to_px",
    "preprocess",
    "remove_lines",
    "remove_speckle",
    "rotate",
    "to_gray",
]

BINARIZERS = ("auto", "sauvola", "otsu")
# Optical-density directions (B, G, R) of the usual drop-out inks: red/pink print absorbs green and blue light,
# green absorbs red and blue, light blue absorbs mostly red. Explicit ``dropout`` colours start from these.
DROPOUT_COLORS: dict[str, tuple[float, float, float]] = {
    "red": (1.0, 1.0, 0.06),
    "green": (1.0, 0.4, 1.0),
    "blue": (0.17, 0.37, 1.0),
}


@dataclass(frozen=True)
class PreprocessOptions:
    """Knobs of :func:`preprocess`; sizes in millimetres so they mean the same at any dpi."""

    deskew: bool = True
    max_skew_deg: float = 10.0
    binarizer: str = "auto"  # "auto" | "sauvola" | "otsu"
    sauvola_window_mm: float = 5.0  # a few stroke widths: local enough for shadows, wide enough for strokes
    sauvola_k: float = 0.2
    speckle_mm: float = 0.25  # ink blobs smaller than this on both sides are scanner dust
    min_contrast: int = 30  # grey levels ink must lie below the paper for Otsu (blank pages stay blank)
    uneven_background: int = 40  # background spread (grey levels) from which "auto" picks Sauvola
    dropout: str = "auto"  # "auto" | "none" | "red" | "green" | "blue": colour form print to remove

    def __post_init__(self) -> None:
        if self.dropout not in DROPOUT_MODES:
            raise ConfigError(f"dropout must be one of {', '.join(DROPOUT_MODES)}, not {self.dropout!r}")
        if self.binarizer not in BINARIZERS:
            raise ConfigError(f"binarizer must be one of {', '.join(BINARIZERS)}, not {self.binarizer!r}")
        if not 0 <= self.max_skew_deg <= 45:
            raise ConfigError(f"max_skew_deg must lie in 0..45, not {self.max_skew_deg}")
        if self.sauvola_window_mm <= 0 or not 0 < self.sauvola_k < 1 or self.speckle_mm < 0:
            raise ConfigError("sauvola_window_mm must be > 0, sauvola_k in (0, 1) and speckle_mm >= 0")


def mm_to_px(mm: float, dpi: float) -> float:
    return mm * dpi / 25.4


def to_gray(image: np.ndarray) -> np.ndarray:
    """Luminance as uint8 (BGR/BGRA in, as :func:`formocr.io.load_pages` produces); grey passes through."""
    if image.dtype != np.uint8:
        if image.dtype == np.bool_:
            image = np.where(image, np.uint8(255), np.uint8(0))
        else:
            raise ValueError(f"to_gray expects uint8 or bool, not {image.dtype}")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return np.ascontiguousarray(image[..., 0])
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"to_gray expects H×W or H×W×3/4, not shape {image.shape}")


# --------------------------------------------------------------------------------------------------- geometry


def rotate(image: np.ndarray, angle_deg: float, fill: int | None = 255) -> np.ndarray:
    """Rotate about the centre keeping the size (corners are cut, new corners filled).

    ``fill`` is the grey level of the uncovered corners (white paper by default); ``None`` replicates the edge
    instead, which avoids a bright/dark step on scans with a dark margin. Bool masks rotate with nearest
    neighbour and stay bool.
    """
    if abs(angle_deg) < 1e-6:
        return image.copy()
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), float(angle_deg), 1.0)
    is_mask = image.dtype == np.bool_
    src = image.astype(np.uint8) if is_mask else image
    interp = cv2.INTER_NEAREST if is_mask else cv2.INTER_LINEAR
    if fill is None:
        out = cv2.warpAffine(src, m, (w, h), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    else:
        value = 0 if is_mask else int(fill)
        border = (value, value, value, value)
        out = cv2.warpAffine(src, m, (w, h), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=border)
    return out.astype(bool) if is_mask else out


def deskew(image: np.ndarray, skew_deg: float, fill: int | None = 255) -> np.ndarray:
    """Undo a skew measured by :func:`estimate_skew` (works on grey, BGR and bool masks)."""
    return rotate(image, -skew_deg, fill)


_SKEW_DPI = 100.0


def _skew_points(image: np.ndarray, dpi: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """Ink pixels at ~100 dpi with their darkness as weights.

    Weights keep the sub-pixel information of anti-aliased edges: with bare binary pixels a line turned by a
    small angle becomes a staircase of level runs, which pulls the estimate towards 0°.
    """
    scale = min(1.0, _SKEW_DPI / dpi) if dpi > 0 else 1.0
    small = np.where(image, np.uint8(0), np.uint8(255)) if image.dtype == np.bool_ else to_gray(image)
    if scale < 0.9:
        small = cv2.resize(small, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    # Darker than the local mean by a margin, so shadows do not count; 31 px ≈ 8 mm at 100 dpi.
    local = cv2.blur(small, (31, 31), borderType=cv2.BORDER_REPLICATE)
    dark = cv2.subtract(local, small)
    ys, xs = np.nonzero(dark > 20)
    weights = dark[ys, xs].astype(np.float64)
    return xs, ys, weights, (int(small.shape[0]), int(small.shape[1]))


_SUBPIXEL = 4  # profile bins per pixel


def _profile_scores(
    xs: np.ndarray, ys: np.ndarray, weights: np.ndarray, angles_deg: np.ndarray
) -> np.ndarray:
    """Peakedness (sum of squares) of the row profile of ink after levelling by each candidate angle.

    Each pixel counts as a 1-px box sampled on a 1/4-px grid, not as a point: with point bins the angles that
    land pixels on whole rows (0° above all) score spuriously high and attract small skews.
    """
    scores = np.empty(len(angles_deg))
    box = np.ones(_SUBPIXEL)
    for i, a in enumerate(np.deg2rad(angles_deg)):
        # Original row of a point of a page rotated by +a (OpenCV convention, y down): y0 = x·sin a + y·cos a.
        proj = (xs * math.sin(a) + ys * math.cos(a)) * _SUBPIXEL
        idx = np.rint(proj - proj.min()).astype(np.int64)
        hist = np.convolve(np.bincount(idx, weights), box)
        scores[i] = float(np.dot(hist, hist))
    return scores


def estimate_skew(gray_or_ink: np.ndarray, dpi: float, max_deg: float = 10.0) -> float:
    """The page's rotation in degrees (OpenCV convention; see the module doc), 0.0 when there is no evidence.

    Projection profiles: when the angle is right, printed lines and text lines fall into few rows, so the
    row histogram of ink is most peaked. A coarse 0.5° search over ±``max_deg`` is refined in 0.05° steps and
    a parabola through the best three scores gives ~0.05° accuracy. Works on grey or BGR images (any
    lighting) and on bool ink masks.
    """
    if max_deg <= 0 or gray_or_ink.size == 0:
        return 0.0
    xs, ys, weights, (h, w) = _skew_points(gray_or_ink, dpi)
    # A nearly blank page (a few specks, a stamp) carries no reliable angle.
    if len(xs) < max(200, 0.0005 * h * w):
        return 0.0
    if len(xs) > 400_000:  # a dark scan: subsample for speed, the profile shape survives
        keep = np.random.default_rng(0).choice(len(xs), 400_000, replace=False)
        xs, ys, weights = xs[keep], ys[keep], weights[keep]
    xf = xs.astype(np.float64) - w / 2.0
    yf = ys.astype(np.float64) - h / 2.0

    coarse = np.arange(-max_deg, max_deg + 1e-9, 0.5)
    if len(coarse) == 0 or coarse[-1] < max_deg - 1e-9:
        coarse = np.append(coarse, max_deg)
    c_scores = _profile_scores(xf, yf, weights, coarse)
    best = float(coarse[int(np.argmax(c_scores))])
    # No angle stands out (uniform texture, noise): do not rotate on a whim.
    if c_scores.max() < 1.02 * float(np.median(c_scores)):
        return 0.0

    fine = np.arange(best - 0.75, best + 0.75 + 1e-9, 0.05)
    fine = fine[np.abs(fine) <= max_deg + 1e-9]
    f_scores = _profile_scores(xf, yf, weights, fine)
    i = int(np.argmax(f_scores))
    angle = float(fine[i])
    if 0 < i < len(fine) - 1:
        s0, s1, s2 = f_scores[i - 1], f_scores[i], f_scores[i + 1]
        denom = s0 - 2 * s1 + s2
        if denom < 0:
            angle += 0.05 * float(np.clip(0.5 * (s0 - s2) / denom, -0.5, 0.5))
    angle = float(np.clip(angle, -max_deg, max_deg))
    return round(angle, 3) + 0.0  # + 0.0 turns -0.0 into 0.0


# --------------------------------------------------------------------------------------------------- binarize


def _odd(n: float, minimum: int = 3) -> int:
    k = max(minimum, round(n))
    return k if k % 2 else k + 1


_BG_DPI = 50.0


def _background(gray: np.ndarray, dpi: float) -> np.ndarray:
    """Paper brightness at ~50 dpi: strokes and thin print closed away, leaving lighting and large dark print.

    A closing (max then min filter) keeps the edge of a shadow sharp, which a blur would smear.
    """
    scale = min(1.0, _BG_DPI / dpi) if dpi > 0 else 1.0
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 0.9 else gray
    k = _odd(mm_to_px(4.0, dpi * scale))
    return cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))


def _sauvola(gray: np.ndarray, window: int, k: float, bg: np.ndarray, min_contrast: int) -> np.ndarray:
    """Sauvola's local threshold T = m·(1 + k·(s/128 − 1)) with box filters, O(1) per pixel.

    Ink must also be darker than the paper estimate ``bg`` by ``min_contrast``: along the sharp edge of a
    shadow the window straddles bright and dark paper and Sauvola alone marks a band of dark paper as ink.
    """
    g = gray.astype(np.float32)
    size = (window, window)
    mean = cv2.boxFilter(g, cv2.CV_32F, size, borderType=cv2.BORDER_REFLECT)
    sq = cv2.sqrBoxFilter(g, cv2.CV_32F, size, borderType=cv2.BORDER_REFLECT)
    var = cv2.subtract(sq, cv2.multiply(mean, mean))
    std = cv2.sqrt(np.maximum(var, 0.0))
    # T = mean * (1 - k) + mean * std * (k / 128)
    thresh = cv2.addWeighted(mean, 1.0 - k, cv2.multiply(mean, std), k / 128.0, 0.0)
    ink = cv2.compare(g, thresh, cv2.CMP_LT) > 0
    if min_contrast > 0:
        paper = cv2.resize(bg, (gray.shape[1], gray.shape[0]), interpolation=cv2.INTER_LINEAR)
        ink &= cv2.subtract(paper, gray) >= min_contrast
    return ink


def _otsu(gray: np.ndarray, paper: float, min_contrast: int) -> np.ndarray:
    t, _ = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # On a blank page Otsu splits the paper noise in two; ink must be clearly darker than paper.
    t = min(float(t), paper - min_contrast)
    return gray <= t


def binarize(
    gray: np.ndarray,
    dpi: float,
    method: str = "auto",
    window_mm: float = 5.0,
    k: float = 0.2,
    min_contrast: int = 30,
    uneven_background: int = 40,
) -> tuple[np.ndarray, str]:
    """Ink mask (True = ink) and the method used.

    "auto" looks at the paper: an even background (flatbed scan) gets Otsu's global threshold, which keeps
    faint strokes whole; shadows or uneven lighting (phone photos, curled pages) get Sauvola's local
    threshold, where a global threshold would turn the dark part into black blobs.
    """
    if method not in BINARIZERS:
        raise ConfigError(f"binarizer must be one of {', '.join(BINARIZERS)}, not {method!r}")
    gray = to_gray(gray)
    if gray.size == 0:
        return np.zeros(gray.shape, bool), "otsu" if method == "auto" else method
    bg = _background(gray, dpi)
    lo, paper, hi = (float(v) for v in np.percentile(bg, (2, 50, 98)))
    if method == "auto":
        method = "sauvola" if hi - lo > uneven_background else "otsu"
    if method == "otsu":
        return _otsu(gray, paper, min_contrast), "otsu"
    window = _odd(mm_to_px(window_mm, dpi))
    return _sauvola(gray, window, k, bg, min_contrast // 2), "sauvola"


def remove_speckle(ink: np.ndarray, min_size_px: int) -> np.ndarray:
    """Drop ink blobs whose bounding box is below ``min_size_px`` on both axes (dust, scanner noise).

    Thin long marks (a "1", a hairline) survive because only one side needs to reach the size.
    """
    if min_size_px <= 1 or not ink.any():
        return ink.astype(bool, copy=True)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    small = (stats[:, cv2.CC_STAT_WIDTH] < min_size_px) & (stats[:, cv2.CC_STAT_HEIGHT] < min_size_px)
    small[0] = False  # background label
    if not small.any():
        return ink.astype(bool, copy=True)
    return ~small[labels] & (labels > 0)

# --------------------------------------------------------------------------------------------------- drop-out

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


def _is_colour(image: np.ndarray) -> bool:
    return image.ndim == 3 and image.shape[2] >= 3


def _paper_bgr(small: np.ndarray, dpi: float) -> np.ndarray:
    """Paper colour per channel at the working resolution: strokes and thin print closed away."""
    k = _odd(mm_to_px(4.0, dpi))
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
    if mode == "none" or not _is_colour(image):
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


MIN_PAGE_MM = 1.0
"""Shortest page side, in millimetres, formocr reads (a digit is several mm tall; 12 px at 300 dpi)."""
_MIN_PAGE_PX = 2


def check_page_size(page: Page) -> None:
    """Refuse a page under :data:`MIN_PAGE_MM` on a side (or a pixel or two) with an error naming its source.

    Why: the stages shrink a page to working resolutions down to 25 dpi (registration's coarse search), where a
    5×5 px icon or a 3000×3 px sliver at 300 dpi becomes 0 px, and OpenCV fails with an assertion and a
    traceback. 1 mm is still a pixel at 25 dpi. A millimetre and not a pixel count, because crops that
    :func:`formocr.read_field` reads at ~100 dpi are legitimately a few pixels across.
    """
    h, w = int(page.image.shape[0]), int(page.image.shape[1])
    dpi = page.dpi
    short_mm = min(w, h) * 25.4 / dpi if dpi > 0 else 0.0
    if min(w, h) < _MIN_PAGE_PX or short_mm < MIN_PAGE_MM:
        size = f"{w * 25.4 / dpi:.2g}×{h * 25.4 / dpi:.2g} mm at {dpi:g} dpi" if dpi > 0 else "no resolution"
        need = max(_MIN_PAGE_PX, math.ceil(MIN_PAGE_MM * dpi / 25.4)) if dpi > 0 else _MIN_PAGE_PX
        raise PageTooSmallError(f"page {page.number} is {w}×{h} px ({size}): too small to hold a field (a page "
                                f"needs at least {MIN_PAGE_MM:g} mm on each side, {need} px at this resolution)",
                                page.source)


def preprocess(page: Page, options: PreprocessOptions = PreprocessOptions()) -> CleanPage:
    """Grey → skew → deskewed grey → colour drop-out → ink mask → speckle removal, in the deskewed frame.

    On a colour page whose form is printed in a drop-out colour (:func:`estimate_dropout`), that print is taken
    out of ``gray`` and ``ink`` (:func:`drop_out`) and returned as ``form_ink``; other pages pass unchanged.
    A page too small to hold a field is a :class:`~formocr.errors.PageTooSmallError` (:func:`check_page_size`).
    """
    image = page.image
    check_page_size(page)
    gray = to_gray(image)
    skew = estimate_skew(gray, page.dpi, options.max_skew_deg) if options.deskew else 0.0
    colour = options.dropout != "none" and _is_colour(image)
    if skew != 0.0:
        # Fill the uncovered corners with the paper's own tone: a white wedge on a dark photo would
        # otherwise read as an edge (and as ink) to the local threshold.
        fill = int(np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])))
        gray = deskew(gray, skew, fill=fill)
        if colour:
            border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
            bfill = tuple(int(v) for v in np.median(border[:, :3], axis=0))
            image = _rotate_bgr(image[..., :3], -skew, bfill)
    removed: np.ndarray | None = None
    dropout = estimate_dropout(image, page.dpi, options.dropout) if colour else None
    if dropout is not None:
        gray, removed = drop_out(image, gray, dropout, page.dpi, options.min_contrast)
    ink, method = binarize(
        gray,
        page.dpi,
        options.binarizer,
        window_mm=options.sauvola_window_mm,
        k=options.sauvola_k,
        min_contrast=options.min_contrast,
        uneven_background=options.uneven_background,
    )
    ink = remove_speckle(ink, round(mm_to_px(options.speckle_mm, page.dpi)))
    form_ink = None if removed is None else removed & ~ink
    return CleanPage(page=page, gray=gray, ink=ink, skew_deg=skew, binarizer=method, form_ink=form_ink)


def _rotate_bgr(image: np.ndarray, angle_deg: float, fill: tuple[int, ...]) -> np.ndarray:
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), float(angle_deg), 1.0)
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(*fill, 0)[:4])


# --------------------------------------------------------------------------------------------------- lines


_CROSS_SLOPES = (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)  # dx/dy: strokes up to ~63° from upright


def _path_hits(rest: np.ndarray, reach: int, slope: float, downward: bool) -> np.ndarray:
    """Pixels from which a straight path of ``slope`` (dx per row) meets ``rest`` within ``reach`` rows.

    Upward when ``downward`` is False (rows y-1..y-reach at x - slope·k), downward otherwise (x + slope·k).
    """
    half = math.ceil(abs(slope) * reach)
    kernel = np.zeros((reach + 1, 2 * half + 1), np.uint8)
    # dilate(x, y) = max over kernel cells (i, j) of src(x + j - ax, y + i - ay)
    for k in range(1, reach + 1):
        dx = round(slope * k)
        if downward:
            kernel[k, half + dx] = 1
        else:
            kernel[reach - k, half - dx] = 1
    anchor = (half, 0 if downward else reach)
    return cv2.dilate(rest, kernel, anchor=anchor, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0


def _crossings(lines: np.ndarray, rest: np.ndarray, reach: int) -> np.ndarray:
    """Pixels of horizontal ``lines`` that a stroke passes straight through (ink above and below, in line).

    Works band by band (the rows holding line pixels, plus ``reach`` either side), so a field crop with two
    borders costs two thin strips instead of the whole crop, for each of the slopes tried.
    """
    out = np.zeros(lines.shape, bool)
    if not lines.any() or not rest.any():
        return out
    rows = np.flatnonzero(lines.any(axis=1))
    breaks = np.flatnonzero(np.diff(rows) > 2 * reach + 1)
    starts = np.concatenate([[rows[0]], rows[breaks + 1]])
    ends = np.concatenate([rows[breaks], [rows[-1]]])
    for y0, y1 in zip(starts, ends):
        a, b = max(0, int(y0) - reach), min(lines.shape[0], int(y1) + reach + 1)
        band_rest = rest[a:b]
        if not band_rest.any():
            continue
        hit = np.zeros(band_rest.shape, bool)
        for slope in _CROSS_SLOPES:
            hit |= _path_hits(band_rest, reach, slope, downward=False) & _path_hits(band_rest, reach, slope, True)
        out[a:b] |= hit
    return out & (lines > 0)


def _lines(ink8: np.ndarray, min_len: int, max_thick: int, horizontal: bool) -> np.ndarray:
    """Long thin runs along one axis: opening with a long 1-px kernel, minus anything too thick."""
    along = (min_len, 1) if horizontal else (1, min_len)
    gap = (3, 1) if horizontal else (1, 3)
    # Bridge 1-px breaks of scanned hairlines before requiring a full run.
    closed = cv2.morphologyEx(ink8, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, gap))
    runs = cv2.morphologyEx(closed, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, along))
    runs = cv2.bitwise_and(runs, ink8)
    if not runs.any():
        return runs
    across = (1, max_thick + 1) if horizontal else (max_thick + 1, 1)
    thick = cv2.morphologyEx(runs, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, across))
    lines = cv2.subtract(runs, thick)
    # Include the ragged edge rows/columns of a scanned line.
    grow = (1, 3) if horizontal else (3, 1)
    return cv2.dilate(lines, cv2.getStructuringElement(cv2.MORPH_RECT, grow)) & ink8


NO_WALL, WALL_LEFT, WALL_RIGHT, WALL_BETWEEN = 0, 1, 2, 3  # a box's left side has the writing on its right


def _border_thickness(h_lines: np.ndarray) -> int | None:
    """Mean thickness of the horizontal borders (pixels per vertical run), None when there are none."""
    on = h_lines > 0
    runs = int(np.count_nonzero(on[0])) + int(np.count_nonzero(on[1:] & ~on[:-1]))
    return max(1, round(int(on.sum()) / runs)) if runs else None


def _thin_walls(v_lines: np.ndarray, h_lines: np.ndarray, walls: np.ndarray) -> np.ndarray:
    """Cut each vertical line back to the borders' thickness where a stroke running along it made it thicker."""
    t = _border_thickness(h_lines)
    if t is None or not v_lines.any():
        return v_lines
    keep = t + 1  # a scanned line's ragged edge
    n, lab, stats, _ = cv2.connectedComponentsWithStats(v_lines, connectivity=8)
    out = v_lines.copy()
    for k in range(1, n):
        x, y, w, h = (int(v) for v in stats[k, :4])
        if w <= keep:
            continue
        sub = lab[y : y + h, x : x + w] == k
        codes = walls[x : x + w][sub.any(axis=0)]
        side = int(np.bincount(codes, minlength=4)[1:].argmax()) + 1
        centre = int(sub.sum(axis=0).argmax())
        for r in range(h):
            cols = np.flatnonzero(sub[r])
            if len(cols) <= keep:
                continue
            if side == WALL_LEFT:
                lo = int(cols.min())
            elif side == WALL_RIGHT:
                lo = int(cols.max()) - keep + 1
            else:
                lo = centre - keep // 2
            drop = cols[(cols < lo) | (cols >= lo + keep)]
            out[y + r, x + drop] = 0
    return out


def remove_lines(
    ink: np.ndarray, min_len_px: int, max_thickness_px: int, min_len_v_px: int | None = None,
    walls: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Erase long printed horizontal/vertical lines (box borders, combs) but keep strokes that cross them.

    Returns ``(clean ink, line mask)``; the line mask holds every detected line pixel, crossings included, so
    a caller can still find the borders. A line pixel is given back to the strokes when there is non-line ink
    just above and just below it (left and right for vertical lines): a handwritten 4 or 7 running through a
    box edge stays one piece instead of being cut in two.

    Any straight run of ink at least ``min_len_px`` long (``min_len_v_px`` for vertical runs, by default the
    same) and at most ``max_thickness_px`` thick counts as a line, so choose the lengths above the tallest
    stroke a digit can have (e.g. 1.2× the expected digit height) and below the border's length.

    ``walls`` (one code per column, :data:`NO_WALL` ... :data:`WALL_BETWEEN`) says where vertical lines may
    lie, when the caller knows where the walls are printed: a tall straight "1" elsewhere is then writing,
    however long and thin it is. A wall is also no thicker than the horizontal borders printed with it: where
    a vertical run is thicker, a stroke lies along the wall (a "1" written against a box's side), and only the
    wall's own width is taken, on its outer side (the middle, for a comb's inner walls).
    """
    mask = np.asarray(ink).astype(bool)
    min_v = int(min_len_px if min_len_v_px is None else min_len_v_px)
    if mask.ndim != 2 or mask.size == 0 or min(min_len_px, min_v) < 2:
        return mask.copy(), np.zeros(mask.shape, bool)
    ink8 = mask.astype(np.uint8)
    max_t = max(1, int(max_thickness_px))
    h_lines = _lines(ink8, int(min_len_px), max_t, horizontal=True)
    v_lines = _lines(ink8, min_v, max_t, horizontal=False)
    if walls is not None:
        codes = np.asarray(walls)
        v_lines[:, codes == NO_WALL] = 0
        v_lines = _thin_walls(v_lines, h_lines, codes)
    line = cv2.bitwise_or(h_lines, v_lines)
    if not line.any():
        return mask.copy(), np.zeros(mask.shape, bool)
    rest = cv2.subtract(ink8, line)
    reach = max_t + 3  # across the line (its ragged edge included) to the stroke on the other side
    restore = _crossings(h_lines, rest, reach) | _crossings(v_lines.T, rest.T, reach).T
    clean = (rest > 0) | restore
    return clean, line > 0



