"""Grey and ink: greyscale, the ink mask (Otsu or Sauvola, chosen by how even the paper is), speckle removal.

Everything works in pixels but takes the resolution (dpi), so physical sizes (window, speckle) stay the same at
any scan resolution.
"""

from __future__ import annotations

import cv2
import numpy as np

from formocr.errors import ConfigError

__all__ = ["BINARIZERS", "binarize", "flattened", "mm_to_px", "odd_window", "remove_speckle", "to_gray"]


BINARIZERS = ("auto", "sauvola", "otsu")


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


def odd_window(n: float, minimum: int = 3) -> int:
    k = max(minimum, round(n))
    return k if k % 2 else k + 1


_BG_DPI = 50.0


def _background(gray: np.ndarray, dpi: float) -> np.ndarray:
    """Paper brightness at ~50 dpi: strokes and thin print closed away, leaving lighting and large dark print.

    A closing (max then min filter) keeps the edge of a shadow sharp, which a blur would smear.
    """
    scale = min(1.0, _BG_DPI / dpi) if dpi > 0 else 1.0
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 0.9 else gray
    k = odd_window(mm_to_px(4.0, dpi * scale))
    return cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))


def flattened(gray: np.ndarray, dpi: float, uneven_background: int = 40) -> np.ndarray:
    """The grey with uneven lighting divided out (a phone photo's shadow, a curled page), so that every reader
    sees paper of one tone, as in the flatbed scans they learnt from; an even page passes unchanged.

    The paper's brightness comes from :func:`_background`; where it spreads by more than ``uneven_background``
    grey levels, each pixel is scaled by the paper's brightest tone over the paper's own brightness there. A
    shadowed digit keeps its contrast to the paper round it instead of fading into a grey background."""
    gray = to_gray(gray)
    if min(gray.shape[:2], default=0) < 2:
        return gray
    bg = _background(gray, dpi)
    lo, hi = (float(v) for v in np.percentile(bg, (2, 98)))
    if hi - lo <= uneven_background:
        return gray
    h, w = gray.shape
    paper = cv2.resize(bg, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    out = gray.astype(np.float32) * (hi / np.maximum(paper, 1.0))
    return np.clip(out, 0, 255).astype(np.uint8)


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
    threshold, where a global threshold would turn the dark part into black blobs. (:func:`formocr.preprocess.
    preprocess` divides the lighting out first with :func:`flattened`, so there Otsu mostly suffices; Sauvola
    stays for what flattening leaves, and for a caller's own grey.)
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
    window = odd_window(mm_to_px(window_mm, dpi))
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
