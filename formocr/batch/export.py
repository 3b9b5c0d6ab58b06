"""CSV export of a results file: one row per document, one column per field, for spreadsheet users.

The results file is read three times rather than held in memory (it can be large): once to find each source's
last record, once to learn the field columns, once to write the rows, sorted by source. The CSV is written to a
temporary file and renamed, so a reader never sees half of it.
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from pathlib import Path
from typing import Any, TextIO

from formocr.batch.record import Record, field_columns
from formocr.batch.results import default_mode, iter_records
from formocr.errors import ResultsFileError

FIXED_COLUMNS = ("source", "sha256", "status", "pages", "needs_review", "error")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection): such text gets a leading quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _read_at(f: Any, offset: int) -> Record:
    f.seek(offset)
    return Record.from_line(f.readline())


def _index(src: Path) -> dict[str, int]:
    if not src.is_file():
        raise ResultsFileError("no such results file", src)
    offsets: dict[str, int] = {}
    for _, offset, rec in iter_records(src):
        offsets[rec.source] = offset  # the last record of a source wins
    return offsets


def write_csv(results: str | os.PathLike[str], stream: TextIO) -> int:
    """Write the CSV of ``results`` to an open text stream (opened with ``newline=""``); returns the rows."""
    src = Path(results)
    offsets = _index(src)
    sources = sorted(offsets)
    columns: dict[str, None] = {}
    with src.open("rb") as f:
        for s in sources:
            for col, _ in field_columns(_read_at(f, offsets[s]).document or {}):
                columns.setdefault(_column(col))
        w = csv.writer(stream)
        w.writerow([*FIXED_COLUMNS, *columns])
        for s in sources:
            rec = _read_at(f, offsets[s])
            values: dict[str, Any] = {}
            review: list[str] = []
            for col, fld in field_columns(rec.document or {}):
                values[_column(col)] = fld.get("value")
                if fld.get("needs_review"):
                    review.append(_column(col))
            row = [rec.source, rec.sha256, rec.status, rec.pages, ";".join(review),
                   rec.error.message if rec.error else ""]  # fmt: skip
            w.writerow([safe_cell(v) for v in row] + [safe_cell(values.get(c)) for c in columns])
    return len(sources)


def _column(field_column: str) -> str:
    """A field named like a fixed column (``status``...) gets a ``field.`` prefix."""
    return field_column if field_column not in FIXED_COLUMNS else f"field.{field_column}"


def export_csv(results: str | os.PathLike[str], out: str | os.PathLike[str]) -> int:
    """Write the CSV file ``out`` atomically from ``results``; returns the number of rows."""
    dst = Path(out)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    except OSError as e:
        raise ResultsFileError(f"cannot write the CSV ({e.strerror or e})", dst) from None
    try:
        os.fchmod(fd, default_mode())
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as g:
            rows = write_csv(results, g)
            g.flush()
            os.fsync(g.fileno())
        os.replace(tmp, dst)
    except OSError as e:
        raise ResultsFileError(f"cannot write the CSV ({e.strerror or e})", dst) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return rows


__all__ = ["FIXED_COLUMNS", "export_csv", "safe_cell", "write_csv"]
