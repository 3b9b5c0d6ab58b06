"""Digits cut from register cells for the digit CNN: which lines are taken, the file, and the training that uses it.

The cells are drawn here with OpenCV's fonts; no dataset picture is committed."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from formocr.errors import DatasetError, OutputError
from formocr.train.digits import TrainConfig, load_register_digits, train_digits
from formocr.train.register_digits import CutDigits, labels_hold, save_cut


def _probs(reads: list[int], chance_of: dict[int, float] | None = None) -> np.ndarray:
    """One row of eleven class probabilities per tile, each sure of its ``reads`` digit."""
    p = np.full((len(reads), 11), 1e-4, np.float32)
    for k, d in enumerate(reads):
        p[k, d] = 0.9
    for k, c in (chance_of or {}).items():
        p[k, 0] = c  # the label's chance, where the test's label at k is 0
    return p


def test_a_line_is_taken_only_where_the_digit_cnn_bears_its_label_out() -> None:
    assert labels_hold(_probs([1, 9, 3, 3]), "1933")
    # one digit of a year read otherwise, but still given a chance: kept, it is what there is to learn
    assert labels_hold(_probs([1, 9, 3, 3], {3: 0.05}), "1930")
    assert not labels_hold(_probs([1, 9, 3, 3], {3: 0.001}), "1930")  # no chance: another thing than the label
    assert not labels_hold(_probs([1, 9, 7, 7], {2: 0.05, 3: 0.05}), "1900")  # two digits wrong
    assert not labels_hold(_probs([6, 4]), "16")  # a day (or an age) must be read as labelled throughout
    assert not labels_hold(_probs([1, 3]), "16")


def _cut(n: int, label_of: int = 0) -> CutDigits:
    x = np.zeros((n, 28, 28), np.uint8)
    x[:, 8:20, 12:16] = 255
    return CutDigits(x, (np.arange(n) + label_of) % 10, np.arange(n, dtype=np.int32))


def test_the_cut_file_is_never_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "reg.npz"
    save_cut(str(out), _cut(30), {"cells": 30})
    before = out.read_bytes()
    with pytest.raises(OutputError, match=r"reg\.npz: exists already"):
        save_cut(str(out), _cut(5), {"cells": 5})
    assert out.read_bytes() == before and not list(tmp_path.glob("*.part"))


def test_register_digits_are_capped_per_class_and_a_bad_file_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "reg.npz"
    cut = _cut(40)
    save_cut(str(out), cut, {"cells": 40})
    x, y, record = load_register_digits(str(out), per_class=2, seed=0)
    assert np.bincount(y, minlength=10).tolist() == [2] * 10 and x.dtype == np.uint8
    assert record["cells"] == 40 and len(record["file_sha256"]) == 64
    again = load_register_digits(str(out), per_class=2, seed=0)
    assert np.array_equal(again[0], x) and np.array_equal(again[1], y)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    with pytest.raises(DatasetError, match=r"bad\.npz: not a register-digits file") as e:
        load_register_digits(str(bad), 2, 0)
    assert "\n" not in str(e.value)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, images=np.zeros((3, 20, 20), np.uint8), labels=np.zeros(3), record=json.dumps({}))
    with pytest.raises(DatasetError, match="28×28"):
        load_register_digits(str(wrong), 2, 0)


def test_training_with_register_digits_records_them_on_the_card(tmp_path: Path) -> None:
    reg = tmp_path / "reg.npz"
    save_cut(str(reg), _cut(60), {"cells": 60, "cut_by": "digits-cnn@test"})
    cfg = TrainConfig(epochs=1, limit=300, val_size=200, seed=2, widths=(4, 8, 8, 8, 8), workers=0,
                      register_digits=str(reg), register_per_class=3, out=str(tmp_path / "r.safetensors"))
    card = train_digits(cfg)
    data = card["training"]["data"]
    assert data["datasets"][-1].startswith("danish-registers") and "Cabello" in data["terms"]["danish-registers"]
    assert data["register_digits"]["images"] == 30 and data["register_digits"]["cut_by"] == "digits-cnn@test"
    again = train_digits(TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "s.safetensors")}))
    assert again["figures"] == card["figures"]


def test_a_line_of_words_gives_no_digits() -> None:
    from formocr.api import FieldReaderAPI
    from formocr.data.real import Cell
    from formocr.options import Options
    from formocr.train.register_digits import cell_digits

    cell = np.full((180, 90), 235, np.uint8)
    for k, text in enumerate(["abc", "xyz", "Okt"]):
        cv2.putText(cell, text, (8, 40 + 45 * k), cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, 0.8, 30, 2)
    api = FieldReaderAPI(Options(reader="segmentation"))
    assert list(cell_digits(api, Cell("born_x", "19001010", cell))) == []
    assert list(cell_digits(api, Cell("born_y", "1", cell))) == []  # a label that is not a full date


def test_the_year_and_the_day_are_cut_from_the_lines_that_hold_them() -> None:
    """A death register writes the age first: "64" is neither the year 1859 nor the day 13, and is left out."""
    from formocr.api import FieldReaderAPI
    from formocr.data.real import Cell, line_crop, text_lines
    from formocr.options import Options
    from formocr.train.register_digits import cell_digits, cut_line

    cell = np.full((180, 90), 235, np.uint8)
    cv2.line(cell, (0, 3), (89, 3), 40, 2)
    for k, text in enumerate(["64", "13", "1859"]):
        cv2.putText(cell, text, (8, 40 + 45 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.7, 30, 2)
    api = FieldReaderAPI(Options(reader="segmentation"))
    got = list(cell_digits(api, Cell("died_x", "18591213", cell)))
    assert [t for _, t in got] == ["1859", "13"]
    last = line_crop(cell, text_lines(cell), 2)
    assert last is not None
    assert np.array_equal(got[0][0], cut_line(api, last, "1859"))
