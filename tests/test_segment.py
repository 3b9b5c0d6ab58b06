"""Segmentation on drawn fields: merged fragments, separators, combs, borders, touching digits, noise."""

from __future__ import annotations

import cv2
import numpy as np

from formocr.api import FieldReaderAPI
from formocr.objects import Box, CleanPage, FieldRegion, Page
from formocr.options import Options
from formocr.segment import field_cut, field_ink, segment_field, thin_strokes
from formocr.synth import Writer
from formocr.synth.handwriting import render_digit

DPI = 300.0


def _page(ink: np.ndarray) -> CleanPage:
    gray = np.where(ink, 30, 245).astype(np.uint8)
    return CleanPage(Page(0, gray, DPI, "<test>"), gray, ink.astype(bool), 0.0, "otsu")


def _canvas(box: Box, comb: int = 0) -> np.ndarray:
    img = np.zeros((box.y2 + 60, box.x2 + 60), np.uint8)
    cv2.rectangle(img, (box.x, box.y), (box.x2 - 1, box.y2 - 1), 255, 4)
    for c in range(1, comb):
        x = box.x + round(c * box.w / comb)
        cv2.line(img, (x, box.y), (x, box.y2 - 1), 255, 3)
    return img


def _five(img: np.ndarray, x: int, y: int, h: int, gap: int) -> None:
    """A 5 whose top bar floats free of the body by ``gap`` pixels."""
    w = int(h * 0.6)
    cv2.line(img, (x + 8, y), (x + w, y), 255, 8)  # the detached bar
    cv2.line(img, (x + 6, y + gap), (x + 4, y + h // 2), 255, 8)
    cv2.ellipse(img, (x + w // 2, y + int(h * 0.7)), (w // 2, int(h * 0.28)), 0, -120, 150, 255, 8)


def test_open_five_is_one_digit() -> None:
    box = Box(50, 50, 500, 150)
    img = _canvas(box)
    _five(img, 120, 75, 95, gap=14)
    comps = segment_field(_page(img > 0), FieldRegion("a", "digits", box))
    assert [c.kind for c in comps] == ["digit"]
    assert comps[0].parts >= 2


def test_amount_dot_is_a_separator_and_order_is_left_to_right() -> None:
    box = Box(50, 50, 600, 150)
    img = _canvas(box)
    cv2.line(img, (120, 80), (120, 170), 255, 8)  # 1
    cv2.circle(img, (200, 125), 35, 255, 8)  # 0
    cv2.circle(img, (260, 166), 6, 255, -1)  # .
    cv2.circle(img, (330, 125), 35, 255, 8)  # 0
    for s in range(3):  # scanner dust: below the dot size
        cv2.circle(img, (450 + 30 * s, 100), 1, 255, -1)
    comps = segment_field(_page(img > 0), FieldRegion("a", "amount", box))
    assert [c.char if c.kind == "separator" else "d" for c in comps] == ["d", "d", ".", "d"]
    assert comps[0].box.x < comps[1].box.x < comps[2].box.x < comps[3].box.x


def test_comb_cells_one_digit_each_and_empty_cells_skipped() -> None:
    box = Box(40, 40, 600, 120)
    img = _canvas(box, comb=6)
    for cell in (0, 1, 3):
        cx = box.x + int((cell + 0.5) * 100)
        cv2.line(img, (cx - 20, 70), (cx + 20, 70), 255, 7)  # a 7's bar, detached from its stem
        cv2.line(img, (cx + 14, 80), (cx - 10, 140), 255, 7)
    comps = segment_field(_page(img > 0), FieldRegion("c", "digits", box, "comb", 6))
    assert len(comps) == 3 and all(c.parts == 2 for c in comps)


def test_stroke_crossing_the_border_is_kept_whole_and_border_is_not_a_digit() -> None:
    box = Box(50, 50, 500, 140)
    img = _canvas(box)
    cv2.line(img, (200, 90), (230, 210), 255, 8)  # a long descender crossing the bottom border
    cv2.line(img, (180, 90), (240, 90), 255, 8)
    comps = segment_field(_page(img > 0), FieldRegion("a", "digits", box))
    assert len(comps) == 1
    assert comps[0].box.y2 > box.y2  # the part below the border is still attached


def _thin_walls(box: Box, comb: int = 0) -> np.ndarray:
    """Walls printed 2 px thick (0.17 mm at 300 dpi), as light forms print them."""
    img = np.zeros((box.y2 + 60, box.x2 + 60), np.uint8)
    img[box.y : box.y + 2, box.x : box.x2] = img[box.y2 - 2 : box.y2, box.x : box.x2] = 255
    for c in range(comb + 1 if comb else 2):
        x = box.x + round(c * box.w / comb) if comb else (box.x, box.x2 - 2)[c]
        img[box.y : box.y2, x : x + 2] = 255
    return img


def test_tall_ones_in_a_tight_box_are_writing_not_walls() -> None:
    # Two 4-px "1"s as tall as the box: one leaning on the left wall (wall and 1 together are thinner than the
    # 0.6 mm a printed line may have), one in the middle. Both used to be erased as walls.
    box = Box(50, 50, 400, 120)
    img = _thin_walls(box)
    img[box.y : box.y2, box.x + 2 : box.x + 6] = 255  # against the left wall
    img[box.y + 1 : box.y2 - 1, 250:254] = 255  # in the middle
    comps = segment_field(_page(img > 0), FieldRegion("a", "digits", box))
    assert [c.kind for c in comps] == ["digit", "digit"]
    assert all(c.box.h > 0.9 * box.h for c in comps)
    ink, crop = field_ink(_page(img > 0), FieldRegion("a", "digits", box))
    rows = slice(box.y + 3 - crop.y, box.y2 - 3 - crop.y)
    assert ink[rows, box.x + 3 - crop.x : box.x + 6 - crop.x].mean() > 0.95  # the 1, less its edge on the wall
    assert ink[rows, box.x - crop.x : box.x + 2 - crop.x].mean() < 0.05  # the wall goes


def test_a_one_against_a_comb_cell_wall_is_kept_and_the_walls_are_not() -> None:
    box = Box(40, 40, 600, 120)
    img = _thin_walls(box, comb=6)
    wall = box.x + 200
    img[box.y : box.y2, wall + 2 : wall + 6] = 255  # a "1" in cell 2, against its left wall
    comps = segment_field(_page(img > 0), FieldRegion("c", "digits", box, "comb", 6))
    assert len(comps) == 1
    assert comps[0].box.h > 0.9 * box.h and comps[0].box.x >= wall + 1


def test_touching_digits_are_split() -> None:
    box = Box(50, 50, 600, 160)
    img = _canvas(box)
    cv2.ellipse(img, (160, 130), (30, 50), 0, 0, 360, 255, 8)
    cv2.ellipse(img, (218, 130), (30, 50), 0, 0, 360, 255, 8)  # touches the first 0
    comps = segment_field(_page(img > 0), FieldRegion("a", "digits", box))
    assert len(comps) == 2


def test_blank_field_gives_nothing() -> None:
    box = Box(50, 50, 400, 120)
    assert segment_field(_page(_canvas(box) > 0), FieldRegion("a", "digits", box)) == []


def test_arbitrate_follows_the_classifier() -> None:
    from formocr.arbitrate import arbitrate
    from formocr.objects import Component

    m = np.ones((10, 6), bool)
    a = Component(Box(0, 0, 6, 10), m)
    b = Component(Box(4, 0, 6, 10), m)  # overlaps a by a third of its width
    merged_is_better = arbitrate([a, b], lambda masks: np.array([0.6, 0.5, 0.99][: len(masks)]))
    assert len(merged_is_better) == 1 and merged_is_better[0].box == Box(0, 0, 10, 10)
    separate_is_better = arbitrate([a, b], lambda masks: np.array([0.99, 0.98, 0.7][: len(masks)]))
    assert len(separate_is_better) == 2
    # pieces of one split component are put back together when the whole reads better
    p1 = Component(Box(0, 0, 5, 10), m[:, :5], group=0)
    p2 = Component(Box(5, 0, 5, 10), m[:, :5], group=0)
    assert len(arbitrate([p1, p2], lambda masks: np.array([0.5, 0.5, 0.95][: len(masks)]))) == 1
    assert len(arbitrate([p1, p2], lambda masks: np.array([0.99, 0.99, 0.6][: len(masks)]))) == 2


def test_split_to_count_cuts_where_the_classifier_reads_both_pieces_best() -> None:
    from formocr.arbitrate import split_to_count
    from formocr.objects import Component

    # three 0s in a row, the last two touching: geometry keeps the pair whole; the string reader counts three
    img = np.zeros((120, 260), np.uint8)
    for cx in (40, 130, 186):
        cv2.ellipse(img, (cx, 60), (26, 45), 0, 0, 360, 255, 7)
    _, labels, stats, _ = cv2.connectedComponentsWithStats((img > 0).astype(np.uint8))
    comps = [Component(Box(x, y, w, h), labels[y : y + h, x : x + w] == i)
             for i, (x, y, w, h) in enumerate(stats[1:, :4].tolist(), start=1)]
    comps.sort(key=lambda c: c.box.x)
    assert len(comps) == 2

    def zero_likeness(masks: list[np.ndarray]) -> np.ndarray:  # a stand-in classifier: surest of 60-px-wide rings
        return np.array([1.0 / (1.0 + abs(m.shape[1] - 60) / 10) for m in masks])

    three = split_to_count(comps, 3, zero_likeness)
    assert three is not None and three[0] is comps[0]  # the lone 0 stays as it was
    cut = three[1].box.x2
    assert abs(cut - 158) <= 4  # where the rings touch
    assert three[1].group == three[2].group >= 0
    assert split_to_count(comps, 2, zero_likeness) is None  # nothing to add
    assert split_to_count(comps, 9, zero_likeness) is None  # more than any cut could honestly make


def test_a_thin_stroke_counts_only_as_tall_as_a_digit_and_on_its_line() -> None:
    """The speck rule drops a stroke one pixel wide; :func:`thin_strokes` says where one as tall as the digits
    stands beside them, and ignores a short scratch and a thin stroke of another line above."""
    box = Box(40, 40, 600, 400)  # a frame much taller than the writing, as a register's cell is
    img = _canvas(box)
    cv2.ellipse(img, (300, 250), (26, 40), 0, 0, 360, 255, 8)  # a 0
    cv2.ellipse(img, (400, 250), (26, 40), 0, 0, 360, 255, 8)  # a 0
    img[212:290, 220] = 255  # a "1" before them, one pixel wide
    img[240:250, 470] = 255  # a short scratch after them
    img[80:160, 350] = 255  # a thin stroke of a line above
    page = _page(img > 0)
    region = FieldRegion("a", "digits", box)
    ink, crop_box = field_ink(page, region)
    comps = segment_field(page, region)
    assert [c.kind for c in comps] == ["digit", "digit"]
    assert thin_strokes(ink, crop_box, region, DPI, comps) == (1,)
    img[212:290, 220] = 0
    assert thin_strokes(*field_ink(_page(img > 0), region), region, DPI, comps) == ()
    img[212:290, 200] = img[212:290, 230] = 255  # "11" before the "00": each stroke at its own place
    assert thin_strokes(*field_ink(_page(img > 0), region), region, DPI, comps) == (1, 2)


def test_a_baseline_the_crop_analysis_left_out_is_not_taken_back_as_faint_ink() -> None:
    """Digits written on a ruled line, handed over as a bare crop: the crop analysis leaves the line out as print.
    It is lighter than the pen, and the faint-stroke pass (Otsu inside the field) must not find it again: it would
    join every digit into one mark along it, which segmentation leaves out as no digit."""
    gray = np.full((70, 260), 235, np.uint8)
    rng = np.random.default_rng(3)
    for k, d in enumerate((3, 0, 5, 8, 2)):
        ink = render_digit(d, Writer(slant=0.0, pen=0.11), rng, 34)
        h, w = ink.shape
        x, y = 20 + 46 * k, 51 - h  # each digit's foot on the line
        tile = gray[y : y + h, x : x + w]
        np.minimum(tile, (235 - 190 * ink).astype(np.uint8), out=tile)
    gray[50:52, :] = np.minimum(gray[50:52, :], 110)  # the ruled line, lighter than the pen, touching every foot
    api = FieldReaderAPI(Options(reader="segmentation"))
    clean, region, frame, _ = api.prepare_crop(Page(0, gray, 0.0, "<test>"))
    assert frame is None and clean.print_ink is not None and clean.print_ink[49:53].any(axis=1).sum() >= 2
    ink, _, _ = field_cut(clean, region)
    _, _, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8))
    assert stats[1:, cv2.CC_STAT_WIDTH].max() < 60  # no mark runs along the line from digit to digit
    assert api.read_field(gray, "digits").value == "30582"


def test_a_one_digit_fields_pieces_are_all_that_digit() -> None:
    """A 4 written in two strokes (the short left arm beside the stem) and a 5 whose bar floats off to the right:
    neither piece overlaps the body enough to join it as a string's fragment would; the arm became a "1" beside
    the 4's stem, and the bar, under half the digit's height, was dropped as a speck. In a field that holds one
    digit, the classifier reads the arm and the stem as one digit more surely than as two, and the bar joins it."""
    box = Box(50, 50, 200, 150)
    four = _canvas(box)
    cv2.line(four, (120, 85), (106, 125), 255, 7)  # the arm, clear of the stem
    cv2.line(four, (104, 125), (118, 125), 255, 7)
    cv2.line(four, (140, 75), (140, 175), 255, 7)  # the stem with the crossbar's right half
    cv2.line(four, (133, 130), (160, 130), 255, 7)
    five = _canvas(box)
    cv2.line(five, (158, 75), (198, 75), 255, 7)  # the bar, drawn right of the body
    cv2.line(five, (130, 90), (128, 125), 255, 7)
    cv2.ellipse(five, (145, 145), (20, 27), 0, -120, 150, 255, 7)
    from formocr.arbitrate import arbitrate
    from formocr.recognize.digits import DigitClassifier
    from formocr.segment import segment_ink

    sure = DigitClassifier.load().top_probability
    for img in (four, five):
        region = FieldRegion("a", "digits", box, constraints={"max_length": 1})
        one = arbitrate(segment_ink(*field_ink(_page(img > 0), region), region, DPI), sure)
        assert [c.kind for c in one] == ["digit"]
        assert one[0].mask.sum() >= (img > 0)[box.y + 6 : box.y2 - 6, box.x + 6 : box.x2 - 6].sum() - 10
        free = segment_field(_page(img > 0), FieldRegion("a", "digits", box))  # a string's: "14", or a 5 unbarred
        assert len(free) == 2 or sum(int(c.mask.sum()) for c in free) < int(one[0].mask.sum())
    cv2.line(four, (232, 100), (232, 160), 255, 7)  # a mark well apart from the 4 is no piece of it
    region = FieldRegion("a", "digits", box, constraints={"max_length": 1})
    apart = arbitrate(segment_ink(*field_ink(_page(four > 0), region), region, DPI), sure)
    assert len(apart) == 2 and apart[0].box.x2 < 170


def test_two_digits_close_together_in_a_one_digit_field_stay_two() -> None:
    """A "17" written into a box meant for one digit: the pieces lie as close as a 4's arm to its stem, but the
    classifier reads them as two digits more surely than as one, so the field holds more than it may."""
    from formocr.arbitrate import arbitrate
    from formocr.recognize.digits import DigitClassifier
    from formocr.segment import segment_ink

    box = Box(50, 50, 260, 150)
    img = _canvas(box)
    cv2.line(img, (125, 80), (125, 175), 255, 8)  # a "1"
    cv2.line(img, (150, 80), (205, 80), 255, 8)  # a "7", 25 px to its right
    cv2.line(img, (205, 80), (168, 175), 255, 8)
    region = FieldRegion("a", "digits", box, constraints={"max_length": 1})
    ink, crop = field_ink(_page(img > 0), region)
    comps = arbitrate(segment_ink(ink, crop, region, DPI), DigitClassifier.load().top_probability)
    assert [c.kind for c in comps] == ["digit", "digit"]
