"""Page registration: each kind of scan geometry undone to within a millimetre, and pages that do not fit refused."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from formocr.cli import main
from formocr.errors import RegistrationError
from formocr.layout.locate import choose_registration
from formocr.layout.register import register
from formocr.layout.registration import Registration, warp_fields
from formocr.layout.template import load_template
from formocr.objects import CleanPage, Page
from formocr.preprocess import preprocess
from formocr.recognize.digits import DEFAULT_MODEL
from formocr.synth import Degrade, SynthPage, Writer, render_form, save_tiff

ROOT = Path(__file__).resolve().parents[1]
needs_model = pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason="shipped model not built yet")
K = 300 / 25.4  # px per mm


def _page(name: str, seed: int, degrade: Degrade) -> tuple[SynthPage, CleanPage]:
    rng = np.random.default_rng(seed)
    sp = render_form(load_template(name), None, rng, dpi=300, writer=Writer.random(rng), degrade=degrade)
    return sp, preprocess(Page(0, sp.image, 300.0, "<synth>"))


def _apply(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    q = np.c_[pts, np.ones(len(pts))] @ H.T
    return q[:, :2] / q[:, 2:3]


def _corner_error_mm(sp: SynthPage, clean: CleanPage, reg: Registration) -> float:
    """Largest distance between where registration and the truth put the fields' corners (deskewed page, mm)."""
    h, w = clean.gray.shape
    deskew = np.vstack([cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), -clean.skew_deg, 1.0), [0, 0, 1]])
    truth = deskew @ sp.homography  # template frame → deskewed page
    worst = 0.0
    for f in load_template(sp.template).fields:
        x, y, bw, bh = f.box_mm
        c = np.array([[x, y], [x + bw, y], [x, y + bh], [x + bw, y + bh]]) * K
        worst = max(worst, float(np.abs(_apply(reg.to_page, c) - _apply(truth, c)).max()) / K)
    return worst


GEOMETRY = {
    "offset_cm": Degrade(max_skew=0.0, max_offset_mm=40.0, margin_mm=(60.0, 60.0)),
    "rotate+5": Degrade(skew_deg=5.0, margin_mm=(10.0, 10.0)),
    "rotate-5": Degrade(skew_deg=-5.0, margin_mm=(10.0, 10.0)),
    "scale0.9": Degrade(max_skew=0.0, scale=(0.9, 0.9), margin_mm=(15.0, 15.0)),
    "scale1.1": Degrade(max_skew=0.0, scale=(1.1, 1.1), margin_mm=(15.0, 15.0)),
    "perspective": Degrade(max_skew=1.0, perspective=0.01, margin_mm=(15.0, 15.0)),
    "stamps+scribbles": Degrade(
        max_skew=2.0, margin_mm=(10.0, 10.0), stamps=2, scribbles=3, occluders_avoid_fields=False
    ),
}


@pytest.mark.parametrize("kind", list(GEOMETRY))
def test_each_distortion_is_undone(kind: str) -> None:
    sp, clean = _page("cheque", 11, GEOMETRY[kind])
    if kind == "offset_cm":  # the form really lies centimetres away from where the template says
        assert min(abs(v) for v in sp.offset_px) > 20 * K
    reg = register(clean, load_template("cheque"))
    assert reg.quality > 0.9 and reg.found == 3
    assert _corner_error_mm(sp, clean, reg) < 1.0
    if kind.startswith("scale"):
        assert abs(reg.scale - GEOMETRY[kind].scale[0]) < 0.01


def test_all_at_once_on_an_envelope_and_a_long_form() -> None:
    for name, seed in (("envelope", 3), ("numeric_form", 4)):
        rng = np.random.default_rng(seed)
        sp, clean = _page(name, seed, Degrade.registration(rng))
        reg = register(clean, load_template(name))
        assert reg.quality > 0.9, name
        assert _corner_error_mm(sp, clean, reg) < 1.0, name


def test_marks_pin_down_a_form_with_one_small_frame() -> None:
    # A benchmark envelope whose "PAID" stamp and stamp box outscore its lone comb when only the comb is known
    # (the fit lands on the stamp or is refused); the stamp box and address rules, as marks, fix it.
    rng = np.random.default_rng(800078)
    t = load_template("envelope")
    sp = render_form(t, None, rng, dpi=300, writer=Writer.random(rng), degrade=Degrade.registration(rng))
    clean = preprocess(Page(0, sp.image, 300.0, "<synth>"))
    reg = register(clean, t)
    assert reg.quality > 0.9 and set(reg.per_field) == {"postal_code"}
    assert _corner_error_mm(sp, clean, reg) < 1.0
    bare = replace(t, marks=())
    try:
        off = _corner_error_mm(sp, clean, register(clean, bare))
    except RegistrationError:
        off = float("inf")
    assert off > 3.0


def test_fields_are_cut_in_the_template_frame() -> None:
    sp, clean = _page("cheque", 12, Degrade(skew_deg=3.0, scale=(1.08, 1.08), margin_mm=(20.0, 20.0)))
    t = load_template("cheque")
    reg = register(clean, t)
    framed, regions = warp_fields(clean, reg, t)
    assert framed.gray.shape == t.page_size_px(300)[::-1]
    for r in regions:  # the printed frame's top and bottom rows lie on the nominal box (±2 px at 300 dpi)
        crop = framed.ink[r.box.y - 3 : r.box.y2 + 3, r.box.x : r.box.x2]
        rows = crop.mean(axis=1)
        assert rows[:8].max() > 0.8 and rows[-8:].max() > 0.8, r.name
        # and the writing is inside: every truth character centre maps into its field box
        for _, b in sp.char_boxes[r.name]:
            cx, cy = _apply(reg.homography, _apply(_deskew(clean), np.array([[b.x + b.w / 2, b.y + b.h / 2]])))[0]
            assert r.box.x <= cx <= r.box.x2 and r.box.y <= cy <= r.box.y2, r.name


def _deskew(clean: CleanPage) -> np.ndarray:
    h, w = clean.gray.shape
    return np.vstack([cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), -clean.skew_deg, 1.0), [0, 0, 1]])


def test_pages_that_do_not_fit_are_refused() -> None:
    blank = preprocess(Page(0, np.full((1200, 2600), 245, np.uint8), 300.0, "blank.png"))
    with pytest.raises(RegistrationError, match="cannot register template 'cheque'"):
        register(blank, load_template("cheque"))
    _, envelope = _page("envelope", 5, Degrade.none())
    with pytest.raises(RegistrationError):
        register(envelope, load_template("numeric_form"))
    assert RegistrationError.exit_code == 10


def test_template_is_chosen_on_a_larger_scanner_bed() -> None:
    # a cheque (203 × 89 mm) on a letter-size bed: the page's aspect says nothing about the form
    _, clean = _page("cheque", 13, Degrade(max_skew=3.0, max_offset_mm=10.0, margin_mm=(40.0, 90.0)))
    t, reg = choose_registration(clean)
    assert t.name == "cheque" and reg.quality > 0.9


@needs_model
def test_a_page_that_does_not_register_fails_alone(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    sp, _ = _page("cheque", 14, Degrade(max_skew=0.0, max_offset_mm=20.0, margin_mm=(25.0, 25.0)))
    h, w = sp.image.shape
    path = tmp_path / "two.tiff"
    save_tiff([np.full((h, w), 240, np.uint8), sp.image], path)
    r = CliRunner().invoke(main, ["scan", str(path), "--template", "cheque"], catch_exceptions=False)
    assert r.exit_code == 10
    doc = json.loads(r.stdout)  # the whole document is printed all the same
    jsonschema.validate(doc, json.loads((ROOT / "formocr" / "schema" / "document.schema.json").read_text()))
    bad, good = doc["pages"]
    assert bad["fields"] == [] and bad["error"]["type"] == "RegistrationError" and bad["error"]["exit_code"] == 10
    assert "error" not in good and good["alignment"]["quality"] > 0.9
    assert {f["name"]: f["value"] for f in good["fields"]} == sp.values
    for f in good["fields"]:  # boxes are in the deskewed page's pixels, around the truth box
        tb, gb = sp.field_boxes[f["name"]], f["box"]
        assert abs(tb.x - gb[0]) < 2 * K and abs(tb.y - gb[1]) < 2 * K, f["name"]


def _stranger(i: int, dpi: int) -> np.ndarray:
    from formocr.synth.layouts import layout_values, random_layout, sample_form_layout

    rng = np.random.default_rng(90_000 + i)
    lay = random_layout(rng) if i % 2 == 0 else sample_form_layout(rng)
    return render_form(lay, layout_values(lay, rng), rng, dpi=dpi, writer=Writer.random(rng),
                       degrade=Degrade.random(rng)).image


def _taken(pages: range) -> list[tuple[int, str, float]]:
    """The pages of ``pages`` (stranger seeds) the automatic choice takes for a built-in form."""
    from formocr.errors import TemplateError

    out = []
    for i in pages:
        clean = preprocess(Page(0, _stranger(i, 100), 100.0, f"stranger {i}"))
        try:
            t, reg = choose_registration(clean)
            out.append((i, t.name, round(reg.quality, 3)))
        except TemplateError:
            pass
    return out


def test_no_page_of_another_layout_is_taken_for_a_built_in() -> None:
    """200 generated pages of other layouts (random numeric forms; handwriting-sample forms whose grid of boxes
    holds lines where an envelope's stamp box and address rules would lie): the automatic choice takes none of
    them for a built-in form, so they are read in automatic mode. Two worker processes share the pages."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        taken = [t for part in pool.map(_taken, [range(0, 200, 2), range(1, 200, 2)]) for t in part]
    assert taken == []


@pytest.mark.parametrize("name", ["cheque.pdf", "envelope.png", "numeric_form.pdf", "forms.tiff"])
def test_each_sample_still_chooses_its_own_form(name: str) -> None:
    from formocr.io import load_pages

    samples = Path(__file__).resolve().parents[1] / "samples"
    truth = json.loads((samples / name).with_suffix(".truth.json").read_text(encoding="utf-8"))
    want = [p.get("template") or truth.get("template") for p in truth["pages"]]
    got = []
    for page in load_pages(samples / name, dpi=150):
        t, reg = choose_registration(preprocess(page))
        assert reg.found == len(reg.per_field)
        got.append(t.name)
    assert got == want


def test_a_named_template_refuses_a_page_where_none_of_its_fields_is() -> None:
    """--template envelope on a handwriting-sample page: its stamp box and rules may line up with the page's
    boxes, but its postal-code comb is not there, so the page is not an envelope."""
    clean = preprocess(Page(0, _stranger(3, 150), 150.0, "sample form"))
    with pytest.raises(RegistrationError, match="none of its 1 field frame"):
        register(clean, load_template("envelope"))
