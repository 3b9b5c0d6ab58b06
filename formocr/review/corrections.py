"""The corrections file: what clerks keyed for fields that needed review, beside the results, never lost.

``RESULTS.corrections.jsonl`` holds one JSON line per answer: a value keyed (``keyed``), a field marked
illegible or not filled (``illegible``), or passed over for now (``skipped``). The same discipline as batch
results (:mod:`formocr.batch.results`): each line is one ``os.write`` of the complete line on an ``O_APPEND``
descriptor followed by ``fsync``; a last line cut short by a kill is cut off when the file is opened again; one
review at a time holds an exclusive lock on a hidden sidecar, so a second reviewer on the same results is refused.
The last answer for a field wins, so a clerk can change their mind and a restart resumes where they stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from formocr.batch.results import cut_torn_tail, take_lock
from formocr.errors import ResultsFileError
from formocr.outputs import check_output, fsync_dir

__all__ = ["CORRECTIONS_FORMAT", "Correction", "Corrections", "corrections_path", "read_corrections"]

CORRECTIONS_FORMAT = 1
Action = Literal["keyed", "illegible", "skipped"]


def corrections_path(results: str | os.PathLike[str]) -> Path:
    """Where the corrections of ``results`` live: beside it, ``NAME.corrections.jsonl``."""
    p = Path(os.path.realpath(results))
    return p.with_name(p.name + ".corrections.jsonl")


@dataclass(frozen=True)
class Correction:
    """One answer of a clerk. ``read`` is what formocr read (kept, so the correction is labelled data)."""

    source: str
    page: int
    field: str
    action: Action
    value: str | None
    read: str | None
    at: float  # seconds since the epoch
    seconds: float  # time on the field's screen
    sha256: str | None = None  # the document's, as the batch read it: an answer holds for that document only

    @property
    def key(self) -> tuple[str, int, str]:
        return self.source, self.page, self.field

    def to_line(self) -> bytes:
        d: dict[str, Any] = {"formocr_correction": CORRECTIONS_FORMAT, **asdict(self)}
        d["at"], d["seconds"] = round(self.at, 3), round(self.seconds, 3)
        return (json.dumps(d, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Correction:
        if d.get("formocr_correction") != CORRECTIONS_FORMAT:
            raise ValueError("not a formocr correction line")
        action = d["action"]
        if action not in ("keyed", "illegible", "skipped"):
            raise ValueError(f"unknown action {action!r}")
        value = d.get("value")
        return cls(str(d["source"]), int(d["page"]), str(d["field"]), action,
                   None if value is None else str(value), None if d.get("read") is None else str(d["read"]),
                   float(d.get("at", 0.0)), float(d.get("seconds", 0.0)),
                   None if d.get("sha256") is None else str(d["sha256"]))


def _lines(path: Path) -> Iterator[Correction]:
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return
    except OSError as e:
        raise ResultsFileError(f"cannot read the corrections file ({e.strerror or e})", path) from None
    with f:
        for n, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                return  # a write cut short: not an answer yet
            try:
                yield Correction.from_dict(json.loads(line))
            except (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError) as e:
                raise ResultsFileError(f"line {n} is not a formocr correction ({e}); it was left as it is",
                                       path) from None


def read_corrections(results: str | os.PathLike[str]) -> dict[tuple[str, int, str], Correction]:
    """The last answer per field (source, page, field) for ``results`` (empty when nobody reviewed it yet)."""
    out: dict[tuple[str, int, str], Correction] = {}
    for c in _lines(corrections_path(results)):
        out[c.key] = c
    return out


class Corrections:
    """The open corrections file of one review: locked, its torn tail cut, appended to one fsynced line at a
    time. ``latest`` holds the last answer per field."""

    def __init__(self, results: str | os.PathLike[str]) -> None:
        self.path = corrections_path(results)
        self.latest: dict[tuple[str, int, str], Correction] = {}
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._size = 0

    def open(self) -> Corrections:
        check_output(self.path, ResultsFileError, "corrections file")
        try:
            self._lock_fd = take_lock(self.path, "another formocr review of these results is open; finish or "
                                                 "stop it first")
            self.latest = {c.key: c for c in _lines(self.path)}  # checks every line before anything is changed
            cut_torn_tail(self.path)
            new = not self.path.exists()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._size = os.fstat(self._fd).st_size
            if new:
                fsync_dir(self.path.parent)  # the new file's name survives a power cut too
        except OSError as e:
            self.close()
            raise ResultsFileError(f"cannot open the corrections file ({e.strerror or e})", self.path) from None
        except BaseException:
            self.close()
            raise
        return self

    def append(self, c: Correction) -> None:
        """Write one answer durably (one write, then fsync) before it counts."""
        if self._fd is None:
            raise ResultsFileError("the corrections file is not open", self.path)
        line = c.to_line()
        try:
            if os.write(self._fd, line) != len(line):
                raise OSError("short write")
            os.fsync(self._fd)
        except OSError as e:
            with contextlib.suppress(OSError):  # a part written (a full disk) must not glue onto the next line
                os.ftruncate(self._fd, self._size)
            raise ResultsFileError(f"cannot write the corrections file ({e.strerror or e})", self.path) from None
        self._size += len(line)
        self.latest[c.key] = c

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Corrections:
        return self.open()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
