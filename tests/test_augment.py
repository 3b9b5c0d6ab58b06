"""Continental digit shapes drawn onto MNIST-style images for the digit CNN's training."""

from __future__ import annotations

import cv2
import numpy as np

from formocr.train.augment import continental


def _digit(label: int) -> np.ndarray:
    """A 28×28 uint8 MNIST-polarity digit, 20 px tall, as a plain pen would draw it."""
    img = np.zeros((28, 28), np.uint8)
    if label == 7:
        cv2.line(img, (8, 4), (20, 4), 255, 2)
        cv2.line(img, (20, 4), (12, 23), 255, 2)
    elif label == 0:
        cv2.ellipse(img, (14, 14), (6, 10), 0, 0, 360, 255, 2)
    elif label == 3:
        cv2.ellipse(img, (13, 9), (6, 5), 0, -160, 90, 255, 2)
        cv2.ellipse(img, (13, 19), (7, 5), 0, -90, 160, 255, 2)
    else:
        cv2.line(img, (14, 4), (14, 23), 255, 2)
    return img


def test_a_seven_gets_a_bar_across_its_stem() -> None:
    seven = _digit(7)
    out = continental(seven, 7, np.random.default_rng(0))
    added = (out > 100) & (seven <= 100)
    ys, xs = np.nonzero(added)
    assert 10 <= ys.mean() <= 18  # across the stem at mid height, not at the top
    assert xs.max() - xs.min() >= 5


def test_a_zero_gets_a_slash_through_its_hole() -> None:
    zero = _digit(0)
    out = continental(zero, 0, np.random.default_rng(1))
    assert out[10:19, 11:18].max() > 100 and zero[10:19, 11:18].max() == 0


def test_a_three_gets_a_flat_top_and_keeps_its_lower_bowl() -> None:
    three = _digit(3)
    out = continental(three, 3, np.random.default_rng(2))
    ys, _ = np.nonzero(out > 100)
    top = ys.min()
    assert (out[top : top + 2] > 100).sum(axis=0).astype(bool).sum() >= 7  # a bar, not an arc's crest
    assert np.array_equal(out[18:], three[18:])


def test_other_digits_and_empty_images_are_left_alone_and_draws_repeat() -> None:
    one = _digit(1)
    assert continental(one, 1, np.random.default_rng(0)) is one
    blank = np.zeros((28, 28), np.uint8)
    assert not continental(blank, 7, np.random.default_rng(0)).any()
    a = continental(_digit(7), 7, np.random.default_rng(5))
    b = continental(_digit(7), 7, np.random.default_rng(5))
    assert np.array_equal(a, b)
