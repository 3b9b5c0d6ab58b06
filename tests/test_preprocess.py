"""formocr.preprocess on synthetic pages whose ground truth is known (conftest.synthetic_form)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pytest

from formocr.binarize import binarize, flattened, remove_speckle, to_gray
from formocr.errors import ConfigError
from formocr.lines import remove_lines
from formocr.objects import Page
from formocr.preprocess import PreprocessOptions, deskew, estimate_skew, preprocess, rotate


def _scan(
    ink: np.ndarray, paper: np.ndarray | float, ink_level: np.ndarray | float, seed: int = 1
) -> np.ndarray:
    """Grey scan of a truth mask with a slight optical blur and sensor noise."""
    rng = np.random.default_rng(seed)
    g: np.ndarray = cv2.GaussianBlur(np.where(ink, ink_level, paper).astype(np.float32), (0, 0), 0.6)
    g += rng.normal(0, 4, ink.shape).astype(np.float32)
    return np.clip(g, 0, 255).astype(np.uint8)


def _shadowed(ink: np.ndarray, seed: int = 1) -> np.ndarray:
    """Paper from 250 (top-left) down to 120 (bottom-right), ink 30..60: a phone photo under a lamp."""
    h, w = ink.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    paper = 250.0 - 130.0 * (xx / w + yy / h) / 2.0
    ink_level = np.random.default_rng(seed).uniform(30, 60, ink.shape).astype(np.float32)
    return _scan(ink, paper, ink_level, seed)


@pytest.fixture(scope="module")
def shadowed_form(synthetic_form: Any) -> tuple[np.ndarray, np.ndarray]:
    """(truth, scan) of the synthetic form under a lamp shadow; made once, it takes a moment."""
    truth = np.ascontiguousarray(synthetic_form.ink)
    return truth, _shadowed(truth)


# ------------------------------------------------------------------------------------------------ geometry


def test_rotate_follows_opencv_sign_and_deskew_undoes_it() -> None:
    img = np.full((101, 101), 255, np.uint8)
    img[50, 90] = 0  # a dot right of the centre
    turned = rotate(img, 90.0)
    ys, xs = np.nonzero(turned < 128)
    assert abs(int(xs.mean()) - 50) <= 1 and int(ys.mean()) < 20  # counter-clockwise: it went up
    assert turned.shape == img.shape and turned[0, 0] == 255
    back = deskew(rotate(img, 7.0), 7.0)
    ys, xs = np.nonzero(back < 200)
    assert abs(xs.mean() - 90) < 1.5 and abs(ys.mean() - 50) < 1.5
    bgr = rotate(np.zeros((20, 30, 3), np.uint8), 10.0)
    assert bgr.shape == (20, 30, 3) and tuple(bgr[0, 0]) == (255, 255, 255)
    mask = rotate(np.ones((20, 30), bool), 10.0)
    assert mask.dtype == bool and not mask[0, 0] and mask[10, 15]


@pytest.mark.parametrize("angle", [-4.3, 0.0, 2.7])
def test_skew_of_a_form_within_0_2_degrees(synthetic_form: Any, angle: float) -> None:
    page = rotate(synthetic_form.gray, angle)
    assert estimate_skew(page, 300) == pytest.approx(angle, abs=0.2)


def test_skew_from_text_alone_and_from_a_bool_mask(make_form: Callable[..., np.ndarray]) -> None:
    text_only = _scan(make_form(1275, 1650, lines=False, seed=3), 240.0, 50.0)  # 150 dpi
    assert estimate_skew(rotate(text_only, -1.6), 150) == pytest.approx(-1.6, abs=0.2)
    lines_only = make_form(1275, 1650, text=False)
    assert estimate_skew(rotate(lines_only, 6.1), 150) == pytest.approx(6.1, abs=0.2)


def test_skew_under_a_shadow(shadowed_form: tuple[np.ndarray, np.ndarray]) -> None:
    _, shadowed = shadowed_form
    assert estimate_skew(rotate(shadowed, 3.4, fill=None), 300) == pytest.approx(3.4, abs=0.2)


def test_skew_of_blank_or_noisy_pages_is_zero() -> None:
    rng = np.random.default_rng(0)
    blank = np.clip(rng.normal(240, 4, (1100, 850)), 0, 255).astype(np.uint8)
    assert estimate_skew(blank, 100) == 0.0
    specks = blank.copy()
    specks[rng.integers(0, 1100, 40), rng.integers(0, 850, 40)] = 0
    assert estimate_skew(specks, 100) == 0.0
    assert estimate_skew(blank, 100, max_deg=0) == 0.0


# ------------------------------------------------------------------------------------------------ binarize


def test_binarize_shadowed_page(shadowed_form: tuple[np.ndarray, np.ndarray]) -> None:
    truth, scan = shadowed_form
    ink, method = binarize(scan, 300)
    assert method == "sauvola"
    found = (ink & truth).sum() / truth.sum()
    false = (ink & ~truth).sum() / (~truth).sum()
    assert found > 0.95, found
    assert false < 0.01, false
    # No black blobs in the dark corner: a global threshold's failure mode.
    corner = (slice(2900, 3300), slice(2200, 2550))
    assert (ink[corner] & ~truth[corner]).mean() < 0.01


def test_binarize_deep_shadow_where_a_global_threshold_fails(make_form: Callable[..., np.ndarray]) -> None:
    truth = make_form(1275, 1650, seed=5)  # 150 dpi
    h, w = truth.shape
    paper = np.linspace(250, 90, h, dtype=np.float32)[:, None] * np.ones((1, w), np.float32)
    scan = _scan(truth, paper, 0.35 * paper)  # ink in the bright part is lighter than paper in the dark part
    ink, method = binarize(scan, 150)
    assert method == "sauvola"
    assert (ink & truth).sum() / truth.sum() > 0.95
    assert (ink & ~truth).sum() / (~truth).sum() < 0.01
    blobs, _ = binarize(scan, 150, "otsu")
    assert (blobs & ~truth).sum() / (~truth).sum() > 0.1  # the case really needs a local threshold


def test_binarize_even_page_uses_otsu(synthetic_form: Any) -> None:
    truth = synthetic_form.ink
    ink, method = binarize(synthetic_form.gray, 300)
    assert method == "otsu"
    assert (ink == truth).mean() > 0.999
    forced, used = binarize(synthetic_form.gray, 300, "sauvola")
    assert used == "sauvola" and (forced & truth).sum() / truth.sum() > 0.95


def test_a_shadow_is_divided_out_and_an_even_page_passes_unchanged(shadowed_form: tuple[np.ndarray, np.ndarray],
                                                                    synthetic_form: Any) -> None:
    """Under a lamp's shadow the paper runs from 250 to 120 and the ink in the dark corner is nearly as dark as
    its paper is light elsewhere; flattened, the paper is one tone and the ink stands out from it everywhere."""
    truth, scan = shadowed_form
    flat = flattened(scan, 300)
    corner, lit = (slice(2900, 3300), slice(2200, 2550)), (slice(100, 500), slice(100, 450))
    for part in (corner, lit):
        paper = flat[part][~truth[part]]
        assert abs(float(np.median(paper)) - 245) < 12
        if truth[part].any():
            assert float(np.median(flat[part][truth[part]])) < 0.5 * float(np.median(paper))
    assert flattened(synthetic_form.gray, 300) is synthetic_form.gray


def test_binarize_blank_page_finds_no_ink() -> None:
    blank = np.clip(np.random.default_rng(0).normal(235, 5, (600, 500)), 0, 255).astype(np.uint8)
    for method in ("auto", "otsu", "sauvola"):
        ink, _ = binarize(blank, 300, method)
        assert ink.mean() < 0.0005, method


def test_binarize_rejects_unknown_method() -> None:
    with pytest.raises(ConfigError):
        binarize(np.zeros((10, 10), np.uint8), 300, "magic")
    with pytest.raises(ConfigError):
        PreprocessOptions(binarizer="magic")


def test_to_gray() -> None:
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[0, 0] = (255, 0, 0)  # blue is dark
    bgr[0, 1] = (0, 0, 255)  # red is darker than green
    bgr[1, 0] = (0, 255, 0)
    g = to_gray(bgr)
    assert g.shape == (2, 2) and g.dtype == np.uint8
    assert g[0, 0] < g[0, 1] < g[1, 0]
    grey = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert to_gray(grey) is grey


# ------------------------------------------------------------------------------------------------ clean-up


def test_remove_speckle() -> None:
    ink = np.zeros((60, 60), bool)
    ink[5, 5] = True  # dust
    ink[10:12, 10:12] = True  # 2×2 dust
    ink[20:23, 20:23] = True  # 3×3: a dot, kept
    ink[30, 5:45] = True  # hairline 1 px thick: long on one axis, kept
    clean = remove_speckle(ink, 3)
    assert not clean[5, 5] and not clean[10:12, 10:12].any()
    assert clean[20:23, 20:23].all() and clean[30, 5:45].all()
    assert clean.dtype == bool
    np.testing.assert_array_equal(remove_speckle(ink, 1), ink)


def _box_with_a_seven() -> tuple[np.ndarray, np.ndarray]:
    """A 3-px box border (like a field crop) with a handwritten 7 whose stem crosses the bottom border."""
    border = np.zeros((160, 420), np.uint8)
    cv2.rectangle(border, (10, 20), (409, 139), 255, 3)
    seven = np.zeros_like(border)
    cv2.line(seven, (100, 40), (140, 40), 255, 5)
    cv2.line(seven, (140, 40), (110, 155), 255, 5)
    return border > 0, seven > 0


def test_remove_lines_keeps_a_stroke_crossing_a_border() -> None:
    border, seven = _box_with_a_seven()
    clean, lines = remove_lines(border | seven, min_len_px=150, max_thickness_px=6, min_len_v_px=90)
    # The border is gone (apart from where the stroke crosses it) and is reported in the line mask.
    assert lines[border].mean() > 0.97
    assert (clean & border & ~seven).sum() < 20
    # The 7 survives in one piece, crossing included.
    assert clean[seven].mean() > 0.97
    n, _ = cv2.connectedComponents(clean.astype(np.uint8))
    assert n - 1 == 1


def test_remove_lines_on_a_small_crop_and_without_lines() -> None:
    crop = np.zeros((40, 60), bool)
    crop[30:32, :] = True  # comb baseline
    crop[5:38, 28:30] = True  # a "1" crossing it
    clean, lines = remove_lines(crop, min_len_px=45, max_thickness_px=3)
    assert lines[30:32, :].all()
    assert clean[5:38, 28:30].all()  # the 1 keeps its pixels on the line
    assert not clean[30:32, :20].any() and not clean[30:32, 40:].any()
    plain = np.zeros((30, 30), bool)
    plain[10:20, 14:16] = True
    clean, lines = remove_lines(plain, 25, 3)
    np.testing.assert_array_equal(clean, plain)
    assert not lines.any()


# ------------------------------------------------------------------------------------------------ pipeline


def test_preprocess_deskews_and_binarizes(synthetic_form: Any) -> None:
    colour = cv2.cvtColor(rotate(synthetic_form.gray, -2.2), cv2.COLOR_GRAY2BGR)
    clean = preprocess(Page(index=0, image=colour, dpi=300.0, source="<test>"))
    assert clean.skew_deg == pytest.approx(-2.2, abs=0.2)
    assert clean.gray.shape == colour.shape[:2] and clean.gray.dtype == np.uint8
    assert clean.ink.shape == clean.gray.shape and clean.ink.dtype == bool
    assert clean.binarizer == "otsu"
    # In the deskewed frame the printed rules are level again.
    assert abs(estimate_skew(clean.ink, 300)) < 0.2
    # Same amount of ink as the truth (± what the turned corners cut off).
    assert clean.ink.sum() == pytest.approx(synthetic_form.ink.sum(), rel=0.05)


def test_preprocess_options() -> None:
    page = Page(index=0, image=rotate(np.full((300, 300), 250, np.uint8), 3.0), dpi=300.0, source="<test>")
    clean = preprocess(page, PreprocessOptions(deskew=False, binarizer="sauvola"))
    assert clean.skew_deg == 0.0 and clean.binarizer == "sauvola"
    assert not clean.ink.any()
