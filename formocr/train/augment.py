"""Augmentation that sends MNIST digits down the road a scanned digit takes.

A digit in the pipeline is a *binary* connected component cut from a page binarized at 150-600 dpi, then passed
through :func:`formocr.normalize.normalize_digit`. MNIST digits are already normalized grey tiles, so training on
them alone teaches the network a distribution it never sees in production. :func:`scan_road` enlarges the digit,
distorts it (affine, elastic), changes the pen (thicker, thinner, broken strokes), blurs and adds noise, binarizes
it at a random threshold as a page binarizer would, and only then normalizes it with the pipeline's own function.
"""

from __future__ import annotations

import cv2
import numpy as np

from formocr.normalize import grow, normalize_digit, shade_ink
from formocr.synth.warp import affine_warp, elastic_warp

UPSCALE = 2  # work at 56×56: a digit ~40 px tall with 4-8 px strokes, like a 150-300 dpi scan


def _break_strokes(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cut one or two thin gaps through the strokes, as a dry pen or a light scan does."""
    out = ink.copy()
    for _ in range(int(rng.integers(1, 3))):
        ys, xs = np.nonzero(out)
        if len(ys) == 0:
            break
        i = int(rng.integers(len(ys)))
        ang = rng.uniform(0, np.pi)
        length = rng.uniform(5, 13)
        dx, dy = np.cos(ang) * length, np.sin(ang) * length
        p1 = (int(xs[i] - dx), int(ys[i] - dy))
        p2 = (int(xs[i] + dx), int(ys[i] + dy))
        cv2.line(out, p1, p2, 0, thickness=int(rng.integers(1, 3)))
    return out


def scan_road(digit: np.ndarray, rng: np.random.Generator, strength: float = 1.0, grey: bool = False
              ) -> np.ndarray:
    """One random scanned-looking version of a 28×28 uint8 MNIST digit, as a normalized 28×28 float tile.

    ``grey``: the tile the pipeline's default ``digit_tiles="grey"`` gives, not the bare mask: the binarized
    mask shaded by how dark the blurred, noisy scan is under it (:func:`grey_shade`, as
    :func:`formocr.normalize.grey_tile` shades a cut). There a loop that the binarization closed stays lighter
    than the strokes around it, which a network can only learn to read from such tiles. The pen changes and
    broken strokes then act on the scan's grey as well as on its mask. ``False`` draws the same random numbers
    and returns the same tile as before the option existed."""
    size = 28 * UPSCALE + 12
    big: np.ndarray = np.zeros((size, size), np.float32)
    big[6:-6, 6:-6] = cv2.resize(digit.astype(np.float32) / 255.0, (28 * UPSCALE, 28 * UPSCALE),
                                 interpolation=cv2.INTER_CUBIC)
    big = affine_warp(big, rng, strength)
    if rng.random() < 0.6:
        big = elastic_warp(big, rng, alpha=rng.uniform(1.0, 3.0) * strength)
    if rng.random() < 0.3:
        big = big + rng.normal(0, rng.uniform(0.02, 0.1), big.shape).astype(np.float32)
    if rng.random() < 0.3:
        big = cv2.GaussianBlur(big, (0, 0), rng.uniform(0.6, 1.6))
    ink: np.ndarray = (big > rng.uniform(0.25, 0.6)).astype(np.uint8)
    r = rng.random()
    if r < 0.25:  # thicker pen
        k = int(rng.integers(2, 5))
        pen = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        ink = cv2.dilate(ink, pen)
        if grey:
            big = cv2.dilate(big, pen)
    elif r < 0.45:  # thinner pen
        k = 2
        pen = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        thin = cv2.erode(ink, pen)
        if thin.sum() > 0.35 * ink.sum():
            ink = thin
            if grey:
                big = cv2.erode(big, pen)
    if rng.random() < 0.12:
        whole = ink
        ink = _break_strokes(ink, rng)
        if grey:
            big = np.where((whole > 0) & (ink == 0), 0.0, big).astype(np.float32)
    kept = _drop_specks(ink)
    if grey:
        return normalize_digit(grey_shade(big, kept, rng))
    return normalize_digit(kept)


def grey_shade(darkness: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``mask`` shaded by ``darkness`` (0 paper, larger darker) through the pipeline's own
    :func:`formocr.normalize.shade_ink`, so a training tile is cut and scaled as a read one is. Only the field's
    darkest ink is guessed: this digit's own (its 95th percentile) times 0.8-1.25, since in a field a digit may be
    written lighter or darker than the rest."""
    m = np.asarray(mask, bool)
    if not m.any():
        return np.zeros(m.shape, np.float32)
    around = darkness[~grow(m)]
    paper = float(np.median(around)) if around.size else 0.0
    darkest = float(np.percentile(darkness[m], 95)) * float(rng.uniform(0.8, 1.25))
    return shade_ink(darkness, m, paper, darkest, min_span=1e-3)


def _drop_specks(ink: np.ndarray) -> np.ndarray:
    """Keep what segmentation would keep: the digit's parts, not isolated noise pixels."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    if n <= 2:
        return ink.astype(bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(n, bool)
    keep[1:] = areas >= max(6, 0.08 * areas.max())
    return keep[labels]


def clean_road(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The digit as MNIST gives it (grey levels), with a mild affine change, normalized the same way."""
    img = digit.astype(np.float32) / 255.0
    if rng.random() < 0.7:
        big = np.zeros((40, 40), np.float32)
        big[6:34, 6:34] = img
        img = affine_warp(big, rng, 0.5)
    return normalize_digit(img)


def jitter_tile(tile: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A normalized 28×28 tile turned, sheared and scaled a little, so a tile seen again is not seen identically."""
    return affine_warp(tile.astype(np.float32), rng, 0.4)
