"""Colour drop-out in preprocessing: coloured form print leaves ``gray``/``ink`` for ``form_ink``; pens stay."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from formocr.dropout import DROPOUT_COLORS, estimate_dropout
from formocr.errors import ConfigError
from formocr.io import load_pages
from formocr.layout.template import load_template
from formocr.objects import Page
from formocr.options import DROPOUT_MODES, Options
from formocr.pipeline import scan
from formocr.preprocess import PreprocessOptions, preprocess
from formocr.synth import Degrade, render_form
from formocr.synth.files import save_pdf

FORM_INKS = {"red": (60, 60, 235), "green": (90, 170, 90), "blue": (200, 150, 60)}  # BGR, as printed
PENS = {"blue": (150, 40, 20), "black": (40, 30, 30)}
OPTS = PreprocessOptions(deskew=False, speckle_mm=0.0)


def _layers(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(form, pen) alpha layers, 300 dpi: boxes, rules and a printed caption; digits' strokes crossing the rules."""
    h, w = 700, 1400
    form = np.zeros((h, w), np.uint8)
    for i in range(6):  # a comb of six boxes, 11 mm tall
        cv2.rectangle(form, (100 + i * 150, 100), (250 + i * 150, 230), 255, 3)
    for y in (400, 520, 640):
        cv2.line(form, (80, y), (1320, y), 255, 3)
    cv2.putText(form, "POSTCODE 123456", (900, 330), cv2.FONT_HERSHEY_SIMPLEX, 1.2, 255, 3, cv2.LINE_AA)
    pen = np.zeros((h, w), np.uint8)
    rng = np.random.default_rng(seed)
    for i in range(6):  # strokes inside each box, running down across the bottom edge
        x = 140 + i * 150 + int(rng.integers(0, 40))
        cv2.line(pen, (x, 120), (x + 25, 270), 255, 9, cv2.LINE_AA)
        cv2.ellipse(pen, (x + 40, 170), (22, 30), 0, 0, 300, 255, 8, cv2.LINE_AA)
    for x in range(200, 1200, 90):  # "words" written on the rules, crossing them
        cv2.line(pen, (x, 370), (x + 30, 420), 255, 7, cv2.LINE_AA)
        cv2.line(pen, (x + 30, 420), (x + 55, 380), 255, 7, cv2.LINE_AA)
    return form.astype(np.float32) / 255.0, pen.astype(np.float32) / 255.0


def _compose(form: np.ndarray, pen: np.ndarray, form_bgr: tuple[int, int, int], pen_bgr: tuple[int, int, int],
             seed: int = 0) -> np.ndarray:
    """Ink on paper multiplies (as in formocr.synth.forms), then a slight blur and sensor noise."""
    paper = np.array([246, 250, 252], np.float32)
    f = np.array(form_bgr, np.float32) / 255.0
    p = np.array(pen_bgr, np.float32) / 255.0
    img = paper * (1 - form[..., None] * (1 - f)) * (1 - pen[..., None] * (1 - p))
    img = cv2.GaussianBlur(img, (0, 0), 0.7)
    img += np.random.default_rng(seed).normal(0, 3, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def layers() -> tuple[np.ndarray, np.ndarray]:
    return _layers()


@pytest.mark.parametrize("form_colour", list(FORM_INKS))
@pytest.mark.parametrize("pen_colour", list(PENS))
def test_dropout_removes_form_keeps_pen(layers: tuple[np.ndarray, np.ndarray], form_colour: str,
                                        pen_colour: str) -> None:
    form_a, pen_a = layers
    img = _compose(form_a, pen_a, FORM_INKS[form_colour], PENS[pen_colour])
    clean = preprocess(Page(0, img, 300.0, "t"), OPTS)
    form, pen = form_a > 0.5, pen_a > 0.5
    only_form = form & ~(cv2.dilate(pen.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0)
    assert clean.form_ink is not None
    assert (clean.ink & only_form).mean() / only_form.mean() < 0.005  # the print is gone from the readers' ink
    assert (clean.ink & pen).sum() / pen.sum() > 0.97  # the writing is not
    cross = form & pen
    assert cross.sum() > 200 and (clean.ink & cross).sum() / cross.sum() > 0.95  # nor where it crosses the print
    assert (clean.layout_ink & only_form).sum() / only_form.sum() > 0.9  # registration still sees the boxes
    # and gray agrees: paper where the print was
    assert np.median(clean.gray[only_form]) > np.median(clean.gray[~form & ~pen]) - 15


def test_dropout_none_keeps_the_print(layers: tuple[np.ndarray, np.ndarray]) -> None:
    form_a, pen_a = layers
    img = _compose(form_a, pen_a, FORM_INKS["red"], PENS["blue"])
    clean = preprocess(Page(0, img, 300.0, "t"), PreprocessOptions(deskew=False, speckle_mm=0.0, dropout="none"))
    assert clean.form_ink is None
    assert (clean.ink & (form_a > 0.5)).sum() / (form_a > 0.5).sum() > 0.9


def test_explicit_colour_and_estimate(layers: tuple[np.ndarray, np.ndarray]) -> None:
    form_a, pen_a = layers
    img = _compose(form_a, pen_a, FORM_INKS["green"], PENS["black"])
    d = estimate_dropout(img, 300.0)
    assert d is not None and d.source == "auto"
    b, g, r = d.bgr
    assert g > b + 40 and g > r + 40  # green print found as green
    forced = preprocess(Page(0, img, 300.0, "t"), PreprocessOptions(deskew=False, speckle_mm=0.0, dropout="green"))
    assert forced.form_ink is not None and (forced.ink & (form_a > 0.5) & (pen_a == 0)).mean() < 0.001


def test_black_print_and_grey_pages_unchanged(layers: tuple[np.ndarray, np.ndarray]) -> None:
    form_a, pen_a = layers
    img = _compose(form_a, pen_a, (35, 35, 35), PENS["blue"])  # printed in black, written in blue
    gray_page = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    for opts in (OPTS, PreprocessOptions(max_skew_deg=10.0, speckle_mm=0.0)):
        colour = preprocess(Page(0, img, 300.0, "t"), opts)
        grey = preprocess(Page(0, gray_page, 300.0, "t"), opts)
        assert colour.form_ink is None and grey.form_ink is None
        assert np.array_equal(colour.gray, grey.gray) and np.array_equal(colour.ink, grey.ink)


def test_blue_pen_underline_is_not_form_print() -> None:
    """A long straight blue line on a white page is a pen (dark), not light drop-out print."""
    pen8 = np.zeros((500, 1200), np.uint8)
    cv2.line(pen8, (100, 300), (1100, 300), 255, 6)
    cv2.putText(pen8, "123", (150, 250), cv2.FONT_HERSHEY_SIMPLEX, 4, 255, 9)
    pen = pen8.astype(np.float32) / 255.0
    img = _compose(np.zeros_like(pen), pen, (255, 255, 255), PENS["blue"])
    assert estimate_dropout(img, 300.0) is None
    clean = preprocess(Page(0, img, 300.0, "t"), OPTS)
    assert clean.form_ink is None and clean.ink[300, 600]


def test_generated_colour_envelope_with_skew() -> None:
    rng = np.random.default_rng(4242)
    template = load_template("envelope")
    sp = render_form(template, None, rng, color=True,
                     degrade=Degrade(max_skew=0.0, skew_deg=2.0, noise_std=(2.0, 2.0)))
    clean = preprocess(Page(0, sp.image, 300.0, "t"), PreprocessOptions(speckle_mm=0.0))
    assert clean.form_ink is not None and abs(clean.skew_deg - 2.0) < 0.3
    box = template.fields[0].region(300.0).box  # deskewing about the centre puts it back where it was printed
    # The comb's bottom rule is in form_ink, not in ink.
    band = slice(box.y2 - 30, box.y2 + 30), slice(box.x + 40, box.x2 - 40)
    rows_form = clean.form_ink[band].sum(axis=1)
    assert rows_form.max() > 0.6 * (box.w - 80)
    assert clean.ink[band].sum(axis=1).max() < 0.3 * (box.w - 80)


def test_dropout_option_validation() -> None:
    assert set(DROPOUT_MODES) == {"auto", "none", *DROPOUT_COLORS}
    assert Options.from_mapping({"dropout": "none"}).dropout == "none"
    assert Options().dropout == "auto"
    with pytest.raises(ConfigError, match="dropout"):
        Options.from_mapping({"dropout": "purple"})
    with pytest.raises(ConfigError, match="dropout"):
        PreprocessOptions(dropout="magenta")


def test_red_print_pdf_reads_as_its_png(tmp_path: Path) -> None:
    """A PDF renders in colour: drop-out takes the same print out of it as out of the PNG of the same page."""
    sp = render_form(load_template("envelope"), {"postal_code": "518057"}, np.random.default_rng(0), color=True,
                     degrade=Degrade(max_skew=0.0, skew_deg=1.0, noise_std=(2.0, 2.0)))
    assert estimate_dropout(sp.image, 300.0) is not None and sp.image[..., 2].mean() > sp.image[..., 0].mean()
    png, pdf = tmp_path / "env.png", tmp_path / "env.pdf"
    cv2.imwrite(str(png), sp.image)
    save_pdf([sp.image], pdf, dpi=300, quality=95)
    cleans = [preprocess(next(iter(load_pages(p, dpi=300))), PreprocessOptions()) for p in (png, pdf)]
    removed = [int(c.form_ink.sum()) if c.form_ink is not None else 0 for c in cleans]
    assert removed[0] > 10_000 and abs(removed[1] - removed[0]) < 0.2 * removed[0]  # JPEG inside the PDF
    docs = [scan(p, template="envelope") for p in (png, pdf)]
    assert [d.fields[0].value for d in docs] == ["518057", "518057"]
