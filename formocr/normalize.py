"""MNIST-style normalization of one digit: the single function both training and the pipeline use.

MNIST digits were made by scaling each digit's bounding box to fit 20×20 (keeping its aspect ratio, with
anti-aliasing) and centring the result in 28×28 by its centre of mass. A classifier trained on MNIST only sees
that distribution, so every tile the pipeline classifies, and every augmented training image, goes through this
same function. The constants are written into each model's card and checked at load time.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class NormSpec:
    """Preprocessing constants that travel with a model file."""

    size: int = 28
    box: int = 20
    mean: float = 0.1307
    std: float = 0.3081

    def to_dict(self) -> dict[str, float | int]:
        return {"size": self.size, "box": self.box, "mean": self.mean, "std": self.std}


DEFAULT_SPEC = NormSpec()


def _as_ink(ink: np.ndarray, caller: str) -> np.ndarray:
    """bool, uint8 (255 = ink) or float crops as float32 ink in [0, 1]."""
    a = np.asarray(ink)
    if a.dtype == bool:
        a = a.astype(np.float32)
    elif a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    else:
        a = np.clip(a.astype(np.float32), 0.0, 1.0)
    if a.ndim != 2:
        raise ValueError(f"{caller} expects a 2-D crop, got shape {a.shape}")
    return a


def normalize_digit(ink: np.ndarray, spec: NormSpec = DEFAULT_SPEC) -> np.ndarray:
    """Turn an ink crop (bool, or uint8/float where larger = more ink) into a 28×28 float32 tile in [0, 1].

    White digit on black, as in MNIST. An empty crop gives an all-zero tile.
    """
    a = _as_ink(ink, "normalize_digit")
    ys, xs = np.nonzero(a > 0.05)
    out: np.ndarray = np.zeros((spec.size, spec.size), np.float32)
    if len(ys) == 0:
        return out
    a = a[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = a.shape
    scale = spec.box / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(a, (nw, nh), interpolation=interp)
    total = float(small.sum())
    if total <= 0:
        return out
    cy = float((small.sum(axis=1) * np.arange(nh)).sum()) / total
    cx = float((small.sum(axis=0) * np.arange(nw)).sum()) / total
    centre = spec.size / 2.0  # MNIST puts the centre of mass at pixel (14, 14)
    m = np.array([[1.0, 0.0, centre - cx], [0.0, 1.0, centre - cy]], np.float32)
    out = cv2.warpAffine(
        small, m, (spec.size, spec.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    return np.clip(out, 0.0, 1.0)


def to_model_input(tiles: np.ndarray, spec: NormSpec = DEFAULT_SPEC) -> np.ndarray:
    """Stack of tiles (N×28×28 in [0, 1]) → standardised N×1×28×28 float32, as the network expects."""
    t = np.asarray(tiles, np.float32)
    return ((t - spec.mean) / spec.std)[:, None, :, :]


@dataclass(frozen=True)
class LineSpec:
    """How a field's ink becomes the string recogniser's input; stored in the model file like :class:`NormSpec`.

    The ink's bounding box is scaled to ``content`` pixels high inside a ``height``-pixel strip, its width
    stretched by ``x_stretch`` (the network keeps one column in four, and narrow touching 1s need the room),
    with ``pad`` empty columns either side and at most ``max_width`` columns in all.
    """

    height: int = 32
    content: int = 26
    x_stretch: float = 1.3
    pad: int = 4
    max_width: int = 640

    def to_dict(self) -> dict[str, float | int]:
        return {"height": self.height, "content": self.content, "x_stretch": self.x_stretch, "pad": self.pad,
                "max_width": self.max_width}


DEFAULT_LINE_SPEC = LineSpec()


def normalize_line(ink: np.ndarray, spec: LineSpec = DEFAULT_LINE_SPEC) -> np.ndarray:
    """A field's ink (bool or grey where larger = more ink) → float32 strip ``spec.height`` high, white on black.

    Returns a strip of width ``2 * pad + 1`` when there is no ink at all, so an empty field still decodes
    (to nothing) instead of failing.
    """
    a = _as_ink(ink, "normalize_line")
    ys, xs = np.nonzero(a > 0.05)
    if len(ys) == 0:
        return np.zeros((spec.height, 2 * spec.pad + 1), np.float32)
    a = a[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = a.shape
    scale = spec.content / h
    nw = max(1, round(w * scale * spec.x_stretch))
    nw = min(nw, spec.max_width - 2 * spec.pad)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(a, (nw, spec.content), interpolation=interp)
    out = np.zeros((spec.height, nw + 2 * spec.pad), np.float32)
    top = (spec.height - spec.content) // 2
    out[top : top + spec.content, spec.pad : spec.pad + nw] = np.clip(small, 0.0, 1.0)
    return out


def grey_tile(mask: np.ndarray, dark: np.ndarray | None, spec: NormSpec = DEFAULT_SPEC) -> np.ndarray:
    """One component's 28×28 tile: its ``mask`` shaded by ``dark`` (:func:`grey_ink` of its field, cut to the
    mask's box), over the mask grown by a pixel; the binarized mask alone when ``dark`` is None.

    MNIST digits are grey, anti-aliased strokes; the shaded tile is nearer to them than the mask, and a loop that
    binarization closed stays open in it. Only this component's own pixels are shaded: a touching neighbour's
    ink inside the box stays out, as in the mask.
    """
    m = np.asarray(mask, bool)
    if dark is None:
        return normalize_digit(m, spec)
    return normalize_digit(np.maximum(np.where(grow(m), dark, 0.0), 0.1 * m).astype(np.float32), spec)


def grey_ink(gray: np.ndarray, mask: np.ndarray, whole_box: bool = False) -> np.ndarray:
    """How dark each pixel of ``mask``'s strokes is, from the paper (0) to the field's darkest ink (1).

    Binarization closes the loops of a blurred 0, 6, 8 or 9 and runs close digits into one another; the grey
    levels inside the mask still tell a stroke from the lighter paper it closed over. Only the mask grown by
    one pixel (a stroke's soft edge) is kept, so printed lines, pattern and specks the mask left out stay out,
    and every mask pixel keeps at least 0.1 so the strip's extent (and the reader's geometry) is the mask's.

    ``whole_box``: every pixel of the mask's bounding box keeps its darkness, not only the strokes. Strokes the
    mask lost are then still there: a faint digit below the threshold, and a stroke lying along a printed
    border, which line removal takes away with the border. So are the border, rule and pattern themselves,
    which a reader trained on such strips learns to look through (string input ``"grey-box"``).
    """
    g = np.asarray(gray, np.float32)
    m = np.asarray(mask, bool)
    if g.shape != m.shape:
        raise ValueError(f"grey_ink: grey {g.shape} and mask {m.shape} differ")
    if not m.any():
        return np.zeros(m.shape, np.float32)
    around = g[~grow(m)]
    paper = float(np.median(around)) if around.size else float(g[m].max())
    dark = float(np.percentile(g[m], 5))
    # On the negated grey, shade_ink's arithmetic is exactly (paper - g) / (paper - dark): the same bits.
    return shade_ink(-g, m, -paper, -dark, min_span=1.0, whole_box=whole_box)


def grow(mask: np.ndarray) -> np.ndarray:
    """The mask grown by one pixel (8-connected): a stroke with its soft, anti-aliased edge."""
    return cv2.dilate(np.asarray(mask, bool).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)


def shade_ink(darkness: np.ndarray, mask: np.ndarray, paper: float, darkest: float, min_span: float,
              whole_box: bool = False) -> np.ndarray:
    """``darkness`` (larger is darker) scaled from ``paper`` (0) to ``darkest`` (1) over ``mask`` grown by a
    pixel, every mask pixel at least 0.1, nothing outside the mask's box.

    ``min_span`` keeps a field of one faint grey from being stretched to full ink.
    """
    d = np.asarray(darkness, np.float32)
    m = np.asarray(mask, bool)
    out = np.zeros(m.shape, np.float32)
    if not m.any():
        return out
    span = max(darkest - paper, min_span)
    if whole_box:
        out = np.clip((d - paper) / span, 0.0, 1.0)
    else:
        grown = grow(m)
        out[grown] = np.clip((d[grown] - paper) / span, 0.0, 1.0)
    out[m] = np.maximum(out[m], 0.1)
    ys, xs = np.nonzero(m)
    box = np.zeros(m.shape, bool)
    box[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = True
    out[~box] = 0.0
    return out
