"""Automatic mode: finding boxes, combs and underlined blanks without a template; templates from blank forms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from formocr.cli import main
from formocr.errors import InputError, TemplateError
from formocr.layout.detect import find_fields
from formocr.layout.from_image import template_from_image
from formocr.layout.template import Template, TemplateField, load_template, parse_template
from formocr.objects import Box, CleanPage, FieldRegion, Page
from formocr.preprocess import preprocess
from formocr.recognize.digits import DEFAULT_MODEL
from formocr.segment import field_ink
from formocr.synth import Degrade, Writer, render_form
from formocr.synth.layouts import fillable, layout_values, random_layout

needs_model = pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason="shipped model not built yet")


def _iou(a: Box, b: Box) -> float:
    x0, y0, x1, y1 = max(a.x, b.x), max(a.y, b.y), min(a.x2, b.x2), min(a.y2, b.y2)
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / (a.area + b.area - inter)


def _clean(image: np.ndarray, dpi: float) -> CleanPage:
    return preprocess(Page(0, image, dpi, "test"))


def _scan(
    template: Template, values: dict[str, str], seed: int, dpi: int = 200, degrade: Degrade | None = None
) -> CleanPage:
    rng = np.random.default_rng(seed)
    page = render_form(template, values, rng, dpi=dpi, writer=Writer.random(rng), degrade=degrade)
    return _clean(page.image, dpi)


# --- the "line" style ---------------------------------------------------------------------------------------


def _line_template(value_fields: int = 1) -> Template:
    fields = [
        TemplateField(f"n{i}", "digits", (20.0, 20.0 + 18 * i, 60.0, 11.0), "line", label=f"Item {i}")
        for i in range(value_fields)
    ]
    return Template("lines", 120.0, 45.0 + 18 * value_fields, tuple(fields))


def test_line_style_is_a_valid_template_style() -> None:
    data = {
        "formocr_template": 1,
        "name": "t",
        "page": {"width_mm": 100, "height_mm": 50},
        "fields": [{"name": "a", "type": "digits", "box_mm": [10, 10, 50, 10], "style": "line"}],
    }
    t = parse_template(data)
    assert t.fields[0].style == "line"
    data["fields"][0]["cells"] = 4
    with pytest.raises(TemplateError, match=r"fields\[0\]\.cells"):
        parse_template(data)


def test_line_field_is_printed_as_a_baseline_only() -> None:
    t = _line_template()
    page = render_form(t, {"n0": ""}, np.random.default_rng(0), dpi=300)
    box = t.fields[0].region(300).box
    ink = page.image < 128
    inside = ink[box.y : box.y2, box.x : box.x2]
    rows = np.flatnonzero(inside.any(axis=1))
    assert rows.min() >= box.h - 5  # only the bottom few rows: a 0.3 mm line
    assert inside[-2].all()  # the line runs the whole width
    assert not ink[box.y : box.y2 - 5, box.x - 3 : box.x + 2].any()  # no side walls


def test_field_ink_removes_the_underline_but_keeps_a_crossing_stroke() -> None:
    dpi = 300.0
    ink = np.zeros((200, 400), bool)
    ink[150:154, 50:350] = True  # the printed underline
    ink[60:180, 200:206] = True  # a digit stroke running through it
    ink[100:104, 120:150] = True  # a short bar of a digit
    clean = CleanPage(
        Page(0, np.where(ink, 0, 255).astype(np.uint8), dpi, "t"),
        np.where(ink, 0, 255).astype(np.uint8),
        ink,
        0.0,
        "otsu",
    )
    region = FieldRegion("f", "digits", Box(50, 40, 300, 114), "line")
    cut, box = field_ink(clean, region)
    line_rows = cut[150 - box.y : 154 - box.y]
    assert not line_rows[:, 60 - box.x : 190 - box.x].any()  # the underline is gone
    assert line_rows[:, 200 - box.x : 206 - box.x].all()  # the stroke crossing it is whole
    assert cut[100 - box.y : 104 - box.y, 120 - box.x : 150 - box.x].all()  # a digit's bar is not a line


@needs_model
@pytest.mark.parametrize("reader", ["segmentation", "crnn"])
def test_both_readers_read_underlined_blanks(reader: str, tmp_path: Path) -> None:
    from formocr.options import Options
    from formocr.pipeline import Pipeline

    t = _line_template(3)
    path = tmp_path / "lines.json"
    path.write_text(json.dumps(t.to_dict()))
    values = {"n0": "407", "n1": "2316", "n2": "58"}
    rng = np.random.default_rng(3)
    page = render_form(t, values, rng, dpi=300, writer=Writer(), degrade=Degrade.none(), touch_border_prob=1.0)
    doc = Pipeline(Options(template=str(path), reader=reader)).scan(page.image)
    got = {f.name: f.value for f in doc.fields}
    assert sum(got[k] == v for k, v in values.items()) >= 2, got


# --- finding fields -----------------------------------------------------------------------------------------


def test_finds_boxes_combs_and_underlines_on_random_forms() -> None:
    for seed in (8, 16):  # both hold boxes, combs, underlines, tables, ruled lists, text and empty fields
        rng = np.random.default_rng(seed)
        layout = random_layout(rng)
        values = layout_values(layout, rng)
        clean = _scan(layout, values, seed, degrade=Degrade(max_skew=0.0, noise_std=(2.0, 4.0), jpeg_quality=(70, 80)))
        found = find_fields(clean)
        truth = [f for f in layout.fields if values[f.name]]
        assert {f.style for f in truth} == {"box", "comb", "line"}
        matched = set()
        for f in truth:
            tb = f.region(clean.page.dpi).box
            best = max(found, key=lambda r: _iou(r.box, tb))
            assert _iou(best.box, tb) >= 0.5, (seed, f.name)
            assert (best.style, best.cells) == (f.style, f.cells), (seed, f.name)
            matched.add(best.name)
        assert len(found) == len(truth)  # printed text, tables, rules and empty fields are not reported
        assert [r.name for r in found] == [f"field_{i}" for i in range(1, len(found) + 1)]


def test_ignores_printed_text_tables_and_empty_boxes() -> None:
    fields = (
        TemplateField("filled", "digits", (20, 30, 50, 12), "box", label="Amount"),
        TemplateField("empty_box", "digits", (90, 30, 50, 12), "box", label="Other"),
        TemplateField("empty_comb", "digits", (20, 60, 60, 10), "comb", 6, label="Code"),
        TemplateField("empty_line", "digits", (100, 60, 60, 10), "line", label="Ref"),
        TemplateField("cell1", "digits", (20, 90, 40, 8), "box"),
        TemplateField("cell2", "digits", (60, 90, 40, 8), "box"),
        TemplateField("text1", "digits", (22, 96.2, 30, 1), "free", label="Qty 1250.00"),
        TemplateField("text2", "digits", (62, 96.2, 30, 1), "free", label="(2019) yg"),
        TemplateField("para", "digits", (20, 112, 150, 1), "free", label="Please write only digits in the boxes"),
    )
    t = Template("decoys", 190.0, 130.0, fields)
    values = {f.name: "" for f in fields} | {"filled": "3071"}
    clean = _scan(t, values, 1, dpi=300)
    found = find_fields(clean)
    assert len(found) == 1 and found[0].style == "box"
    assert _iou(found[0].box, fields[0].region(300).box) > 0.9
    everything = find_fields(clean, include_empty=True)
    assert {(r.style, r.cells) for r in everything} == {("box", None), ("comb", 6), ("line", None)}
    assert len(everything) == 6  # 2 boxes, a comb, a blank line, 2 table cells


def test_reading_order_is_rows_then_left_to_right() -> None:
    fields = (
        TemplateField("c", "digits", (120, 22, 40, 10), "box"),  # same row as a and b, a little higher
        TemplateField("a", "digits", (10, 24, 40, 12), "box"),
        TemplateField("b", "digits", (60, 25, 50, 9), "line"),
        TemplateField("d", "digits", (10, 50, 60, 10), "comb", 5),
    )
    t = Template("order", 170.0, 70.0, fields)
    clean = _scan(t, {"a": "12", "b": "345", "c": "6", "d": "7890"}, 2, dpi=300)
    found = find_fields(clean)
    order = []
    for r in found:
        order.append(max(fields, key=lambda f: _iou(r.box, f.region(300).box)).name)
    assert order == ["a", "b", "c", "d"]
    assert [r.name for r in found] == ["field_1", "field_2", "field_3", "field_4"]


def test_survives_broken_lines_and_skew_residue() -> None:
    t = Template(
        "broken",
        150.0,
        60.0,
        (
            TemplateField("a", "digits", (10, 15, 60, 12), "box"),
            TemplateField("b", "digits", (80, 15, 56, 11), "comb", 7),
        ),
    )
    rng = np.random.default_rng(4)
    page = render_form(
        t,
        {"a": "5501", "b": "1234567"},
        rng,
        dpi=300,
        writer=Writer.random(rng),
        degrade=Degrade(skew_deg=2.5, noise_std=(3.0, 3.0)),
    )
    img = page.image.copy()
    img[:, 300:306] = 255  # a dry printer: gaps across every line
    img[:, 1100:1104] = 255
    clean = _clean(img, 300)
    found = find_fields(clean)
    assert [(r.style, r.cells) for r in found] == [("box", None), ("comb", 7)]


def test_a_comb_missing_one_inner_wall_keeps_its_cell_count() -> None:
    # a 10-cell comb whose first inner wall did not print: the walls that remain fit a 5-cell grid too, and
    # that grid left the other five walls in the field, read as 1s
    t = Template("weak wall", 110.0, 40.0, (TemplateField("c", "digits", (20, 15, 70, 10), "comb", 10),))
    rng = np.random.default_rng(3)
    page = render_form(t, {"c": "2940"}, rng, dpi=300, writer=Writer.random(rng))
    img = page.image.copy()
    px = 300 / 25.4
    x = round(27 * px)  # the wall between cells 1 and 2
    img[round(16 * px) : round(24 * px), x - 5 : x + 6] = 255
    found = find_fields(_clean(img, 300))
    assert [(r.style, r.cells) for r in found] == [("comb", 10)]


# --- templates from blank forms ---------------------------------------------------------------------------


def _blank(name: str, dpi: int = 300) -> tuple[Template, np.ndarray]:
    t = load_template(name)
    page = render_form(t, {f.name: "" for f in t.fields}, np.random.default_rng(0), dpi=dpi)
    return t, page.image


def test_template_from_a_blank_builtin_form_matches_it() -> None:
    truth, image = _blank("numeric_form")
    made = template_from_image(image, 300, "copy")
    assert made.name == "copy" and abs(made.width_mm - truth.width_mm) < 0.2
    assert len(made.fields) == len(truth.fields)
    for want, got in zip(truth.fields, made.fields):  # the built-in lists its fields in reading order too
        assert (got.style, got.cells, got.type) == (want.style, want.cells, "digits")
        assert max(abs(a - b) for a, b in zip(got.box_mm, want.box_mm)) <= 1.0, (want.name, got.box_mm)
    assert parse_template(made.to_dict()).fields == tuple(
        TemplateField(f.name, f.type, f.box_mm, f.style, f.cells, {}, None) for f in made.fields
    )


def test_template_from_image_rejects_bad_input() -> None:
    with pytest.raises(InputError):
        template_from_image(np.zeros((0, 0), np.uint8), 300)
    with pytest.raises(InputError):
        template_from_image(np.full((100, 100), 255, np.uint8), None)
    with pytest.raises(TemplateError, match="no boxes"):
        template_from_image(np.full((400, 300), 255, np.uint8), 100)


def test_cli_template_from_image(tmp_path: Path) -> None:
    truth, image = _blank("envelope", dpi=200)
    png = tmp_path / "blank.png"
    Image.fromarray(image).save(png, dpi=(200, 200))
    out = tmp_path / "sub" / "envelope.json"
    r = CliRunner().invoke(main, ["template", "from-image", str(png), "-o", str(out), "--name", "env"])
    assert r.exit_code == 0, r.stderr
    made = load_template(out)
    assert made.name == "env"
    comb = [f for f in made.fields if f.style == "comb"]
    assert len(comb) == 1 and comb[0].cells == 6
    assert max(abs(a - b) for a, b in zip(comb[0].box_mm, truth.fields[0].box_mm)) <= 1.0
    assert not list(out.parent.glob(".*.tmp"))


def test_cli_template_from_image_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "blank.png"
    bad.write_text("not an image")
    out = tmp_path / "t.json"
    r = CliRunner().invoke(main, ["template", "from-image", str(bad), "-o", str(out)])
    assert r.exit_code == 3
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("formocr: error:")
    assert not out.exists()


def test_fillable_template_keeps_real_fields_only() -> None:
    layout = random_layout(np.random.default_rng(7))
    kept = fillable(layout)
    assert kept.fields and all(f.name.startswith(("field_", "empty_")) for f in kept.fields)
    parse_template(kept.to_dict())


@needs_model
def test_pipeline_falls_back_to_automatic_mode_without_a_matching_template() -> None:
    """A form no built-in template fits is read in automatic mode: its filled fields, in reading order."""
    from formocr.options import Options
    from formocr.pipeline import Pipeline

    rng = np.random.default_rng(4242)
    template = random_layout(rng)
    values = layout_values(template, rng)
    page = render_form(template, values, rng, dpi=150, writer=Writer.random(rng), degrade=Degrade.none())
    filled = [f for f in template.fields if values.get(f.name)]
    # the page's own resolution: an array is taken at Options.dpi (300), where these fields would look half their size
    for opts in (Options(dpi=150), Options(template="auto", dpi=150)):
        result = Pipeline(opts).scan(page.image).pages[0]
        assert result.template == "auto" and result.error is None
        assert len(result.fields) == len(filled)
        read = sorted(f.value or "" for f in result.fields)
        right = sum(a == b for a, b in zip(read, sorted(values[f.name] for f in filled)))
        assert right >= len(filled) - 1
