"""The local engine: a pool of worker processes on this machine.

Why processes and not threads: the pipeline is CPU-bound Python/numpy/OpenCV/torch work, and a process that
dies (a segfault in a native library, the OOM killer) must cost one document, not the run. Workers start
through ``forkserver`` (``spawn`` where that does not exist), never plain ``fork``: torch and OpenMP are not
fork-safe once they have started threads. The forkserver preloads the worker module, so every worker starts
with torch already imported and only loads the (small) model.

At most ``in_flight`` documents are submitted at a time (2 per worker by default): the pool never holds the
whole folder, and memory stays flat however many files there are.

When a worker dies, every document in flight fails with ``BrokenProcessPool``, though only one of them killed
it. Those documents are read again one at a time in a fresh pool; one that kills its worker alone gets a
``WorkerCrashed`` record, the others their normal records.

With a time budget (``--timeout``), each worker notes in a shared array when it starts a document (after its
models are loaded, so a fresh worker's start-up is not charged to the document), and the driver wakes at least
twice a second to compare. A document over its budget gets a ``Timeout`` record; a worker stuck in native code
cannot be interrupted, so the pool is stopped and replaced, as after a crash, and the other documents it held
are read again from the start in the new pool.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from formocr.batch.worker import (
    Job,
    Outcome,
    crashed_outcome,
    error_outcome,
    init_process,
    process_job,
    timeout_outcome,
)
from formocr.errors import ExitCode
from formocr.options import Options

POLL_S = 0.5
"""With a time budget, the longest the driver waits before looking again at the documents' start times."""


def _context() -> Any:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["formocr.batch.worker", "formocr.pipeline"])
        return ctx
    return multiprocessing.get_context("spawn")


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. under taskset or a container), else the count."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    """Split the cores between the workers so that torch/OpenCV threads do not fight over them."""
    return max(1, usable_cpus() // workers)


def _stop(pool: ProcessPoolExecutor, wait_: bool) -> None:
    """Shut a pool down; when not waiting, terminate its workers rather than let them finish a document."""
    procs = [] if wait_ else list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=wait_, cancel_futures=True)
    for p in procs:
        with contextlib.suppress(Exception):
            p.terminate()
    for p in procs:
        with contextlib.suppress(Exception):
            p.join(5)


def _wait_s(timeout: float | None, starts: Any, slots: Iterable[int]) -> float | None:
    """How long the driver may wait for a result before a started document could be over its budget."""
    if timeout is None:
        return None
    now = time.monotonic()
    return max(0.0, min([POLL_S, *(starts[s] + timeout - now for s in slots if starts[s] > 0)]))


def run_local(jobs: Iterator[Job], options: Options, workers: int, in_flight: int | None = None,
              timeout: float | None = None, work: Callable[[Job, int], Outcome] = process_job
              ) -> Generator[tuple[Job, Outcome], None, None]:
    """Read ``jobs`` with ``workers`` processes; yields (job, outcome) in completion order.

    ``timeout``: seconds a document may take once its worker starts it (None: no limit). ``work`` runs in the
    worker for each (job, slot); tests swap it for a stand-in, which must call
    :func:`~formocr.batch.worker.mark_started` with the slot as it starts.
    """
    ctx = _context()
    threads = threads_per_worker(workers)
    limit = max(1, in_flight or 2 * workers)
    starts = ctx.RawArray("d", limit)  # per slot: monotonic time its document started; 0.0 = not yet
    free = list(range(limit))

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=init_process,
                                   initargs=(options, threads, os.getpid(), starts))  # fmt: skip

    pool = new_pool()
    pending: dict[Future[Outcome], Job] = {}
    slot_of: dict[Future[Outcome], int] = {}

    def submit(job: Job) -> None:
        slot = free.pop()
        starts[slot] = 0.0
        fut = pool.submit(work, job, slot)
        pending[fut] = job
        slot_of[fut] = slot

    def forget(fut: Future[Outcome]) -> Job:
        free.append(slot_of.pop(fut))
        return pending.pop(fut)

    suspects: deque[Job] = deque()
    again: deque[Job] = deque()  # documents in flight in a pool stopped for another's overrun: read them anew
    solo: Job | None = None  # a suspect being read alone after a crash
    more = True
    finished = False
    try:
        while True:
            if solo is None and suspects and not pending:
                solo = suspects.popleft()
                submit(solo)
            while solo is None and not suspects and (again or more) and len(pending) < limit:
                job = again.popleft() if again else next(jobs, None)
                if job is None:
                    more = False
                    break
                submit(job)
            if not pending:
                break
            done, _ = wait(pending, timeout=_wait_s(timeout, starts, slot_of.values()),
                           return_when=FIRST_COMPLETED)
            broken: list[Job] = []
            for fut in done:
                job = forget(fut)
                try:
                    outcome = fut.result()
                except BrokenProcessPool:
                    broken.append(job)
                    continue
                except Exception as e:  # e.g. a result that could not be pickled back
                    outcome = error_outcome(job, type(e).__name__, f"internal error: {e}", ExitCode.INTERNAL)
                if job is solo:
                    solo = None
                yield job, outcome
            if broken:
                broken.extend(forget(f) for f in list(pending))
                _stop(pool, wait_=False)
                pool = new_pool()
                if solo is not None:
                    yield solo, crashed_outcome(solo)
                    solo = None
                else:
                    suspects.extend(broken)
                continue
            if timeout is None:
                continue
            now = time.monotonic()
            late = [f for f in pending if 0.0 < starts[slot_of[f]] <= now - timeout]
            if late:
                overrun = [forget(f) for f in late]
                again.extend(forget(f) for f in list(pending))
                _stop(pool, wait_=False)  # the only way to stop a worker stuck in native code
                pool = new_pool()
                for job in overrun:
                    if job is solo:
                        solo = None
                    yield job, timeout_outcome(job, timeout)
        finished = True
    finally:
        _stop(pool, wait_=finished)
