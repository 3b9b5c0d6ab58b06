"""What the readers see of the grey: a field's ink shaded by how dark it is, for the digit CNN and grey members."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from formocr.errors import ConfigError
from formocr.normalize import grey_ink, grey_tile, normalize_digit
from formocr.options import Options
from formocr.pipeline import Pipeline


def _ring() -> tuple[np.ndarray, np.ndarray]:
    """A dark ring whose hole blur half closed, and the mask binarization made of it: the whole disc."""
    gray = np.full((40, 60), 240, np.uint8)
    cv2.circle(gray, (20, 20), 10, 30, 4)
    cv2.circle(gray, (20, 20), 7, 150, -1)
    mask = np.zeros(gray.shape, np.uint8)
    cv2.circle(mask, (20, 20), 12, 1, -1)
    return gray, mask.astype(bool)


def test_grey_ink_keeps_the_paper_that_binarization_closed_over() -> None:
    gray, mask = _ring()
    gray[:, 50:52] = 20  # a printed line, not in the mask
    g = grey_ink(gray, mask)
    assert g[20, 10] == pytest.approx(1.0) and 0.3 < g[20, 20] < 0.6  # stroke vs the paper it closed over
    assert g[:, 45:].max() == 0.0 and g[mask].min() >= 0.1
    assert g[~mask].max() <= 1.0 and grey_ink(gray, np.zeros_like(mask)).max() == 0.0
    with pytest.raises(ValueError, match="differ"):
        grey_ink(gray, mask[:-1])


def test_grey_of_the_whole_box_keeps_what_the_mask_lost_inside_the_box_only() -> None:
    gray, mask = _ring()
    gray[9:12, 9:12] = 170  # a faint mark in the corner of the ring's box, which the mask left out
    gray[:, 50:52] = 20  # a printed line beyond the ring's box
    g, b = grey_ink(gray, mask), grey_ink(gray, mask, whole_box=True)
    assert g[10, 10] == 0.0 and 0.2 < b[10, 10] < 0.5  # the faint mark is there, lighter than the ring
    assert b[:, 45:].max() == 0.0  # outside the mask's box nothing is kept
    np.testing.assert_array_equal(b[mask], g[mask])  # the strokes themselves are shaded alike


def test_a_grey_tile_opens_the_loop_the_mask_closed_and_leaves_neighbours_out() -> None:
    gray, mask = _ring()
    dark = grey_ink(gray, mask)
    tile = grey_tile(mask, dark)
    assert np.array_equal(grey_tile(mask, None), normalize_digit(mask))
    assert tile[14, 14] < 0.6 < tile[14, 6] and grey_tile(mask, None)[14, 14] == 1.0  # hole lighter than stroke
    # a neighbour's stroke inside the box, not in this component's mask, stays out
    dark2 = dark.copy()
    dark2[:, 36:40] = 1.0
    assert np.array_equal(grey_tile(mask, dark2), tile)


def test_digit_tiles_option() -> None:
    assert Options().digit_tiles == "grey" and Options(digit_tiles="ink").digit_tiles == "ink"
    with pytest.raises(ConfigError, match="digit_tiles"):
        Options(digit_tiles="gray")


def test_both_tile_kinds_read_the_sample_envelope() -> None:
    got = {kind: Pipeline(Options(digit_tiles=kind)).scan("samples/envelope.png").field("postal_code")
           for kind in ("grey", "ink")}
    assert got["grey"].value == got["ink"].value
    assert got["grey"].readings["segmentation"]["raw"] == got["ink"].readings["segmentation"]["raw"]


def test_border_out_paints_a_printed_line_away_from_the_strokes_only() -> None:
    from formocr.recognize.strings import border_out

    gray, mask = _ring()
    gray[5:7, :] = 20  # a printed border along the top, touching nothing
    lines = np.zeros(mask.shape, bool)
    lines[5:7, :] = True
    mask[5:9, 18:22] = True  # a stroke that runs up into the border
    out = border_out(gray, mask, lines, dpi=300)
    assert out[5, 50] == 240 and out[5, 2] == 240  # far from the strokes: paper
    assert out[5, 20] == 20  # where the stroke meets it: kept
    np.testing.assert_array_equal(out[8:], gray[8:])
    assert border_out(gray, mask, np.zeros_like(lines), dpi=300) is gray
