"""Shared fixtures. Everything is drawn in code: no scan or dataset image is committed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import pytest


@dataclass(frozen=True)
class SyntheticForm:
    """A US-letter form at 300 dpi: printed rules, a row of boxes and lines of printed words.

    ``ink`` is the ground truth (True = ink); ``gray`` renders it as dark print (40) on flat paper (245) with
    sensor noise (σ = 4). Both are read-only: copy before drawing on them.
    """

    ink: np.ndarray
    gray: np.ndarray
    dpi: float = 300.0


def _draw_form(
    width: int = 2550, height: int = 3300, lines: bool = True, text: bool = True, seed: int = 0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    canvas = np.zeros((height, width), np.uint8)
    words = ["Account", "number", "Amount", "Date", "Signature", "Postal", "code", "Total", "Reference"]
    margin = max(20, width // 17)
    y = max(60, height // 13)
    while y < height - max(60, height // 13):
        if text:
            x = margin
            while x < width - 4 * margin:
                word = str(rng.choice(words))
                cv2.putText(canvas, word, (x, y - 20), cv2.FONT_HERSHEY_SIMPLEX, 1.3, 255, 3, cv2.LINE_8)
                x += 60 + 28 * len(word)
        if lines:
            cv2.line(canvas, (margin, y), (width - margin, y), 255, 3)
        y += 140
    if lines:
        for i in range(8):
            x0 = width // 2 + i * 120
            if x0 + 100 < width:
                cv2.rectangle(canvas, (x0, 600), (x0 + 100, 720), 255, 3)
    return canvas > 0


@pytest.fixture(scope="session")
def make_form() -> Callable[..., np.ndarray]:
    """``make_form(width=2550, height=3300, lines=True, text=True, seed=0)`` → ground-truth ink (bool H×W)."""
    return _draw_form


@pytest.fixture(scope="session")
def synthetic_form() -> SyntheticForm:
    ink = _draw_form()
    noise = np.random.default_rng(0).normal(0, 4, ink.shape).astype(np.float32)
    gray = np.clip(np.where(ink, np.float32(40), np.float32(245)) + noise, 0, 255).astype(np.uint8)
    ink.setflags(write=False)
    gray.setflags(write=False)
    return SyntheticForm(ink=ink, gray=gray)
