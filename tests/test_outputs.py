"""A file formocr makes never replaces one the user made: not an input, not the results file it is made from, not a
user's own file given by mistake; only its own output of the same kind, from an earlier run. Every file here is
written by the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from formocr.batch.export import FIXED_COLUMNS, is_csv
from formocr.batch.record import Record
from formocr.batch.runner import BatchSummary, is_summary
from formocr.cli import main
from formocr.errors import ConfigError, ModelError, OutputError
from formocr.objects import Document, is_document
from formocr.options import Options
from formocr.outputs import check_replaceable
from formocr.recognize.modelfile import load_model

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str | Path) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def test_only_formocrs_own_output_of_that_kind_is_replaced(tmp_path: Path) -> None:
    mine = tmp_path / "mine.csv"
    mine.write_text("name,amount\nAnna,12\n")
    with pytest.raises(OutputError, match="not a formocr CSV"):
        check_replaceable(mine, "CSV", is_csv)
    ours = tmp_path / "old.csv"
    ours.write_text(",".join(FIXED_COLUMNS) + ",amount\n")
    assert check_replaceable(ours, "CSV", is_csv) == ours.resolve()
    new, empty = tmp_path / "new.csv", tmp_path / "empty.csv"
    empty.write_text("")
    assert check_replaceable(new, "CSV", is_csv) == new.resolve()
    assert check_replaceable(empty, "CSV", is_csv) == empty.resolve()
    with pytest.raises(OutputError, match="is the results file"):
        check_replaceable(ours, "CSV", is_csv, [(tmp_path / "old.csv", "the results file")])
    with pytest.raises(OutputError, match="formocr does not replace it"):
        check_replaceable(ours, "template", None)  # a template the user edited since
    doc = Document("a.pdf", (), {}, {}, "0.1.0").to_dict()
    summary = BatchSummary("r.jsonl", "local", 2, 1, 1, 0, 0, 1, 1, 0.5, 0).to_dict()
    for indent in (None, 2):  # as scan -o and --summary-json write them, compact or indented
        assert is_document(json.dumps(doc, indent=indent).encode()[:4096])
        assert is_summary(json.dumps(summary, indent=indent).encode()[:4096])
    assert not is_document(b'{"hello": 1}') and not is_summary(b'{"output": 1}')
    assert mine.read_text() == "name,amount\nAnna,12\n"


def test_scan_never_writes_over_its_input_or_a_users_file(tmp_path: Path) -> None:
    scan = tmp_path / "scan.png"
    scan.write_bytes((ROOT / "samples" / "envelope.png").read_bytes())
    before = scan.read_bytes()
    code, out, err = run("scan", scan, "-o", scan)
    assert code == 7 and out == "" and "is an input" in err and err.count("\n") == 1
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": true}\n')
    code, _, err = run("scan", scan, "-o", notes)
    assert code == 7 and "not a formocr output" in err
    assert scan.read_bytes() == before and notes.read_text() == '{"mine": true}\n'


def test_batch_and_export_outputs_never_replace_the_results_or_a_users_file(tmp_path: Path) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    results = tmp_path / "r.jsonl"
    for extra in ("--csv", "--summary-json"):  # the results file itself, before any work
        code, _, err = run("batch", folder, "-o", results, extra, results)
        assert code == 7 and "results file" in err and not results.exists()
    mine = tmp_path / "mine.csv"
    mine.write_text("my,own\n")
    code, _, err = run("batch", folder, "-o", results, "--csv", mine)
    assert code == 7 and "not a formocr CSV" in err and not results.exists()
    doc = {"formocr": "x", "source": "a.png", "models": {}, "pages": [], "timings_ms": {}}
    results.write_text(Record("a.png", "0" * 64, "ok", 1, 0.1, doc).to_line())
    kept = results.read_bytes()
    code, _, err = run("export", "csv", results, "-o", results)
    assert code == 7 and "is the results file" in err and results.read_bytes() == kept
    code, _, err = run("export", "csv", results, "-o", mine)
    assert code == 7 and mine.read_text() == "my,own\n"
    out = tmp_path / "out.csv"
    assert run("export", "csv", results, "-o", out)[0] == 0
    assert run("export", "csv", results, "-o", out)[0] == 0  # its own CSV, from an earlier run: replaced
    assert out.read_text().startswith(",".join(FIXED_COLUMNS))


def test_a_template_made_from_an_image_never_replaces_a_file(tmp_path: Path) -> None:
    edited = tmp_path / "form.json"
    edited.write_text('{"name": "my edited template"}\n')
    code, _, err = run("template", "from-image", ROOT / "samples" / "envelope.png", "-o", edited)
    assert code == 7 and "formocr does not replace it" in err
    assert edited.read_text() == '{"name": "my edited template"}\n'


def test_an_option_outside_the_formocr_table_is_an_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('review_threshold = 0.0\n[formocr]\ndpi = 300\n[other_tool]\nx = 1\n')
    with pytest.raises(ConfigError, match="'review_threshold' lies outside the \\[formocr\\] table"):
        Options.from_file(cfg)
    cfg.write_text('revue_threshold = 0.0\n[formocr]\ndpi = 300\n')
    with pytest.raises(ConfigError, match="'revue_threshold' lies outside"):
        Options.from_file(cfg)
    cfg.write_text('"$schema" = "x"\n[formocr]\ndpi = 200\n[other_tool]\nx = 1\n[[plugins]]\nname = "a"\n')
    assert Options.from_file(cfg).dpi == 200  # other tools' keys and tables are theirs


def test_a_config_files_skew_limit_and_a_cards_missing_sum_are_named(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("max_skew_deg = -3\n")
    with pytest.raises(ConfigError, match="max_skew_deg: must be between 0 and 45") as e:
        Options.from_file(cfg)
    assert "c.toml" in e.value.one_line()
    weights = tmp_path / "m.safetensors"
    weights.write_bytes(b"\0" * 16)
    (tmp_path / "m.card.json").write_text("{}")
    with pytest.raises(ModelError, match="records no sha256"):
        load_model(weights)


def test_a_torn_last_line_is_named_when_exported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    doc = {"formocr": "x", "source": "a.png", "models": {}, "pages": [], "timings_ms": {}}
    results = tmp_path / "r.jsonl"
    results.write_text(Record("a.png", "0" * 64, "ok", 1, 0.1, doc).to_line() + '{"formocr_batch":1,"sou')
    with caplog.at_level("WARNING", logger="formocr.batch"):
        code, _, _ = run("export", "csv", results, "-o", tmp_path / "f.csv")
    assert code == 0 and "last line was cut short" in caplog.text
    assert (tmp_path / "f.csv").read_text().count("\n") == 2  # the header and the one whole record


def test_a_dangling_link_in_a_batch_is_named_as_one(tmp_path: Path) -> None:
    from formocr.batch.runner import _os_reason

    link = tmp_path / "scan.png"
    link.symlink_to(tmp_path / "gone.png")
    gone = FileNotFoundError(2, "No such file or directory")
    assert _os_reason(gone, link) == "a link to a file that does not exist"
    assert "removed during the run" in _os_reason(gone, tmp_path / "other.png")
