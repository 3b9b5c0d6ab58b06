"""Crops cut tight to their ink, as digit data sets and sorting machines hand them over: the digit's own strokes
are no frame and no rule, and a crop cut round one digit is given paper round it. Every crop is drawn here (OpenCV
shapes, the project's stroke renderer)."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

import formocr
from formocr.api import FieldReaderAPI
from formocr.crop import crop_print, find_frame, writing_box
from formocr.normalize import normalize_digit
from formocr.objects import Page
from formocr.synth import Writer
from formocr.synth.handwriting import render_digit
from formocr.tiles import paper_up, with_room


@pytest.fixture(scope="module")
def reader() -> FieldReaderAPI:
    return formocr.api.reader_for()


def _box_of(ink: np.ndarray) -> tuple[int, int]:
    b = writing_box(SimpleNamespace(ink=ink), print_removed=True)  # type: ignore[arg-type]
    assert b is not None
    return b.x, b.x2


def test_a_wide_digit_cut_tight_at_a_strings_end_is_writing() -> None:
    """In a string cut to its ink, the first digit runs from the crop's top edge to its bottom edge, and a heavy
    "8" inks its middle columns over the whole height: neither is a rule running past the crop (a rule is thin)."""
    ink = np.zeros((36, 130), bool)
    cv2.ellipse(ink.view(np.uint8), (14, 18), (12, 17), 0, 0, 360, 1, 3)  # a "0" from the top edge to the bottom
    ink[6:30, 45:60] = True  # a digit in the middle, clear of both edges
    x0, _ = _box_of(ink)
    assert x0 == 0
    heavy = np.zeros((36, 74), bool)
    heavy[:, 33:37] = True  # the 8's heavy middle, inked all the way down ...
    bowls = np.arange(36) % 5 < 2  # ... with its bowls to either side, two rows in five
    heavy[bowls, 27:33] = True
    heavy[bowls, 37:43] = True
    heavy[4:30, 5:15] = True  # a digit beside it
    assert not crop_print(heavy)[:, 27:43].any()
    rule = np.zeros((36, 74), bool)
    rule[:, 33:36] = True  # a thin column rule inside the crop is still print
    rule[10:26, 50:60] = True
    assert crop_print(rule)[:, 33:36].all()


def _tight_digit(d: int, seed: int, height: int) -> np.ndarray:
    """The stroke renderer's digit cut to its ink (a pixel of paper round it), dark on white, as digit data sets
    and sorting machines hand single digits over."""
    ink = render_digit(d, Writer(slant=-0.05, pen=0.11), np.random.default_rng(seed), height)
    return (255 * (1 - ink)).astype(np.uint8)


@pytest.mark.parametrize(("d", "seed", "height"), [(6, 0, 40), (6, 1, 40), (9, 2, 40), (7, 0, 24), (9, 2, 24),
                                                   (0, 0, 16), (7, 1, 16), (8, 1, 16), (9, 0, 16), (9, 3, 40),
                                                   (9, 3, 64)])
def test_a_single_digit_cut_tight_to_its_ink_reads_as_that_digit(reader: FieldReaderAPI, d: int, seed: int,
                                                                  height: int) -> None:
    """Cut to its ink, a 6's loop looked like a printed box (read "0"), and a 7's bar like a ruled line and its stem
    like a rule running past the crop (read "1"); given room, a 9's loop was still found as a box ("0")."""
    crop = _tight_digit(d, seed, height)
    r = reader.read_field(crop, "digits", min_length=1, max_length=1)
    assert r.value == str(d), (r.value, r.why)
    h, w = crop.shape  # the boxes are the caller's crop's, not those of the paper added round it
    assert all(b.x >= 0 and b.x2 <= w and b.y >= 0 and b.y2 <= h for b in (r.box, *(c.box for c in r.chars)))
    assert r.chars[0].box.w >= w // 2


def _tile(d: int, seed: int, size: int = 16) -> np.ndarray:
    """A digit set's tile cut to its digit's height only (USPS's zip-code digits): the renderer's digit, grey,
    scaled to ``size`` px tall and centred across a square of that size."""
    ink = render_digit(d, Writer(slant=-0.05, pen=0.11), np.random.default_rng(seed), 4 * size).astype(np.float32)
    w = min(size, max(1, round(ink.shape[1] * size / ink.shape[0])))
    tile = np.zeros((size, size), np.float32)
    tile[:, (size - w) // 2 : (size - w) // 2 + w] = cv2.resize(ink, (w, size), interpolation=cv2.INTER_AREA)
    return (255 * (1 - tile)).astype(np.uint8)


@pytest.mark.parametrize(("d", "seed", "size"), [(1, 0, 16), (1, 1, 16), (1, 2, 28), (7, 1, 16), (9, 0, 16),
                                                 (4, 2, 16)])
def test_a_tile_cut_to_its_digits_height_reads_as_that_digit(reader: FieldReaderAPI, d: int, seed: int,
                                                            size: int) -> None:
    """A "1" or a 9's stem from a small tile's top edge to its bottom, paper beside it, was taken for a column
    rule and left out: the tile is a digit cut tight, and given room."""
    tile = _tile(d, seed, size)
    assert with_room(_page(tile))[1] > 0
    r = reader.read_field(tile, "digits", min_length=1, max_length=1)
    assert r.value == str(d), (r.value, r.why)


def test_a_rule_beside_a_number_is_no_tile_cut_to_its_height() -> None:
    """A small cell whose column rule runs from its top edge to its bottom beside the number, or a crop taller
    than a digit set's tile, is not a digit cut tight: its print rules stay."""
    cell = np.full((60, 40), 245, np.uint8)
    cell[:, 30:32] = 30  # the rule, edge to edge ...
    four = _tight_digit(4, 3, 18)
    cell[22 : 22 + four.shape[0], 6 : 6 + min(four.shape[1], 20)] = four[:, :20]  # ... beside a digit
    assert with_room(_page(cell)) == (_page(cell), 0)
    tall = np.full((160, 80), 245, np.uint8)
    cv2.line(tall, (38, 0), (42, 159), 30, 3)  # a thin stroke from edge to edge, centred, in a crop as tall as a cell
    assert with_room(_page(tall))[1] == 0
    bar = np.full((16, 16), 245, np.uint8)
    bar[:, 6:9] = 30  # a tile's upright "1" inks its box's edges as a frame would, and is still a digit
    assert with_room(_page(bar))[1] > 0


def test_a_light_digit_on_a_dark_ground_reads_as_that_digit(reader: FieldReaderAPI) -> None:
    """Digit sets store their tiles light on dark (MNIST, USPS): read as they came, such a tile gave nothing."""
    for d, seed in ((7, 1), (4, 2), (3, 1)):
        r = reader.read_field(255 - _tile(d, seed), "digits", min_length=1, max_length=1)
        assert r.value == str(d), (r.value, r.why)
    cell = np.full((60, 100), 235, np.uint8)
    cell[:, :62] = 15  # a scanner's black margin over most of a cell: its paper is no stroke to read dark
    cell[20:40, 75:78] = 40
    page = _page(cell)
    assert paper_up(page) is page


def test_a_digits_own_strokes_are_no_frame_but_a_box_round_writing_is() -> None:
    zed = np.zeros((40, 30), bool)  # a "2" cut tight: a flat top and a flat foot, joined by its stroke
    zed[1:4, 3:27] = True
    zed[36:39, 2:28] = True
    for y in range(4, 36):
        x = 26 - (y - 4) * 22 // 32
        zed[y, x : x + 3] = True
    assert find_frame(zed) is None
    boxed = np.zeros((60, 120), bool)
    cv2.rectangle(boxed.view(np.uint8), (2, 2), (117, 57), 1, 2)
    boxed[15:45, 30:33] = True  # a "1" inside, clear of the frame
    boxed[15:45, 60:63] = True
    boxed[44:58, 61:63] = True  # a digit's tail across the bottom line: some writing touches a frame
    frame = find_frame(boxed)
    assert frame is not None and frame.box.w >= 110
    empty = np.zeros((60, 120), bool)
    cv2.rectangle(empty.view(np.uint8), (2, 2), (117, 57), 1, 2)  # a blank box: its walls are no writing
    assert find_frame(empty) is not None
    comb = empty.copy()
    for x in (20, 40, 60, 79, 99):  # six cells, a digit in one of them touching the bottom line
        comb[2:58, x : x + 2] = True
    comb[20:58, 28:31] = True
    found = find_frame(comb)
    assert found is not None and found.cells == 6
    faded = empty.copy()
    faded[4:56, 114:120] = False  # a box whose right wall a blurred scan lost ...
    faded[10:52, 80:83] = True  # ... with a 9's tall stem inside it, touching neither line
    frame = find_frame(faded)
    assert frame is not None and frame.box.x2 >= 115  # the box runs to its lines' end: the digits after the 9 stay


def _page(image: np.ndarray, dpi: float = 300.0) -> Page:
    return Page(index=0, image=image, dpi=dpi, source="test")


def test_only_a_crop_cut_tight_round_a_digit_is_given_room() -> None:
    digit = _tight_digit(4, 3, 40)
    broken = digit.copy()
    broken[18:21] = 255  # a thin stroke broken: the digit in two pieces
    for image in (digit, broken):
        page, pad = with_room(_page(image))
        roomy = page.image
        assert pad == round(image.shape[0] / 3)
        assert roomy.shape == (image.shape[0] + 2 * pad, image.shape[1] + 2 * pad)
        assert (roomy[:pad] >= 250).all() and (roomy[pad:-pad, pad:-pad] == image).all()
    gap = np.full((40, 6), 255, np.uint8)
    many = np.hstack([p for d in (2, 3, 5, 6) for p in (cv2.resize(_tight_digit(d, 0, 40), (20, 40)), gap)])[:, :-6]
    outline = np.full((60, 120), 245, np.uint8)
    cv2.rectangle(outline, (0, 0), (119, 59), 20, 2)  # a printed box cut at its lines, empty
    margin = np.full((60, 40), 245, np.uint8)
    margin[:, :30] = 10  # a scanner's dark margin: one mass, not strokes
    roomy_cell = np.full((120, 80), 245, np.uint8)
    roomy_cell[30:80, 20:60] = _tight_digit(4, 3, 50)[:, :40][:50]  # a digit with paper round it already
    one = _tight_digit(1, 0, 40)
    shadow = np.full((one.shape[0], 120), 250, np.uint8)  # a lamp's shadow over half a string, binarized ...
    shadow[:, : one.shape[1]] = one
    shadow[:, 66:] = 120  # ... into one dark mass as tall as the crop, fewer than 60% of the pieces' box
    shadow[8:32, 80:84] = 40  # with the digits inside it
    for image in (outline, margin, roomy_cell, many, shadow):
        page = _page(image)
        assert with_room(page) == (page, 0)



def test_the_writing_line_is_found_from_the_digits_not_from_an_underline_or_a_dot() -> None:
    """A clerk's underline (or a rule's piece) can hold more ink than the digits over it, and the writing box must
    still be the digits' line; a small dot beside "11" is no mark to find the line from either (a dot a third as
    heavy as a "1" or more is: that is the rule's limit)."""
    ink = np.zeros((200, 135), np.uint8)
    cv2.ellipse(ink, (84, 72), (8, 12), 0, 0, 360, 1, 2)  # two digits ...
    cv2.ellipse(ink, (106, 72), (8, 12), 0, 0, 360, 1, 2)
    cv2.line(ink, (66, 92), (122, 101), 1, 6)  # ... over a clerk's heavy, sloping underline
    ink[10:60, 20:22] = 1  # and a rule's piece above them
    b = writing_box(SimpleNamespace(ink=ink.astype(bool)), print_removed=True)  # type: ignore[arg-type]
    assert b is not None and b.y <= 60 and b.y2 >= 84 and b.x <= 76 and b.x2 >= 114 and b.x > 22
    ones = np.zeros((200, 135), np.uint8)
    ones[60:90, 70:73] = 1  # "11." ...
    ones[60:90, 85:88] = 1
    ones[86:90, 95:99] = 1  # ... its dot
    b = writing_box(SimpleNamespace(ink=ones.astype(bool)), print_removed=True)  # type: ignore[arg-type]
    assert b is not None and b.y <= 60 and b.y2 >= 90 and b.x <= 70 and b.x2 >= 99


def test_an_imprint_cut_by_the_crops_edge_is_no_writing_line() -> None:
    """A register cell's imprint ("Trykt for ...") along its bottom edge is heavier than the small number written
    above it, and reaches a little above the bottom eighth: cut by the edge, with its middle in the outer sixth, it
    is print, and the writing box is the number's."""
    ink = np.zeros((238, 137), np.uint8)
    cv2.ellipse(ink, (84, 76), (6, 9), 0, 0, 360, 1, 2)  # a small "00" ...
    cv2.ellipse(ink, (100, 76), (6, 9), 0, 0, 360, 1, 2)
    ink[207:238, 60:137] = np.random.default_rng(0).random((31, 77)) < 0.45  # ... over the imprint at the bottom
    b = writing_box(SimpleNamespace(ink=ink.astype(bool)), print_removed=True)  # type: ignore[arg-type]
    assert b is not None and b.y <= 67 and b.y2 >= 85 and b.y2 < 207 and b.x <= 78 and b.x2 >= 106
    # the same block in the middle of the crop is no imprint: alone, it is the writing
    mid = np.zeros_like(ink)
    mid[100:131, 30:107] = ink[207:238, 60:137]
    b = writing_box(SimpleNamespace(ink=mid.astype(bool)), print_removed=True)  # type: ignore[arg-type]
    assert b is not None and b.y <= 100 and b.y2 >= 131


def test_a_crop_cut_tight_round_its_digit_is_not_levelled_and_is_all_field(reader: FieldReaderAPI,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A lone digit has no line of writing to level: its slant is its writer's, and turning it by the angle its
    longest stroke leans makes a 1 of a 7 or a 0 of a 6 (a quarter of CVL's validation digits cut tight were
    turned, by up to 10°). Nor is any of it print: the whole crop, with the room it was given, is the field, so a
    piece the writing-box rules would leave out (a 9's tail, a 5's bar) stays, and no line is taken out of it."""
    import formocr.api as api_mod

    levelled: list[bool] = []
    real = api_mod.preprocess
    monkeypatch.setattr(api_mod, "preprocess", lambda page, pre: levelled.append(pre.deskew) or real(page, pre))
    seven = _tight_digit(7, 0, 40)
    page, pad = with_room(_page(seven, 150.0))
    assert pad > 0
    _, region, frame, got = reader.prepare_crop(_page(seven, 150.0), "digits", cons={"max_length": 1})
    assert got == pad and frame is None
    assert levelled and not any(levelled)
    assert (region.box.w, region.box.h) == (page.image.shape[1], page.image.shape[0])
    assert region.style == "free"
    levelled.clear()
    cell = np.full((120, 80), 245, np.uint8)
    cell[30 : 30 + seven.shape[0], 20 : 20 + seven.shape[1]] = seven  # with paper round it: a field, levelled
    reader.prepare_crop(_page(cell, 150.0), "digits", cons={"max_length": 1})
    assert levelled and all(levelled)


def _square_tile(d: int, seed: int, pen: float) -> np.ndarray:
    """A digit set's square tile as MNIST and CVL store theirs: the renderer's digit scaled to 20 px and centred in
    28×28 (:func:`formocr.normalize.normalize_digit`), light on dark."""
    ink = render_digit(d, Writer(slant=-0.05, pen=pen), np.random.default_rng(seed), 80)
    return np.clip(255 * normalize_digit((255 * ink).astype(np.uint8)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize(("d", "seed", "pen"), [(0, 1, 0.2), (8, 0, 0.2), (3, 1, 0.2), (0, 0, 0.3), (5, 1, 0.3),
                                                (8, 2, 0.3), (9, 0, 0.3), (2, 0, 0.3)])
def test_a_square_tile_reads_as_its_digit_either_way_up(reader: FieldReaderAPI, d: int, seed: int,
                                                        pen: float) -> None:
    """With paper all round it, a 0's or a 5's loop in a 28×28 tile was found as a printed box and the field cut to
    its inside, or a bold digit's strokes taken for print; light on dark, a bold digit's strokes were a filled
    patch of paper and the tile was read the wrong way up."""
    tile = _square_tile(d, seed, pen)
    for crop in (tile, 255 - tile):
        r = reader.read_field(crop, "digits", min_length=1, max_length=1)
        assert r.value == str(d), (r.value, r.why)
    if (d, seed) in ((0, 1), (3, 1), (9, 0)):  # given room; a bolder 8 fills its box as a dark mass does, and
        assert with_room(_page(255 - tile))[1] > 0  # keeps the bare crop's road, where it now reads right too


@pytest.mark.parametrize("around", ["under", "over", "circle", "box"])
def test_a_digit_with_a_line_or_a_loop_round_it_is_no_square_tile(around: str) -> None:
    """A small crop of a digit on a ruled line, under the previous row's rule, circled or in a box drawn round it
    keeps the bare crop's road, where the line is print: taken for a digit set's tile, it would be read with the
    digit. The same digit alone is such a tile."""
    for size in (40, 64):
        crop = np.full((size, size), 245, np.uint8)
        three = _tight_digit(3, 0, size // 2 + 4)[: size // 2 + 4, : size - 16]
        y0, x0 = size // 4 - 2, (size - three.shape[1]) // 2
        crop[y0 : y0 + three.shape[0], x0 : x0 + three.shape[1]] = three
        assert with_room(_page(crop))[1] > 0
        if around == "under":
            cv2.line(crop, (4, y0 + size // 2 + 6), (size - 5, y0 + size // 2 + 6), 40, 2)
        elif around == "over":
            cv2.line(crop, (4, y0 - 3), (size - 5, y0 - 3), 40, 2)
        elif around == "circle":
            cv2.circle(crop, (size // 2, size // 2), size // 2 - 3, 40, 2)
        else:
            cv2.rectangle(crop, (3, 3), (size - 4, size - 4), 40, 1)
        assert with_room(_page(crop))[1] == 0


def test_a_square_tiles_loose_bar_is_the_digits(reader: FieldReaderAPI) -> None:
    """A thin-penned 7 whose bar stands apart from its stem is flat and wider than the stem, as a ruled line is,
    but it stops at the stem: the tile is still a digit handed over alone (not given room, it read "1")."""
    for size, pen in ((28, 1), (64, 2)):
        seven = np.full((size, size), 255, np.uint8)
        a, b = size // 5, size - size // 5
        cv2.line(seven, (a, a), (b, a), 0, pen)
        cv2.line(seven, (b - 1, a + 2 + pen), (size // 2 - 2, b), 0, pen)
        assert with_room(_page(seven))[1] > 0
        assert reader.read_field(seven, "digits", min_length=1, max_length=1).value == "7"


def _stretched_tile(d: int, seed: int, pen: float) -> np.ndarray:
    """A digit set's 16-px tile as USPS's: the renderer's digit cut to its ink and stretched to fill the square (a
    thin "1" kept thin), light on dark."""
    ink = render_digit(d, Writer(slant=0.0, pen=pen), np.random.default_rng(seed), 64).astype(np.float32)
    ys, xs = np.nonzero(ink > 0.2)
    ink = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    w = ink.shape[1] * 16 / ink.shape[0]
    tw = 16 if w > 8 else max(1, round(w))
    tile = np.zeros((16, 16), np.float32)
    tile[:, (16 - tw) // 2 : (16 - tw) // 2 + tw] = cv2.resize(ink, (tw, 16), interpolation=cv2.INTER_AREA)
    return np.clip(255 * tile, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(("d", "seed", "pen"), [(2, 0, 0.15), (9, 1, 0.15), (5, 0, 0.2), (9, 0, 0.2), (4, 1, 0.25)])
def test_a_bold_digit_filling_a_small_tile_light_on_dark_reads_as_that_digit(reader: FieldReaderAPI, d: int,
                                                                             seed: int, pen: float) -> None:
    """Stretched to fill a 16-px tile, a bold digit lights half the tile or more: it was taken for the paper, and
    the tile read the wrong way up."""
    tile = _stretched_tile(d, seed, pen)
    assert float((tile > 64).mean()) > 0.45  # as paper_up counts what is lighter than the ground
    assert reader.read_field(tile, "digits", min_length=1, max_length=1).value == str(d)


@pytest.mark.parametrize("turn", [0, 30])
def test_a_label_on_a_dark_ground_is_paper_not_a_light_digit(turn: int) -> None:
    """A small photograph of a white label with a digit written on it, lying on a dark table, upright or turned:
    its writing leaves holes in the light patch, but its outline is a rectangle, not a bold digit's strokes."""
    photo = np.full((100, 100), 40, np.uint8)
    photo[25:75, 25:75] = 240
    seven = _tight_digit(7, 0, 30)[:30, :30]
    photo[35 : 35 + seven.shape[0], 35 : 35 + seven.shape[1]] = seven
    photo = cv2.warpAffine(photo, cv2.getRotationMatrix2D((50, 50), turn, 1.0), (100, 100), borderValue=40)
    page = _page(photo)
    assert paper_up(page) is page
