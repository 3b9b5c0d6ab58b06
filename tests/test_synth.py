"""The synthetic handwriting and form generator: deterministic, truthful, and its files round-trip."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from formocr.layout.template import BUILTIN, TemplateField, load_template
from formocr.synth import Degrade, comb_text, random_value, render_form, save_pdf, save_tiff, truth_dict, write_truth
from formocr.synth.handwriting import Writer, render_char, render_digit, render_string

DATE_FORMATS = {"DMY": "%d/%m/%Y", "MDY": "%m/%d/%Y", "YMD": "%Y/%m/%d"}


def _writer(seed: int = 0) -> Writer:
    return Writer.random(np.random.default_rng(seed))


def _check_value(f: TemplateField, v: str) -> None:
    c = f.constraints
    if f.type == "digits":
        hi = min(c.get("max_length", 10), f.cells or 10**6)
        assert v.isdigit() and c.get("min_length", 1) <= len(v) <= hi, (f.name, v)
    elif f.type == "postal_code":
        assert re.fullmatch(r"[1-8]\d{5}", v), v
    elif f.type == "date":
        dt.datetime.strptime(v, DATE_FORMATS[c.get("order", "DMY")])  # raises when invalid
        assert re.fullmatch(r"\d\d/\d\d/\d{4}|\d{4}/\d\d/\d\d", v), v
        assert 1990 <= int(re.findall(r"\d{4}", v)[0]) <= 2035
    elif f.type == "amount":
        d = c.get("decimals", 2)
        assert re.fullmatch(rf"(0|[1-9]\d{{0,5}})\.\d{{{d}}}", v), v


def test_digit_is_deterministic_tight_float_ink() -> None:
    a = render_digit(7, _writer(), np.random.default_rng(1), 40)
    b = render_digit(7, _writer(), np.random.default_rng(1), 40)
    assert a.dtype == np.float32 and np.array_equal(a, b)
    assert a.min() >= 0.0 and a.max() <= 1.0 and a.max() > 0.9
    assert 30 <= a.shape[0] <= 60  # about the asked height (writer scale, pen, rotation)
    ink = np.nonzero(a > 0.05)
    assert ink[0].min() <= 2 and ink[1].min() <= 2 and ink[0].max() >= a.shape[0] - 3  # tightly cropped


def test_separators_are_small_next_to_digits() -> None:
    rng = np.random.default_rng(2)
    w = _writer(2)
    digit = render_char("8", w, rng, 60)
    dot = render_char(".", w, rng, 60)
    dash = render_char("-", w, rng, 60)
    assert dot.shape[0] < digit.shape[0] / 3 and dot.shape[1] < digit.shape[1]
    assert dash.shape[0] < digit.shape[0] / 3
    with pytest.raises(ValueError):
        render_char("x", w, rng, 60)


def test_string_boxes_inside_image_one_per_char() -> None:
    text = "1250.00 03/11/2026 -7,5"
    img, boxes = render_string(text, _writer(3), np.random.default_rng(3), 32)
    assert [c for c, _ in boxes] == [c for c in text if c != " "]
    h, w = img.shape
    xs = []
    for _, b in boxes:
        assert b.x >= 0 and b.y >= 0 and b.x2 <= w and b.y2 <= h and b.w > 0 and b.h > 0
        assert img[b.y : b.y2, b.x : b.x2].max() > 0.5
        xs.append(b.x + b.w / 2)
    assert xs == sorted(xs)  # left to right


@pytest.mark.parametrize("name", BUILTIN)
def test_form_truth_satisfies_field_types(name: str) -> None:
    t = load_template(name)
    rng = np.random.default_rng(11)
    for f in t.fields:
        for _ in range(30):
            _check_value(f, random_value(f, rng))
    page = render_form(t, None, rng, dpi=100, degrade=Degrade.random(rng))
    assert page.image.dtype == np.uint8 and page.image.shape == t.page_size_px(100)[::-1]
    assert set(page.values) == {f.name for f in t.fields}
    for f in t.fields:
        _check_value(f, page.values[f.name])
        written = comb_text(f, page.values[f.name]) if f.style == "comb" else page.values[f.name]
        assert "".join(c for c, _ in page.char_boxes[f.name]) == written.replace(" ", "")


def test_date_comb_holds_digits_only() -> None:
    f = load_template("cheque").fields[0]
    assert f.type == "date" and comb_text(f, "03/11/2026") == "03112026"
    with pytest.raises(ValueError):
        comb_text(f, "03/11/20260")


def test_render_form_is_deterministic() -> None:
    t = load_template("envelope")
    rngs = [np.random.default_rng(5) for _ in range(2)]
    a, b = (render_form(t, None, r, dpi=80, degrade=Degrade.random(np.random.default_rng(6))) for r in rngs)
    assert a.values == b.values and a.skew_deg == b.skew_deg and np.array_equal(a.image, b.image)
    assert truth_dict(a) == truth_dict(b)


def test_char_boxes_follow_skew_and_hold_ink() -> None:
    t = load_template("cheque")
    deg = Degrade(skew_deg=4.0, max_offset_mm=2.0)
    values = {"date": "28/02/2024", "amount": "30412.95", "account": "1234567890"}
    page = render_form(t, values, np.random.default_rng(8), dpi=120, degrade=deg, touch_border_prob=0.0)
    assert page.skew_deg == 4.0
    n = 0
    for name, chars in page.char_boxes.items():
        for ch, b in chars:
            crop = page.image[b.y : b.y2, b.x : b.x2]
            assert crop.size and crop.min() < 110, (name, ch, b)
            n += 1
    assert n == 8 + 8 + 10


def test_blank_value_and_unknown_field() -> None:
    t = load_template("cheque")
    page = render_form(t, {"amount": ""}, np.random.default_rng(9), dpi=60)
    assert page.values["amount"] == "" and page.char_boxes["amount"] == []
    with pytest.raises(ValueError):
        render_form(t, {"nope": "1"}, np.random.default_rng(9), dpi=60)


def test_color_page_is_bgr() -> None:
    page = render_form(load_template("envelope"), None, np.random.default_rng(4), dpi=60, color=True)
    assert page.image.ndim == 3 and page.image.shape[2] == 3


def test_tiff_and_truth_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(12)
    pages = [render_form(load_template(n), None, rng, dpi=60) for n in ("cheque", "envelope")]
    save_tiff([p.image for p in pages], tmp_path / "f.tiff", 60)
    with Image.open(tmp_path / "f.tiff") as im:
        assert im.n_frames == 2 and im.size == pages[0].image.shape[::-1]
    doc = write_truth(tmp_path / "f.truth.json", "f.tiff", pages, [12, 13])
    back = json.loads((tmp_path / "f.truth.json").read_text())
    assert back == json.loads(json.dumps(doc)) and back["template"] is None
    assert back["pages"][1]["page"] == 2 and back["pages"][1]["fields"] == pages[1].values


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler's pdftoppm is not installed")
def test_pdf_round_trip_page_count_and_size(tmp_path) -> None:
    from pdf2image import convert_from_path

    rng = np.random.default_rng(13)
    pages = [render_form(load_template("cheque"), None, rng, dpi=100).image for _ in range(2)]
    save_pdf(pages, tmp_path / "c.pdf", 100)
    back = convert_from_path(str(tmp_path / "c.pdf"), dpi=100, grayscale=True)
    assert len(back) == 2 and back[0].size == pages[0].shape[::-1]


def test_random_layouts_do_not_depend_on_the_opencv_release(monkeypatch: pytest.MonkeyPatch) -> None:
    # How many words fit a printed line decides how many random draws a layout takes; OpenCV 5.1 measures some
    # glyphs a pixel wider than 5.0 did, which changed every later field of a seed when widths came from cv2.
    import cv2

    from formocr.synth import layouts

    def refuse(*a: object, **k: object) -> tuple[tuple[int, int], int]:
        raise AssertionError("layouts must not measure text with cv2")

    monkeypatch.setattr(cv2, "getTextSize", refuse)
    rng = np.random.default_rng(4242)
    t = layouts.random_layout(rng)
    values = layouts.layout_values(t, rng)
    assert len(t.fields) == 21 and sum(bool(values.get(f.name)) for f in t.fields) == 5
    assert values["field_1"] == "74"
    # Hershey Simplex as cv2 5.0 measured it: "H" advances 20 px at a 21 px cap, and a string adds one pixel
    assert layouts.text_width_mm("HH", 2.1) == pytest.approx((20 + 20 + 1) / 10)


def _two_writers() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A labelled set of two made-up writers: writer 1 draws every digit as a solid block, writer 2 as a frame."""
    images = np.zeros((40, 28, 28), np.uint8)
    images[:20, 4:24, 8:20] = 255
    images[20:, 4:24, 8:20] = 255
    images[20:, 7:21, 11:17] = 0
    labels = np.tile(np.arange(10), 4)
    writers = np.repeat([1, 2], 20)
    return images, labels, writers


def test_a_form_is_filled_in_by_one_real_writer() -> None:
    """With ``digits`` the form's digits are that writer's own images (solid blocks here), scaled to the field;
    separators still come from the stroke renderer; one writer fills in the whole form."""
    from formocr.synth.strings import writer_digits

    images, labels, writers = _two_writers()
    rng = np.random.default_rng(3)
    draw = writer_digits(images, labels, writers, rng)
    seen = {bool(draw(d, rng)[8, 4] > 0.5) for d in range(10) for _ in range(3)}  # a block's middle is ink
    assert len(seen) == 1  # one writer for all of them
    t = load_template("numeric_form")
    page = render_form(t, {"f01": "4071"}, np.random.default_rng(4), digits=draw)
    fills = []
    for _, box in page.char_boxes["f01"]:
        ink = page.image[box.y : box.y2, box.x : box.x2] < 128
        fills.append(ink.mean())
    assert len(fills) == 4
    solid = next(iter(seen))
    assert all(f > 0.8 for f in fills) if solid else all(f < 0.8 for f in fills)
