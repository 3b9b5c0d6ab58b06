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

from formocr.errors import ConfigError
from formocr.objects import CleanPage, Page

__all__ = [
    "BINARIZERS",
    "PreprocessOptions",
    "binarize",
    "deskew",
    "estimate_skew",
    "mm_to_px",
    "preprocess",
    "remove_lines",
    "remove_speckle",
    "rotate",
    "to_gray",
]

BINARIZERS = ("auto", "sauvola", "otsu")


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

    def __post_init__(self) -> None:
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


def preprocess(page: Page, options: PreprocessOptions = PreprocessOptions()) -> CleanPage:
    """Grey → skew → deskewed grey → ink mask → speckle removal, all in the deskewed frame."""
    gray = to_gray(page.image)
    skew = estimate_skew(gray, page.dpi, options.max_skew_deg) if options.deskew else 0.0
    if skew != 0.0:
        # Fill the uncovered corners with the paper's own tone: a white wedge on a dark photo would
        # otherwise read as an edge (and as ink) to the local threshold.
        fill = int(np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])))
        gray = deskew(gray, skew, fill=fill)
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
    return CleanPage(page=page, gray=gray, ink=ink, skew_deg=skew, binarizer=method)


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


def remove_lines(
    ink: np.ndarray, min_len_px: int, max_thickness_px: int, min_len_v_px: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Erase long printed horizontal/vertical lines (box borders, combs) but keep strokes that cross them.

    Returns ``(clean ink, line mask)``; the line mask holds every detected line pixel, crossings included, so
    a caller can still find the borders. A line pixel is given back to the strokes when there is non-line ink
    just above and just below it (left and right for vertical lines): a handwritten 4 or 7 running through a
    box edge stays one piece instead of being cut in two.

    Any straight run of ink at least ``min_len_px`` long (``min_len_v_px`` for vertical runs, by default the
    same) and at most ``max_thickness_px`` thick counts as a line, so choose the lengths above the tallest
    stroke a digit can have (e.g. 1.2× the expected digit height) and below the border's length.
    """
    mask = np.asarray(ink).astype(bool)
    min_v = int(min_len_px if min_len_v_px is None else min_len_v_px)
    if mask.ndim != 2 or mask.size == 0 or min(min_len_px, min_v) < 2:
        return mask.copy(), np.zeros(mask.shape, bool)
    ink8 = mask.astype(np.uint8)
    max_t = max(1, int(max_thickness_px))
    h_lines = _lines(ink8, int(min_len_px), max_t, horizontal=True)
    v_lines = _lines(ink8, min_v, max_t, horizontal=False)
    line = cv2.bitwise_or(h_lines, v_lines)
    if not line.any():
        return mask.copy(), np.zeros(mask.shape, bool)
    rest = cv2.subtract(ink8, line)
    reach = max_t + 3  # across the line (its ragged edge included) to the stroke on the other side
    restore = _crossings(h_lines, rest, reach) | _crossings(v_lines.T, rest.T, reach).T
    clean = (rest > 0) | restore
    return clean, line > 0



