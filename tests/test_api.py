"""The Python API for fields cut out by the caller: read_field, read_postal_code, typed errors.

Everything is drawn by formocr.synth (stroke-rendered handwriting): no dataset image.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import formocr
from formocr.api import FieldReaderAPI, looks_like_envelope
from formocr.crop import find_frame
from formocr.errors import ConfigError, EmptyInputError, FormOcrError, UnreadableInputError, UnsupportedInputError
from formocr.layout.template import Template, TemplateField, load_template
from formocr.objects import Box, FieldResult, PostalCode
from formocr.synth import Degrade, Writer, render_form
from formocr.synth.handwriting import render_string


@pytest.fixture(scope="module")
def reader() -> FieldReaderAPI:
    return formocr.api.reader_for()


def _one_field(ftype: str, style: str, value: str, seed: int, cells: int | None = None,
               constraints: dict | None = None, size_mm: tuple[float, float] = (60.0, 12.0), color: bool = False
               ) -> tuple[np.ndarray, str]:
    """A crop of one printed field with 3 mm of paper around it, written by a tidy synthetic writer.

    The form is drawn larger than the field (its decoration frame lies 8 mm in from the edge) and cut.
    """
    w, h = size_mm
    f = TemplateField("f", ftype, (20.0, 20.0, w, h), style, cells, dict(constraints or {}))
    t = Template("one", w + 40.0, h + 40.0, (f,))
    rng = np.random.default_rng(seed)
    writer = Writer(slant=-0.05, pen=0.11)
    sp = render_form(t, {"f": value}, rng, writer=writer, touch_border_prob=0.0, color=color)
    b, m = sp.field_boxes["f"], round(3.0 * 300 / 25.4)
    return sp.image[b.y - m : b.y2 + m, b.x - m : b.x2 + m], sp.values["f"]


@pytest.fixture(scope="module")
def envelope() -> tuple[np.ndarray, str, Box]:
    rng = np.random.default_rng(31337)
    sp = render_form(load_template("envelope"), {"postal_code": "518057"}, rng, color=True,
                     writer=Writer(slant=-0.05, pen=0.11), degrade=Degrade(max_skew=0.0, skew_deg=1.0))
    return sp.image, sp.values["postal_code"], sp.field_boxes["postal_code"]


# ------------------------------------------------------------------------------------------------- read_field


def test_read_field_box_crop(reader: FieldReaderAPI) -> None:
    img, value = _one_field("digits", "box", "40729", seed=11)
    r = formocr.read_field(img, "digits", min_length=5, max_length=5)
    assert r.value == value and r.type == "digits"
    assert 0.0 <= r.confidence <= 1.0 and isinstance(r.needs_review, bool)


def test_read_field_comb_counts_cells(reader: FieldReaderAPI) -> None:
    img, value = _one_field("digits", "comb", "830461", seed=12, cells=6)
    r = formocr.read_field(img, "digits", style="comb")  # cells counted from the printed walls
    assert r.value == value
    frame = find_frame(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) < 128 if img.ndim == 3 else img < 128)
    assert frame is not None and frame.cells == 6


def test_read_field_free_line_on_tinted_background() -> None:
    img, value = _one_field("digits", "free", "2514", seed=13)
    tinted = np.clip(img.astype(np.int16) - 40, 0, 255).astype(np.uint8)  # grey security paper
    r = formocr.read_field(tinted, "digits", style="free", dpi=300)
    assert r.value == value


@pytest.mark.parametrize(
    ("ftype", "style", "value", "cells", "constraints"),
    [
        ("amount", "box", "1250.75", None, {"decimals": 2}),
        ("date", "comb", "03/11/2026", 8, {"order": "DMY"}),
        ("postal_code", "comb", "100086", 6, {"country": "CN"}),
        ("postal_code", "box", "02139", None, {"country": "US"}),
    ],
)
def test_read_field_each_type(ftype: str, style: str, value: str, cells: int | None, constraints: dict) -> None:
    img, want = _one_field(ftype, style, value, seed=14, cells=cells, constraints=constraints,
                           size_mm=(66.0, 12.0) if style == "comb" else (50.0, 12.0))
    r = formocr.read_field(img, ftype, style=style, cells=cells, **constraints)
    assert r.value == want, r.to_dict()
    if ftype == "date":
        assert r.normalized == "2026-11-03"


def test_cn_postal_crop_never_yields_5_or_7_digits() -> None:
    # Seven digits squeezed into a 6-cell comb, and five digits in it: the decoder only produces six.
    for value, seed in (("1234567", 15), ("12345", 16)):
        img, _ = _one_field("postal_code", "box", value, seed=seed, constraints={"pattern": r"\d+"})
        r = formocr.read_field(img, "postal_code", country="CN")
        crnn = r.readings.get("crnn", {})
        assert len(crnn.get("raw", "")) == 6
        if len(r.raw) != 6:
            assert r.needs_review


def test_a_digits_fields_pattern_steers_the_reading_and_is_checked() -> None:
    """A year field: "1748" written where the template allows only 19xx and 20xx is never accepted, and a bad
    pattern is the template's own error."""
    img, _ = _one_field("digits", "box", "1748", seed=18)
    r = formocr.read_field(img, "digits", pattern=r"(19|20)\d\d")
    assert r.needs_review, r.to_dict()
    assert r.value != "1748" or any("pattern" in w for w in r.why), r.why
    with pytest.raises(ConfigError, match=r"constraints\.pattern: not a valid regular expression"):
        formocr.read_field(img, "digits", pattern="((")
    with pytest.raises(ConfigError, match=r"constraints\.pattern: a digits field reads digits only"):
        formocr.read_field(img, "digits", pattern=r"\d{3}-\d{2}")


def test_unknown_constraint_key_is_named() -> None:
    img, _ = _one_field("digits", "box", "12", seed=17)
    with pytest.raises(ConfigError,
                       match=r"constraints\.decimals: unknown key \(allowed: max_length, min_length, pattern\)"):
        formocr.read_field(img, "digits", decimals=2)
    with pytest.raises(ConfigError, match=r"constraints\.pattern: .* cannot follow"):  # the template's own check
        formocr.read_field(img, "postal_code", pattern=r"\d{5}(?!0)")
    with pytest.raises(ConfigError, match="require_decimals: expected true or false"):  # a template key, API too
        formocr.read_field(img, "amount", require_decimals="yes")
    with pytest.raises(ConfigError, match="country"):
        formocr.read_field(img, "postal_code", country="FR")
    with pytest.raises(ConfigError, match="field_type"):
        formocr.read_field(img, "money")
    with pytest.raises(ConfigError, match="style"):
        formocr.read_field(img, "digits", style="dotted")


def test_bad_images_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(EmptyInputError, match="empty array"):
        formocr.read_field(np.zeros((0, 10), np.uint8), "digits")
    with pytest.raises(UnsupportedInputError, match="dtype int64"):
        formocr.read_field(np.zeros((40, 100), np.int64), "digits")
    with pytest.raises(UnsupportedInputError, match="shape"):
        formocr.read_field(np.zeros((4, 40, 100), np.uint8), "digits")
    with pytest.raises(UnreadableInputError) as e:
        formocr.read_postal_code(tmp_path / "missing.png")
    assert "missing.png" in str(e.value)
    junk = tmp_path / "junk.png"
    junk.write_text("not an image")
    with pytest.raises(FormOcrError):
        formocr.read_field(junk, "digits")
    with pytest.raises(ConfigError):
        formocr.read_field([[0, 1]], "digits")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- postal codes


def test_postal_code_whole_envelope(envelope: tuple[np.ndarray, str, Box]) -> None:
    img, value, box = envelope
    assert looks_like_envelope(img.shape[1], img.shape[0])
    r = formocr.read_postal_code(img)
    assert isinstance(r, PostalCode) and r.source == "envelope" and r.country == "CN"
    assert r.value == value and len(r.digits) == 6
    # accepted or not is the calibration's call on the reading's chance; nothing else may send it to review
    assert all(w.startswith("confidence ") for w in r.why) and r.confidence > 0.85
    assert abs(r.box.x - box.x) < 60 and abs(r.box.y - box.y) < 60
    d = r.to_dict()
    assert d["value"] == value and d["source"] == "envelope" and len(d["digits"]) == 6


def test_postal_code_crop(envelope: tuple[np.ndarray, str, Box]) -> None:
    img, value, box = envelope
    crop = img[box.y - 30 : box.y2 + 20, box.x - 25 : box.x2 + 40]
    assert not looks_like_envelope(crop.shape[1], crop.shape[0])
    r = formocr.read_postal_code(crop, "CN")
    assert r.source == "crop" and r.value == value


def test_us_zip_crop_and_zip4() -> None:
    img, _ = _one_field("postal_code", "box", "94107", seed=18, constraints={"country": "US"}, size_mm=(45.0, 12.0))
    r = formocr.read_postal_code(img, country="US")
    assert r.country == "US" and r.source == "crop" and r.value == "94107"
    img, _ = _one_field("postal_code", "free", "021391234", seed=19, constraints={"country": "US"},
                        size_mm=(70.0, 12.0))
    r = formocr.read_postal_code(img, country="US")
    assert r.value == "02139-1234"
    with pytest.raises(ConfigError, match="country"):
        formocr.read_postal_code(img, country="DE")


def test_scan_keeps_its_models_and_reads_alike_from_four_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from formocr import pipeline

    sample = str(Path(__file__).resolve().parents[1] / "samples" / "envelope.png")
    first = formocr.scan(sample)
    assert len(pipeline._PIPELINES) >= 1
    loaded = dict(pipeline._PIPELINES)
    with ThreadPoolExecutor(4) as pool:
        docs = list(pool.map(formocr.scan, [sample] * 4))
    values = [[(f.name, f.value, f.confidence) for p in d.pages for f in p.fields] for d in [first, *docs]]
    assert all(v == values[0] for v in values)
    assert dict(pipeline._PIPELINES) == loaded  # the same pipeline, models loaded once


def _cell(lines: list[str], seed: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A register-like cell: lines of stroke-rendered writing one under another on paper, and each line's rows."""
    rng = np.random.default_rng(seed)
    writer = Writer(slant=-0.05, pen=0.11)
    rows, strips, y = [], [], 12
    for text in lines:
        ink, _ = render_string(text, writer, rng, 40)
        strips.append((y, ink))
        rows.append((y, y + ink.shape[0]))
        y += ink.shape[0] + 18
    cell = np.full((y + 12, max(s.shape[1] for _, s in strips) + 24), 235.0, np.float32)
    for y0, ink in strips:
        cell[y0 : y0 + ink.shape[0], 12 : 12 + ink.shape[1]] -= 215.0 * np.clip(ink, 0.0, 1.0)
    return cell.astype(np.uint8), rows


def test_a_patterned_field_finds_its_line_in_a_cell_of_several() -> None:
    """A date cell handed over whole (an age, the year, the day): a year field reads the line its pattern fits and
    says which, its box on that line; a field without a pattern reads the crop as one field."""
    cell, rows = _cell(["38", "1933", "16"], seed=5)
    r = formocr.read_field(cell, "digits", min_length=4, max_length=4, pattern=r"1[89]\d\d")
    assert r.value == "1933", r.to_dict()
    assert r.readings["line"] == {"read": 2, "of": 3}
    assert rows[1][0] - 12 <= r.box.y and r.box.y2 <= rows[1][1] + 12
    assert all(rows[1][0] - 12 <= c.box.y and c.box.y2 <= rows[1][1] + 12 for c in r.chars)
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(formocr.__file__).parent / "schema" / "document.schema.json").read_text())
    jsonschema.validate(r.to_dict(), {"$defs": schema["$defs"], "$ref": "#/$defs/field"})
    plain = formocr.read_field(cell, "digits", min_length=4, max_length=4)
    assert "line" not in plain.readings


def test_a_speck_of_a_line_under_a_millimetre_is_passed_over() -> None:
    """A tick above the writing makes a "line" 15 px tall, under a millimetre at the caller's 600 dpi: too small to
    be a page of its own, it is skipped, not an error, and the year is still found."""
    cell, _ = _cell(["38", "1933", "16"], seed=5)
    tick = np.full((24, cell.shape[1]), 235, np.uint8)
    cv2.line(tick, (20, 6), (22, 16), 30, 4)
    r = formocr.read_field(np.vstack([tick, cell]), "digits", min_length=4, max_length=4, pattern=r"1[89]\d\d",
                           dpi=600)
    assert r.value == "1933" and r.readings["line"] == {"read": 3, "of": 4}, r.to_dict()


def test_of_lines_none_accepted_a_reading_the_pattern_allows_wins(reader: FieldReaderAPI, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """No reading of a cell is accepted: a line read "30" (confidence capped at 0.5 for breaking the pattern) must
    not win over a year the pattern allows, however much less sure."""
    said = iter([("30", 0.5), ("1937", 0.37), ("24", 0.5)])  # the whole cell, then each of its two lines

    def read_crop(page, *args, **kwargs):  # type: ignore[no-untyped-def]
        raw, p = next(said)
        box = Box(0, 0, page.width, page.height)
        return FieldResult("f", "digits", raw, raw, p, True, (f"confidence {p}",), box, ()), None

    monkeypatch.setattr(reader, "_read_crop", read_crop)
    monkeypatch.setattr(formocr.api, "text_lines", lambda gray: [(4, 24), (34, 54)])
    r = reader.read_field(np.full((60, 120), 235, np.uint8), "digits", min_length=4, max_length=4,
                          pattern=r"1[89]\d\d")
    assert (r.raw, r.needs_review, r.readings["line"]) == ("1937", True, {"read": 1, "of": 2})


def test_a_slip_in_one_of_read_fields_keywords_is_named_with_a_suggestion(reader: FieldReaderAPI) -> None:
    """A misspelled ``style`` lands among the constraints, whose message alone would not say what was meant."""
    blank = np.full((40, 80), 255, np.uint8)
    with pytest.raises(ConfigError, match="unknown keyword 'stlye' \\(did you mean 'style'\\?\\)"):
        reader.read_field(blank, "digits", stlye="comb")
    with pytest.raises(ConfigError, match="did you mean 'cells'"):
        reader.read_field(blank, "digits", style="comb", cels=4)
