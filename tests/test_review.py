"""The review page: the queue, the corrections file, the server's gate, and a clerk driving it in a real browser."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from formocr.batch import export_csv
from formocr.batch.runner import BatchConfig, run_batch
from formocr.errors import ResultsFileError
from formocr.options import Options
from formocr.review.corrections import Correction, Corrections, corrections_path, read_corrections
from formocr.review.queue import check_value, load_queue

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
ODD_NAME = "<b>cheque&amp;.pdf"  # a document name a page must show as text, never as markup


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(input folder, batch results) of two cheques and the numeric form, read with a review threshold of 1, so
    that every field short of certainty needs review, however the shipped calibration rates the samples."""
    base = tmp_path_factory.mktemp("review")
    folder = base / "scans"
    folder.mkdir()
    shutil.copy(SAMPLES / "cheque.pdf", folder / "cheque.pdf")
    shutil.copy(SAMPLES / "cheque.pdf", folder / ODD_NAME)
    shutil.copy(SAMPLES / "numeric_form.pdf", folder / "numeric_form.pdf")
    out = base / "out" / "results.jsonl"
    run_batch(BatchConfig(folder, out, workers=1), Options(review_threshold=1.0))
    return folder, out


@pytest.fixture()
def results(batch: tuple[Path, Path], tmp_path: Path) -> Path:
    """A fresh copy of the batch results (no corrections yet), the documents where the batch read them."""
    out = tmp_path / "results.jsonl"
    shutil.copy(batch[1], out)
    return out


def test_queue_lists_the_fields_needing_review_in_document_order(batch: tuple[Path, Path], results: Path) -> None:
    items = load_queue(results, batch[0])
    assert len(items) > 10 and [it.index for it in items] == list(range(len(items)))
    assert [it.source for it in items] == sorted(it.source for it in items)  # the batch's order: by source
    cheque = [it for it in items if it.source == "cheque.pdf"]
    assert [it.field for it in cheque] == ["date", "amount", "account"]
    date = cheque[0]
    assert date.path == batch[0] / "cheque.pdf" and date.type == "date" and date.comb
    assert date.alternatives[0] == date.value == "03/11/2026" and any("below" in w for w in date.why)
    assert "path" not in json.dumps(date.public())  # the page never learns where files lie


def test_a_typed_value_is_checked_against_the_field(batch: tuple[Path, Path], results: Path) -> None:
    items = {(it.source, it.field): it for it in load_queue(results, batch[0])}
    date, amount = items["cheque.pdf", "date"], items["cheque.pdf", "amount"]
    assert check_value(date, "03/11/2026") == ("03/11/2026", None)
    assert check_value(date, "03112026") == ("03/11/2026", None)
    assert check_value(date, "31/02/2026") == (None, "not a valid calendar date")
    assert check_value(amount, "1,250.00") == ("1250.00", None)
    assert check_value(amount, "12a")[1] == "not allowed here: 'a'"
    assert check_value(amount, " ")[1] and check_value(amount, "1" * 80)[1]
    assert check_value(amount, "１.２５") == ("1.25", None)  # full-width digits from an input method
    assert check_value(amount, "٠١")[1] == "not allowed here: '٠' '١'"  # digits of another script: not these
    assert check_value(date, "1/1/5")[1] == "write the year with 4 digits"
    assert check_value(items["cheque.pdf", "account"], "12-34")[1] == "not allowed here: '-'"


def test_corrections_are_durable_lines_the_last_wins_and_one_reviewer_at_a_time(results: Path) -> None:
    with Corrections(results) as c:
        c.append(Correction("a.pdf", 1, "amount", "keyed", "12.00", "13.00", 1.0, 2.5))
        c.append(Correction("a.pdf", 1, "date", "skipped", None, None, 2.0, 1.0))
        with pytest.raises(ResultsFileError, match="another formocr review"):
            Corrections(results).open()
    path = corrections_path(results)
    with path.open("ab") as f:  # a kill in the middle of a write
        f.write(b'{"formocr_correction":1,"source":"a.pdf","page":1,"fie')
    assert set(read_corrections(results)) == {("a.pdf", 1, "amount"), ("a.pdf", 1, "date")}
    with Corrections(results) as c:  # reopened: the torn line is cut, then the clerk changes their mind
        assert c.latest["a.pdf", 1, "amount"].value == "12.00"
        c.append(Correction("a.pdf", 1, "amount", "keyed", "14.00", "13.00", 3.0, 1.0))
    assert path.read_bytes().count(b"\n") == 3 and path.read_bytes().endswith(b"\n")
    assert read_corrections(results)["a.pdf", 1, "amount"].value == "14.00"
    path.write_text("not a correction\n")
    with pytest.raises(ResultsFileError, match="line 1 is not a formocr correction"):
        Corrections(results).open()
    assert path.read_text() == "not a correction\n"  # refused, and left as it was


def test_the_server_needs_the_token_and_serves_only_items(batch: tuple[Path, Path], results: Path) -> None:
    from starlette.testclient import TestClient

    from formocr.review.server import ReviewSession, make_app

    with (results.parent / "stray").open("w"):
        pass
    (results.parent / ODD_NAME).write_bytes(b"%PDF-1.4 not the scanned document")  # shadows nothing: wrong sha
    session = ReviewSession.open(results, batch[0])
    assert session.items[0].path == batch[0] / ODD_NAME
    try:
        client = TestClient(make_app(session), base_url="http://127.0.0.1")
        t = session.token
        for url in ("/", "/api/state", "/api/crop/0", "/review.js"):
            assert client.get(url).status_code == 403
            assert client.get(url + "?token=" + t[:-1] + "x").status_code == 403
            assert client.get(url, headers={"X-Formocr-Token": "nope"}).status_code == 403
        assert client.post("/api/answer", json={"index": 0, "action": "keyed", "value": "1"}).status_code == 403
        assert not corrections_path(results).read_bytes()  # nothing written without the token
        other = TestClient(make_app(session), base_url="http://evil.example")  # DNS rebinding
        assert other.get("/api/state?token=" + t).status_code == 400
        ok = {"X-Formocr-Token": t}
        page = client.get("/?token=" + t)
        assert page.status_code == 200 and "default-src 'none'" in page.headers["content-security-policy"]
        assert ODD_NAME not in page.text  # names reach the page as JSON data only, shown through textContent
        png = client.get("/api/crop/0", headers=ok)
        assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
        for bad in ("/api/crop/99999", "/api/crop/-1", "/api/crop/..%2F..%2Fetc%2Fpasswd", "/api/crop/0/../../x",
                    "/../../etc/passwd", "/static/../server.py"):
            assert client.get(bad, headers=ok).status_code == 404, bad
        r = client.post("/api/answer", headers=ok, json={"index": 0, "action": "keyed", "value": "31/02/2026"})
        assert r.status_code == 422 and r.json()["error"] == "not a valid calendar date"
        assert client.post("/api/answer", headers=ok, json={"index": 0, "action": "drop"}).status_code == 400
        assert client.post("/api/answer", headers=ok, content=b"{").status_code == 400
        r = client.post("/api/answer", headers=ok, content=b'{"index": Infinity, "action": "keyed"}')
        assert r.status_code == 400
        r = client.post("/api/answer", headers=ok, json={"index": 0, "action": "keyed", "value": "03112026"})
        assert r.status_code == 200 and r.json()["answer"] == {"action": "keyed", "value": "03/11/2026"}
        # a second page that still shows the field unanswered: refused, nothing written over the first answer
        r = client.post("/api/answer", headers=ok, json={"index": 0, "action": "skipped", "seen": None})
        assert r.status_code == 409 and r.json()["answer"]["value"] == "03/11/2026"
        state = client.get("/api/state", headers=ok).json()
        assert state["items"][0]["answer"]["value"] == "03/11/2026" and "path" not in json.dumps(state)
    finally:
        session.close()


def test_export_and_eval_take_the_answers(batch: tuple[Path, Path], results: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from formocr.cli import main
    from formocr.review.dataset import export_corrections

    sha = next(it.sha256 for it in load_queue(results, batch[0]) if it.source == "cheque.pdf")
    assert sha is not None
    with Corrections(results) as c:
        c.append(Correction("cheque.pdf", 1, "amount", "keyed", "99.00", "1250.00", 1.0, 1.0, sha))
        c.append(Correction("cheque.pdf", 1, "account", "illegible", None, "x", 1.0, 1.0, sha))
        c.append(Correction("cheque.pdf", 1, "date", "skipped", None, None, 1.0, 1.0, sha))
        # an answer for another version of the document (since changed and read again) is not this one's
        c.append(Correction("numeric_form.pdf", 1, "f01", "keyed", "1", "x", 1.0, 1.0, "0" * 64))
    export_csv(results, tmp_path / "out.csv")
    row = next(r for r in csv.DictReader((tmp_path / "out.csv").open(newline="")) if r["source"] == "cheque.pdf")
    assert (row["amount"], row["account"], row["date"]) == ("99.00", "", "03/11/2026")
    assert row["keyed"] == "amount;account" and "date" in row["needs_review"].split(";")
    assert "amount" not in row["needs_review"].split(";")
    form = next(r for r in csv.DictReader((tmp_path / "out.csv").open(newline="")) if r["source"] == "numeric_form.pdf")
    assert form["keyed"] == "" and form["f01"] != "1"
    truth = tmp_path / "truth.csv"
    truth.write_text("source,page,field,value\ncheque.pdf,1,amount,99.00\ncheque.pdf,1,date,03/11/2026\n")
    r = CliRunner().invoke(main, ["eval", "results", str(results), "--truth", str(truth), "--json"])
    report = json.loads(r.stdout)
    assert report["all"]["keyed"] == 1 and report["all"]["final_right"] == 2 and report["all"]["right"] == 1
    n = export_corrections(results, tmp_path / "data", batch[0])
    rows = list(csv.DictReader((tmp_path / "data" / "labels.csv").open(newline="")))
    assert n == 1 and rows[0]["value"] == "99.00" and rows[0]["read"] == "1250.00"
    assert (tmp_path / "data" / rows[0]["file"]).read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(Exception, match="already holds a data set"):
        export_corrections(results, tmp_path / "data", batch[0])


# ------------------------------------------------------------------------------------------------ in a browser

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="chromium and chromium-driver not installed")


def _serve(results: Path, root: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "formocr", "review", str(results), "--root", str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:") and "token=" in url, proc.stderr.read() if proc.stderr else ""
    return proc, url


@pytest.fixture()
def browser() -> Iterator[object]:
    from selenium import webdriver

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1000,900"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=str(DRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


@needs_browser
def test_a_clerk_settles_every_field_by_keyboard_and_a_kill_loses_nothing(
        batch: tuple[Path, Path], results: Path, browser: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    driver: object = browser
    items = load_queue(results, batch[0])
    d = driver  # type: ignore[assignment]
    wait = WebDriverWait(d, 10)

    def on(index: int) -> None:  # the screen shows item ``index`` (its field name and document)
        it = items[index]
        wait.until(lambda _: d.find_element(By.ID, "name").text == it.field
                   and d.find_element(By.ID, "source").text == it.source)

    def key(*keys: str) -> None:
        box = d.find_element(By.ID, "value")
        box.send_keys(*keys)

    def typed(value: str) -> None:
        key(Keys.CONTROL, "a")
        key(value, Keys.ENTER)

    proc, url = _serve(results, batch[0])
    try:
        d.get(url)
        on(0)
        assert d.find_element(By.ID, "source").text == items[0].source == ODD_NAME  # shown as text
        t0 = time.perf_counter()
        typed("31/02/2026")  # not a date: refused on the spot, the screen stays
        wait.until(lambda _: d.find_element(By.ID, "error").text == "not a valid calendar date")
        typed("03/11/2026")
        on(1)
        typed("1,250.00")
        on(2)
        key(Keys.ARROW_DOWN, Keys.ARROW_UP, Keys.ENTER)  # the candidates come round to the reading itself
        on(3)
        key(Keys.ESCAPE)  # skipped for now
        on(4)
        seconds = (time.perf_counter() - t0) / 4
    finally:
        proc.send_signal(signal.SIGKILL)  # no goodbye: answers must already be on disk
        proc.wait()
    answers = read_corrections(results)
    assert [answers[it.key].action for it in items[:4]] == ["keyed", "keyed", "keyed", "skipped"]
    assert answers[items[1].key].value == "1250.00"

    proc, url = _serve(results, batch[0])  # restarted: the review resumes where it stopped
    try:
        d.get(url)
        on(4)
        assert d.find_element(By.ID, "progress").text.startswith(f"field 4 of {len(items)}")
        for it in items[4:]:
            on(it.index)
            if it.value:
                key(Keys.ENTER)  # the reading is right: confirm it
            else:
                key(Keys.SHIFT, Keys.ENTER)  # nothing legible there
        wait.until(lambda _: d.find_element(By.ID, "summary").is_displayed())
        d.find_element(By.TAG_NAME, "body").send_keys("r")  # the skipped field, once more
        on(3)
        typed("03/11/2026")
        wait.until(lambda _: d.find_element(By.ID, "summary").is_displayed())
        cells = [td.text for td in d.find_elements(By.CSS_SELECTOR, "#totals td")]
        assert cells[:5] == [ODD_NAME, "3", "0", "0", "0"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
    answers = read_corrections(results)
    assert all(it.key in answers and answers[it.key].action != "skipped" for it in items)
    assert answers[items[3].key].value == "03/11/2026"
    out = results.with_suffix(".csv")
    export_csv(results, out)
    rows = {r["source"]: r for r in csv.DictReader(out.open(newline=""))}
    assert [rows[s][f] for s in (ODD_NAME, "cheque.pdf") for f in ("date", "amount", "account")] == [
        "03/11/2026", "1250.00", "4027153968"] * 2
    assert rows[ODD_NAME]["needs_review"] == "" and rows[ODD_NAME]["keyed"] == "date;amount;account"
    print(f"\nscripted reviewer: {seconds:.2f} s a field (type, refuse, retype, pick, skip)", file=sys.stderr)
    assert seconds < 5
    assert os.path.getsize(corrections_path(results)) > 0


def test_a_changed_document_is_not_shown_and_a_broken_results_file_is_one_error(
        batch: tuple[Path, Path], results: Path) -> None:
    from formocr.errors import ConfigError

    (results.parent / "cheque.pdf").write_bytes(b"%PDF-1.4 another document under the same name")
    items = [it for it in load_queue(results) if it.source == "cheque.pdf"]  # no --root: found beside the results
    assert items and all(it.path is None for it in items)  # its sha256 is not the one read: no picture
    line = json.loads(results.read_text().splitlines()[0])
    line["document"]["pages"][0]["fields"][0]["box"] = [1, 2, 3]
    line["document"]["pages"][0]["fields"][0]["needs_review"] = True
    results.write_text(json.dumps(line) + "\n")
    with pytest.raises(ConfigError, match=r"line 1: the document .* is not as formocr writes it"):
        load_queue(results)


def test_nothing_to_review_is_said_and_no_server_starts(results: Path) -> None:
    from click.testing import CliRunner

    from formocr.cli import main

    line = json.loads(results.read_text().splitlines()[0])
    for pg in line["document"]["pages"]:
        for f in pg["fields"]:
            f["needs_review"] = False
    results.write_text(json.dumps(line) + "\n")
    r = CliRunner().invoke(main, ["review", str(results)])
    assert r.exit_code == 0 and "no field of" in r.stderr and r.stdout == ""
