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


CONTINENTAL_DIGITS = (0, 3, 7)  # the digits :func:`continental` redraws


def continental(digit: np.ndarray, label: int, rng: np.random.Generator) -> np.ndarray:
    """The digit written as continental writers often write it: a 7 barred through its stem, a 0 slashed (Ø), a
    3 with a flat top (Ʒ).

    MNIST's American writers seldom write them so, and CVL's 67 training writers too rarely for the network to
    read every writer's: CVL's validation writers' barred 7s were read as 4, 2 or 8, their slashed 0s as 8, 9 or
    6, their flat-topped 3s as 5. The change is drawn on the 28×28 uint8 MNIST-polarity image, in the digit's own
    ink, before the image goes down either road.
    """
    if label not in CONTINENTAL_DIGITS:
        return digit
    ink = digit > 100
    ys, xs = np.nonzero(ink)
    if len(ys) < 10:
        return digit
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
    h, w = y1 - y0 + 1, x1 - x0 + 1
    out = digit.copy()
    pen = int(rng.integers(2, 4))
    level = int(np.percentile(digit[ink], 75))
    if label == 3:  # the top arc straightened into a bar and a diagonal down to the waist: a flat-topped 3
        band = ink[y0 + int(0.35 * h): y0 + int(0.6 * h) + 1]
        rows, cols = np.nonzero(band)
        if len(rows) == 0:
            return digit
        k = int(np.argmin(cols))
        wy, wx = y0 + int(0.35 * h) + int(rows[k]), int(cols[k])
        out[: max(wy - pen // 2, 0)] = 0
        out[: wy + 1, : max(wx - pen, 0)] = 0
        top = max(y0 - int(rng.integers(0, 3)), 1)
        right = x1 - int(rng.integers(0, 3))
        for a, b in (((x0 + int(rng.integers(0, 4)), top), (right, top)), ((right, top), (wx, wy))):
            cv2.line(out, a, b, level, thickness=2, lineType=cv2.LINE_AA)
        return out
    if label == 7:
        row = round(y0 + h * rng.uniform(0.45, 0.65))
        cols = np.nonzero(ink[row])[0]
        if len(cols) == 0:
            return digit
        cx = float(cols.mean())
        half = max(w, 0.6 * h) * rng.uniform(0.22, 0.4)
        tilt = np.tan(np.deg2rad(rng.uniform(-12, 8))) * half
        shift = rng.uniform(-0.25, 0.25) * half
        p1 = (round(cx - half + shift), round(row + tilt))
        p2 = (round(cx + half + shift), round(row - tilt))
    else:  # a slash rising to the right through the centre, well across the 0's own axis
        m = cv2.moments(ink.astype(np.uint8), binaryImage=True)
        axis = np.rad2deg(0.5 * np.arctan2(-2 * m["mu11"], m["mu20"] - m["mu02"]))  # rising-right angle, degrees
        ang = rng.uniform(35, 70)
        if abs(ang - axis) < 25 and m["mu02"] > 1.5 * m["mu20"]:  # a slash along a narrow 0's lean would vanish
            return digit
        half = 0.5 * np.hypot(h, w) * rng.uniform(0.75, 1.0)
        cx, cy = m["m10"] / m["m00"], m["m01"] / m["m00"]
        dx, dy = np.cos(np.deg2rad(ang)) * half, np.sin(np.deg2rad(ang)) * half
        p1 = (round(cx - dx), round(cy + dy))
        p2 = (round(cx + dx), round(cy - dy))
    cv2.line(out, p1, p2, level, thickness=pen, lineType=cv2.LINE_AA)
    return np.maximum(out, digit)


def continental_at(digit: np.ndarray, label: int, share: float, rng: np.random.Generator) -> np.ndarray:
    """:func:`continental` for ``share`` of the 7s and half that share of the 0s and 3s; other digits as they are."""
    if label not in CONTINENTAL_DIGITS or rng.random() >= share * (1.0 if label == 7 else 0.5):
        return digit
    return continental(digit, label, rng)
