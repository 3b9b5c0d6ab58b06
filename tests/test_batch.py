"""Batch mode: discovery, records, the results file, resume, bad files, crashes, SIGKILL, CSV, progress, Ray.

Documents are drawn at test time with formocr.synth (small 150-dpi envelopes, two pages each), never committed.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from formocr.batch import (
    BatchConfig,
    ErrorInfo,
    Progress,
    Record,
    RecordSummary,
    ResultsFile,
    WorkerInfo,
    discover,
    export_csv,
    field_columns,
    run_batch,
)
from formocr.batch.export import safe_cell
from formocr.batch.results import cut_torn_tail
from formocr.cli import main
from formocr.errors import ConfigError, EmptyInputError, ModelError, ResultsFileError, UnreadableInputError
from formocr.options import Options

DPI = 150
N_DOCS = 8
ROOT = Path(__file__).resolve().parents[1]
# Subprocesses import formocr from this tree (and so do their workers), whatever is installed.
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                                              if p)}


# --- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def option_values() -> dict[str, Any]:
    """Pipeline options for these tests: 150 dpi; the digits-only reader where the full one lacks a model."""
    from formocr.pipeline import Pipeline

    values: dict[str, Any] = {"dpi": DPI}
    try:
        Pipeline(Options.from_mapping(values))
        return values
    except ModelError as first:
        if "reader" not in {f.name for f in dataclasses.fields(Options)}:
            pytest.skip(f"shipped model missing: {first}")
    values["reader"] = "segmentation"
    try:
        Pipeline(Options.from_mapping(values))
    except ModelError as e:
        pytest.skip(f"shipped model missing: {e}")
    return values


@pytest.fixture(scope="session")
def config_file(tmp_path_factory: pytest.TempPathFactory, option_values: dict[str, Any]) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "options.json"
    path.write_text(json.dumps(option_values))
    return path


def _make_docs(folder: Path, n: int, seed: int = 0) -> dict[str, list[str]]:
    """n two-page envelopes (PDF and TIFF alternately, every third in a subfolder); source -> true values."""
    from formocr.layout.template import load_template
    from formocr.synth import Degrade, render_form, save_pdf, save_tiff

    tpl = load_template("envelope")
    truth: dict[str, list[str]] = {}
    for i in range(n):
        rng = np.random.default_rng(seed * 1000 + i)
        pages = [render_form(tpl, None, rng, dpi=DPI, degrade=Degrade.none()) for _ in range(2)]
        rel = f"{'sub/' if i % 3 == 2 else ''}doc{i:02d}.{'pdf' if i % 2 else 'tif'}"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (save_pdf if i % 2 else save_tiff)([p.image for p in pages], folder / rel, dpi=DPI)
        truth[rel] = [p.values["postal_code"] for p in pages]
    return truth


@pytest.fixture(scope="session")
def docs_base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]]]:
    base = tmp_path_factory.mktemp("docs") / "in"
    base.mkdir()
    return base, _make_docs(base, N_DOCS)


@pytest.fixture()
def docs(tmp_path: Path, docs_base: tuple[Path, dict[str, list[str]]]) -> tuple[Path, dict[str, list[str]]]:
    """A fresh copy of the generated folder, for tests that change it."""
    base, truth = docs_base
    folder = tmp_path / "in"
    shutil.copytree(base, folder)
    return folder, truth


def cli(*args: str | Path) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def read_lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text("utf-8")
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def values_of(rec: dict[str, Any]) -> list[str | None]:
    return [f["value"] for p in rec["document"]["pages"] for f in p["fields"]]


def _record(source: str, status: str = "ok", fields: list[tuple[int, str, str | None, bool]] | None = None,
            error: ErrorInfo | None = None) -> Record:
    """A hand-made record: ``fields`` is [(page, name, value, needs_review)]."""
    doc = None
    if status == "ok":
        pages: dict[int, list[dict[str, Any]]] = {}
        for page, name, value, review in fields or []:
            pages.setdefault(page, []).append({"name": name, "value": value, "needs_review": review})
        doc = {"source": source, "pages": [{"page": k, "fields": v} for k, v in sorted(pages.items())]}
    return Record(source, "ab" * 32, status, 1 if doc else 0, 0.5, document=doc, error=error,  # type: ignore[arg-type]
                  worker=WorkerInfo(1, "h", 10.0, 1))


# --- discovery, records, the results file -------------------------------------------------------------------


def test_discover_walks_sorted_supported_files_and_globs(tmp_path: Path) -> None:
    for rel in ["b.PDF", "a/z.tif", "a/y.JPEG", "c.png", "notes.txt", ".hidden.pdf", ".git/x.pdf", "a/b/deep.bmp",
                "results.jsonl"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    os.symlink(tmp_path, tmp_path / "a" / "loop")  # a folder link loop must not trap the walk
    assert discover(tmp_path) == ["a/b/deep.bmp", "a/y.JPEG", "a/z.tif", "b.PDF", "c.png"]
    assert discover(tmp_path, exclude=[tmp_path / "c.png"]) == ["a/b/deep.bmp", "a/y.JPEG", "a/z.tif", "b.PDF"]
    # a glob takes every matching file, whatever its extension (a wrong type then gets its own error record)
    assert discover(tmp_path, "*") == ["b.PDF", "c.png", "notes.txt", "results.jsonl"]
    assert discover(tmp_path, "a/**/*", exclude=[tmp_path / "a/z.tif"])[:2] == ["a/b/deep.bmp", "a/y.JPEG"]
    with pytest.raises(UnreadableInputError, match="no such folder"):
        discover(tmp_path / "nope")
    with pytest.raises(UnreadableInputError, match="not a folder"):
        discover(tmp_path / "c.png")
    with pytest.raises(ConfigError):
        discover(tmp_path, "/abs/*.pdf")


def test_record_round_trip_and_columns() -> None:
    ok = _record("a/x.pdf", fields=[(1, "amount", "12.00", False), (2, "amount", "13.00", True),
                                    (2, "date", "x", True)])
    line = ok.to_line()
    assert line.endswith("\n") and "\n" not in line[:-1]
    assert Record.from_line(line) == ok
    assert json.loads(line)["formocr_batch"] == 1
    err = _record("bad.pdf", "error", error=ErrorInfo("CorruptInputError", "bad.pdf: corrupt PDF", 4))
    assert Record.from_line(err.to_line()) == err
    assert [c for c, _ in field_columns(ok.document or {})] == ["p1.amount", "p2.amount", "date"]
    s = ok.summary()
    assert s.review == ("p2.amount", "date") and s.done
    # content-decided errors are kept on a rerun; crashes, bugs, a missing model are retried
    assert err.summary().done
    crash = dataclasses.replace(err, error=ErrorInfo("WorkerCrashed", "x", 1))
    assert not crash.summary().done
    with pytest.raises(ValueError):
        Record("a", "b", "ok", 1, 0.1)  # an ok record without a document
    with pytest.raises(ValueError):  # strict JSON: NaN never reaches the file
        Record("n.pdf", "x", "ok", 1, float("nan"), document={"pages": []}).to_line()
    with pytest.raises(ValueError):
        Record.from_line('{"source": "x"}')


def test_results_file_appends_whole_lines_and_cuts_a_torn_tail(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    recs = [_record(f"d{i}.pdf", fields=[(1, "n", str(i), False)]) for i in range(3)]
    with ResultsFile(out) as rf:
        for r in recs[:2]:
            rf.append(r.to_line(), r.summary())
        with pytest.raises(ResultsFileError, match="another formocr batch"):
            ResultsFile(out).open()  # a second writer is refused while the first holds the file
        with pytest.raises(ValueError):
            rf.append("two\nlines\n", recs[2].summary())
    size = out.stat().st_size
    # a run killed in the middle of a write leaves a line without its newline
    with out.open("ab") as f:
        f.write(recs[2].to_line().encode()[:40])
    assert cut_torn_tail(out) == 40 and out.stat().st_size == size
    with out.open("ab") as f:
        f.write(recs[2].to_line().encode()[:-1])  # everything but the newline is still torn
    with ResultsFile(out) as rf:
        assert rf.cut_bytes > 0 and list(rf.latest) == ["d0.pdf", "d1.pdf"]
        rf.append(recs[2].to_line(), recs[2].summary())
        # a redone document appends; the older line goes at compaction
        newer = dataclasses.replace(recs[0], seconds=9.0)
        rf.append(newer.to_line(), newer.summary())
        assert rf.superseded == 1
        rf.compact()
        assert rf.superseded == 0
    lines = read_lines(out)
    assert [r["source"] for r in lines] == ["d1.pdf", "d2.pdf", "d0.pdf"] and lines[2]["seconds"] == 9.0
    # a file that is not ours is refused, not overwritten
    other = tmp_path / "notes.jsonl"
    other.write_text('{"hello": 1}\n')
    with pytest.raises(ResultsFileError, match="line 1 is not a formocr batch record"):
        ResultsFile(other).open()
    assert other.read_text() == '{"hello": 1}\n'


# --- running batches ----------------------------------------------------------------------------------------


def test_batch_reads_a_folder_and_resume_skips_done_and_redoes_changed(
        docs: tuple[Path, dict[str, list[str]]], config_file: Path, tmp_path: Path) -> None:
    folder, truth = docs
    out = tmp_path / "res" / "results.jsonl"
    summary_json = tmp_path / "summary.json"
    code, stdout, err = cli("batch", folder, "-o", out, "--workers", "2", "--config", config_file,
                            "--summary-json", summary_json)
    assert code == 0, err
    assert stdout == "" and "\r" not in err and "Traceback" not in err  # no bar when stderr is not a TTY
    assert err.startswith("formocr: batch: 8 documents: 8 ok, 0 failed") and err.count("\n") == 1
    recs = read_lines(out)
    assert sorted(r["source"] for r in recs) == sorted(truth)
    for r in recs:
        assert r["status"] == "ok" and r["pages"] == 2 and r["document"]["source"] == r["source"]
        assert len(r["sha256"]) == 64 and r["worker"]["peak_rss_mib"] > 0
    right = sum(values_of(r) == truth[r["source"]] for r in recs)
    assert right >= N_DOCS - 1, f"only {right}/{N_DOCS} documents read right"
    summ = json.loads(summary_json.read_text())
    assert summ["documents"] == 8 and summ["processed"] == 8 and summ["pages"] == 16 and summ["pages_per_second"] > 0
    # the same command again: nothing to do, the file is untouched
    before = out.read_bytes()
    code, _, err = cli("batch", folder, "-o", out, "--workers", "2", "--config", config_file)
    assert code == 0 and "0 read, 8 already done" in err
    assert out.read_bytes() == before
    # a changed file is redone (new hash), a new file added, a torn line from a crash cut off
    victim = "doc00.tif"
    shutil.copy(folder / "doc01.pdf", folder / victim)  # the type comes from the content, not the name
    shutil.copy(folder / "doc03.pdf", folder / "new.pdf")
    with out.open("a") as f:
        f.write('{"formocr_batch": 1, "source": "half')
    api = run_batch(BatchConfig(folder, out, workers=1), Options.from_file(config_file))
    assert (api.documents, api.processed, api.skipped, api.failed) == (9, 2, 7, 0)
    recs = read_lines(out)
    assert len(recs) == 9 and len({r["source"] for r in recs}) == 9
    changed = next(r for r in recs if r["source"] == victim)
    assert changed["sha256"] == next(r["sha256"] for r in recs if r["source"] == "doc01.pdf")
    assert values_of(changed) == values_of(next(r for r in recs if r["source"] == "doc01.pdf"))


def _bad_folder(folder: Path) -> dict[str, tuple[str, int]]:
    """Bad files beside the good ones: name -> (error type, exit code)."""
    from test_io import _encrypted_pdf  # the hand-built encrypted PDF of the io tests

    good = sorted(p for p in folder.rglob("*.pdf"))[0].read_bytes()
    (folder / "bad").mkdir()
    (folder / "bad/corrupt.pdf").write_bytes(good[: len(good) // 3])
    (folder / "bad/empty.pdf").write_bytes(b"")
    (folder / "bad/encrypted.pdf").write_bytes(_encrypted_pdf(b"secret"))
    (folder / "bad/notes.pdf").write_text("a text file renamed .pdf\n")
    with zipfile.ZipFile(folder / "bad/archive.png", "w") as z:
        z.writestr("x.txt", "x")
    Image.new("L", (2400, 1800), 255).save(folder / "bad/huge.png")  # over the test's 2 MP pixel limit
    Image.new("L", (600, 400), 255).save(folder / "bad/blank.png")  # readable, but no template fits
    return {
        "bad/corrupt.pdf": ("CorruptInputError", 4),
        "bad/empty.pdf": ("EmptyInputError", 3),
        "bad/encrypted.pdf": ("EncryptedInputError", 4),
        "bad/notes.pdf": ("UnsupportedInputError", 3),
        "bad/archive.png": ("UnsupportedInputError", 3),
        "bad/huge.png": ("InputTooLargeError", 4),
        "bad/blank.png": ("TemplateError", 7),
    }


def test_bad_files_each_get_one_error_line_and_the_good_ones_are_read(
        docs: tuple[Path, dict[str, list[str]]], option_values: dict[str, Any], tmp_path: Path) -> None:
    folder, truth = docs
    bad = _bad_folder(folder)
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({**option_values, "max_pixels": 2_000_000}))
    out, csv_out = tmp_path / "r.jsonl", tmp_path / "fields.csv"
    code, stdout, err = cli("batch", folder, "-o", out, "-w", "2", "--config", cfg, "--csv", csv_out)
    assert code == 8, err
    assert stdout == "" and "Traceback" not in err
    recs = {r["source"]: r for r in read_lines(out)}
    assert len(recs) == len(truth) + len(bad)
    assert all(recs[s]["status"] == "ok" for s in truth)
    for source, (etype, ecode) in bad.items():
        e = recs[source]["error"]
        assert recs[source]["status"] == "error" and (e["type"], e["exit_code"]) == (etype, ecode), source
        assert e["message"].startswith(source + ": ") and "\n" not in e["message"]
        assert f"formocr: error: {source}: " in err
    assert err.strip().splitlines()[-1].startswith(f"formocr: batch: {len(recs)} documents: {len(truth)} ok, "
                                                   f"{len(bad)} failed")
    rows = list(csv.DictReader(csv_out.open(newline="")))
    assert list(rows[0]) == ["source", "sha256", "status", "pages", "needs_review", "keyed", "error", "p1.postal_code",
                             "p2.postal_code"]
    assert len(rows) == len(recs) and sum(r["status"] == "error" and r["error"] != "" for r in rows) == len(bad)
    assert all(r["p1.postal_code"] + r["p2.postal_code"] == "".join(truth[r["source"]]) for r in rows
               if r["source"] in truth and values_of(recs[r["source"]]) == truth[r["source"]])
    # rerun: content-decided errors are kept (exit code still 8); --retry-failed reads them again
    code, _, err = cli("batch", folder, "-o", out, "-w", "2", "--config", cfg)
    assert code == 8 and f"0 read, {len(recs)} already done" in err
    code, _, err = cli("batch", folder, "-o", out, "-w", "1", "--config", cfg, "--retry-failed")
    assert code == 8 and f"{len(bad)} read, {len(truth)} already done" in err
    assert sorted(r["source"] for r in read_lines(out)) == sorted(recs)


def test_batch_errors_that_stop_the_run(tmp_path: Path, config_file: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = cli("batch", tmp_path / "empty", "-o", tmp_path / "r.jsonl", "--config", config_file)
    assert code == 3 and "no documents" in err and err.count("\n") == 1
    code, _, err = cli("batch", tmp_path / "nope", "-o", tmp_path / "r.jsonl")
    assert code == 3 and "no such folder" in err
    Image.new("L", (60, 40), 255).save(tmp_path / "empty" / "a.png")
    (tmp_path / "notes.jsonl").write_text("not json\n")
    code, _, err = cli("batch", tmp_path / "empty", "-o", tmp_path / "notes.jsonl", "--config", config_file)
    assert code == 7 and "not a formocr batch record" in err
    code, _, err = cli("batch", tmp_path / "empty", "-o", tmp_path / "r.jsonl", "--config", config_file,
                       "--template", "nope")
    assert code == 7 and not (tmp_path / "r.jsonl").exists()
    code, _, err = cli("batch", tmp_path / "empty", "-o", tmp_path / "r.jsonl", "--workers", "0")
    assert code == 2


def test_local_engine_never_holds_more_than_its_in_flight_limit(tmp_path: Path,
                                                                option_values: dict[str, Any]) -> None:
    from formocr.batch.local import run_local
    from formocr.batch.worker import Job

    for i in range(12):
        (tmp_path / f"e{i}.pdf").write_bytes(b"")
    pulled = 0

    def jobs() -> Any:
        nonlocal pulled
        for i in range(12):
            pulled += 1
            yield Job(str(tmp_path), f"e{i}.pdf", "0")

    seen = 0
    for _, outcome in run_local(jobs(), Options.from_mapping(option_values), workers=1, in_flight=2):
        seen += 1
        assert pulled - seen <= 1  # at most 2 submitted and not yet answered, one of them this one
        assert outcome.summary.error is not None and outcome.summary.error.type == "EmptyInputError"
    assert seen == 12


# --- CSV and progress -------------------------------------------------------------------------------------


def test_csv_export_one_row_per_document(tmp_path: Path) -> None:
    res = tmp_path / "r.jsonl"
    recs = [
        _record("b.pdf", fields=[(1, "amount", "=1+2", True), (1, "date", "01/02/2026", False)]),
        _record("a.pdf", fields=[(1, "amount", "5.00", False), (2, "amount", "6.00", True)]),
        _record("c.pdf", "error", error=ErrorInfo("CorruptInputError", "-c.pdf: corrupt", 4)),
        _record("a.pdf", fields=[(1, "amount", "7.00", False), (2, "amount", "8.00", True)]),  # a redo: wins
        _record("d.pdf", fields=[(1, "status", "1", False)]),
    ]
    page_error = _record("e.pdf", fields=[(1, "amount", "9.00", False)])
    assert page_error.document is not None
    page_error.document["pages"].append({"page": 2, "fields": [], "error": {"type": "RegistrationError",
                                         "message": "page 2: cannot register template 'cheque'"}})
    recs.append(page_error)
    res.write_text("".join(r.to_line() for r in recs))
    out = tmp_path / "f.csv"
    assert export_csv(res, out) == 5
    rows = list(csv.DictReader(out.open(newline="")))
    assert [r["source"] for r in rows] == ["a.pdf", "b.pdf", "c.pdf", "d.pdf", "e.pdf"]
    assert list(rows[0])[7:] == ["p1.amount", "p2.amount", "amount", "date", "field.status"]
    assert (rows[0]["p1.amount"], rows[0]["p2.amount"], rows[0]["needs_review"]) == ("7.00", "8.00", "p2.amount")
    assert rows[1]["amount"] == "'=1+2" and rows[1]["date"] == "01/02/2026"
    assert rows[2]["status"] == "error" and rows[2]["error"] == "'-c.pdf: corrupt" and rows[2]["amount"] == ""
    assert rows[3]["field.status"] == "1"
    assert rows[4]["status"] == "ok" and rows[4]["error"] == "p2: page 2: cannot register template 'cheque'"
    assert safe_cell("@x") == "'@x" and safe_cell("123") == "123" and safe_cell(None) == ""
    code, stdout, _ = cli("export", "csv", res)
    assert code == 0 and stdout.replace("\r\n", "\n") == out.read_text().replace("\r\n", "\n")
    code, _, err = cli("export", "csv", tmp_path / "missing.jsonl", "-o", out)
    assert code == 7 and "no such results file" in err


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal() -> None:
    ok = RecordSummary("a.pdf", "x", "ok", 3, 0.1, review=("amount",))
    bad = RecordSummary("b.pdf", "x", "error", 0, 0.1, error=ErrorInfo("CorruptInputError", "b.pdf: corrupt", 4))
    for stream, shown in ((io.StringIO(), False), (_Tty(), True)):
        p = Progress(stream=stream, interval=0.0)
        p.started(3)
        p.skipped(ok)
        p.finished(ok)
        p.finished(bad)
        p.close()
        text = stream.getvalue()
        assert "formocr: error: b.pdf: corrupt\n" in text  # failures are printed either way
        assert ("3/3" in text and "docs (1 already done)" in text and "pages/s" in text) == shown
        if not shown:
            assert text == "formocr: error: b.pdf: corrupt\n"
    p = Progress(stream=io.StringIO())
    p.started(10)
    p.finished(ok)
    assert "ETA" in p.line() and "1/10 docs" in p.line()


# --- crashes and kill -9 ------------------------------------------------------------------------------------

_CRASHING_MAIN = """
import os
from formocr.pipeline import Pipeline

_scan = Pipeline.scan


def scan(self, source, *args, **kwargs):
    if "crash" in str(source):
        os._exit(3)  # as a segfault or the OOM killer would: no exception, the process is gone
    return _scan(self, source, *args, **kwargs)


Pipeline.scan = scan  # runs in every worker too: they import the main script before their first job

if __name__ == "__main__":
    from formocr.cli import main

    main()
"""


def test_a_worker_that_dies_costs_one_document(docs: tuple[Path, dict[str, list[str]]], config_file: Path,
                                               tmp_path: Path) -> None:
    folder, truth = docs
    shutil.copy(folder / "doc00.tif", folder / "crash.tif")
    script = tmp_path / "crashing_main.py"
    script.write_text(_CRASHING_MAIN)
    out = tmp_path / "r.jsonl"
    proc = subprocess.run([sys.executable, str(script), "batch", str(folder), "-o", str(out), "-w", "2",
                           "--config", str(config_file)], capture_output=True, text=True, timeout=120,
                          env=SUBPROCESS_ENV)
    assert proc.returncode == 8, proc.stderr
    recs = {r["source"]: r for r in read_lines(out)}
    assert len(recs) == len(truth) + 1
    assert recs["crash.tif"]["error"]["type"] == "WorkerCrashed" and recs["crash.tif"]["error"]["exit_code"] == 1
    assert all(recs[s]["status"] == "ok" for s in truth)
    assert "Traceback" not in proc.stderr


def _batch_cmd(folder: Path, out: Path, config_file: Path) -> list[str]:
    return [sys.executable, "-m", "formocr", "batch", str(folder), "-o", str(out), "-w", "2",
            "--config", str(config_file)]


def _expected_fields(folder: Path, truth: dict[str, list[str]], config_file: Path) -> dict[str, list[Any]]:
    """What a clean read gives, field for field: the pipeline in this process, one torch thread like a worker."""
    import torch

    from formocr.pipeline import Pipeline

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pipe = Pipeline(Options.from_file(config_file))
        return {s: _fields({"document": pipe.scan(folder / s).to_dict()}) for s in truth}
    finally:
        torch.set_num_threads(threads)


def _count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _fields(rec: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(f["name"], f["value"], f["raw"], round(f["confidence"], 4), f["needs_review"])
            for p in rec["document"]["pages"] for f in p["fields"]]


def test_kill_9_at_random_moments_then_rerun_gives_exactly_one_record_each(
        docs: tuple[Path, dict[str, list[str]]], config_file: Path, tmp_path: Path) -> None:
    folder, truth = docs
    expected = _expected_fields(folder, truth, config_file)
    out = tmp_path / "killed.jsonl"
    rng = random.Random(6)
    lines_after_kill = []
    for round_ in range(4):
        before = _count_lines(out)
        proc = subprocess.Popen(_batch_cmd(folder, out, config_file), start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=SUBPROCESS_ENV)
        if round_ == 0:  # during start-up, before any record
            time.sleep(rng.uniform(0.2, 1.5))
        else:  # while documents are being written: after 1-2 new records, plus a random delay
            want = min(before + rng.randint(1, 2), len(truth) - 1)
            deadline = time.monotonic() + 60
            while _count_lines(out) < want and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.15))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the driver, the fork server and every worker
        proc.wait(timeout=30)
        if out.exists():
            data = out.read_bytes()
            complete = data[: data.rfind(b"\n") + 1].decode()  # a torn last line is allowed until the rerun
            sources = [json.loads(line)["source"] for line in complete.splitlines()]
            assert len(sources) == len(set(sources)), "a document recorded twice"
            lines_after_kill.append(len(sources))
    assert any(0 < n < len(truth) for n in lines_after_kill), f"no kill mid-run: {lines_after_kill}"
    final = subprocess.run(_batch_cmd(folder, out, config_file), capture_output=True, text=True, timeout=120,
                           env=SUBPROCESS_ENV)
    assert final.returncode == 0, final.stderr
    recs = read_lines(out)
    assert sorted(r["source"] for r in recs) == sorted(truth), f"records after each kill: {lines_after_kill}"
    for r in recs:
        assert r["status"] == "ok" and r["sha256"] == hashlib.sha256((folder / r["source"]).read_bytes()).hexdigest()
        assert _fields(r) == expected[r["source"]], r["source"]


# --- Ray ------------------------------------------------------------------------------------------------------


def test_ray_engine_same_records_and_resume(docs: tuple[Path, dict[str, list[str]]], config_file: Path,
                                            tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="ray not installed (pip install 'formocr[ray]')")
    folder, truth = docs
    (folder / "bad.pdf").write_text("not a pdf\n")
    local = tmp_path / "local.jsonl"
    run_batch(BatchConfig(folder, local, workers=2), Options.from_file(config_file))
    out = tmp_path / "ray.jsonl"
    # one local Ray instance for both runs (run_batch uses an initialized one as it is)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        code, _, err = cli("batch", folder, "-o", out, "--engine", "ray", "-w", "2", "--config", config_file)
        assert code == 8, err
        recs = {r["source"]: r for r in read_lines(out)}
        assert len(recs) == len(truth) + 1
        assert recs["bad.pdf"]["error"]["type"] == "UnsupportedInputError"
        assert recs["bad.pdf"]["error"]["message"].startswith("bad.pdf: ")
        for r in read_lines(local):  # the same records as the local engine's
            twin = recs[r["source"]]
            assert (r["sha256"], r["status"]) == (twin["sha256"], twin["status"])
            if r["status"] == "ok":
                assert _fields(r) == _fields(twin) and twin["document"]["source"] == r["source"]
        # resume with Ray: a changed file is the only one read again
        shutil.copy(folder / "doc01.pdf", folder / "doc03.pdf")
        code, _, err = cli("batch", folder, "-o", out, "--engine", "ray", "-w", "1", "--config", config_file)
        assert code == 8 and f"1 read, {len(truth)} already done" in err
        assert len(read_lines(out)) == len(truth) + 1
    finally:
        ray.shutdown()


def test_ray_missing_is_a_dependency_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from formocr.batch import ray_engine
    from formocr.errors import DependencyError

    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail as if it were not installed
    with pytest.raises(DependencyError, match=r"formocr\[ray\]"):
        ray_engine.import_ray()


def test_a_bug_in_one_document_becomes_its_error_record(option_values: dict[str, Any]) -> None:
    from formocr.batch.worker import DocumentWorker, Job

    class Buggy:
        def scan(self, source: Any) -> Any:
            raise ZeroDivisionError("division by zero")

    worker = DocumentWorker(Options.from_mapping(option_values))
    worker._pipeline = Buggy()  # type: ignore[assignment]
    outcome = worker.process(Job("/nowhere", "a/b.pdf", "00"))
    rec = Record.from_line(outcome.line)
    assert rec.status == "error" and rec.error == ErrorInfo(
        "ZeroDivisionError", "a/b.pdf: internal error: division by zero", 1)
    assert not outcome.summary.done  # a bug is retried by the next run


def test_empty_folder_error_names_it(tmp_path: Path) -> None:
    with pytest.raises(EmptyInputError, match="no documents"):
        run_batch(BatchConfig(tmp_path, tmp_path / "r.jsonl"))
