"""The whole pipeline on the committed samples, against their ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import formocr
from formocr.options import Options
from formocr.pipeline import Pipeline
from formocr.recognize.digits import DEFAULT_MODEL

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
pytestmark = pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason="shipped model not built yet")


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline(Options())


@pytest.mark.parametrize("name", ["cheque.pdf", "envelope.png", "numeric_form.pdf", "forms.tiff"])
def test_samples_match_ground_truth(pipeline: Pipeline, name: str) -> None:
    truth = json.loads((SAMPLES / (name.rsplit(".", 1)[0] + ".truth.json")).read_text())
    doc = pipeline.scan(SAMPLES / name)
    assert len(doc.pages) == len(truth["pages"])
    wrong = []
    for page, tp in zip(doc.pages, truth["pages"]):
        assert page.template == tp["template"]
        assert abs(page.skew_deg - tp["skew_deg"]) < 0.3
        for f in page.fields:
            if f.value != tp["fields"][f.name]:
                wrong.append((f.name, f.value, tp["fields"][f.name], f.needs_review))
    assert not wrong


def test_every_wrong_or_doubtful_field_says_why(pipeline: Pipeline) -> None:
    doc = pipeline.scan(SAMPLES / "numeric_form.pdf")
    for f in doc.fields:
        assert f.needs_review == bool(f.why)
        assert 0.0 <= f.confidence <= 1.0
        assert all(len(c.top3) == 3 and c.top3[0][0] == c.char for c in f.chars if c.char.isdigit())


def test_array_api_and_blank_digits(pipeline: Pipeline) -> None:
    from PIL import Image

    page = np.asarray(Image.open(SAMPLES / "envelope.png").convert("L"))
    doc = formocr.scan(page, template="envelope")
    assert doc.source == "<array>" and doc.field("postal_code").value is not None
    # an envelope whose postal-code boxes were left empty: a field that needs review, not a guess
    from formocr.layout.template import load_template
    from formocr.synth import Degrade, render_form

    rng = np.random.default_rng(7)
    blank = render_form(load_template("envelope"), {"postal_code": ""}, rng, degrade=Degrade.random(rng)).image
    f = formocr.scan(blank, template="envelope").field("postal_code")
    assert f.value is None and f.needs_review and "empty" in f.why


def test_debug_dir_pictures(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.scan(SAMPLES / "cheque.pdf", debug_dir=tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["cheque-p001-binary.png", "cheque-p001-overlay.png", "cheque-p001-tiles.png"]


def test_overlay_labels_cover_no_ink(pipeline: Pipeline) -> None:
    """Each field's label on the overlay sits on blank paper, clear of the other labels."""
    from formocr.debug import draw_overlay, label_boxes
    from formocr.timing import StageTimer

    for name in ("cheque.pdf", "numeric_form.pdf"):
        (work,) = list(pipeline.iter_pages(SAMPLES / name, StageTimer()))
        boxes = label_boxes(work)
        assert len(boxes) == len(work.result.fields) > 0
        for i, b in enumerate(boxes):
            assert not work.clean.ink[b.y : b.y2, b.x : b.x2].any(), (name, work.result.fields[i].name)
            assert all(not (b.x < o.x2 and o.x < b.x2 and b.y < o.y2 and o.y < b.y2) for o in boxes[:i])
        assert draw_overlay(work).shape == (*work.clean.gray.shape, 3)
