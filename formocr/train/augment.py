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

from formocr.normalize import normalize_digit
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


def scan_road(digit: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """One random scanned-looking version of a 28×28 uint8 MNIST-polarity digit, as a normalized 28×28 float tile."""
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
        ink = cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    elif r < 0.45:  # thinner pen
        thin = cv2.erode(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2, 2)))
        if thin.sum() > 0.35 * ink.sum():
            ink = thin
    if rng.random() < 0.12:
        ink = _break_strokes(ink, rng)
    return normalize_digit(_drop_specks(ink))


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
