"""Reading what :mod:`formocr.score` compares: keyed values, and formocr's results.

Truth is a CSV with a header naming ``source``, ``field`` and ``value`` (and ``page``, 1 when absent or blank), or
formocr's own ``*.truth.json`` (the samples' format), or a folder of them. Results are what ``formocr scan``
prints (one JSON document, or JSON Lines of documents) or a ``formocr batch`` results file. Every file problem is a
one-line error naming the file.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from formocr.batch.record import Record
from formocr.errors import ConfigError, EmptyInputError, UnreadableInputError

__all__ = ["FieldRead", "ResultDocument", "ResultPage", "TruthField", "iter_documents", "load_results", "load_truth"]


log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TruthField:
    """One keyed value: the document (as named in the results or by a path ending in it), page, field."""

    source: str
    page: int
    field: str
    value: str


def _read_text(path: Path) -> str:
    with _open_text(path) as f:
        try:
            return f.read()
        except UnicodeDecodeError:
            raise ConfigError("not UTF-8 text", path) from None


def _open_text(path: Path) -> TextIO:
    """The file opened as UTF-8 text (a spreadsheet's byte-order mark skipped), or a one-line error naming it:
    missing, a folder, not readable, or empty."""
    try:
        with path.open("rb") as f:
            head = f.read(1 << 16)
        text = path.open(encoding="utf-8-sig")
    except IsADirectoryError:
        raise UnreadableInputError("is a directory, not a file", path) from None
    except FileNotFoundError:
        raise UnreadableInputError("no such file", path) from None
    except PermissionError:
        raise UnreadableInputError("permission denied", path) from None
    except OSError as e:
        raise UnreadableInputError(e.strerror or str(e), path) from None
    if not head.strip() and len(head) < 1 << 16:
        text.close()
        raise EmptyInputError("empty file", path)
    return text


def load_truth(paths: Sequence[str | Path]) -> list[TruthField]:
    """Keyed values from CSV or formocr truth JSON files (a folder: its ``*.truth.json`` and ``*.csv`` files); a
    (source, page, field) given twice is an error."""
    out: list[TruthField] = []
    seen: dict[tuple[str, int, str], Path] = {}
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.truth.json")) + sorted(p.glob("*.csv"))
            if not found:
                raise EmptyInputError("a folder without *.truth.json or *.csv files", p)
            files += found
        else:
            files.append(p)
    for p in files:
        text = _read_text(p)
        rows = _truth_json(text, p) if text.lstrip().startswith("{") else _truth_csv(text, p)
        for t in rows:
            key = (t.source, t.page, t.field)
            if key in seen:
                raise ConfigError(f"field {t.field!r} of {t.source} page {t.page} is given twice "
                                  f"(also in {seen[key]})", p)
            seen[key] = p
            out.append(t)
    if not out:
        raise EmptyInputError("no keyed values in the truth", paths[0] if paths else "truth")
    return out


def _truth_csv(text: str, path: Path) -> list[TruthField]:
    lines = text.lstrip().splitlines()
    # a spreadsheet set to another locale writes ";" (or tabs) between columns
    delimiter = max(",;\t", key=lambda d: lines[0].count(d))
    reader = csv.DictReader(lines, delimiter=delimiter)
    cols = {c.strip().lower(): c for c in reader.fieldnames or []}
    missing = [c for c in ("source", "field", "value") if c not in cols]
    if missing:
        raise ConfigError(f"truth CSV: the header must name source, field and value (and page); "
                          f"missing {', '.join(missing)}", path)
    out = []
    for line, row in enumerate(reader, start=2):
        get = {k: (row.get(c) or "").strip() for k, c in cols.items()}
        if not any(get.values()):
            continue
        page = get.get("page") or "1"
        if not page.isdigit() or int(page) < 1:
            raise ConfigError(f"truth CSV line {line}: page must be a number from 1, got {page!r}", path)
        if not get["source"] or not get["field"]:
            raise ConfigError(f"truth CSV line {line}: source and field must not be empty", path)
        out.append(TruthField(get["source"], int(page), get["field"], get["value"]))
    return out


def _truth_json(text: str, path: Path) -> list[TruthField]:
    try:
        d = json.loads(text)
        source = str(d["source"])
        return [TruthField(source, int(pg["page"]), str(name), str(value))
                for pg in d["pages"] for name, value in pg["fields"].items()]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        detail = e.msg if isinstance(e, json.JSONDecodeError) else f"{type(e).__name__}: {e}"
        raise ConfigError(f"not a formocr truth file ({{source, pages: [{{page, fields}}]}}): {detail}",
                          path) from None


@dataclass(frozen=True, slots=True)
class FieldRead:
    """What scoring needs of one field of the results (a whole scan document is far larger: batch results of
    thousands of documents are read into these, not kept as JSON)."""

    value: str | None
    normalized: str | None
    confidence: float
    needs_review: bool
    min_char_p: float
    readings: dict[str, str]  # reader → its raw text
    keyed: str | None = None  # what a clerk keyed in review ("" for illegible / not filled); None: not reviewed


@dataclass(frozen=True, slots=True)
class ResultPage:
    fields: dict[str, FieldRead]
    error: str | None = None  # the page could not be read (registration), so it has no fields


@dataclass(frozen=True, slots=True)
class ResultDocument:
    """One document of the results: its pages, or why it failed."""

    source: str
    pages: dict[int, ResultPage] | None
    error: str | None = None

    @classmethod
    def parse(cls, document: dict[str, Any]) -> ResultDocument:
        """A scan JSON document; raises TypeError, ValueError or AttributeError when it is not as formocr writes."""
        pages: dict[int, ResultPage] = {}
        for pg in document["pages"]:
            if pg.get("error"):
                pages[int(pg.get("page", 0))] = ResultPage({}, str(pg["error"].get("message", "")))
                continue
            fields: dict[str, FieldRead] = {}
            for f in pg.get("fields") or []:
                fields.setdefault(str(f["name"]), FieldRead(
                    value=None if f.get("value") is None else str(f["value"]),
                    normalized=None if f.get("normalized") is None else str(f["normalized"]),
                    confidence=float(f.get("confidence") or 0.0), needs_review=bool(f.get("needs_review")),
                    # a calibrated field's least sure character is weighed in its confidence, never a rule of its own
                    min_char_p=1.0 if (f.get("readings") or {}).get("calibrated") else
                    min((float(c.get("p", 0.0)) for c in f.get("chars") or []), default=1.0),
                    readings={str(k): str(v["raw"]) for k, v in (f.get("readings") or {}).items()
                              if isinstance(v, dict) and "raw" in v}))
            pages[int(pg.get("page", 0))] = ResultPage(fields)
        return cls(str(document.get("source")), pages)


def load_results(paths: Sequence[str | Path]) -> dict[str, ResultDocument]:
    """Documents by source from scan output (JSON or JSON Lines) and batch results files; the last line of a
    source wins, as in a batch results file. A last line cut short (a run still writing, or killed: no newline,
    not JSON) is left out. JSON Lines are read a line at a time, so a batch file of any size fits in memory.
    What clerks keyed in ``formocr review`` (the corrections file beside each results file) rides along on its
    fields as ``keyed``."""
    from formocr.review.corrections import read_corrections

    docs: dict[str, ResultDocument] = {}
    for p in map(Path, paths):
        answers = read_corrections(p)
        for doc, sha in _documents(p):
            docs[doc.source] = _with_answers(doc, sha, answers) if answers else doc
    if not docs:
        raise EmptyInputError("no documents in the results", paths[0] if paths else "results")
    return docs


def _with_answers(doc: ResultDocument, sha256: str | None, answers: dict[tuple[str, int, str], Any]
                  ) -> ResultDocument:
    if doc.pages is None:
        return doc
    pages = {}
    for number, page in doc.pages.items():
        fields = {}
        for name, f in page.fields.items():
            a = answers.get((doc.source, number, name))
            if a is not None and a.action in ("keyed", "illegible") and a.sha256 == sha256:  # this very document
                f = replace(f, keyed=a.value or "")
            fields[name] = f
        pages[number] = ResultPage(fields, page.error)
    return ResultDocument(doc.source, pages, doc.error)


def _documents(path: Path) -> Iterable[tuple[ResultDocument, str | None]]:
    for n, source, document, error, sha in iter_documents(path):
        if document is None:
            yield ResultDocument(source, None, error), sha
            continue
        try:
            doc = ResultDocument.parse(document)
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"line {n}: the document {document.get('source')!r} is not as formocr writes it "
                              f"({type(e).__name__}: {e})", path) from None
        yield ResultDocument(source, doc.pages), sha


def iter_documents(path: str | Path) -> Iterable[tuple[int, str, dict[str, Any] | None, str | None, str | None]]:
    """(line, source, scan document or None, error or None, the document's sha256 where a batch recorded it) for
    each document of scan output (JSON or JSON Lines) or a batch results file, in file order; a batch record's
    source is its key (relative to the batch's folder)."""
    p = Path(path)
    try:
        yield from _documents_of(p)
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text; give what formocr scan or batch wrote", p) from None


def _documents_of(path: Path) -> Iterable[tuple[int, str, dict[str, Any] | None, str | None, str | None]]:
    with _open_text(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                if n == 1:  # one document printed over many lines (formocr scan's own output)
                    yield _source_document(_json_line(line + f.read(), 1, path), 1, path)
                    return
                if not line.endswith("\n"):  # only the last line can end without one
                    log.warning("%s: the last line is cut short (a run still writing, or killed); left out", path)
                    return
                item = _json_line(line, n, path)  # raises, naming the line
            yield _source_document(item, n, path)


def _json_line(line: str, n: int, path: Path) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise ConfigError(f"line {n} is not JSON ({e.msg}); give what formocr scan or batch wrote", path) from None


def _source_document(item: Any, n: int, path: Path
                     ) -> tuple[int, str, dict[str, Any] | None, str | None, str | None]:
    if isinstance(item, dict) and "formocr_batch" in item:
        try:
            rec = Record.from_dict(item)
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"line {n} is not a formocr batch record ({e})", path) from None
        if rec.error is not None:
            return n, rec.source, None, f"{rec.error.type}: {rec.error.message}", rec.sha256
        document: Any = rec.document
        source: str | None = rec.source
        sha: str | None = rec.sha256
    else:
        document, source, sha = item, None, None
    if not (isinstance(document, dict) and "formocr" in document and isinstance(document.get("pages"), list)):
        raise ConfigError(f"line {n} is neither a formocr document nor a batch record", path)
    return n, (source if source is not None else str(document.get("source"))), document, None, sha
