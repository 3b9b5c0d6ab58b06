"""Scoring results against keyed values (formocr.score, `formocr eval results`): what is counted right, what the
review threshold lets by, and one-line errors for files that are not what they should be."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from formocr.cli import main
from formocr.errors import ConfigError, EmptyInputError, UnreadableInputError
from formocr.score import needed_without_error, outcomes, recommend, score, wilson_low
from formocr.scorefiles import TruthField, load_results, load_truth


def _field(name: str, value: str, conf: float, chars_p: float = 0.99, review: float = 0.95,
           readings: dict[str, str] | None = None, normalized: str | None = None) -> dict[str, Any]:
    """A field as the pipeline writes it, needs_review decided as the pipeline decides it."""
    digits = [c for c in value if c.isdigit()]
    return {"name": name, "type": "digits", "value": value, "raw": "".join(digits), "normalized": normalized,
            "confidence": conf, "needs_review": conf < review or chars_p < 0.8, "why": [],
            "chars": [{"char": c, "p": chars_p} for c in digits],
            "readings": {r: {"raw": t, "confidence": conf, "valid": True} for r, t in (readings or {}).items()}}


def _doc(source: str, *pages: list[dict[str, Any]], errors: dict[int, str] | None = None) -> dict[str, Any]:
    out = []
    for i, fields in enumerate(pages, 1):
        page: dict[str, Any] = {"page": i, "fields": fields}
        if errors and i in errors:
            page = {"page": i, "fields": [], "error": {"type": "RegistrationError", "message": errors[i],
                                                       "exit_code": 10}}
        out.append(page)
    return {"formocr": "0.1.0", "source": source, "pages": out}


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_right_wrong_unread_and_normalized(tmp_path: Path) -> None:
    docs_text = "\n".join(json.dumps(d) for d in [
        _doc("scans/a.pdf", [_field("amount", "1250.00", 0.99, readings={"crnn": "125000", "segmentation": "12500"}),
                             _field("date", "03/11/2026", 0.97, normalized="2026-11-03")]),
        _doc("scans/b.pdf", [_field("amount", "17.00", 0.999, readings={"crnn": "1700", "segmentation": "1700"})],
             [], errors={2: "page 2: could not be aligned"}),
    ]) + "\n"
    results = load_results([_write(tmp_path / "r.jsonl", docs_text)])
    truth = load_truth([_write(tmp_path / "t.csv", "source,page,field,value\n"
                               "a.pdf,1,amount,1250.00\n"
                               "a.pdf,,date,2026-11-03\n"      # the normalized form counts; a blank page is 1
                               "b.pdf,1,amount,71.00\n"        # misread, and accepted: the costly kind
                               "b.pdf,2,amount,5.00\n"         # the page failed
                               "b.pdf,1,total,9\n"             # no such field
                               "c.pdf,1,amount,3\n")])         # no such document
    got = {(o.truth.source, o.truth.page, o.truth.field): o for o in outcomes(truth, results)}
    assert [got[k].status for k in sorted(got)] == ["read", "read", "read", "no such field", "page failed",
                                                    "no such document"]
    assert got[("a.pdf", 1, "amount")].right and got[("a.pdf", 1, "date")].right
    assert not got[("b.pdf", 1, "amount")].right
    assert got[("a.pdf", 1, "amount")].reader_right("crnn") and not got[("a.pdf", 1, "amount")].reader_right(
        "segmentation")
    rep = score(truth, results).to_dict()
    assert rep["all"]["n"] == 6 and rep["all"]["right"] == 2 and rep["all"]["unread"] == 3
    # keyed without separators: "digits" matches 1250.00 to 125000 and 03/11/2026 to 03112026, not the misread
    bare = [replace(truth[0], value="125000"), replace(truth[1], value="03112026"), *truth[2:]]
    assert [o.right for o in outcomes(bare, results)] == [False] * 6
    assert [o.right for o in outcomes(bare, results, match="digits")] == [True, True] + [False] * 4
    assert score(bare, results, match="digits").to_dict()["match"] == "digits"
    with pytest.raises(ConfigError, match="match must be"):
        outcomes(bare, results, match="loose")
    assert rep["all"]["accepted"] == 3 and rep["all"]["accepted_right"] == 2
    assert rep["fields"]["amount"]["readers"]["crnn"] == {"read": 2, "digits_right": 1, "accuracy": 0.5}
    assert {w["field"] for w in rep["wrong"]} == {"amount", "total"}
    assert rep["fields_not_in_truth"] == 0


def test_sweep_at_the_recorded_threshold_matches_needs_review() -> None:
    confs = [0.5, 0.93, 0.951, 0.99, 0.999, 0.9999]
    fields = [_field(f"f{i}", "12", c) for i, c in enumerate(confs)] + [_field("low_char", "12", 0.999, 0.5)]
    results = {"x.pdf": load_results_doc(_doc("x.pdf", fields))}
    truth = [TruthField("x.pdf", 1, f["name"], "12") for f in fields]
    rep = score(truth, results).to_dict()
    at = {row["threshold"]: row for row in rep["sweep"]}
    assert at[0.95]["accepted"] == rep["all"]["accepted"] == 4  # 0.951, 0.99, 0.999, 0.9999; a low character
    assert at[0.999]["accepted"] == 2 and at[0.6]["accepted"] == 5
    assert all(row["threshold"] > 0.5 for row in rep["sweep"])


def test_results_read_with_another_threshold_are_pointed_out(caplog: pytest.LogCaptureFixture) -> None:
    fields = [_field("a", "12", 0.985, review=0.98), _field("b", "12", 0.999, review=0.98)]
    results = {"x.pdf": load_results_doc(_doc("x.pdf", fields))}
    truth = [TruthField("x.pdf", 1, f["name"], "12") for f in fields]
    with caplog.at_level("WARNING", logger="formocr.score"):
        score(truth, results, review_threshold=0.98)
    assert not caplog.records
    with caplog.at_level("WARNING", logger="formocr.score"):
        score(truth, results)  # the default 0.995 would have sent "a" to review
    assert "1 of 2 fields were accepted or sent to review otherwise" in caplog.text


def load_results_doc(doc: dict[str, Any]) -> Any:
    from formocr.scorefiles import ResultDocument

    return ResultDocument.parse(doc)


def test_wilson_bound_and_recommendation() -> None:
    assert wilson_low(0, 0) is None
    assert wilson_low(10, 10) == pytest.approx(0.7225, abs=1e-4)  # n / (n + z²)
    assert wilson_low(95, 100) == pytest.approx(0.8882, abs=1e-3)
    assert needed_without_error(0.995) == 765
    # 800 sure and right, 200 unsure of which 20 wrong: the threshold that keeps the unsure ones out is found
    fields = [_field(f"s{i}", "7", 0.999) for i in range(800)] + [_field(f"u{i}", "7", 0.9) for i in range(200)]
    truth = [TruthField("x.pdf", 1, f"s{i}", "7") for i in range(800)]
    truth += [TruthField("x.pdf", 1, f"u{i}", "1" if i < 20 else "7") for i in range(200)]
    outs = outcomes(truth, {"x.pdf": load_results_doc(_doc("x.pdf", fields))})
    rec = recommend(outs, 0.995, 0.8)
    assert rec["threshold"] == 0.999 and rec["accepted"] == 800 and rec["accepted_wrong"] == 0
    assert recommend(outs[:100], 0.995, 0.8)["threshold"] is None  # 100 fields cannot show 99.5%


def test_batch_results_last_line_wins_torn_tail_and_error_records(tmp_path: Path) -> None:
    def rec(source: str, doc: dict[str, Any] | None, error: str | None = None) -> str:
        d: dict[str, Any] = {"formocr_batch": 1, "source": source, "sha256": "0" * 64, "pages": 1, "seconds": 0.1}
        d.update({"status": "ok", "document": doc} if doc else
                 {"status": "error", "error": {"type": "CorruptInputError", "message": error, "exit_code": 4}})
        return json.dumps(d)

    lines = [rec("a.pdf", _doc("a.pdf", [_field("n", "1", 0.99)])),
             rec("a.pdf", _doc("a.pdf", [_field("n", "2", 0.99)])),  # a rerun: the newest line counts
             rec("bad.pdf", None, "bad.pdf: corrupt PDF")]
    path = _write(tmp_path / "results.jsonl", "\n".join(lines) + "\n" + lines[0][:40])  # torn last line
    docs = load_results([path])
    assert set(docs) == {"a.pdf", "bad.pdf"}
    # a complete last line without its newline (a file edited by hand) is still read
    docs = load_results([_write(tmp_path / "r2.jsonl", "\n".join(lines))])
    assert set(docs) == {"a.pdf", "bad.pdf"}
    outs = outcomes([TruthField("a.pdf", 1, "n", "2"), TruthField("bad.pdf", 1, "n", "3")], docs)
    assert outs[0].right
    assert outs[1].status == "document failed" and "corrupt PDF" in outs[1].detail


def test_source_matching_by_path_suffix_and_ambiguity() -> None:
    docs = {s: load_results_doc(_doc(s, [_field("n", "1", 0.99)])) for s in ("in/x/a.pdf", "in/y/a.pdf", "b.pdf")}
    assert outcomes([TruthField("x/a.pdf", 1, "n", "1")], docs)[0].right
    assert outcomes([TruthField("/mnt/scans/b.pdf", 1, "n", "1")], docs)[0].right  # results keyed shorter
    with pytest.raises(ConfigError, match="matches several documents"):
        outcomes([TruthField("a.pdf", 1, "n", "1")], docs)
    with pytest.raises(ConfigError, match="no document of the truth is in the results"):
        outcomes([TruthField("c.pdf", 1, "n", "1")], docs)


def test_truth_files_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing value"):
        load_truth([_write(tmp_path / "a.csv", "source,field\nx,y\n")])
    with pytest.raises(ConfigError, match="line 2: page must be a number"):
        load_truth([_write(tmp_path / "b.csv", "source,page,field,value\nx,two,y,1\n")])
    with pytest.raises(ConfigError, match="given twice"):
        load_truth([_write(tmp_path / "c.csv", "source,field,value\nx,y,1\nx,y,2\n")])
    with pytest.raises(ConfigError, match="not a formocr truth file"):
        load_truth([_write(tmp_path / "d.json", '{"source": "x"}')])
    with pytest.raises(EmptyInputError):
        load_truth([_write(tmp_path / "e.csv", "")])
    # a spreadsheet's export: a byte-order mark, semicolons, a postal code's leading zero kept as text
    excel = load_truth([_write(tmp_path / "f.csv", "\ufeffSource;Page;Field;Value\nenv.png;1;postal_code;01234\n")])
    assert excel == [TruthField("env.png", 1, "postal_code", "01234")]
    with pytest.raises(UnreadableInputError, match="no such file"):
        load_truth([tmp_path / "missing.csv"])
    # the samples' own truth files are read as they are, one by one or as a folder
    samples = Path(__file__).resolve().parents[1] / "samples"
    truth = load_truth([samples / "cheque.truth.json", samples / "forms.truth.json"])
    assert TruthField("cheque.pdf", 1, "amount", "1250.00") in truth and {t.page for t in truth} == {1, 2}
    assert set(truth) < set(load_truth([samples])) and len(load_truth([samples])) == 38
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyInputError, match="a folder without"):
        load_truth([tmp_path / "empty"])


def test_cli_one_line_errors_and_json(tmp_path: Path) -> None:
    results = _write(tmp_path / "a.json", json.dumps(_doc("a.pdf", [_field("n", "42", 0.99)]), indent=2))
    truth = _write(tmp_path / "t.csv", "source,field,value\na.pdf,n,42\n")
    r = CliRunner().invoke(main, ["eval", "results", str(results), "--truth", str(truth), "--json"])
    assert r.exit_code == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["all"]["accuracy"] == 1.0 and rep["recommended"]["threshold"] is None
    assert "review threshold" in r.stderr
    cases = [([str(tmp_path / "none.json"), "--truth", str(truth)], 3, "none.json: no such file"),
             ([str(_write(tmp_path / "x.json", "[1, 2]\n")), "--truth", str(truth)], 7, "x.json: line 1"),
             ([str(results), "--truth", str(_write(tmp_path / "bad.csv", "a,b\n1,2\n"))], 7, "bad.csv: truth CSV"),
             ([str(_bytes(tmp_path / "scan.pdf", b"%PDF-1.4\n\xff\xfe\x00binary")), "--truth", str(truth)], 7,
              "scan.pdf: not UTF-8 text"),
             ([str(results), "--truth", str(_bytes(tmp_path / "t.xlsx", b"PK\x03\x04\xff\xfe"))], 7,
              "t.xlsx: not UTF-8 text"),
             ([str(_write(tmp_path / "blank.jsonl", "\n\n")), "--truth", str(truth)], 3, "blank.jsonl: empty file"),
             ([str(tmp_path), "--truth", str(truth)], 3, "is a directory, not a file"),
             ([str(_write(tmp_path / "edited.json", json.dumps({"formocr": "0.1", "source": "a.pdf",
                                                                 "pages": [{"page": 1, "fields": ["42"]}]}))),
               "--truth", str(truth)], 7, "edited.json: line 1: the document 'a.pdf' is not as formocr writes it"),
             ([str(results), "--truth", str(truth), "--review-threshold", "2"], 7, "review_threshold")]
    for args, code, text in cases:
        r = CliRunner().invoke(main, ["eval", "results", *args])
        assert r.exit_code == code and text in r.stderr and r.stdout == "" and len(r.stderr.splitlines()) == 1, (
            args, r.exit_code, r.stderr)


def test_a_calibrated_fields_unsure_character_is_no_rule_of_its_own() -> None:
    """The pipeline weighs a calibrated field's least sure character in its confidence, so the scorer's sweep must
    not send it to review for that character as it does an uncalibrated field."""
    plain = _field("plain", "12", 0.999, chars_p=0.5)
    calibrated = _field("calibrated", "12", 0.999, chars_p=0.5)
    calibrated["readings"]["calibrated"] = "fixed length"
    calibrated["needs_review"] = False
    results = {"x.pdf": load_results_doc(_doc("x.pdf", [plain, calibrated]))}
    truth = [TruthField("x.pdf", 1, name, "12") for name in ("plain", "calibrated")]
    rep = score(truth, results, review_threshold=0.995).to_dict()
    at = {row["threshold"]: row for row in rep["sweep"]}
    assert at[0.995]["accepted"] == rep["all"]["accepted"] == 1
