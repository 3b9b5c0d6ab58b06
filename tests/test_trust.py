"""Crops that hold no digits come back for review with a reason, never as a confident reading; a clean digit
string is still accepted. Every crop is drawn here (OpenCV shapes, the project's stroke renderer)."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

import formocr
from formocr.api import FieldReaderAPI
from formocr.crop import crop_print, writing_box
from formocr.layout.template import Template, TemplateField
from formocr.synth import Writer, render_form

W, H = 700, 150  # a 60 × 12 mm field at 300 dpi with paper around it


def _paper() -> np.ndarray:
    rng = np.random.default_rng(5)
    return np.clip(rng.normal(238, 4, (H, W)), 0, 255).astype(np.uint8)


def _rule() -> np.ndarray:
    p = _paper()
    cv2.line(p, (0, 110), (W - 1, 112), 30, 3)
    return p


def _margin() -> np.ndarray:
    p = _paper()
    p[:, :180] = 12
    return p


def _blank_box() -> np.ndarray:
    p = _paper()
    cv2.rectangle(p, (20, 15), (W - 20, H - 15), 25, 3)
    return p


def _letter() -> np.ndarray:
    p = _paper()
    cv2.putText(p, "K", (300, 120), cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, 3.5, 20, 7)
    return p


def _smudge() -> np.ndarray:
    p = _paper()
    cv2.ellipse(p, (350, 75), (60, 35), 20, 0, 360, 60, -1)
    return cv2.GaussianBlur(p, (0, 0), 4)


def _stamp() -> np.ndarray:
    p = _paper()
    cv2.circle(p, (350, 75), 60, 40, 4)
    cv2.putText(p, "PAID", (300, 88), cv2.FONT_HERSHEY_DUPLEX, 1.1, 40, 2)
    return p


@pytest.fixture(scope="module")
def reader() -> FieldReaderAPI:
    return formocr.api.reader_for()


@pytest.mark.parametrize("draw", [_rule, _margin, _blank_box, _letter, _smudge, _stamp],
                         ids=["rule", "margin", "blank box", "letter", "smudge", "stamp"])
def test_no_digits_is_never_accepted(reader: FieldReaderAPI, draw) -> None:  # type: ignore[no-untyped-def]
    r = reader.read_field(draw(), "digits")
    assert r.needs_review, (r.value, r.confidence)
    assert r.why, "a field sent to review says why"


def test_a_clean_digit_string_is_still_accepted(reader: FieldReaderAPI) -> None:
    f = TemplateField("f", "digits", (20.0, 20.0, 60.0, 12.0), "box", None, {})
    sp = render_form(Template("one", 100.0, 52.0, (f,)), {"f": "40729"}, np.random.default_rng(11),
                     writer=Writer(slant=-0.05, pen=0.11), touch_border_prob=0.0)
    b, m = sp.field_boxes["f"], 35
    r = reader.read_field(sp.image[b.y - m : b.y2 + m, b.x - m : b.x2 + m], "digits")
    assert (r.value, r.needs_review) == ("40729", False), r.why


def test_print_along_a_crop_is_not_writing() -> None:
    ink = np.zeros((60, 200), bool)
    ink[:, :30] = True  # a black margin, ragged edge beside it
    ink[::2, 30] = True
    ink[50:52, :] = True  # a ruled line across
    ink[0:60, 120:122] = True  # a printed column rule running through
    ink[15:40, 70:74] = True  # a pen stroke: stays
    printed = crop_print(ink)
    assert printed[:, :31].all() or printed[::2, 30].all()
    assert printed[50:52].all() and printed[:, 120:122][ink[:, 120:122]].all()
    assert not printed[15:40, 70:74].any()


def test_a_column_rule_broken_by_a_light_scan_is_print() -> None:
    """A thin rule in pieces (gaps a light scan left) still runs down the whole crop: print, not a "1"; a digit's
    stroke as tall as half the crop stays writing."""
    ink = np.zeros((200, 140), bool)
    for y in range(0, 200, 25):
        ink[y : y + 18, 50:53] = True  # dashed rule, 3 px wide, gaps of 7 px, top to bottom
    ink[60:160, 90:94] = True  # a tall pen stroke
    ink[60:64, 80:94] = True
    printed = crop_print(ink)
    assert printed[:, 50:53][ink[:, 50:53]].all()
    assert not printed[:, 80:94].any()


def _thirteen(cell: np.ndarray) -> None:
    """ "13" drawn 20 px high at rows 64-84: a "1" of area 60 and a "3" of about 100."""
    cell[64:84, 80:83] = True
    for y0 in (64, 73, 82):
        cell[y0 : y0 + 2, 88:100] = True
    cell[64:84, 98:100] = True


def test_a_tight_crops_digits_that_touch_its_edges_are_not_print() -> None:
    """In a crop cut to the ink's very rows, a "7" or a "1" runs from the top edge to the bottom one, as a rule
    running past the crop would; the digit beside it as tall and wide says it is writing, whichever is taller."""
    for seven_rows, one_rows in (((0, 32), (1, 31)), ((1, 31), (0, 32))):
        ink = np.zeros((32, 120), bool)
        ink[seven_rows[0] : seven_rows[0] + 3, 30:52] = True  # the "7": its bar ...
        for y in range(seven_rows[0], seven_rows[1]):  # ... and its stem, down to the left
            x = 50 - (y - seven_rows[0]) * 12 // 32
            ink[y, x : x + 3] = True
        ink[one_rows[0] : one_rows[1], 70:73] = True  # the "1"
        assert not crop_print(ink).any()


def test_a_whole_hooked_1_is_no_broken_rule() -> None:
    """A slanted "1" with a hook, in one piece from near the crop's top to near its bottom: bridging it down the
    crop fills its slant, but it was never in pieces, so it is no rule a light scan broke."""
    ink = np.zeros((60, 100), bool)
    for y in range(3, 57):
        x = 50 - (y - 3) // 6
        ink[y, x : x + 2] = True
    ink[3:5, 44:51] = True  # the hook at its top
    assert not crop_print(ink).any()


def _box_of(ink: np.ndarray) -> tuple[int, int]:
    b = writing_box(SimpleNamespace(ink=ink), print_removed=True)  # type: ignore[arg-type]
    assert b is not None
    return b.x, b.x2


def test_a_crop_cut_tight_round_the_writing_keeps_all_of_it() -> None:
    """In a crop cut tight round "14", the "4" is nearly as tall as the crop and the "1" taller than it: both are
    writing, not print. A rule in a whole cell, many times the writing's height, stays out."""
    ink = np.zeros((19, 88), bool)
    ink[0:17, 40:42] = True  # the "4": its stem, arm and bar, 17 of the crop's 19 rows
    ink[3:12, 33:35] = True
    ink[10:12, 33:45] = True
    ink[1:18, 26:28] = True  # the "1": thin, taller still
    x0, x1 = _box_of(ink)
    assert x0 <= 18 and x1 >= 45  # the "1" inside, beyond the box's side margin round the "4" alone
    cell = np.zeros((180, 90), bool)
    cell[10:165, 10:12] = True  # a column rule's piece, short of both edges
    cell[80:100, 40:42] = True  # "1"
    cell[80:100, 50:60] = True  # a wide digit beside it
    x0, x1 = _box_of(cell)
    assert x0 > 12 and x1 >= 60


def test_the_writing_not_the_imprint_nor_a_rule_is_what_a_cell_holds() -> None:
    """A whole register cell: a piece of a ruled line along its top and the form's imprint along its bottom are
    each heavier than the row number written in the middle; the box is round the row number."""
    cell = np.zeros((230, 140), bool)
    cell[120:123, 70:130] = True  # a ruled line's piece, 60 × 3, below the writing
    cell[210:228, 60:100] = True  # "Trykt for ..." printed along the bottom, heavier than the writing
    _thirteen(cell)
    b = writing_box(SimpleNamespace(ink=cell), print_removed=True)  # type: ignore[arg-type]
    assert b is not None and b.y < 64 and b.y2 > 84 and b.y2 < 120 and b.y > 7


def test_a_margins_edge_left_in_a_cell_is_no_writing() -> None:
    """A thin line down most of a row-number cell (the edge a scanner's margin leaves, short of both ends) is
    heavier than the number, and far taller: the box is round the number, and the line stays outside it."""
    cell = np.zeros((230, 140), bool)
    cell[15:175, 30:32] = True
    _thirteen(cell)
    b = writing_box(SimpleNamespace(ink=cell), print_removed=True)  # type: ignore[arg-type]
    assert b is not None and b.x > 32 and b.y < 64 and b.y2 > 84 and b.y2 < 175


def test_a_rules_hairline_left_by_a_light_scan_is_print_and_a_pens_1_is_not() -> None:
    """A light scan leaves of a column rule a hairline a pixel wide, short of the crop's ends, that segmentation
    read as a "1" before the number ("43" read "143"); a pen's "1" as long is three pixels wide and stays writing."""
    cell = np.zeros((200, 136), bool)
    _thirteen(cell)
    cell[40:110, 60] = True  # the rule's remnant: 70 px down, one pixel wide, beside the number
    cell[150:170, 100] = True  # a speck's scratch, too short to tell: left to the speck rules
    printed = crop_print(cell)
    assert printed[40:110, 60].all() and not printed[64:84, 80:100].any() and not printed[150:170, 100].any()
    pen = np.zeros((200, 136), bool)
    _thirteen(pen)
    pen[40:110, 59:62] = True  # a pen's long "1" (or a tall stroke) three pixels wide
    assert not crop_print(pen)[40:110, 59:62].any()
    fine = np.zeros((120, 136), bool)  # a fifth of it is shorter than the "1"
    _thirteen(fine)
    fine[60:86, 70] = True  # a fine nib's "1" a pixel wide, as tall as the digits: writing (the speck rules' case)
    assert not crop_print(fine)[60:86, 70].any()


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_a_currency_mark_before_an_amount_is_not_a_digit(reader: FieldReaderAPI, seed: int) -> None:
    """A cheque's "$48.440": the "$" (an S crossed by a bar) was read as a 5 or an 8, so the amount read 548440
    or 848440. It is no digit: the amount is 48440, the mark is left out of both readers' view, and the string
    reader, shown the field with the mark in it, reads no digit in it either: two readers, not the CNN alone, have
    decided it away, so the amount is posted."""
    f = TemplateField("f", "amount", (20.0, 20.0, 60.0, 12.0), "box", None, {"decimals": 0})
    rng = np.random.default_rng(seed)
    sp = render_form(Template("one", 100.0, 52.0, (f,)), {"f": "$48.440"}, rng,
                     writer=Writer.random(rng).with_(spacing=0.3), touch_border_prob=0.0)
    b, m = sp.field_boxes["f"], 35
    r = reader.read_field(sp.image[b.y - m : b.y2 + m, b.x - m : b.x2 + m], "amount", decimals=0)
    assert (r.value, r.raw) == ("48440", "48.440"), (r.raw, r.why)
    assert r.readings["not_digits"] == 1 and r.readings["agree"] and r.readings["with_marks"]["confirms"]
    assert not r.needs_review, r.why


def test_a_mark_painted_out_sends_the_field_to_review_unless_the_string_reader_confirms(
        reader: FieldReaderAPI) -> None:
    """Painted out, a mark is gone from both readers: if it held a digit (two touching digits the CNN took for a
    blot), both lose it. Only where the string reader, reading the field with the mark in it, found the very digits
    chosen may the field be posted; otherwise it goes to review, saying which mark was left out."""
    from formocr.fusion import Reading
    from formocr.objects import Box, CharResult, FieldRegion
    from formocr.read import _Notes

    fr = reader.pipeline.reader
    region = FieldRegion("f", "amount", Box(0, 0, 100, 30), constraints={"decimals": 0})
    chars = tuple(CharResult(c, 0.9999, ((c, 0.9999),), Box(10 * i, 0, 8, 20)) for i, c in enumerate("3685"))
    chosen = Reading("both", "3685", 0.9999, chars, True)
    alone = fr._field_result(region, chosen, None, {}, _Notes(left_out=1, dropped_at=(1,), painted_at=(1,)))
    assert alone.needs_review and any("position 1, before or after the digits" in w for w in alone.why), alone.why
    confirmed = fr._field_result(region, chosen, None, {}, _Notes(left_out=1, dropped_at=(1,), painted_at=(1,),
                                                                  confirmed=True))
    assert not confirmed.needs_review and confirmed.value == "3685"


def test_a_digit_a_touching_currency_sign_took_with_it_is_read_back(reader: FieldReaderAPI) -> None:
    """"$83.90" with the "$" touching the 8: the two are one mark, which the digit CNN calls "not a digit", so it
    is painted out and the amount read "3.90". The string reader, shown the field with the mark in it, reads
    "83.90": one digit more, before the very digits chosen. The field is that reading, and goes to review."""
    from formocr.marks import one_digit_before
    from formocr.synth.strings import StringGenerator, clean_page

    s = StringGenerator(None).sample(np.random.default_rng([7, 32]), text="$83.90", touching=True)
    region = replace(s.region, type="amount", constraints={"decimals": 2})
    r = reader.pipeline.reader.read(clean_page(s), [region])[0].result
    assert (r.value, r.readings["chosen"]) == ("83.90", "with_marks"), (r.raw, r.readings)
    assert r.readings["with_marks"]["restores"] and not r.readings["with_marks"]["confirms"]
    assert "calibrated" not in r.readings and "fused_confidence" not in r.readings  # one reader's own confidence
    assert r.needs_review and any("check the first digit" in w for w in r.why), r.why
    assert not any(w.startswith("not a digit at position 1") for w in r.why), r.why
    assert one_digit_before("$83.90", "3.90") and one_digit_before("977-", "77-")
    assert not one_digit_before("3.90", "3.90") and not one_digit_before("883.90", "3.90")
    assert not one_digit_before("8", "")
    from formocr.fusion import Reading
    from formocr.objects import Box, CharResult, FieldRegion
    from formocr.read import _Notes

    chars = tuple(CharResult(c, 0.99, ((c, 0.99),), Box(10 * i, 0, 8, 20)) for i, c in enumerate("8390"))
    both_ends = reader.pipeline.reader._field_result(  # a mark at each end: the other one is still named
        FieldRegion("f", "amount", Box(0, 0, 100, 30)), Reading("with_marks", "8390", 0.9, chars, True), None, {},
        _Notes(left_out=2, dropped_at=(1, 6), painted_at=(1, 6), restored=True))
    assert any("check the first digit" in w for w in both_ends.why), both_ends.why
    assert any("position 6, before or after the digits" in w for w in both_ends.why), both_ends.why
    assert not any("no digit in the mark" in w or "not a digit at position 1" in w for w in both_ends.why)


def test_a_mark_left_out_leaves_the_string_readers_input_too() -> None:
    """The string reader reads the field's grey: a mark the digit CNN is sure is no digit is painted to paper
    there as well, and the ink beside it stays."""
    from formocr.marks import end_mark, without_marks
    from formocr.objects import Box, Component

    gray = np.full((40, 120), 230, np.uint8)
    ink = np.zeros((40, 120), bool)
    gray[10:30, 10:20], ink[10:30, 10:20] = 20, True  # the mark
    gray[10:30, 60:66], ink[10:30, 60:66] = 20, True  # a digit's stroke
    mark = Component(Box(105, 208, 10, 20), np.ones((20, 10), bool))  # page pixels: the cut lies at (95, 198)
    (ink2, box, _), gray2 = without_marks((ink, Box(95, 198, 120, 40), np.zeros_like(ink)), gray, [mark])
    assert not ink2[10:30, 10:20].any() and (gray2[8:32, 8:22] == 230).all()
    assert ink2[10:30, 60:66].all() and (gray2[10:30, 60:66] == 20).all() and box == Box(95, 198, 120, 40)
    assert ink[10:30, 10:20].all() and gray[15, 15] == 20  # the caller's arrays are untouched
    digit = Box(155, 212, 6, 16)  # the "$" is taller than the digits: its bar runs past them
    assert end_mark(mark.box, [digit]) and not end_mark(Box(150, 208, 10, 20), [Box(140, 212, 6, 16), digit])
    assert not end_mark(mark.box, [])  # with no digit left, nothing is an end: the string reader keeps it all
    assert not end_mark(Box(105, 208, 30, 20), [digit])  # wider than tall: two touching digits, maybe
    assert not end_mark(Box(105, 212, 12, 16), [digit])  # no taller than the digits: "11" run together, maybe


def test_a_tight_crop_of_a_number_reads_all_its_digits(reader: FieldReaderAPI) -> None:
    """A caller who cuts the crop right at the ink's top and bottom: the "1" of "71" is as tall as the crop and
    was taken for a rule, so the field read "1" or "7"."""
    f = TemplateField("f", "digits", (20.0, 20.0, 30.0, 12.0), "free", None, {})
    sp = render_form(Template("one", 100.0, 52.0, (f,)), {"f": "71"}, np.random.default_rng(1),
                     writer=Writer(slant=-0.05, pen=0.11), touch_border_prob=0.0)
    b = sp.field_boxes["f"]
    g = sp.image[b.y - 20 : b.y2 + 20, b.x - 40 : b.x2 + 40]
    g = g if g.ndim == 2 else cv2.cvtColor(g, cv2.COLOR_BGR2GRAY)
    ys, xs = np.nonzero(g < 128)
    tight = g[max(0, ys.min() - 1) : ys.max() + 2, max(0, xs.min() - 60) : xs.max() + 60]
    r = reader.read_field(tight, "digits", max_length=2)
    assert r.value == "71", (r.value, r.why)


def test_a_mark_left_out_is_named_when_the_field_needs_review(reader: FieldReaderAPI) -> None:
    """Digits written, then a letter: the letter is left out of the reading, and when the field needs review
    (here: too few digits for it), ``why`` says where the mark that is not a digit was."""
    f = TemplateField("f", "digits", (20.0, 20.0, 60.0, 12.0), "box", None, {})
    sp = render_form(Template("one", 100.0, 52.0, (f,)), {"f": "407"}, np.random.default_rng(11),
                     writer=Writer(slant=-0.05, pen=0.11), touch_border_prob=0.0)
    b, m = sp.field_boxes["f"], 35
    crop = sp.image[b.y - m : b.y2 + m, b.x - m : b.x2 + m].copy()
    right = max(box.x2 for _, box in sp.char_boxes["f"]) - (b.x - m)
    cv2.putText(crop, "K", (right + 40, crop.shape[0] - 60), cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, 2.2, 20, 6)
    r = reader.read_field(crop, "digits", min_length=5, max_length=5)
    assert r.raw == "407" and r.needs_review
    assert "not a digit at position 4 (left out)" in r.why, r.why


def test_a_printed_line_through_the_writing_is_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A rule printed across the middle of a box (a form printed over another): when the field needs review,
    ``why`` says a printed line crosses it."""
    import json

    f = TemplateField("f", "digits", (20.0, 20.0, 60.0, 12.0), "box", None, {"min_length": 5, "max_length": 5})
    t = Template("one", 100.0, 52.0, (f,))
    sp = render_form(t, {"f": "407"}, np.random.default_rng(11), writer=Writer(slant=-0.05, pen=0.11),
                     touch_border_prob=0.0)
    b = sp.field_boxes["f"]
    page = sp.image.copy()
    cv2.line(page, (b.x - 40, b.y + b.h // 2), (b.x2 + 40, b.y + b.h // 2), 20, 4)
    (tmp_path / "one.json").write_text(json.dumps(t.to_dict()))
    r = formocr.scan(page, template=str(tmp_path / "one.json")).field("f")
    assert r.needs_review and "a printed line crosses the field" in r.why, r.why


def test_each_field_of_a_page_is_confirmed_on_its_own_reading(reader: FieldReaderAPI) -> None:
    """On a page of several fields, only those that lost a painted-out mark are read once more, each on its own
    field: a plain number between two amounts after a "$" keeps no such reading, and the amounts keep theirs."""
    from formocr.objects import FieldRegion, Page
    from formocr.preprocess import PreprocessOptions, preprocess

    fs = (TemplateField("a", "amount", (20.0, 10.0, 60.0, 12.0), "box", None, {"decimals": 0}),
          TemplateField("b", "digits", (20.0, 40.0, 60.0, 12.0), "box", None, {}),
          TemplateField("c", "amount", (20.0, 70.0, 60.0, 12.0), "box", None, {"decimals": 0}))
    rng = np.random.default_rng(11)
    sp = render_form(Template("three", 100.0, 95.0, fs), {"a": "$48.440", "b": "407", "c": "$48.440"}, rng,
                     writer=Writer.random(rng).with_(spacing=0.3), touch_border_prob=0.0)
    gray = sp.image if sp.image.ndim == 2 else cv2.cvtColor(sp.image, cv2.COLOR_BGR2GRAY)
    clean = preprocess(Page(0, gray, 300.0, "<page>"), PreprocessOptions(deskew=False))
    regions = [FieldRegion(f.name, f.type, sp.field_boxes[f.name], constraints=f.constraints) for f in fs]
    got = {w.region.name: w.result for w in reader.pipeline.reader.read(clean, regions)}
    assert got["b"].value == "407" and "with_marks" not in got["b"].readings
    for name in ("a", "c"):
        marks = got[name].readings["with_marks"]
        assert got[name].value == "48440" and "".join(ch for ch in marks["raw"] if ch.isdigit()) == "48440"
        assert marks["confirms"] == (not got[name].needs_review), got[name].why


def test_a_digit_tall_stroke_lost_as_a_speck_sends_the_field_to_review(reader: FieldReaderAPI) -> None:
    """A fine nib's "1" one pixel wide fails the speck rule's dot size, so both readers read "13" as "3", sure of
    it: the stroke, as tall as the digits and on their line, sends the field to review and ``why`` says where."""
    f = TemplateField("f", "digits", (20.0, 20.0, 30.0, 12.0), "free", None, {})
    sp = render_form(Template("one", 100.0, 52.0, (f,)), {"f": "3"}, np.random.default_rng(1),
                     writer=Writer(slant=-0.05, pen=0.11), touch_border_prob=0.0)
    b, m = sp.field_boxes["f"], 35
    g = sp.image[b.y - m : b.y2 + m, b.x - m : b.x2 + m].copy()
    g = g if g.ndim == 2 else cv2.cvtColor(g, cv2.COLOR_BGR2GRAY)
    plain = reader.read_field(g, "digits")
    assert (plain.value, plain.needs_review) == ("3", False), plain.why
    ys, xs = np.nonzero(g < 128)
    x = int(xs.min()) - (int(ys.max()) - int(ys.min())) // 2
    g[ys.min() : ys.max() + 1, x] = 20  # the "1" of "13", one pixel wide
    r = reader.read_field(g, "digits")
    assert r.value == "3" and r.needs_review
    assert any(w.startswith("a thin stroke as tall as a digit at position 1") for w in r.why), r.why



def test_a_rule_leaning_across_a_skewed_scan_is_print_with_the_underline_run_into_it() -> None:
    """A register page scanned a few degrees askew: the column rule runs from the cell's top to its bottom leaning by
    a tenth of its height, and the clerk's underline runs into it, so it is no thin mark of its own. It is print;
    the number beside it stays writing."""
    ink = np.zeros((200, 140), np.uint8)
    cv2.line(ink, (30, 0), (50, 199), 1, 3)  # the leaning rule
    cv2.line(ink, (42, 118), (110, 112), 1, 2)  # the underline, run into it
    cv2.ellipse(ink, (72, 92), (9, 14), 0, 0, 360, 1, 2)  # the row number over it
    cv2.line(ink, (95, 78), (95, 106), 1, 2)
    out = crop_print(ink.astype(bool))
    assert out[100, 40] and out[10, 31]  # along the rule
    assert not out[92, 81] and not out[90, 95]  # the digits stay
