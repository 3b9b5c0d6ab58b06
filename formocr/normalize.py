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


def normalize_digit(ink: np.ndarray, spec: NormSpec = DEFAULT_SPEC) -> np.ndarray:
    """Turn an ink crop (bool, or uint8/float where larger = more ink) into a 28×28 float32 tile in [0, 1].

    White digit on black, as in MNIST. An empty crop gives an all-zero tile.
    """
    a = np.asarray(ink)
    if a.dtype == bool:
        a = a.astype(np.float32)
    elif a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    else:
        a = np.clip(a.astype(np.float32), 0.0, 1.0)
    if a.ndim != 2:
        raise ValueError(f"normalize_digit expects a 2-D crop, got shape {a.shape}")
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
