"""Small geometric changes of a digit image: the shared warps of training augmentation and string synthesis."""

from __future__ import annotations

import cv2
import numpy as np


def affine_warp(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Turn (±12°), shear (±0.3) and scale (±15%) about the centre, each times ``strength``."""
    h, w = img.shape
    ang = np.deg2rad(rng.uniform(-12, 12) * strength)
    shear = rng.uniform(-0.3, 0.3) * strength
    sx = 1.0 + rng.uniform(-0.15, 0.15) * strength
    sy = 1.0 + rng.uniform(-0.15, 0.15) * strength
    c, s = np.cos(ang), np.sin(ang)
    a = np.array([[c, -s], [s, c]]) @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([sx, sy])
    centre = np.array([w / 2, h / 2])
    t = centre - a @ centre
    m = np.hstack([a, t[:, None]]).astype(np.float32)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)


def elastic_warp(img: np.ndarray, rng: np.random.Generator, alpha: float) -> np.ndarray:
    """Smooth random displacement: a coarse random grid upsampled bicubically (cheap, no large blur)."""
    h, w = img.shape
    grid = rng.uniform(-1, 1, size=(2, 5, 5)).astype(np.float32) * alpha
    dx = cv2.resize(grid[0], (w, h), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(grid[1], (w, h), interpolation=cv2.INTER_CUBIC)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(img, xs + dx, ys + dy, interpolation=cv2.INTER_LINEAR, borderValue=0)
