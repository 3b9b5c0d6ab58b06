"""The CLI end to end: JSON on stdout, one-line errors with documented exit codes, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from formocr.cli import main
from formocr.recognize.digits import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
needs_model = pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason="shipped model not built yet")


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def _schema_check(doc: dict) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "formocr" / "schema" / "document.schema.json").read_text())
    jsonschema.validate(doc, schema)


@needs_model
def test_scan_cheque_prints_ground_truth_json(tmp_path: Path) -> None:
    code, out, err = run("scan", str(SAMPLES / "cheque.pdf"))
    assert code == 0, err
    doc = json.loads(out)
    _schema_check(doc)
    truth = json.loads((SAMPLES / "cheque.truth.json").read_text())["pages"][0]["fields"]
    got = {f["name"]: f["value"] for f in doc["pages"][0]["fields"]}
    assert got == truth
    assert doc["pages"][0]["template"] == "cheque" and abs(doc["pages"][0]["skew_deg"] - 1.5) < 0.3
    assert set(doc["timings_ms"]) >= {"load", "preprocess", "locate", "segment", "normalize", "classify"}
    # what the scan printed, scored against the sample's truth file as a user scores their own keyed values
    (tmp_path / "cheque.json").write_text(out)
    code, out, err = run("eval", "results", str(tmp_path / "cheque.json"), "--truth",
                         str(SAMPLES / "cheque.truth.json"), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["all"]["n"] == 3 and report["all"]["right"] == 3 and report["fields_not_in_truth"] == 0
    assert report["all"]["accepted"] == sum(not f["needs_review"] for f in doc["pages"][0]["fields"])


@needs_model
def test_output_file_debug_dir_and_multi_input(tmp_path: Path) -> None:
    out = tmp_path / "r" / "out.json"
    code, stdout, err = run("scan", str(SAMPLES / "envelope.png"), "-o", str(out), "--debug-dir",
                            str(tmp_path / "dbg"))
    assert code == 0, err
    assert stdout == ""
    assert json.loads(out.read_text())["pages"][0]["fields"][0]["name"] == "postal_code"
    assert sorted(p.name for p in (tmp_path / "dbg").iterdir()) == [
        "envelope-p001-binary.png", "envelope-p001-overlay.png", "envelope-p001-tiles.png"]
    # several inputs: one JSON line each for the good ones, one error line for the bad one, exit code 8
    missing = tmp_path / "missing.pdf"
    code, stdout, err = run("scan", str(SAMPLES / "envelope.png"), str(missing), str(SAMPLES / "envelope.png"))
    assert code == 8
    assert len(stdout.strip().splitlines()) == 2 and all(json.loads(line) for line in stdout.splitlines())
    assert str(missing) in err and err.count("\n") == 1


def _bad_inputs(tmp: Path) -> dict[str, tuple[Path, int, str]]:
    from test_io import _encrypted_pdf  # the hand-built encrypted PDF of the io tests

    cases: dict[str, tuple[Path, int, str]] = {}
    cases["missing"] = (tmp / "nope.pdf", 3, "no such file")
    (tmp / "adir").mkdir()
    cases["directory"] = (tmp / "adir", 3, "directory")
    (tmp / "empty.pdf").write_bytes(b"")
    cases["empty"] = (tmp / "empty.pdf", 3, "empty")
    (tmp / "notes.pdf").write_text("just some text, not a PDF\n")
    cases["text named .pdf"] = (tmp / "notes.pdf", 3, "")
    with zipfile.ZipFile(tmp / "a.png", "w") as z:
        z.writestr("x.txt", "x")
    cases["zip named .png"] = (tmp / "a.png", 3, "")
    good = SAMPLES / "cheque.pdf"
    data = good.read_bytes()
    (tmp / "trunc.pdf").write_bytes(data[: len(data) // 3])
    cases["truncated pdf"] = (tmp / "trunc.pdf", 4, "")
    (tmp / "enc.pdf").write_bytes(_encrypted_pdf(b"secret"))
    cases["encrypted pdf"] = (tmp / "enc.pdf", 4, "encrypted")
    png = (SAMPLES / "envelope.png").read_bytes()
    (tmp / "trunc.png").write_bytes(png[: len(png) // 2])
    cases["truncated png"] = (tmp / "trunc.png", 4, "")
    return cases


@needs_model
def test_each_bad_input_is_one_line_with_its_exit_code(tmp_path: Path) -> None:
    for label, (path, code, words) in _bad_inputs(tmp_path).items():
        rc, out, err = run("scan", str(path))
        assert rc == code, f"{label}: exit {rc}, stderr {err!r}"
        assert out == "", label
        assert err.startswith("formocr: error: ") and err.count("\n") == 1, f"{label}: {err!r}"
        assert str(path) in err and words in err.lower(), f"{label}: {err!r}"
        assert "Traceback" not in err


@needs_model
def test_oversized_blank_page_and_wrong_template(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    Image.new("L", (3000, 3000), 255).save(big)
    cfg = tmp_path / "c.toml"
    cfg.write_text("max_pixels = 1000000\n")
    rc, _, err = run("scan", str(big), "--config", str(cfg))
    assert rc == 4 and "limit" in err and str(big) in err
    rc, _, err = run("scan", str(big))  # a blank page matches no template
    assert rc == 7 and "no built-in template fits" in err
    rc, _, err = run("scan", str(SAMPLES / "envelope.png"), "--template", str(tmp_path / "t.json"))
    assert rc == 7 and "no such template file" in err
    (tmp_path / "t.json").write_text('{"formocr_template": 1, "name": "x", "page": {"width_mm": 10}}')
    rc, _, err = run("scan", str(SAMPLES / "envelope.png"), "--template", str(tmp_path / "t.json"))
    assert rc == 7 and "page.height_mm: missing" in err


def test_config_and_model_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text('{"dpii": 300}')
    rc, _, err = run("scan", str(SAMPLES / "envelope.png"), "--config", str(cfg))
    assert rc == 7 and "unknown option 'dpii'" in err and "did you mean 'dpi'" in err
    rc, _, err = run("scan", str(SAMPLES / "envelope.png"), "--model", str(tmp_path / "m.safetensors"))
    assert rc == 5 and "model file not found" in err
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    (tmp_path / "bad.card.json").write_text('{"sha256": "0"}')
    rc, _, err = run("scan", str(SAMPLES / "envelope.png"), "--model", str(bad))
    assert rc == 5 and "checksum mismatch" in err


@needs_model
def test_missing_poppler_is_exit_6(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no pdftoppm / pdfinfo on this PATH
    r = subprocess.run([sys.executable, "-m", "formocr", "scan", str(SAMPLES / "cheque.pdf")],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert r.returncode == 6, r.stderr
    assert "poppler" in r.stderr and "Traceback" not in r.stderr and r.stdout == ""


@needs_model
def test_real_process_stdout_is_json_only() -> None:
    r = subprocess.run([sys.executable, "-m", "formocr", "-v", "scan", "--compact", str(SAMPLES / "envelope.png")],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 1 and json.loads(r.stdout)["source"].endswith("envelope.png")


def test_scan_api_on_array_and_errors() -> None:
    import formocr

    with pytest.raises(formocr.FormOcrError):
        formocr.scan(np.zeros((10, 10, 10, 10), np.uint8))
