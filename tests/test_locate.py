"""Template choice and registration: shifted and skewed scans still put each field on its printed frame."""

from __future__ import annotations

import numpy as np
import pytest

from formocr.errors import TemplateError
from formocr.layout.locate import choose_template
from formocr.layout.template import load_template
from formocr.objects import Page
from formocr.preprocess import preprocess
from formocr.synth import Degrade, Writer, render_form


def _clean(name: str, seed: int, degrade: Degrade):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    sp = render_form(load_template(name), None, rng, dpi=300, writer=Writer.random(rng), degrade=degrade)
    return sp, preprocess(Page(0, sp.image, 300.0, "<synth>"))


@pytest.mark.parametrize(("name", "skew", "offset_mm"), [("numeric_form", 3.0, 0.0), ("cheque", -4.0, 6.0),
                                                          ("envelope", 1.0, 8.0)])
def test_fields_land_on_their_frames(name: str, skew: float, offset_mm: float) -> None:
    sp, clean = _clean(name, 5, Degrade(skew_deg=skew, max_offset_mm=offset_mm, noise_std=(4, 4)))
    regions, al = choose_template(clean, [load_template(name)])
    assert al.found == len(al.per_field) and al.quality > 0.5
    assert abs(clean.skew_deg - skew) < 0.3
    for r in regions:  # every handwritten character centre lies inside its field's box (deskewed frame)
        for _ch, b in sp.char_boxes[r.name]:
            cx, cy = _unrotate(b.x + b.w / 2, b.y + b.h / 2, skew, clean.gray.shape)
            assert r.box.x - 5 <= cx <= r.box.x2 + 5 and r.box.y - 5 <= cy <= r.box.y2 + 5, (r.name, cx, cy, r.box)


def _unrotate(x: float, y: float, skew: float, shape: tuple[int, ...]) -> tuple[float, float]:
    """Map a point of the skewed scan into the deskewed frame (rotation about the centre by -skew)."""
    h, w = shape[:2]
    a = np.deg2rad(-skew)
    dx, dy = x - w / 2, y - h / 2
    return w / 2 + dx * np.cos(a) + dy * np.sin(a), h / 2 - dx * np.sin(a) + dy * np.cos(a)


def test_best_template_is_chosen_and_blank_page_is_an_error() -> None:
    _, clean = _clean("cheque", 6, Degrade.none())
    _, al = choose_template(clean)
    assert al.template == "cheque"
    blank = preprocess(Page(0, np.full((1050, 2400), 250, np.uint8), 300.0, "blank.png"))
    with pytest.raises(TemplateError, match="no built-in template fits"):
        choose_template(blank)
