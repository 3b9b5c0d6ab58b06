"""``run_batch``: read every document of a folder into a results file, resumably, with a chosen engine.

The driver (this module, in the calling process) discovers the files, hashes each one just before it is
needed, skips what the results file already holds for that content, hands the rest to the engine (a local
process pool or Ray actors, never more than a few documents in flight) and appends each record as it comes
back. It is the only writer of the results file, so records never interleave; see
:mod:`formocr.batch.results` for why an append is atomic.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from formocr.batch.discover import discover
from formocr.batch.local import usable_cpus
from formocr.batch.progress import BatchObserver
from formocr.batch.record import RecordSummary
from formocr.batch.results import ResultsFile, lock_path
from formocr.batch.worker import Job, Outcome, error_outcome, peak_rss_mib
from formocr.errors import ConfigError, EmptyInputError, ResultsFileError
from formocr.limits import LoadLimits
from formocr.options import Options
from formocr.outputs import check_output

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class BatchConfig:
    """How to run a batch (the pipeline's own settings stay in :class:`~formocr.options.Options`)."""

    input_dir: Path
    output: Path
    workers: int | None = None  # None: the CPU count (Ray with an address: the cluster's CPUs)
    engine: str = "local"  # local | ray
    address: str | None = None  # Ray cluster address; None = start a local Ray instance
    pattern: str | None = None  # glob relative to input_dir; None = recursive walk, supported extensions
    retry_failed: bool = False  # also redo documents whose records are errors the content decided
    max_in_flight: int | None = None  # local engine: documents submitted at once (default 2 per worker)
    exclude: tuple[Path, ...] = ()  # other files this run writes (CSV, summary) that discovery must skip
    timeout: float | None = None  # seconds a document may take once a worker starts it (local engine); None: any

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_dir", Path(self.input_dir))
        object.__setattr__(self, "output", Path(self.output))
        if self.engine not in ENGINES:
            raise ConfigError(f"engine: must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers: must be at least 1, got {self.workers}")
        if self.max_in_flight is not None and self.max_in_flight < 1:
            raise ConfigError(f"max_in_flight: must be at least 1, got {self.max_in_flight}")
        if self.address and self.engine != "ray":
            raise ConfigError("address: only used with the ray engine")
        if self.timeout is not None:
            if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)) or not (
                    math.isfinite(self.timeout) and self.timeout > 0):
                raise ConfigError(f"timeout: must be a positive number of seconds, got {self.timeout!r}")
            if self.engine != "local":
                raise ConfigError("timeout: only with the local engine for now")


@dataclass(frozen=True)
class BatchSummary:
    """The end of a run: the state of the folder's documents, and what this run did and how fast."""

    output: str
    engine: str
    workers: int
    documents: int  # found in the folder
    ok: int  # ... whose record is a result
    failed: int  # ... whose record is an error
    skipped: int  # records this run kept from an earlier run
    processed: int  # documents this run read (or tried to)
    pages: int  # pages this run read
    seconds: float  # wall time of this run, start-up included
    review_fields: int  # fields needing review, over the folder's ok documents
    failures: tuple[RecordSummary, ...] = ()
    needs_review: tuple[RecordSummary, ...] = ()
    worker_peak_rss_mib: float = 0.0  # largest peak RSS of a worker of this run
    driver_peak_rss_mib: float = 0.0
    worker_peaks: dict[str, float] = field(default_factory=dict)  # "host:pid" -> peak RSS MiB

    @property
    def pages_per_second(self) -> float:
        return self.pages / self.seconds if self.seconds > 0 else 0.0

    @property
    def documents_per_second(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def one_line(self) -> str:
        review = f"{self.review_fields} field(s) in {len(self.needs_review)} document(s) need review"
        kept = f", {self.skipped} already done" if self.skipped else ""
        return (f"{self.documents} documents: {self.ok} ok, {self.failed} failed; {review}; this run: "
                f"{self.processed} read{kept}, {self.pages} pages in {self.seconds:.1f} s "
                f"({self.pages_per_second:.2f} pages/s) -> {self.output}")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output, "engine": self.engine, "workers": self.workers,
            "documents": self.documents, "ok": self.ok, "failed": self.failed, "skipped": self.skipped,
            "processed": self.processed, "pages": self.pages, "seconds": round(self.seconds, 3),
            "pages_per_second": round(self.pages_per_second, 3),
            "documents_per_second": round(self.documents_per_second, 3),
            "review_fields": self.review_fields, "review_documents": len(self.needs_review),
            "worker_peak_rss_mib": round(self.worker_peak_rss_mib, 1),
            "driver_peak_rss_mib": round(self.driver_peak_rss_mib, 1),
            "failures": [{"source": r.source, **r.error.to_dict()} for r in self.failures if r.error],
            "needs_review": [{"source": r.source, "fields": list(r.review)} for r in self.needs_review],
        }  # fmt: skip


def is_summary(head: bytes) -> bool:
    """Whether a file starting with ``head`` is a batch summary (``--summary-json``) a run wrote."""
    return re.match(rb'\s*\{\s*"output"\s*:', head) is not None and b'"engine"' in head


def _hash(path: Path, keep: bool) -> tuple[str, bytes | None]:
    """sha256 of a file, streamed; with ``keep`` the bytes too (for engines that ship them)."""
    h = hashlib.sha256()
    chunks: list[bytes] = []
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            if keep:
                chunks.append(chunk)
    return h.hexdigest(), b"".join(chunks) if keep else None


def _os_reason(e: OSError, path: Path) -> str:
    if isinstance(e, FileNotFoundError):
        return "a link to a file that does not exist" if path.is_symlink() else "no such file (removed during the run?)"
    if isinstance(e, PermissionError):
        return "permission denied"
    return f"cannot read ({e.strerror or e})"


class _Driver:
    """The single-threaded loop that feeds the engine and writes what comes back."""

    def __init__(self, config: BatchConfig, results: ResultsFile, observer: BatchObserver | None) -> None:
        self.config = config
        self.results = results
        self.observer = observer
        self.ship = config.engine == "ray"
        self.skipped = 0
        self.processed = 0
        self.pages = 0
        self.peaks: dict[str, float] = {}

    def record(self, outcome: Outcome) -> None:
        self.results.append(outcome.line, outcome.summary)
        s = outcome.summary
        self.processed += 1
        self.pages += s.pages
        if s.worker is not None:
            key = f"{s.worker.host}:{s.worker.pid}"
            self.peaks[key] = max(self.peaks.get(key, 0.0), s.worker.peak_rss_mib)
        if self.observer is not None:
            self.observer.finished(s)

    def _keep(self, source: str, sha: str) -> bool:
        prev = self.results.latest.get(source)
        if prev is None or prev.sha256 != sha or not prev.done:
            return False
        return not (self.config.retry_failed and prev.status == "error")

    def _skip(self, source: str) -> None:
        self.skipped += 1
        if self.observer is not None:
            self.observer.skipped(self.results.latest[source])

    def jobs(self, sources: list[str]) -> Iterator[Job]:
        """Jobs for the documents not done yet; files the driver cannot even read get their record here."""
        root = str(self.config.input_dir)
        max_bytes = LoadLimits().max_file_bytes
        for source in sources:
            path = Path(root, source)
            try:
                st = path.stat()
                if not stat.S_ISREG(st.st_mode):
                    raise IsADirectoryError(0, "not a regular file")
                too_big = self.ship and st.st_size > max_bytes
                sha, data = _hash(path, keep=self.ship and not too_big)
            except OSError as e:
                if self._keep(source, ""):
                    self._skip(source)
                else:
                    reason = "not a regular file" if isinstance(e, IsADirectoryError) else _os_reason(e, path)
                    self.record(error_outcome(Job(root, source, ""), "UnreadableInputError", reason, 3))
                continue
            if self._keep(source, sha):
                self._skip(source)
            elif too_big:  # not worth shipping: the worker would refuse it (formocr.limits.LoadLimits)
                self.record(error_outcome(Job(root, source, sha), "InputTooLargeError",
                                          f"file is {st.st_size} bytes, over the {max_bytes} byte limit", 4))
            else:
                yield Job(root, source, sha, data)


def _check_pipeline(options: Options) -> None:
    """Fail before any document when the template or model is wrong (else every document would fail)."""
    from formocr.pipeline import Pipeline

    Pipeline(options)


def run_batch(config: BatchConfig, options: Options | None = None, observer: BatchObserver | None = None
              ) -> BatchSummary:
    """Read every document under ``config.input_dir`` into ``config.output``; see the module docs."""
    options = options or Options()
    out = config.output
    real = check_output(out, ResultsFileError, "results file")  # a device or folder: refused before any work
    exclude = (out, real, lock_path(out), lock_path(real), *config.exclude)
    sources = discover(config.input_dir, config.pattern, exclude=exclude)
    if not sources:
        what = f"matching {config.pattern!r}" if config.pattern else "(PDF, PNG, JPEG, BMP or TIFF)"
        raise EmptyInputError(f"no documents {what} in this folder", config.input_dir)
    if config.engine == "ray":
        from formocr.batch.ray_engine import import_ray

        import_ray()  # before anything is written
    _check_pipeline(options)
    workers = config.workers or usable_cpus()
    t0 = time.perf_counter()
    try:
        with ResultsFile(out) as results:
            driver = _Driver(config, results, observer)
            if observer is not None:
                observer.started(len(sources))
            jobs = driver.jobs(sources)
            if config.engine == "ray":
                from formocr.batch.ray_engine import run_ray

                engine = run_ray(jobs, options, config.workers or (None if config.address else workers),
                                 config.address)
            else:
                from formocr.batch.local import run_local

                engine = run_local(jobs, options, workers, config.max_in_flight, config.timeout)
            # closing(): on Ctrl-C or an error here the engine stops its workers now, not whenever it is collected
            with contextlib.closing(engine):
                for _, outcome in engine:
                    driver.record(outcome)
            seconds = time.perf_counter() - t0
            results.compact()
            final = [results.latest[s] for s in sources if s in results.latest]
    finally:
        if observer is not None:
            observer.close()
    failures = tuple(r for r in final if r.status == "error")
    review = tuple(r for r in final if r.status == "ok" and r.review)
    return BatchSummary(
        output=str(out), engine=config.engine,
        workers=config.workers or (len(driver.peaks) if config.address else workers), documents=len(sources),
        ok=sum(r.status == "ok" for r in final), failed=len(failures), skipped=driver.skipped,
        processed=driver.processed, pages=driver.pages, seconds=seconds,
        review_fields=sum(len(r.review) for r in review), failures=failures, needs_review=review,
        worker_peak_rss_mib=max(driver.peaks.values(), default=0.0), driver_peak_rss_mib=peak_rss_mib(),
        worker_peaks=dict(driver.peaks),
    )  # fmt: skip
