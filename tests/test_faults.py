"""Bad inputs of issue #44: each is one line on stderr naming the file, a documented exit code, never a traceback.

Every fixture is made here in tmp_path (tiny images, hostile configs and templates, a user's own JSON, links that
loop, device nodes); nothing from a dataset. The pipeline runs with ``-t auto`` on blank pages, which is quick.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import logging
import os
import stat
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from formocr.batch import ErrorInfo, Record, ResultsFile, discover, export_csv
from formocr.batch.local import run_local
from formocr.batch.runner import BatchConfig
from formocr.batch.worker import DocumentWorker, Job, Outcome, mark_started
from formocr.cli import main
from formocr.errors import (
    ConfigError,
    OutputError,
    PageTooSmallError,
    ResultsFileError,
    TemplateError,
    Timeout,
    UnreadableInputError,
)
from formocr.io import load_pages
from formocr.layout.template import MAX_FIELDS, load_template, parse_template
from formocr.objects import Page
from formocr.options import Options
from formocr.outputs import check_output, write_atomic
from formocr.preprocess import MIN_PAGE_MM, preprocess

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}


def cli(*args: str | Path) -> tuple[int, str, str]:
    """Run the CLI in-process; an exception escaping it fails the test (it would be a traceback for a user)."""
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def one_error_line(err: str, *words: str) -> None:
    assert err.startswith("formocr: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for w in words:
        assert w in err, (w, err)


def png(path: Path, height: int, width: int, dpi: float | None = None) -> Path:
    kwargs = {"dpi": (dpi, dpi)} if dpi else {}
    Image.fromarray(np.full((height, width), 255, np.uint8)).save(path, **kwargs)
    return path


@pytest.fixture()
def blank(tmp_path: Path) -> Path:
    """A blank page: `-t auto` reads it (no fields) in a fraction of a second."""
    return png(tmp_path / "blank.png", 400, 300)


# --- 1, 2: tiny and degenerate pages ----------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 5), (1, 1), (3, 3000), (20000, 1)])
def test_tiny_page_is_a_page_too_small_error_naming_the_file(tmp_path: Path, shape: tuple[int, int]) -> None:
    path = png(tmp_path / "tiny.png", *shape)
    (page,) = load_pages(path)  # the loader reads any image; a page is judged where it becomes one
    with pytest.raises(PageTooSmallError, match="too small to hold a field") as info:
        preprocess(page)
    assert info.value.exit_code == 4 and str(path) in info.value.one_line()
    rc, out, err = cli("scan", path)
    assert rc == 4 and out == ""
    one_error_line(err, str(path), "page 1 is", "too small to hold a field")


def test_tiny_array_page_and_the_size_limit() -> None:
    import formocr

    with pytest.raises(PageTooSmallError, match="<array>: page 1 is 5×5 px"):
        formocr.scan(np.zeros((5, 5), np.uint8))
    smallest = round(MIN_PAGE_MM * 300 / 25.4) + 1  # 13 px at 300 dpi: read (no field found, no crash)
    preprocess(Page(0, np.full((smallest, 3000), 255, np.uint8), 300.0, "strip"))
    preprocess(Page(0, np.full((5, 40), 255, np.uint8), 75.0, "crop"))  # read_field's crops: a few px at ~75 dpi


def test_a_speck_at_a_high_dpi_is_too_small(tmp_path: Path) -> None:
    """Pixels are not all: 90 px at 2400 dpi is under a millimetre, which the 25-dpi registration would shrink to
    nothing."""
    path = png(tmp_path / "speck.png", 90, 90, dpi=2400)
    rc, _, err = cli("scan", path)
    assert rc == 4
    one_error_line(err, str(path), "at 2400 dpi", "too small")


def test_tiny_pdf_page_is_one_line(tmp_path: Path) -> None:
    if not all(map(lambda t: __import__("shutil").which(t), ("pdfinfo", "pdftoppm"))):
        pytest.skip("poppler not installed")
    path = tmp_path / "tiny.pdf"
    Image.fromarray(np.full((4, 400), 255, np.uint8)).save(path, resolution=300.0)
    rc, _, err = cli("scan", path)
    assert rc == 4
    one_error_line(err, str(path), "page 1 is", "too small")


def test_scan_of_several_inputs_reads_the_good_ones_around_a_tiny_one(tmp_path: Path, blank: Path) -> None:
    tiny = png(tmp_path / "tiny.png", 5, 5)
    good2 = png(tmp_path / "blank2.png", 300, 400)
    out = tmp_path / "out.json"
    rc, stdout, err = cli("scan", blank, tiny, good2, "-t", "auto", "-o", out)
    assert rc == 8  # several inputs with a failure: 8 (README, exit codes); one input: the error's own code
    one_error_line(err, str(tiny), "too small")
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [d["source"] for d in docs] == [str(blank), str(good2)] and stdout == ""


def test_batch_keeps_the_record_of_a_tiny_page(tmp_path: Path) -> None:
    """A content error (exit 4) is done: a rerun does not read the document again, and again."""

    class Loader:  # the pipeline as far as it matters here: loading and preprocessing the pages
        def scan(self, source: Any) -> Any:
            return [preprocess(p) for p in load_pages(source)]

    png(tmp_path / "tiny.png", 3, 3000)
    worker = DocumentWorker(Options())
    worker._pipeline = Loader()  # type: ignore[assignment]
    outcome = worker.process(Job(str(tmp_path), "tiny.png", "00"))
    rec = Record.from_line(outcome.line)
    assert rec.error is not None and rec.error.type == "PageTooSmallError" and rec.error.exit_code == 4
    assert rec.error.message.startswith("tiny.png: ") and outcome.summary.done and not rec.error.retriable
    assert not ErrorInfo("Timeout", "x", Timeout.exit_code).retriable


# --- 3: links that loop -------------------------------------------------------------------------------------


def test_symlink_loops_in_a_batch_folder_are_skipped_with_a_warning(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    png(folder / "good.png", 40, 40)
    os.symlink("loop", folder / "loop")
    os.symlink("self.pdf", folder / "self.pdf")
    os.symlink("b.png", folder / "a.png")
    os.symlink("a.png", folder / "b.png")
    with caplog.at_level(logging.WARNING, logger="formocr.batch"):
        assert discover(folder) == ["good.png"]
        assert discover(folder, "*") == ["good.png"]
    warned = {Path(r.getMessage().split(":")[0]).name for r in caplog.records}
    assert warned >= {"a.png", "b.png", "self.pdf"}
    assert all("symbolic link loop" in r.getMessage() for r in caplog.records)


# --- 4, 11: the results file ----------------------------------------------------------------------------------


USER_FILES = {
    "one line, no newline": b'{"mine": [1, 2]}',
    "pretty JSON": b'{\n  "mine": 1\n}\n',
    "text": b"notes\nmore notes",
    "binary": bytes(range(256)) * 4,
    "newline only": b"\n",
}


@pytest.mark.parametrize("label", list(USER_FILES))
def test_a_file_that_is_not_a_results_file_is_refused_untouched(tmp_path: Path, label: str) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(USER_FILES[label])
    with pytest.raises(ResultsFileError, match="is it the right results file"):
        ResultsFile(path).open()
    assert path.read_bytes() == USER_FILES[label]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json"]  # not even a lock file beside it


def test_batch_cli_refuses_a_users_json(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    png(folder / "a.png", 40, 40)
    path = tmp_path / "p.json"
    path.write_bytes(USER_FILES["pretty JSON"])
    rc, _, err = cli("batch", folder, "-o", path, "-t", "auto", "-w", "1")
    assert rc == 7
    one_error_line(err, str(path), "not a formocr batch")
    assert path.read_bytes() == USER_FILES["pretty JSON"]


def test_empty_and_torn_results_files_are_still_opened(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with ResultsFile(empty) as r:
        assert r.latest == {}
    line = Record("a.png", "ab" * 32, "error", 0, 0.1, error=ErrorInfo("X", "a.png: x", 3)).to_line()
    torn = tmp_path / "torn.jsonl"
    torn.write_text(line + line[:20])
    with ResultsFile(torn) as r:
        assert list(r.latest) == ["a.png"] and r.cut_bytes == 20
    assert torn.read_text() == line


def test_the_results_lock_follows_links_to_the_real_file(tmp_path: Path) -> None:
    three = tmp_path / "three.jsonl"
    (tmp_path / "sub").mkdir()
    os.symlink(three, tmp_path / "link.jsonl")
    with ResultsFile(three):
        for other in (tmp_path / "link.jsonl", tmp_path / "sub" / ".." / "three.jsonl"):
            with pytest.raises(ResultsFileError, match="another formocr batch run"):
                ResultsFile(other).open()
    with ResultsFile(tmp_path / "link.jsonl") as r:  # free again; a link still works on its own
        assert r.path == three.resolve()
    assert (tmp_path / "link.jsonl").is_symlink()


# --- 5: outputs -----------------------------------------------------------------------------------------------


def _not_regular(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "afile").write_text("x")
    yield Path("/dev/full"), "not a regular file"
    yield fifo, "not a regular file"
    yield tmp_path, "is a folder"
    yield tmp_path / "afile" / "x.json", "a folder on its path is a file"
    yield Path("/proc/x.json"), "cannot write"


def test_outputs_only_ever_replace_a_regular_file(tmp_path: Path) -> None:
    for path, words in _not_regular(tmp_path):
        with pytest.raises(OutputError, match=words):
            write_atomic(path, lambda f: f.write("{}\n"))
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode) and stat.S_ISFIFO(os.stat(tmp_path / "fifo").st_mode)
    target = tmp_path / "target.json"
    target.write_text("old")
    os.symlink(target, tmp_path / "link.json")
    assert check_output(tmp_path / "link.json") == target.resolve()
    write_atomic(tmp_path / "link.json", lambda f: f.write("new"))
    assert target.read_text() == "new" and (tmp_path / "link.json").is_symlink()


@pytest.mark.parametrize("failure", ["full disk", "read-only folder"])
def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             failure: str) -> None:
    import tempfile

    import formocr.outputs

    out = tmp_path / "out.json"
    out.write_text("old\n")
    if failure == "full disk":
        def fsync(fd: int) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(formocr.outputs.os, "fsync", fsync)
        words = "No space left"
    else:
        def mkstemp(*a: Any, **k: Any) -> Any:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
        words = "Permission denied"
    with pytest.raises(OutputError, match=words) as info:
        write_atomic(out, lambda f: f.write("new\n"))
    assert info.value.exit_code == 7 and str(out) in info.value.one_line()
    assert out.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_cli_outputs_that_are_not_files_are_one_line_errors(tmp_path: Path, blank: Path) -> None:
    results = tmp_path / "r.jsonl"
    results.write_text(Record("a.png", "ab" * 32, "error", 0, 0.1, error=ErrorInfo("X", "a.png: x", 3)).to_line())
    (tmp_path / "afile").write_text("x")
    cases: list[tuple[str | Path, ...]] = [
        ("scan", blank, "-t", "auto", "-o", "/dev/full"),
        ("scan", blank, "-t", "auto", "-o", tmp_path / "afile" / "x.json"),
        ("scan", blank, "-t", "auto", "-o", "/proc/x.json"),
        ("scan", blank, "-t", "auto", "--debug-dir", tmp_path / "afile"),
        ("scan", blank, "-t", "auto", "--debug-dir", "/proc/debug"),
        ("export", "csv", results, "-o", "/dev/full"),
        ("batch", tmp_path, "-o", tmp_path / "b.jsonl", "--summary-json", "/dev/full"),
        ("batch", tmp_path, "-o", "/dev/full"),
    ]
    for args in cases:
        rc, out, err = cli(*args)
        assert rc == 7 and out == "", (args, rc, err)
        one_error_line(err)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode) and not (tmp_path / "b.jsonl").exists()


def test_full_stdout_is_one_line_and_exit_7(tmp_path: Path, blank: Path) -> None:
    """`formocr scan C > /dev/full` (and export): no traceback, no "Exception ignored" at exit."""
    results = tmp_path / "r.jsonl"
    results.write_text(Record("a.png", "ab" * 32, "error", 0, 0.1, error=ErrorInfo("X", "a.png: x", 3)).to_line())
    for args in (["scan", str(blank), "-t", "auto"], ["export", "csv", str(results)]):
        with open("/dev/full", "w") as full:
            r = subprocess.run([sys.executable, "-m", "formocr", *args], stdout=full, stderr=subprocess.PIPE,
                               text=True, env=ENV, timeout=120)
        assert r.returncode == 7, r.stderr
        one_error_line(r.stderr, "<stdout>", "No space left on device")


# --- 6, 7: config files ------------------------------------------------------------------------------------------


CONFIGS: dict[str, tuple[str, bytes, str]] = {
    "formocr not a table (JSON)": ("c.json", b'{"formocr": 5}', "formocr: expected a table"),
    "formocr not a table (TOML)": ("c.toml", b"formocr = [1, 2]\n", "formocr: expected a table"),
    "not UTF-8": ("c.json", b'{"binarizer": "\xff\xfe"}', "not UTF-8"),
    "100k deep": ("c.json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "100k deep TOML": ("c.toml", b"a = " + b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "huge integer": ("c.json", b'{"dpi": 1' + b"0" * 5000 + b"}", "not valid JSON"),
    "a list": ("c.json", b"[1, 2]", "a table/object of options"),
}


@pytest.mark.parametrize("label", list(CONFIGS))
def test_bad_config_files_are_config_errors(tmp_path: Path, label: str) -> None:
    name, data, words = CONFIGS[label]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ConfigError, match=words) as info:
        Options.from_file(path)
    assert info.value.exit_code == 7 and len(info.value.one_line()) < 300


def test_bad_config_file_on_the_cli(tmp_path: Path, blank: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    rc, out, err = cli("scan", blank, "--config", path)
    assert rc == 7 and out == ""
    one_error_line(err, str(path), "nested too deeply")


def test_options_use_tomli_on_python_3_10(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import tomllib

    fake = types.ModuleType("tomli")
    fake.loads = tomllib.loads  # type: ignore[attr-defined]
    fake.TOMLDecodeError = tomllib.TOMLDecodeError  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tomli", fake)
    spec = importlib.util.spec_from_file_location("options_on_310", ROOT / "formocr" / "options.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "options_on_310", module)  # dataclasses look their module up there
    with monkeypatch.context() as m:
        m.setattr(sys, "version_info", (3, 10, 14, "final", 0))
        spec.loader.exec_module(module)  # a copy: formocr.options itself stays as it is
    assert module.tomllib is fake
    (tmp_path / "c.toml").write_text("[formocr]\ndpi = 200\n")
    assert module.Options.from_file(tmp_path / "c.toml").dpi == 200
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.replace(" ", "").startswith("tomli") and 'python_version<"3.11"' in d.replace(" ", "")
               for d in deps)


# --- 8: templates ---------------------------------------------------------------------------------------------------


def _template(**change: Any) -> dict[str, Any]:
    t: dict[str, Any] = {"formocr_template": 1, "name": "t", "page": {"width_mm": 100, "height_mm": 50},
                         "fields": [{"name": "zip", "type": "postal_code", "box_mm": [10, 10, 40, 10]}]}
    for key, value in change.items():
        if key == "box":
            t["fields"][0]["box_mm"] = value
        elif key == "pattern":
            t["fields"][0]["constraints"] = {"pattern": value}
        elif key == "width":
            t["page"]["width_mm"] = value
        else:
            t[key] = value
    return t


TEMPLATES: dict[str, tuple[dict[str, Any], str]] = {
    "NaN in a box": (_template(box=[float("nan"), 10, 40, 10]), r"fields\[0\]\.box_mm: expected a finite number"),
    "Infinity in a box": (_template(box=[10, 10, float("inf"), 10]), r"fields\[0\]\.box_mm: expected a finite"),
    "1e308 page": (_template(width=1e308), r"page\.width_mm: at most"),
    "(( pattern": (_template(pattern="(("), r"fields\[0\]\.constraints\.pattern: not a valid regular expression"),
    "look-ahead pattern": (_template(pattern=r"\d{5}(?!0)"), r"fields\[0\]\.constraints\.pattern: .* cannot follow"),
    "huge repeat": (_template(pattern=r"((\d{64}){64}){64}"), r"constraints\.pattern: .*(too large|repeat)"),
    "too many fields": (_template(fields=[{"name": f"f{i}", "type": "digits", "box_mm": [1, 1, 5, 5]}
                                          for i in range(MAX_FIELDS + 1)]), rf"fields: at most {MAX_FIELDS}"),
}


@pytest.mark.parametrize("label", list(TEMPLATES))
def test_bad_templates_are_template_errors_naming_the_key(label: str) -> None:
    data, words = TEMPLATES[label]
    with pytest.raises(TemplateError, match=words):
        parse_template(data, "t.json")


def test_bad_template_files_on_the_cli(tmp_path: Path, blank: Path) -> None:
    nan = tmp_path / "nan.json"
    nan.write_text(json.dumps(_template(box=[float("nan"), 10, 40, 10])))  # json writes NaN, and reads it
    deep = tmp_path / "deep.json"
    deep.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(TemplateError, match="nested too deeply"):
        load_template(deep)
    for path, words in ((nan, "fields[0].box_mm"), (deep, "nested too deeply")):
        rc, _, err = cli("scan", blank, "--template", path)
        assert rc == 7
        one_error_line(err, str(path), words)


def test_a_custom_pattern_mismatch_is_not_called_a_cn_postal_code() -> None:
    from formocr.fields import interpret

    custom = interpret("postal_code", "1234", {"pattern": r"\d{5}"}).problems
    assert custom and not any("CN" in p for p in custom) and r"\d{5}" in custom[0]
    assert interpret("postal_code", "1234", {"country": "CN"}).problems == (
        "does not match the CN postal-code pattern",)
    assert parse_template(_template(pattern=r"\d{5}(-\d{4})?"), "t.json").fields[0].constraints


# --- 9: no permission to read ----------------------------------------------------------------------------------


def test_an_input_without_read_permission_is_exit_3(tmp_path: Path, blank: Path, monkeypatch: pytest.MonkeyPatch
                                                    ) -> None:
    import builtins

    import formocr.io

    def no_read(file: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(file) == blank:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return builtins.open(file, *args, **kwargs)

    monkeypatch.setattr(formocr.io, "open", no_read, raising=False)  # root may read anything: simulate chmod 000
    with pytest.raises(UnreadableInputError, match="permission denied"):
        list(load_pages(blank))
    rc, out, err = cli("scan", blank, "-t", "auto")
    assert rc == 3 and out == ""
    one_error_line(err, str(blank), "permission denied")


# --- 10: CSV header ----------------------------------------------------------------------------------------------


def test_csv_header_cells_get_the_formula_guard(tmp_path: Path) -> None:
    name = '=HYPERLINK("http://evil.example","click")'
    doc = {"source": "a.png", "pages": [{"page": 1, "fields": [{"name": name, "value": "=1+1", "needs_review": 0}]}]}
    results = tmp_path / "r.jsonl"
    results.write_text(Record("a.png", "ab" * 32, "ok", 1, 0.1, document=doc).to_line())
    export_csv(results, tmp_path / "out.csv")
    import csv

    header, row = list(csv.reader((tmp_path / "out.csv").open(newline="")))
    assert header[-1] == "'" + name and row[-1] == "'=1+1"


# --- 12: --timeout ------------------------------------------------------------------------------------------------


def _stand_in(job: Job, slot: int) -> Outcome:
    """A worker's work without a pipeline: 'slow' documents hang as a hostile one would."""
    mark_started(slot)
    if "slow" in job.source:
        time.sleep(120)
    doc = {"source": job.source, "pages": []}
    return Outcome.of(Record(job.source, job.sha256, "ok", 0, 0.0, document=doc))


def test_a_document_over_the_timeout_gets_a_timeout_record_and_the_batch_goes_on(tmp_path: Path) -> None:
    jobs = [Job(str(tmp_path), name, "00") for name in ("a.png", "slow.png", "b.png", "c.png")]
    t0 = time.monotonic()
    got = {job.source: Record.from_line(o.line) for job, o in run_local(iter(jobs), Options(), 2, timeout=1.0,
                                                                         work=_stand_in)}
    assert time.monotonic() - t0 < 60
    assert {s for s, r in got.items() if r.status == "ok"} == {"a.png", "b.png", "c.png"}
    err = got["slow.png"].error
    assert err is not None and err.type == "Timeout" and err.exit_code == Timeout.exit_code == 4
    assert err.message.startswith("slow.png: took longer than the 1 s time limit")
    with pytest.raises(ConfigError, match="timeout"):
        BatchConfig(tmp_path, tmp_path / "r.jsonl", timeout=0)
    with pytest.raises(ConfigError, match="local engine"):
        BatchConfig(tmp_path, tmp_path / "r.jsonl", timeout=5, engine="ray")
    rc, _, err = cli("batch", tmp_path, "-o", tmp_path / "r.jsonl", "--timeout", "5", "--engine", "ray")
    assert rc == 7 and "timeout: only with the local engine" in err  # the flag reaches the batch's config
    assert cli("batch", tmp_path, "-o", tmp_path / "r.jsonl", "--timeout", "0")[0] == 2  # click: out of range


# --- 13: a corpus of bad inputs through scan and batch ------------------------------------------------------------


def _image_bytes(fmt: str, height: int = 150, width: int = 200) -> bytes:
    """A good image in ``fmt``, noisy so that a cut loses pixel data rather than only trailing metadata."""
    import io

    buf = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (height, width), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, format=fmt, **({"compression": "raw"} if fmt == "TIFF" else {}))
    return buf.getvalue()


def _pdf(objects: list[bytes], trailer: bytes) -> bytes:
    """A PDF with a correct cross-reference table, so poppler judges the content, not the file structure."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R %s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, trailer, xref)
    return bytes(out)


def _encrypted_pdf() -> bytes:
    """A PDF behind the standard security handler whose empty user password is wrong: it needs a password."""
    page = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
            b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P -4 >>" % (b"ab" * 32, b"cd" * 32)]
    return _pdf(page, b"/Encrypt 4 0 R /ID [<%s> <%s>]" % (b"01" * 16, b"01" * 16))


def _bad_corpus(folder: Path) -> tuple[list[Path], list[Path]]:
    """Bad inputs of every kind a user can hand `formocr scan`, made here: (files a batch walk finds, the others).

    Directories and link loops are in the second list: a batch walk passes them over (loops with a warning), so
    they get no record there, but `scan` is handed them and must say why it cannot read them.
    """
    rng = np.random.default_rng(44)
    found: dict[str, bytes] = {}
    for ext in ("png", "jpg", "tif", "bmp", "pdf"):
        found[f"empty.{ext}"] = b""
        found[f"text.{ext}"] = b"Dear customer,\nplease find the form attached.\n"
        found[f"random.{ext}"] = rng.bytes(3000)
    good = {"png": _image_bytes("PNG"), "jpg": _image_bytes("JPEG"), "tif": _image_bytes("TIFF"),
            "bmp": _image_bytes("BMP")}
    pdf_buf = Path(folder / "_good.pdf")
    Image.fromarray(np.full((300, 200), 255, np.uint8)).save(pdf_buf, resolution=100.0)
    good["pdf"] = pdf_buf.read_bytes()
    pdf_buf.unlink()
    for ext, data in good.items():
        for cut in (16, len(data) // 4, len(data) // 2):
            found[f"cut{cut}.{ext}"] = data[:cut]
        found[f"garbage.{ext}"] = data[:16] + rng.bytes(4000)  # the right magic number, then noise
    found.update({
        "header_then_garbage.pdf": b"%PDF-1.7\n" + rng.bytes(5000),
        "header_only.pdf": b"%PDF-1.4\n",
        "eof_only.pdf": b"%PDF-1.4\n%%EOF\n",
        "no_pages.pdf": _pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"], b""),
        "encrypted.pdf": _encrypted_pdf(),
        "html.pdf": b"<!DOCTYPE html><html><body>404 Not Found</body></html>\n",
        "zip.pdf": b"PK\x03\x04" + rng.bytes(500),
        "png_signature_only.png": b"\x89PNG\r\n\x1a\n",
        "jpeg_soi_eoi.jpg": b"\xff\xd8\xff\xd9",
        "tiff_header_only.tiff": b"II*\x00\x08\x00\x00\x00",
        "bmp_header_only.dib": b"BM" + b"\x00" * 12,
        "text.jpeg": b"hello\n",
        "text.jpe": b"hello\n",
        "nul.png": b"\x00" * 4096,
        "utf16.pdf": "%PDF-1.4 in UTF-16".encode("utf-16"),
    })
    for name, data in found.items():
        (folder / name).write_bytes(data)
    for name, shape, fmt in (("1x1.png", (1, 1), "PNG"), ("5x5.png", (5, 5), "PNG"), ("3000x3.png", (3, 3000), "PNG"),
                             ("3x3000.png", (3000, 3), "PNG"), ("5x5.jpg", (5, 5), "JPEG"),
                             ("1x1.bmp", (1, 1), "BMP"), ("3000x3.tif", (3, 3000), "TIFF")):  # names: width×height
        Image.fromarray(np.full(shape, 255, np.uint8)).save(folder / name, format=fmt)
    os.symlink("missing.png", folder / "dangling.png")
    walked = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".jpe", ".tif",
                                                                          ".tiff", ".bmp", ".dib", ".pdf"})
    (folder / "folder.png").mkdir()
    (folder / "notes.txt").write_text("not a document\n")
    os.symlink("self.png", folder / "self.png")
    os.symlink("b.pdf", folder / "a.pdf")
    os.symlink("a.pdf", folder / "b.pdf")
    others = [folder / n for n in ("folder.png", "notes.txt", "self.png", "a.pdf", "b.pdf")]
    return walked, others


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("formocr: error: ")]


def test_a_corpus_of_bad_inputs_through_scan_and_batch(tmp_path: Path) -> None:
    """One scan of every bad file with good pages around them, then a batch of the folder: the good ones are
    read, each bad one is one line naming it, exit 8 (several inputs with failures), never a traceback."""
    folder = tmp_path / "in"
    folder.mkdir()
    walked, others = _bad_corpus(folder)
    bad = walked + others
    assert len(bad) >= 60
    good = [png(tmp_path / "good1.png", 400, 300), png(tmp_path / "good2.png", 300, 400)]
    Image.fromarray(np.full((400, 300), 255, np.uint8)).save(tmp_path / "good3.jpg")
    good.append(tmp_path / "good3.jpg")
    inputs = [good[0], *bad[: len(bad) // 2], good[1], *bad[len(bad) // 2:], good[2]]

    out = tmp_path / "out.jsonl"
    rc, stdout, err = cli("scan", *inputs, "-t", "auto", "-o", out)
    assert "Traceback" not in stdout + err and stdout == ""
    lines = _error_lines(err)
    assert len(lines) == len(bad) == len(err.splitlines()), err
    for path in bad:
        assert sum(line.startswith(f"formocr: error: {path}: ") for line in lines) == 1, (path, err)
    assert rc == 8
    assert [json.loads(line)["source"] for line in out.read_text().splitlines()] == [str(p) for p in good]

    results = tmp_path / "results.jsonl"
    rc, stdout, err = cli("batch", folder, "-o", results, "-t", "auto", "-w", "1", "--no-progress")
    assert "Traceback" not in stdout + err and rc == 8, err
    records = [Record.from_line(line) for line in results.read_text().splitlines()]
    names = [p.name for p in walked]
    assert sorted(r.source for r in records) == sorted(names)  # every file got a record, and one only
    assert all(r.status == "error" and r.error is not None for r in records)
    lines = _error_lines(err)
    assert len(lines) == len(names), err
    for name in names:
        assert sum(line.startswith(f"formocr: error: {name}: ") for line in lines) == 1, (name, err)


# 14. Model files: a bad card or header is a ModelError naming the file, found before any network is built ---------


def _tiny_digit_model(path: Path, **meta_changes: object) -> Path:
    import torch

    from formocr.normalize import DEFAULT_SPEC
    from formocr.recognize.digits import ARCH, DigitNet
    from formocr.recognize.modelfile import save_model

    torch.manual_seed(0)
    meta: dict[str, object] = {"arch": ARCH, "widths": [4, 8, 8, 8, 16], "norm": DEFAULT_SPEC.to_dict(),
                               "classes": [str(i) for i in range(10)], "temperature": 1.0}
    meta.update(meta_changes)
    return save_model(path, DigitNet((4, 8, 8, 8, 16)).state_dict(), meta, {"name": path.stem})


def test_bad_model_cards_and_headers_are_model_errors(tmp_path: Path) -> None:
    import json
    import time

    import torch
    from safetensors.torch import save_file

    from formocr.errors import ModelError
    from formocr.recognize.digits import DigitClassifier
    from formocr.recognize.modelfile import card_path, load_model, sha256_file

    good = _tiny_digit_model(tmp_path / "good.safetensors")
    assert DigitClassifier.load(good).classes[-1] == "9"
    cases: dict[str, tuple[Path, str]] = {}
    for name, text in (("list", "[]"), ("deep", "[" * 100_000 + "]" * 100_000)):
        p = _tiny_digit_model(tmp_path / f"card-{name}.safetensors")
        card_path(p).write_text(text)
        cases[f"card {name}"] = (p, "model card")
    p = _tiny_digit_model(tmp_path / "card-latin1.safetensors")
    card_path(p).write_bytes(b'{"name": "\xe9"}')
    cases["card not UTF-8"] = (p, "model card unreadable")
    cases["widths of 3"] = (_tiny_digit_model(tmp_path / "w3.safetensors", widths=[4, 8, 8]), "widths")
    cases["huge widths"] = (_tiny_digit_model(tmp_path / "wh.safetensors", widths=[16, 32, 48, 10000, 5000]),
                            "widths")
    cases["std 0"] = (_tiny_digit_model(tmp_path / "std.safetensors", norm={"mean": 0.1, "std": 0.0}), "norm")
    cases["temperature NaN"] = (_tiny_digit_model(tmp_path / "t.safetensors", temperature=float("nan")),
                                "temperature")
    listed = tmp_path / "meta-list.safetensors"  # the header's settings a JSON list
    save_file({"w": torch.zeros(2)}, str(listed), metadata={"formocr": "[1, 2]"})
    card_path(listed).write_text(json.dumps({"sha256": sha256_file(listed)}))
    cases["header a list"] = (listed, "not a JSON object")
    nan = tmp_path / "nan.safetensors"
    state = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
             for k, v in load_model(good).state.items()}
    save_file(state, str(nan), metadata={"formocr": json.dumps(load_model(good).meta)})
    card_path(nan).write_text(json.dumps({"sha256": sha256_file(nan)}))
    cases["NaN weights"] = (nan, "NaN")
    for what, (path, words) in cases.items():
        t0 = time.perf_counter()
        with pytest.raises(ModelError) as e:
            DigitClassifier.load(path)
        assert words in str(e.value) and path.stem in str(e.value) and "\n" not in str(e.value), what
        assert time.perf_counter() - t0 < 2.0, f"{what}: refused only after building the network"
