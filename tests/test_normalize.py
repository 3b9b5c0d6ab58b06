"""The MNIST-style normalization shared by training and the pipeline."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from formocr.normalize import normalize_digit, to_model_input


def _seven(h: int, w: int, thick: int) -> np.ndarray:
    img = np.zeros((h, w), np.uint8)
    cv2.line(img, (w // 10, h // 10), (w - w // 10, h // 10), 255, thick)
    cv2.line(img, (w - w // 10, h // 10), (w // 3, h - h // 10), 255, thick)
    return img > 0


def _com(t: np.ndarray) -> tuple[float, float]:
    ys, xs = np.mgrid[0 : t.shape[0], 0 : t.shape[1]]
    return float((t * ys).sum() / t.sum()), float((t * xs).sum() / t.sum())


def test_fits_20_box_and_centres_mass_at_14() -> None:
    t = normalize_digit(_seven(300, 180, 24))
    assert t.shape == (28, 28) and t.dtype == np.float32 and t.min() >= 0 and t.max() <= 1
    ys, xs = np.nonzero(t > 0.05)
    assert 19 <= ys.max() - ys.min() + 1 <= 22  # the longer side fills the 20-pixel box (+ anti-aliasing)
    assert xs.max() - xs.min() + 1 < 17  # aspect ratio kept
    cy, cx = _com(t)
    assert abs(cy - 14) < 0.35 and abs(cx - 14) < 0.35


def test_scale_invariant_round_trip() -> None:
    a = normalize_digit(_seven(90, 60, 8))
    b = normalize_digit(_seven(360, 240, 32))
    assert np.abs(a - b).mean() < 0.04


def test_accepts_bool_uint8_float_and_empty() -> None:
    m = _seven(100, 70, 10)
    ref = normalize_digit(m)
    assert np.allclose(normalize_digit(m.astype(np.uint8) * 255), ref, atol=1e-5)
    assert np.allclose(normalize_digit(m.astype(np.float32)), ref, atol=1e-5)
    assert not normalize_digit(np.zeros((30, 30), bool)).any()
    with pytest.raises(ValueError):
        normalize_digit(np.zeros((3, 3, 3)))


def test_training_uses_the_same_function() -> None:
    import formocr.train.augment as aug

    assert aug.normalize_digit is normalize_digit
    rng = np.random.default_rng(0)
    tile = aug.scan_road(_seven(28, 28, 3).astype(np.uint8) * 255, rng)
    cy, cx = _com(tile)
    assert abs(cy - 14) < 0.5 and abs(cx - 14) < 0.5


def test_model_input_standardised() -> None:
    x = to_model_input(np.zeros((2, 28, 28), np.float32))
    assert x.shape == (2, 1, 28, 28) and np.allclose(x, -0.1307 / 0.3081)
