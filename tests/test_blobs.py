"""The blob reader: pieces of ink, how candidate texts are laid onto them, and the judging it feeds."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from formocr.data import mnist
from formocr.errors import ModelError
from formocr.recognize.blobs import (
    CLASSES,
    MANY,
    BlobReader,
    assign,
    blob_evidence,
    blob_tile,
    class_of,
    ink_blobs,
    judge,
)
from formocr.recognize.ctc import Constraint, string_probabilities, string_probability
from formocr.recognize.strings import StringReader
from formocr.synth.strings import StringGenerator
from formocr.train.blobs import BlobTrainConfig, piece_tiles, train_blobs

A = "0123456789.,-/ "


def _ink() -> np.ndarray:
    """Three pieces: a lone stroke at x 10-20, two strokes joined by a bar at x 40-80, and a speck."""
    ink = np.zeros((50, 100), np.uint8)
    cv2.rectangle(ink, (10, 10), (20, 40), 1, -1)
    cv2.rectangle(ink, (40, 10), (50, 40), 1, -1)
    cv2.rectangle(ink, (70, 10), (80, 40), 1, -1)
    cv2.rectangle(ink, (40, 24), (80, 27), 1, -1)
    ink[2, 95] = 1
    return ink.astype(bool)


def test_batched_string_probabilities_match_one_at_a_time() -> None:
    rng = np.random.default_rng(0)
    for t in (1, 3, 12, 40):
        lp = np.log(rng.dirichlet(np.full(len(A) + 1, 0.3), size=t))
        texts = ["", "7", "77", "1.5", "0000000", "123456", "x1", "2" * 15]
        want = [string_probability(lp, s, A) for s in texts]
        assert np.allclose(string_probabilities(lp, texts, A), want, rtol=1e-9, atol=1e-300)


def test_pieces_drop_specks_and_take_characters_by_their_centres() -> None:
    blobs = ink_blobs(_ink())
    assert [(b.x, b.w) for b in blobs.boxes] == [(10, 11), (40, 41)]
    m = blobs.mask(1)
    assert m.shape == (31, 41) and m[:, :11].all() and not m[:, 11:30].all(axis=0).any()  # two strokes, a bar
    assert assign([15.0, 45.0, 75.0, 95.0], blobs) == [0, 1, 1, -1]


def test_classes_of_a_piece() -> None:
    assert len(CLASSES) == 111 and CLASSES[MANY] == "+"
    assert class_of("4071", [1]) == 100 and CLASSES[100] == "0"
    assert class_of("4071", [1, 2]) == 7 and CLASSES[7] == "07"
    assert class_of("4071", [0, 1, 2]) == MANY
    assert class_of("4071", [0, 2]) == MANY  # not neighbours: a piece cannot hold them alone
    assert class_of("4.0", [1]) is None


def test_tile_keeps_the_aspect_and_centres_the_piece() -> None:
    t = blob_tile(np.ones((30, 10), bool))
    assert t.shape == (32, 48) and t.dtype == np.float32
    cols = np.flatnonzero(t.max(axis=0) > 0.5)
    rows = np.flatnonzero(t.max(axis=1) > 0.5)
    assert len(rows) == 24 and 7 <= len(cols) <= 9  # 30×10 scaled to 24 high: 8 wide
    assert abs((cols[0] + cols[-1]) / 2 - 23.5) <= 1


def test_evidence_and_judging_weigh_the_pieces_against_the_string_reader() -> None:
    blobs = ink_blobs(_ink())
    lp = np.full((2, len(CLASSES)), np.log(1e-3))
    lp[0, 100 + 1] = np.log(0.9)  # the lone stroke reads "1"
    lp[1, 17] = np.log(0.8)  # the joined piece reads "17"
    lp[1, 11] = np.log(0.1)
    centres = [15.0, 45.0, 75.0]
    assert blob_evidence("117", centres, blobs, lp) == pytest.approx(np.log(0.9) + np.log(0.8))
    cands = [("111", 0.5, centres), ("117", 0.3, centres)]
    assert judge(cands, blobs, lp, weight=0.0) == 0  # the string reader alone
    assert judge(cands, blobs, lp, weight=0.5) == 1  # the pieces say "17" eight times as surely as "11"


def test_pieces_are_labelled_with_the_digits_drawn() -> None:
    gen = StringGenerator(None, min_len=2, max_len=4, separators=False)
    seen = set()
    for i in range(16):
        text = "38" if i % 2 else "506"
        sample = gen.sample(np.random.default_rng([9, i]), text=text, touching=i % 4 < 2, clean=True)
        tiles, labels = piece_tiles(sample, None)
        assert len(tiles) == len(labels) and all(t.shape == (32, 48) for t in tiles)
        names = [CLASSES[c] for c in labels]
        # every piece's label is a run of the drawn text (or "+"), and the runs never overlap
        assert all(n == "+" or n in text for n in names)
        assert sum(len(n) for n in names if n != "+") <= len(text)
        seen.update(len(n) for n in names)
    assert seen >= {1, 2}  # both lone and touching pairs occur


def test_neighbours_keep_to_the_fields_constraint() -> None:
    reader = StringReader.load()
    gen = StringGenerator(None, min_len=6, max_len=6, separators=False)
    sample = gen.sample(np.random.default_rng(4), text="518000", clean=True)
    strips = reader.field_strips(np.asarray(cv2.threshold(255 - sample.image, 100, 1, cv2.THRESH_BINARY)[1], bool),
                                 sample.region.box.h, sample.dpi)[0]
    ev = reader.evidence([strips])[0]
    six = Constraint(chars="0123456789", min_digits=6, max_digits=6)
    got = reader.neighbours(ev, "518000", six, keep=8)
    assert got[0][0] == "518000" and 2 <= len(got) <= 8
    assert all(len(t) == 6 and t.isdigit() for t, _ in got)  # a postal code never gets 5 or 7 digits
    assert [p for _, p in got[1:]] == sorted((p for _, p in got[1:]), reverse=True)
    for t, p in got[:3]:
        assert p == pytest.approx(reader.score(ev, t), rel=1e-6)
    anything = reader.neighbours(ev, "518000", None, keep=200)
    assert {len(t) for t, _ in anything} == {5, 6, 7}


@pytest.mark.skipif(not (mnist.default_dir() / "train-images-idx3-ubyte.gz").is_file(), reason="no shared MNIST")
def test_tiny_training_is_deterministic_and_loads(tmp_path: Path) -> None:
    def run(name: str) -> bytes:
        cfg = BlobTrainConfig(strings=30, val_strings=10, epochs=1, limit=500, out=str(tmp_path / name))
        card = train_blobs(cfg)
        assert card["training"]["selected_epoch"] == 1 and card["training"]["pieces"]["pair"] > 0
        assert set(card["figures"]["val_accuracy"]) == {"pair", "single", "many", "all"}
        return (tmp_path / name).read_bytes()

    torch.set_num_threads(1)
    assert run("a.safetensors") == run("b.safetensors")
    reader = BlobReader.load(tmp_path / "a.safetensors")
    lp = reader.log_probs(ink_blobs(_ink()))
    assert lp.shape == (2, len(CLASSES)) and np.allclose(np.exp(lp).sum(axis=1), 1.0, atol=1e-5)


def test_a_string_model_is_not_a_blob_model() -> None:
    from formocr.recognize.strings import DEFAULT_MODEL

    with pytest.raises(ModelError, match="unknown architecture"):
        BlobReader.load(DEFAULT_MODEL)


def _random_blob_model(path: Path) -> Path:
    from formocr.recognize.blobs import ARCH, DEFAULT_BLOB_SPEC, DEFAULT_HIDDEN, DEFAULT_WIDTHS, BlobNet
    from formocr.recognize.modelfile import save_model

    torch.manual_seed(0)
    meta = {"arch": ARCH, "widths": list(DEFAULT_WIDTHS), "hidden": DEFAULT_HIDDEN, "classes": list(CLASSES),
            "spec": DEFAULT_BLOB_SPEC.to_dict()}
    return save_model(path, BlobNet().state_dict(), meta, {"name": "blobs-test"})


def test_the_pipeline_records_a_judged_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import formocr.read as read_mod
    from formocr.fusion import FusionRules
    from formocr.options import Options
    from formocr.pipeline import Pipeline

    jsonschema = pytest.importorskip("jsonschema")
    model = _random_blob_model(tmp_path / "b.safetensors")
    # every reading is unsure enough, and the judge always prefers the first neighbour: the wiring is under test
    monkeypatch.setattr(read_mod, "FusionRules", lambda: FusionRules(judge_below=1.01))
    monkeypatch.setattr(read_mod, "judge", lambda cands, *a, **k: 1)
    pipe = Pipeline(Options(blobs_model=str(model)))
    plain = Pipeline(Options()).scan("samples/envelope.png").field("postal_code")
    doc = pipe.scan("samples/envelope.png")
    f = doc.field("postal_code")
    assert f.readings["blob_judge"]["from"] == plain.readings["crnn"]["raw"]
    moved = f.readings["blob_judge"]["to"]
    assert moved != plain.readings["crnn"]["raw"] and f.readings["crnn"]["raw"] == moved
    assert len(moved) == 6  # a Chinese postal code field: the neighbours keep to six digits
    assert doc.models["blobs"].startswith("blobs-test@sha256:")
    schema = json.loads((Path(read_mod.__file__).parent / "schema" / "document.schema.json").read_text())
    jsonschema.validate(doc.to_dict(), schema)


def test_without_a_blob_model_nothing_is_judged() -> None:
    from formocr.options import Options
    from formocr.pipeline import Pipeline

    pipe = Pipeline(Options())
    assert pipe.blobs is None and "blobs" not in pipe.models
    assert "blob_judge" not in pipe.scan("samples/envelope.png").field("postal_code").readings
