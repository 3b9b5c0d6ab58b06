"""Loaders of the real handwriting sets on fixtures drawn here (no dataset picture is committed)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from formocr.data.real import load_cvl, load_register_cells, mnist_polarity, register_audit
from formocr.errors import DatasetError
from formocr.textlines import text_lines


def _digit_tiles(n: int) -> np.ndarray:
    """Dark strokes on grey paper, as CVL gives them."""
    tiles = np.full((n, 28, 28), 247, np.uint8)
    for i in range(n):
        cv2.circle(tiles[i], (14, 14), 6 + i % 3, 20, 2)
    return tiles


def _write_cvl(folder: Path, n: int = 6) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "valid.npz", images=_digit_tiles(n), labels=np.arange(n, dtype=np.uint8) % 10,
             writers=np.arange(n, dtype=np.int32))


def _cell(lines: list[str]) -> np.ndarray:
    """A register-like cell: paper, a printed rule at the top, lines of writing below one another."""
    cell = np.full((180, 90), 235, np.uint8)
    cv2.line(cell, (0, 3), (89, 3), 40, 2)
    for k, text in enumerate(lines):
        cv2.putText(cell, text, (8, 40 + 45 * k), cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, 0.8, 30, 2)
    return cell


def _write_registers(folder: Path, name: str, rows: list[tuple[str, np.ndarray]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("labels.csv", "filename,label\n" + "".join(f"c{i}.jpg,{lab}\n" for i, (lab, _) in enumerate(rows)))
        for i, (_, img) in enumerate(rows):
            z.writestr(f"c{i}.jpg", cv2.imencode(".jpg", img)[1].tobytes())
    return p


def test_cvl_loader_turns_tiles_to_mnist_polarity(tmp_path: Path) -> None:
    _write_cvl(tmp_path)
    s = load_cvl("valid", tmp_path, verify=False)
    assert s.images.shape == (6, 28, 28) and s.images.dtype == np.uint8
    assert s.images[:, 0, 0].max() == 0 and s.images.max() == 255  # paper black, darkest ink white
    assert list(s.labels) == [0, 1, 2, 3, 4, 5] and s.sha256["valid.npz"]


def test_cvl_checksum_and_missing_file_are_one_line_errors(tmp_path: Path) -> None:
    _write_cvl(tmp_path)
    with pytest.raises(DatasetError) as e:
        load_cvl("valid", tmp_path)  # a fixture is not the published file
    assert "valid.npz" in str(e.value) and "sha256" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(DatasetError, match=r"missing train\.npz"):
        load_cvl("train", tmp_path)


def test_corrupt_files_are_dataset_errors(tmp_path: Path) -> None:
    tmp_path.joinpath("valid.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DatasetError, match="not a CVL digits file"):
        load_cvl("valid", tmp_path, verify=False)
    tmp_path.joinpath("row_id-validation.zip").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="not a register zip"):
        load_register_cells("row_id-validation", tmp_path, verify=False)


def test_register_cells_and_their_lines(tmp_path: Path) -> None:
    rows = [("19331016", _cell(["1933", "16", "Okt"])), ("18760216", _cell(["1876", "2"]))]
    _write_registers(tmp_path, "birthdate-validation.zip", rows)
    cells, digest = load_register_cells("birthdate-validation", tmp_path, verify=False)
    assert [c.label for c in cells] == ["19331016", "18760216"] and len(digest) == 64
    assert [len(text_lines(c.gray)) for c in cells] == [3, 2]  # the printed rule is no line of writing
    y0, y1 = text_lines(cells[0].gray)[0]
    assert 15 <= y0 < y1 <= 50


def test_unreadable_crop_in_a_register_zip(tmp_path: Path) -> None:
    p = tmp_path / "birthdate-train.zip"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("labels.csv", "filename,label\nc0.jpg,19331016\n")
        z.writestr("c0.jpg", b"not a jpeg")
    with pytest.raises(DatasetError, match=r"c0\.jpg: not a readable image"):
        load_register_cells("birthdate-train", tmp_path, verify=False)


def test_label_audit_maps_cells_to_what_is_written(tmp_path: Path) -> None:
    audit = register_audit()  # the shipped one
    assert audit and {field for _, field in audit} <= {"year", "day", "row"}
    assert all(e.written == "" or e.written.isdigit() for e in audit.values())
    p = tmp_path / "audit.csv"
    head = "part,file,field,published,written,reason\n"
    p.write_text(head + "birthdate-validation,c0.jpg,year,1931,,no year written\n"
                 "row_id-validation,c1.jpg,row,5,3,the labels belong to other cells\n")
    assert {k: e.written for k, e in register_audit(p).items()} == {("c0.jpg", "year"): "", ("c1.jpg", "row"): "3"}
    for bad in ("birthdate-validation,c0.jpg,month,1931,,why\n",  # no such field
                "row_id-validation,c0.jpg,year,1931,1921,why\n",  # a year in the row-number part
                "birthdate-validation,c0.jpg,year,1931,1931,why\n",  # the label itself
                "birthdate-validation,c0.jpg,year,1931,19x1,why\n",  # not digits
                "birthdate-validation,c0.jpg,year,1931,921,why\n",  # not a year
                "birthdate-validation,c0.jpg,day,7,07,why\n",  # a day as no reading gives it
                "birthdate-validation,c0.jpg,day,7,,why\n",  # only a year can be missing
                "birthdate-validation,c0.jpg,year,1931,\u0661\u0669\u0662\u0661,why\n",  # not ASCII digits
                "birthdate-validation,,year,1931,1921,why\n",  # no file
                "birthdate-validation,c0.jpg,year,1931,,\n"):  # no reason
        p.write_text(head + bad, encoding="utf-8")
        with pytest.raises(DatasetError, match="line 2: not an audit row") as e:
            register_audit(p)
        assert "audit.csv" in str(e.value) and "\n" not in str(e.value)
    p.write_text(head + "row_id-validation,c1.jpg,row,5,3,why\n" * 2)
    with pytest.raises(DatasetError, match="line 3"):
        register_audit(p)
    p.write_text("filename,label\n")
    with pytest.raises(DatasetError, match="not a label audit"):
        register_audit(p)


def test_an_audited_field_is_scored_against_what_is_written() -> None:
    """The audit replaces a label only where its label is the data set's; a cell with no year is never read right."""
    from formocr.data.real import AuditEntry
    from formocr.train.fieldcal import _audited, is_right

    audit = {("c0.jpg", "year"): AuditEntry("1931", "", "no year"), ("c1.jpg", "day"): AuditEntry("16", "14", "why")}
    assert _audited(audit, "c0.jpg", "year", "1931") == ("", "1931")
    assert _audited(audit, "c1.jpg", "day", "16") == ("14", "16")
    assert _audited(audit, "c2.jpg", "day", "5") == ("5", None)
    with pytest.raises(DatasetError, match=r"the label audit has '16' as c1\.jpg's day, the data set '18'"):
        _audited(audit, "c1.jpg", "day", "18")
    assert is_right("14", "14") and not is_right("16", "14")
    assert not is_right("", "")  # nothing read from a cell with no year is still a miss


def test_mnist_polarity_keeps_faint_ink() -> None:
    t = np.full((1, 28, 28), 200, np.uint8)
    t[0, 10:18, 13:15] = 150  # faint pencil on grey paper still becomes full-strength ink
    out = mnist_polarity(t)
    assert out[0, 12, 13] == 255 and out[0, 0, 0] == 0


def test_dataset_folder_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_cvl(tmp_path / "elsewhere")
    monkeypatch.setenv("FORMOCR_CVL", str(tmp_path / "elsewhere"))
    assert len(load_cvl("valid", verify=False).images) == 6


def test_each_label_is_taught_on_the_line_that_holds_it() -> None:
    """A death register writes the age first and the year last: the year is learnt from the last line, not the
    first, and a cell whose writing holds neither label teaches nothing."""
    from formocr.data.real import Cell
    from formocr.recognize.modelfile import load_model, member_weights
    from formocr.recognize.strings import ALPHABET, CRNN, DEFAULT_MODEL
    from formocr.train.real_strings import cell_lines, labelled_lines, road_strips

    loaded = load_model(DEFAULT_MODEL)
    meta, weights = member_weights(loaded.meta, loaded.state)[0]
    net = CRNN(tuple(meta["widths"]), int(meta["hidden"]), len(ALPHABET) + 1)
    net.load_state_dict(weights)
    kind = str(meta.get("input", "ink"))
    cells = [Cell("died_a", "18591213", _cell(["64", "13", "1859"])),
             Cell("born_b", "19331016", _cell(["1933", "16", "Okt"])),
             Cell("born_c", "19001010", _cell(["abc", "xyz"]))]
    xs, ys, stats = labelled_lines(net, cells, kind)
    assert ys == ["1859", "13", "1933", "16"]
    assert stats == {"cells": 3, "years": 2, "days": 2, "left_out": 2}
    where = cell_lines(cells)
    strips = road_strips([crop for _, crop in where], kind)
    assert np.array_equal(xs[0], strips[2]) and np.array_equal(xs[1], strips[1])  # the died cell's last, middle line


def test_faint_first_line_beside_a_black_margin_is_found() -> None:
    """A black scanner margin must not set the bar for ink: faint pencil beside it is still writing."""
    cell = np.full((180, 90), 230, np.uint8)
    cell[:, 82:] = 10  # the scanner's margin down the right edge
    for k, text in enumerate(["1933", "16", "Okt"]):
        cv2.putText(cell, text, (8, 40 + 45 * k), cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, 0.8, 160, 2)
    lines = text_lines(cell)
    assert len(lines) == 3 and 15 <= lines[0][0] < lines[0][1] <= 50


def test_two_touching_lines_are_cut_at_their_valley() -> None:
    cell = np.full((120, 90), 235, np.uint8)
    cv2.putText(cell, "1933", (8, 40), cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, 0.8, 30, 2)
    cv2.putText(cell, "16", (8, 66), cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, 0.8, 30, 2)
    cv2.line(cell, (40, 38), (41, 52), 30, 2)  # a descender reaching the next line
    lines = text_lines(cell)
    assert len(lines) == 2 and 38 <= lines[0][1] <= 52 and lines[0][1] <= lines[1][0]  # cut between the lines


def test_a_tail_hanging_below_a_line_is_not_a_line_of_its_own() -> None:
    """A year's long tail (the 9's stroke run on far below) makes its own band in the row profile; the day under
    it must still be the second line."""
    cell = np.full((200, 90), 235, np.uint8)
    cv2.putText(cell, "1953", (8, 45), cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, 0.8, 30, 2)
    cv2.line(cell, (31, 36), (24, 64), 30, 1)  # the 9's hairline tail, too thin for the row profile ...
    cv2.ellipse(cell, (20, 67), (5, 4), 0, 0, 360, 30, 2)  # ... ending in a loop: a band of its own
    cv2.putText(cell, "18", (8, 118), cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, 0.8, 30, 2)
    cv2.putText(cell, "Feb", (8, 160), cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, 0.8, 30, 2)
    lines = text_lines(cell)
    assert len(lines) == 3
    assert lines[1][0] > 80 and lines[1][1] >= 115  # the day, not the tail


def test_a_line_of_thin_strokes_grows_to_the_strokes_it_holds() -> None:
    """Hairline strokes fall under the row profile's bar, so only a loop's rows were found: the line must grow
    towards its own strokes, not cut the digits' tops and feet off."""
    cell = np.full((170, 90), 235, np.uint8)
    cv2.putText(cell, "1941", (8, 40), cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, 1.0, 30, 2)
    cv2.circle(cell, (40, 88), 5, 30, -1)  # the 9's loop, a dense blob
    cv2.line(cell, (45, 88), (43, 106), 30, 1)  # its hairline stem
    cv2.line(cell, (25, 76), (22, 102), 30, 1)  # a hairline 1
    cv2.putText(cell, "Dec", (8, 145), cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, 1.0, 30, 2)
    lines = text_lines(cell)
    assert len(lines) == 3
    # the row profile finds the loop's rows (85-94); the line grows towards the hairlines (76-106), by no more
    # than half the tallest line's height (19 rows) each way
    assert lines[1][0] < 85 and 94 < lines[1][1] < 106
    assert lines[0][1] <= lines[1][0] and lines[1][1] <= lines[2][0]
