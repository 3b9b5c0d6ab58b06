"""The work of one document, the same in a local worker process and in a Ray actor.

Why one function for both engines: a document must give the same record, and fail the same way, whichever
engine ran it. Each worker builds its :class:`~formocr.pipeline.Pipeline` (and so loads the model) once and
reads document after document with it; every exception, expected or not, becomes an error record, so one bad
document can never take the batch down.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from formocr.batch.record import ErrorInfo, Record, RecordSummary, WorkerInfo
from formocr.errors import ExitCode, FormOcrError, Timeout
from formocr.options import Options

if TYPE_CHECKING:
    from formocr.pipeline import Pipeline

log = logging.getLogger("formocr.batch")


@dataclass(frozen=True)
class Job:
    """One document to read. ``data`` carries the file's bytes when the worker may not see the driver's disk."""

    root: str
    source: str  # relative to root, POSIX separators
    sha256: str
    data: bytes | None = None

    @property
    def path(self) -> Path:
        return Path(self.root, self.source)


@dataclass(frozen=True)
class Outcome:
    """A worker's answer: the record already serialized (the driver only appends it) and its summary."""

    line: str
    summary: RecordSummary

    @classmethod
    def of(cls, record: Record) -> Outcome:
        return cls(record.to_line(), record.summary())


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def _one_line(text: str) -> str:
    return " ".join(text.split())


def error_outcome(job: Job, type_name: str, message: str, exit_code: int, seconds: float = 0.0,
                  worker: WorkerInfo | None = None) -> Outcome:
    """The record of a document that failed; the message starts with the document's source path."""
    err = ErrorInfo(type_name, f"{job.source}: {_one_line(message)}", exit_code)
    return Outcome.of(Record(job.source, job.sha256, "error", 0, seconds, error=err, worker=worker))


def timeout_outcome(job: Job, timeout_s: float) -> Outcome:
    """The record of a document stopped at its time budget (``--timeout``); its worker was replaced."""
    return error_outcome(job, Timeout.__name__, f"took longer than the {timeout_s:g} s time limit (--timeout); "
                         "reading it was stopped", Timeout.exit_code, timeout_s)


def crashed_outcome(job: Job, detail: str = "") -> Outcome:
    """The record of a document whose worker died under it (killed, out of memory, a crash in native code)."""
    why = "the worker process died while reading this document (killed, out of memory, or a crash)"
    return error_outcome(job, "WorkerCrashed", why + (f": {detail}" if detail else ""), ExitCode.INTERNAL)


class DocumentWorker:
    """Reads documents with one pipeline, built on first use so that a model error is a record, not a crash."""

    def __init__(self, options: Options, threads: int | None = None) -> None:
        self.options = options
        self.threads = threads
        self._pipeline: Pipeline | None = None
        self.host = socket.gethostname()
        if threads is not None:
            import cv2
            import torch

            torch.set_num_threads(threads)
            cv2.setNumThreads(threads)

    def info(self) -> WorkerInfo:
        import torch

        return WorkerInfo(os.getpid(), self.host, peak_rss_mib(), torch.get_num_threads())

    def process(self, job: Job, path: Path | None = None, started: Callable[[], None] | None = None) -> Outcome:
        """Read ``job`` (from ``path`` when given, e.g. a local copy of shipped bytes) into an outcome.

        ``started`` is called once the pipeline is ready, as the document's reading begins: a time budget
        counts from there, so that loading the models in a fresh worker is not charged to its first document.
        """
        t0 = time.perf_counter()
        try:
            if self._pipeline is None:
                from formocr.pipeline import Pipeline

                self._pipeline = Pipeline(self.options)
            if started is not None:
                started()
            doc = self._pipeline.scan(path or job.path)
            d = doc.to_dict()
            d["source"] = job.source  # the same whatever the engine or the mount point
            record = Record(job.source, job.sha256, "ok", len(doc.pages), time.perf_counter() - t0, document=d,
                            worker=self.info())  # fmt: skip
            return Outcome.of(record)
        except FormOcrError as e:
            return error_outcome(job, type(e).__name__, e.message, e.exit_code, time.perf_counter() - t0,
                                 self.info())  # fmt: skip
        except Exception as e:  # a bug must cost one document, not the batch
            log.debug("unexpected error on %s:\n%s", job.source, traceback.format_exc())
            return error_outcome(job, type(e).__name__, f"internal error: {e}" if str(e) else "internal error",
                                 ExitCode.INTERNAL, time.perf_counter() - t0, self.info())  # fmt: skip


# --- the local engine's worker processes ---------------------------------------------------------------------

_WORKER: DocumentWorker | None = None
_STARTS: Any = None  # the driver's shared array of doubles: per slot, when that slot's document started


def mark_started(slot: int | None) -> None:
    """Record in the shared array that the document in ``slot`` starts now (``time.monotonic()``, which is one
    clock for all processes of the machine), so the driver can enforce ``--timeout`` from that moment."""
    if slot is not None and _STARTS is not None:
        _STARTS[slot] = time.monotonic()


def _start_time(pid: int) -> str | None:
    """A process's start time from /proc (None where there is no /proc): tells a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]  # a zombie is dead for our purpose


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return started is None or _start_time(pid) == started


def _watch_driver(pid: int) -> None:
    """Exit when the driver dies (kill -9), instead of lingering with a model in memory.

    The parent process is no guide: under forkserver it is the fork server, which itself only exits once
    every worker has.
    """
    started = _start_time(pid)
    while True:
        time.sleep(0.5)
        if not _alive(pid, started):
            os._exit(1)


def init_process(options: Options, threads: int | None, driver: int, starts: Any = None) -> None:
    """ProcessPoolExecutor initializer: Ctrl-C is the driver's business; die with the driver; one worker.

    ``starts``: the driver's shared array where :func:`mark_started` records when each document starts.
    """
    global _WORKER, _STARTS
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_driver, args=(driver,), daemon=True, name="watch-driver").start()
    _STARTS = starts
    _WORKER = DocumentWorker(options, threads)


def process_job(job: Job, slot: int | None = None) -> Outcome:
    """Entry point of a local worker process for one document (``slot``: its place in the start-time array)."""
    global _WORKER
    if _WORKER is None:  # not started through init_process (e.g. called in-process)
        _WORKER = DocumentWorker(Options())
    return _WORKER.process(job, started=lambda: mark_started(slot))
