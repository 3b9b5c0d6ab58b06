"""One line of a batch results file: the record of one document, ok or failed.

Why a record and not just the document JSON: a batch must say which file (relative to the input folder) and
which *content* (sha256) a result belongs to, so a rerun can skip what is done and redo what changed, and a
failure must leave a line too, so that "what needs a person" is in the same file as the results.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from formocr.errors import ExitCode

RECORD_FORMAT = 1
"""Value of the ``formocr_batch`` key of every record; bumped if the line layout ever changes."""

KEPT_ERROR_CODES = frozenset({ExitCode.INPUT, ExitCode.CORRUPT, ExitCode.CONFIG})
"""Exit codes of errors that the document's content decides (unreadable, corrupt, over a limit, no template fits).

4 includes a page too small to hold a field (PageTooSmallError) and a document over ``--timeout`` (Timeout): a
rerun would only spend the same time or fail the same way again.

A rerun keeps such records; other errors (a bug, a crashed worker, a missing model or poppler) depend on the
machine, so a rerun tries those documents again. ``--retry-failed`` redoes every error.
"""

Status = Literal["ok", "error"]


@dataclass(frozen=True)
class ErrorInfo:
    """Why a document failed: the error class name, a one-line message naming the file, the exit code."""

    type: str
    message: str
    exit_code: int

    @property
    def retriable(self) -> bool:
        """True when the failure may not happen again on a rerun (not decided by the file's content)."""
        return self.exit_code not in KEPT_ERROR_CODES

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message, "exit_code": self.exit_code}


@dataclass(frozen=True)
class WorkerInfo:
    """Which process read the document and its peak memory so far (for benchmarks and post-mortems)."""

    pid: int
    host: str
    peak_rss_mib: float
    threads: int

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "host": self.host, "peak_rss_mib": round(self.peak_rss_mib, 1),
                "threads": self.threads}


@dataclass(frozen=True)
class RecordSummary:
    """What the driver keeps in memory per document: a record without its (large) document."""

    source: str
    sha256: str
    status: Status
    pages: int
    seconds: float
    review: tuple[str, ...] = ()  # column names of the fields that need review, and "pN:RegistrationError" pages
    error: ErrorInfo | None = None
    worker: WorkerInfo | None = None

    @property
    def done(self) -> bool:
        """Whether a rerun keeps this record rather than reading the document again."""
        return self.status == "ok" or (self.error is not None and not self.error.retriable)


@dataclass(frozen=True)
class Record:
    """A results line. ``source`` is relative to the input folder, with forward slashes."""

    source: str
    sha256: str
    status: Status
    pages: int
    seconds: float
    document: dict[str, Any] | None = None  # Document.to_dict() when ok
    error: ErrorInfo | None = None  # when status == "error"
    worker: WorkerInfo | None = None

    def __post_init__(self) -> None:
        if self.status not in ("ok", "error"):
            raise ValueError(f"status must be ok or error, got {self.status!r}")
        if (self.status == "ok") != (self.document is not None) or (self.status == "error") != (
            self.error is not None
        ):
            raise ValueError("an ok record carries a document, an error record an error")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "formocr_batch": RECORD_FORMAT,
            "source": self.source,
            "sha256": self.sha256,
            "status": self.status,
            "pages": self.pages,
            "seconds": round(self.seconds, 4),
        }
        if self.worker is not None:
            d["worker"] = self.worker.to_dict()
        if self.error is not None:
            d["error"] = self.error.to_dict()
        if self.document is not None:
            d["document"] = self.document
        return d

    def to_line(self) -> str:
        """One JSON line, newline included. Strict JSON: NaN or infinity is an error, not invalid output."""
        return json.dumps(self.to_dict(), ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        """Parse a record; raises ValueError (or KeyError/TypeError) on anything that is not one."""
        if not isinstance(d, dict) or d.get("formocr_batch") != RECORD_FORMAT:
            raise ValueError("not a formocr batch record")
        err = d.get("error")
        wk = d.get("worker")
        return cls(
            source=str(d["source"]),
            sha256=str(d["sha256"]),
            status=d["status"],
            pages=int(d["pages"]),
            seconds=float(d["seconds"]),
            document=d.get("document"),
            error=ErrorInfo(str(err["type"]), str(err["message"]), int(err["exit_code"])) if err else None,
            worker=WorkerInfo(int(wk["pid"]), str(wk["host"]), float(wk["peak_rss_mib"]), int(wk["threads"]))
            if wk
            else None,
        )

    @classmethod
    def from_line(cls, line: str | bytes) -> Record:
        return cls.from_dict(json.loads(line))

    def summary(self) -> RecordSummary:
        review: tuple[str, ...] = ()
        if self.document:
            review = tuple(col for col, f in field_columns(self.document) if f.get("needs_review"))
            # a page that could not be registered has no fields to review: the page itself is to be looked at
            review += tuple(f"p{p.get('page')}:{p['error'].get('type', 'error')}"
                            for p in self.document.get("pages", []) if p.get("error"))
        return RecordSummary(self.source, self.sha256, self.status, self.pages, self.seconds, review, self.error,
                             self.worker)  # fmt: skip


def field_columns(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(column name, field dict) for every field of a document, in page order.

    A field name that occurs once in the document is its own column; one that repeats on several pages is
    prefixed with its page (``p2.amount``), and a repeat within a page gets ``#2``, ``#3``... so that no two
    fields of one document share a column.
    """
    pages = document.get("pages") or []
    counts = Counter(f["name"] for p in pages for f in p.get("fields", []))
    out: list[tuple[str, dict[str, Any]]] = []
    seen: Counter[str] = Counter()
    for p in pages:
        for f in p.get("fields", []):
            name = f["name"] if counts[f["name"]] == 1 else f"p{p.get('page')}.{f['name']}"
            seen[name] += 1
            out.append((name if seen[name] == 1 else f"{name}#{seen[name]}", f))
    return out
