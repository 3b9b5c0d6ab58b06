"""CSV export of a results file: one row per document, one column per field, for spreadsheet users.

The results file is read three times rather than held in memory (it can be large): once to find each source's
last record, once to learn the field columns, once to write the rows, sorted by source. The CSV is written to a
temporary file and renamed (:func:`formocr.outputs.write_atomic`), so a reader never sees half of it, and only
over a regular file. Every cell, the header's field names included (a template names its fields), gets the
formula-injection guard.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from formocr.batch.record import Record, field_columns
from formocr.batch.results import has_torn_tail, iter_records
from formocr.errors import ResultsFileError
from formocr.outputs import write_atomic

log = logging.getLogger("formocr.batch")

FIXED_COLUMNS = ("source", "sha256", "status", "pages", "needs_review", "keyed", "error")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection): such text gets a leading quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _read_at(f: Any, offset: int) -> Record:
    f.seek(offset)
    return Record.from_line(f.readline())


def _index(src: Path) -> dict[str, int]:
    if src.is_dir():
        raise ResultsFileError("is a folder, not a results file", src)
    if not src.is_file():
        raise ResultsFileError("no such results file", src)
    offsets: dict[str, int] = {}
    try:
        for _, offset, rec in iter_records(src):
            offsets[rec.source] = offset  # the last record of a source wins
        if has_torn_tail(src):  # iter_records passes over it: say so
            log.warning("%s: its last line was cut short (a run stopped while writing it) and is left out; "
                        "rerun the batch to redo that document", src)
    except OSError as e:
        raise ResultsFileError(f"cannot read the results file ({e.strerror or e})", src) from None
    return offsets


@contextmanager
def _open_results(src: Path) -> Iterator[BinaryIO]:
    """The results file open for reading; failing to open it is a ResultsFileError, not a write error."""
    try:
        f = src.open("rb")
    except OSError as e:
        raise ResultsFileError(f"cannot read the results file ({e.strerror or e})", src) from None
    with f:
        yield f


def _pages_of_fields(document: dict[str, Any]) -> list[int]:
    """The page of each field, in :func:`field_columns` order."""
    return [int(p.get("page", 1)) for p in document.get("pages") or [] for _ in p.get("fields") or []]


def write_csv(results: str | os.PathLike[str], stream: TextIO) -> int:
    """Write the CSV of ``results`` to an open text stream (opened with ``newline=""``); returns the rows.

    Where a clerk answered a field in ``formocr review`` (the corrections file beside the results), its column
    holds the keyed value (empty for illegible / not filled), the column is named in ``keyed`` and no longer in
    ``needs_review``; a skipped field still needs review."""
    from formocr.review.corrections import read_corrections

    src = Path(results)
    offsets = _index(src)
    answers = read_corrections(src)
    sources = sorted(offsets)
    columns: dict[str, None] = {}
    with _open_results(src) as f:
        for s in sources:
            for col, _ in field_columns(_read_at(f, offsets[s]).document or {}):
                columns.setdefault(_column(col))
        w = csv.writer(stream)
        w.writerow([safe_cell(c) for c in (*FIXED_COLUMNS, *columns)])  # a field may be named "=HYPERLINK(...)"
        for s in sources:
            rec = _read_at(f, offsets[s])
            values: dict[str, Any] = {}
            review: list[str] = []
            keyed: list[str] = []
            doc = rec.document or {}
            for (col, fld), page in zip(field_columns(doc), _pages_of_fields(doc)):
                a = answers.get((rec.source, page, str(fld.get("name"))))
                if a is not None and a.action in ("keyed", "illegible") and a.sha256 == rec.sha256:
                    values[_column(col)] = a.value or ""
                    keyed.append(_column(col))
                    continue
                values[_column(col)] = fld.get("value")
                if fld.get("needs_review"):
                    review.append(_column(col))
            # a page that could not be read (registration) has no fields: its error must show, not an empty row
            page_errors = [f"p{pg.get('page')}: {(pg.get('error') or {}).get('message', '')}"
                           for pg in doc.get("pages") or [] if pg.get("error")]
            error = "; ".join([rec.error.message] if rec.error else page_errors)
            row = [rec.source, rec.sha256, rec.status, rec.pages, ";".join(review), ";".join(keyed), error]
            w.writerow([safe_cell(v) for v in row] + [safe_cell(values.get(c)) for c in columns])
    return len(sources)


def _column(field_column: str) -> str:
    """A field named like a fixed column (``status``...) gets a ``field.`` prefix."""
    return field_column if field_column not in FIXED_COLUMNS else f"field.{field_column}"


def is_csv(head: bytes) -> bool:
    """Whether a file starting with ``head`` is a CSV this module wrote (a rerun may replace it, nothing else)."""
    return head.startswith(",".join(FIXED_COLUMNS).encode())


def export_csv(results: str | os.PathLike[str], out: str | os.PathLike[str]) -> int:
    """Write the CSV file ``out`` atomically from ``results``; returns the number of rows.

    ``out`` must be new or a regular file (never a device or FIFO); any failure is a ResultsFileError naming it.
    """
    return write_atomic(out, lambda stream: write_csv(results, stream), ResultsFileError, "CSV")


__all__ = ["FIXED_COLUMNS", "export_csv", "is_csv", "safe_cell", "write_csv"]
