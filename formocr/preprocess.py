"""Page clean-up before layout: greyscale, deskew, colour drop-out, binarize, despeckle.

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

from formocr.binarize import BINARIZERS, binarize, flattened, mm_to_px, remove_speckle, to_gray
from formocr.dropout import drop_out, estimate_dropout, is_colour
from formocr.errors import ConfigError, PageTooSmallError
from formocr.objects import CleanPage, Page
from formocr.options import DROPOUT_MODES, Options

__all__ = [
    "MIN_PAGE_MM",
    "PreprocessOptions",
    "check_page_size",
    "deskew",
    "estimate_skew",
    "preprocess",
    "rotate",
    "to_gray",
]


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
    uneven_background: int = 40  # background spread (grey levels) from which lighting is divided out, and
    # from which "auto" picks Sauvola on what is left
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


def reading_preprocess(options: Options) -> PreprocessOptions:
    """The clean-up a scan with ``options`` does, so anything that shows a page again (the review page's crops)
    sees the very pixels the readers saw. Speckle is removed per field by the segmenter, against the size of the
    field's own digits; a page-wide pass would cost a full-page labelling (~45 ms a 300-dpi letter page)."""
    return PreprocessOptions(deskew=options.deskew, max_skew_deg=options.max_skew_deg, binarizer=options.binarizer,
                             speckle_mm=0.0, dropout=options.dropout)


def preprocess(page: Page, options: PreprocessOptions = PreprocessOptions()) -> CleanPage:
    """Grey → skew → deskewed grey → colour drop-out → lighting flattened → ink mask → speckle removal, in the
    deskewed frame.

    On a colour page whose form is printed in a drop-out colour (:func:`estimate_dropout`), that print is taken
    out of ``gray`` and ``ink`` (:func:`drop_out`) and returned as ``form_ink``; other pages pass unchanged.
    A page too small to hold a field is a :class:`~formocr.errors.PageTooSmallError` (:func:`check_page_size`).
    """
    image = page.image
    check_page_size(page)
    gray = to_gray(image)
    skew = estimate_skew(gray, page.dpi, options.max_skew_deg) if options.deskew else 0.0
    colour = options.dropout != "none" and is_colour(image)
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
    gray = flattened(gray, page.dpi, options.uneven_background)
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
