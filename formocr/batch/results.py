"""The results file of a batch: JSON Lines, one record per document, safe against kill -9 and power cuts.

Why it is safe:

* One process writes it (the batch driver; workers only return records), under an exclusive lock on a hidden
  sidecar file beside the real file (links resolved), so two runs on the same file cannot interleave, whatever
  name each was given for it.
* Nothing is changed in a file until it has been read as a results file: an existing file that is anything else
  (the user's own JSON, a device, a folder) is refused with a :class:`~formocr.errors.ResultsFileError`, byte for
  byte untouched.
* Each record is one ``os.write`` of the complete line on an ``O_APPEND`` descriptor, followed by ``fsync``.
  A killed run can at worst leave a last line without its newline; opening the file again cuts that torn tail
  off before anything is appended. Every line that ends in a newline is a complete record.
* Rewrites (dropping records that a newer line for the same source supersedes) go to a temporary file that is
  fsynced and renamed over the original, so the file is always either the old or the new version.

The last line for a source wins: a document redone (its content changed, or its error was retried) appends a
new line, and the older line is dropped at the next compaction (at the end of the run, or when a killed run is
resumed).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from formocr.batch.record import RECORD_FORMAT, Record, RecordSummary
from formocr.errors import ResultsFileError
from formocr.outputs import check_output, fsync_dir

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, single runs only
    fcntl = None  # type: ignore[assignment]


RECORD_START = b'{"formocr_batch":%d,' % RECORD_FORMAT
"""How every record line starts (Record.to_line), so also how a torn last line starts."""


def lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


def take_lock(path: Path, busy: str) -> int:
    """An exclusive lock on ``path``'s hidden sidecar, held until the returned descriptor is closed; a
    :class:`ResultsFileError` saying ``busy`` when another process holds it (results files, corrections files)."""
    fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o644)
    if fcntl is None:
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ResultsFileError(busy, path) from None
    return fd


def _tail_start(f: BinaryIO, size: int) -> int:
    """Offset just past the last newline of an open file (0 without one): where a torn last line starts."""
    end = size
    while end > 0:
        start = max(0, end - (1 << 16))
        f.seek(start)
        chunk = f.read(end - start)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            return start + nl + 1
        end = start
    return 0


def _record_like(fragment: bytes) -> bool:
    """Whether bytes can be the start of a record line (whitespace aside): of a torn line, or of any line."""
    compact = b"".join(fragment.split())[: len(RECORD_START)]
    return not fragment or (bool(compact) and RECORD_START.startswith(compact))


def _ends(path: Path) -> tuple[bytes, bytes]:
    """The first bytes of the file and of its torn last line (b"" when the file ends with a newline)."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return b"", b""
    with f:
        head = f.read(64)
        size = f.seek(0, os.SEEK_END)
        keep = _tail_start(f, size)
        f.seek(keep)
        return head, f.read(min(size - keep, 64))


def has_torn_tail(path: Path) -> bool:
    """Whether the file's last line was cut short (a run stopped while writing it): no record yet."""
    return bool(_ends(path)[1])


def cut_torn_tail(path: Path) -> int:
    """Truncate a last line that has no newline (a write cut short); returns the bytes removed."""
    try:
        f = path.open("r+b")
    except FileNotFoundError:
        return 0
    with f:
        size = f.seek(0, os.SEEK_END)
        keep = _tail_start(f, size)
        if keep < size:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
        return size - keep


def iter_records(path: Path) -> Iterator[tuple[int, int, Record]]:
    """(line number, byte offset, record) of every complete line; a line that is not a record is an error."""
    offset = 0
    with path.open("rb") as f:
        for number, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                break  # torn tail: not a record yet
            try:
                rec = Record.from_line(line)
            except (ValueError, KeyError, TypeError) as e:
                detail = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
                raise ResultsFileError(f"line {number} is not a formocr batch record ({detail}); "
                                       "is it the right results file? It was left as it is", path) from None
            yield number, offset, rec
            offset += len(line)


class ResultsFile:
    """Open (lock, repair, index) a results file, append records, compact it.

    ``latest`` maps each source to the summary of its last record: all a rerun needs to decide what to skip,
    without holding any document in memory.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        # The real file: the lock, the torn-tail repair and compaction's rename must act on it, not on a link's
        # name (a second run given a link to the file would otherwise take a different lock and interleave).
        self.path = Path(os.path.realpath(path))
        self.given = Path(path)
        self.latest: dict[str, RecordSummary] = {}
        self._latest_line: dict[str, int] = {}
        self._lines = 0
        self._size = 0
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self.cut_bytes = 0

    # -- life cycle -------------------------------------------------------------------------------------

    def open(self) -> ResultsFile:
        """Lock, check that an existing file is a results file, repair a torn tail, index, compact if needed.

        The checks come before any change: a file that is not a formocr results file (a user's JSON, a device,
        a folder) is refused with a ResultsFileError and left byte for byte as it was.
        """
        check_output(self.given, ResultsFileError, "results file")
        self._check_ends()  # before the lock, so that refusing a user's file leaves not even a lock file beside it
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock()
            self._check_ends()
            self._index()  # reads the complete lines only; any that is not a record is an error
            self.cut_bytes = cut_torn_tail(self.path)
            if self.superseded:
                self.compact()
            self._open_append()
        except (FileExistsError, NotADirectoryError):
            self.close()
            raise ResultsFileError("cannot create the results file: a folder on its path is a file",
                                   self.path) from None
        except OSError as e:
            self.close()
            raise ResultsFileError(f"cannot open the results file ({e.strerror or e})", self.path) from None
        except BaseException:
            self.close()
            raise
        return self

    def __enter__(self) -> ResultsFile:
        return self.open()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    def _lock(self) -> None:
        self._lock_fd = take_lock(self.path, "another formocr batch run is writing this file")

    def _check_ends(self) -> None:
        """A results file starts with a record, and a last line without a newline is the start of one (a write
        cut short): anything else is not ours, and cutting its "torn tail" would destroy the user's data."""
        try:
            head, tail = _ends(self.path)
        except OSError as e:
            raise ResultsFileError(f"cannot read the results file ({e.strerror or e})", self.path) from None
        for where, fragment in (("line 1", head), ("its last line", tail)):
            if not _record_like(fragment):
                raise ResultsFileError(f"{where} is not a formocr batch record; is it the right results file? It "
                                       "was left as it is", self.path)

    def _open_append(self) -> None:
        created = not self.path.exists()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size
        if created:
            fsync_dir(self.path.parent)

    def _index(self) -> None:
        self.latest.clear()
        self._latest_line.clear()
        self._lines = 0
        if not self.path.exists():
            return
        for number, _, rec in iter_records(self.path):
            self._remember(rec.summary(), number)

    def _remember(self, summary: RecordSummary, line: int) -> None:
        self._lines = line
        self.latest.pop(summary.source, None)  # re-insert: dict order = order of last records
        self.latest[summary.source] = summary
        self._latest_line[summary.source] = line

    # -- use --------------------------------------------------------------------------------------------

    @property
    def superseded(self) -> int:
        """Lines that a later line for the same source replaces."""
        return self._lines - len(self.latest)

    def append(self, line: str, summary: RecordSummary) -> None:
        """Append one complete record line atomically and durably."""
        if self._fd is None:
            raise ResultsFileError("results file is not open", self.path)
        if not line.endswith("\n") or "\n" in line[:-1]:
            raise ValueError("a record is exactly one line ending in a newline")
        data = line.encode("utf-8")
        try:
            written = os.write(self._fd, data)
            if written != len(data):  # disk full part-way: take the fragment back so no half line remains
                os.ftruncate(self._fd, self._size)
                raise OSError(28, "short write (disk full?)")
            os.fsync(self._fd)
        except OSError as e:
            raise ResultsFileError(f"cannot write the results file ({e.strerror or e})", self.path) from None
        self._size += len(data)
        self._remember(summary, self._lines + 1)

    def compact(self) -> None:
        """Rewrite the file without superseded lines (temp file + fsync + rename: never half done)."""
        if not self.superseded:
            return
        keep = set(self._latest_line.values())
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, stat.S_IMODE(self.path.stat().st_mode))  # keep the file's permissions
            with os.fdopen(fd, "wb") as out, self.path.open("rb") as src:
                for number, line in enumerate(src, 1):
                    if number in keep and line.endswith(b"\n"):
                        out.write(line)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
            fsync_dir(self.path.parent)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        reopen = self._fd is not None
        if reopen:
            assert self._fd is not None
            os.close(self._fd)
            self._fd = None
        self._index()
        if reopen:
            self._open_append()
