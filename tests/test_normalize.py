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


def test_scan_road_grey_is_an_option_that_leaves_the_mask_road_alone() -> None:
    import formocr.train.augment as aug

    digit = _seven(28, 28, 3).astype(np.uint8) * 255
    for seed in range(6):
        plain = aug.scan_road(digit, np.random.default_rng(seed))
        assert np.array_equal(plain, aug.scan_road(digit, np.random.default_rng(seed), grey=False))
        shaded = aug.scan_road(digit, np.random.default_rng(seed), grey=True)
        assert shaded.shape == (28, 28) and shaded.min() >= 0.0 and shaded.max() <= 1.0
        assert shaded.any()


def test_grey_shade_keeps_a_closed_loop_lighter_than_its_strokes() -> None:
    # A ring whose gap blur filled with light ink: the binarized mask closes it, the shading does not.
    from formocr.train.augment import grey_shade

    dark = np.zeros((40, 40), np.float32)
    cv2.circle(dark, (20, 20), 10, 1.0, 3)
    dark[8:13, 18:23] = np.where(dark[8:13, 18:23] > 0, 0.35, 0.0)  # the gap at the top, lighter
    mask = dark > 0.3
    out = grey_shade(dark, mask, np.random.default_rng(0))
    gap = mask[8:13, 18:23]
    assert gap.any() and out[8:13, 18:23][gap].max() < 0.5  # closed in the mask, light in the tile
    assert np.median(out[mask & (dark > 0.9)]) >= 0.8
    assert out[mask].min() >= 0.1  # every mask pixel keeps the mask's extent
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert not out[~grown].any()


def test_grey_training_tile_is_cut_as_the_pipeline_cuts_a_read_one() -> None:
    # The training road shades through the pipeline's own shade_ink: nothing outside the mask's box (the grown
    # ring once widened training digits), and the tile equals grey_tile's of the same shading cut to the box.
    from formocr.normalize import grey_tile, normalize_digit
    from formocr.train.augment import grey_shade

    ink = np.zeros((50, 40), np.uint8)
    cv2.putText(ink, "8", (6, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.2, 255, 3)
    dark = cv2.GaussianBlur(ink.astype(np.float32) / 255.0, (0, 0), 1.0) + 0.05
    mask = dark > 0.45
    out = grey_shade(dark, mask, np.random.default_rng(3))
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    assert not out[:y0].any() and not out[y1:].any() and not out[:, :x0].any() and not out[:, x1:].any()
    assert np.array_equal(normalize_digit(out), grey_tile(mask[y0:y1, x0:x1], out[y0:y1, x0:x1]))
