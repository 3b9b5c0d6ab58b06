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
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from formocr.batch.worker import Job, Outcome, crashed_outcome, error_outcome, init_process, process_job
from formocr.options import Options


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


def run_local(jobs: Iterator[Job], options: Options, workers: int, in_flight: int | None = None
              ) -> Generator[tuple[Job, Outcome], None, None]:
    """Read ``jobs`` with ``workers`` processes; yields (job, outcome) in completion order."""
    ctx = _context()
    threads = threads_per_worker(workers)
    limit = max(1, in_flight or 2 * workers)

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=init_process,
                                   initargs=(options, threads, os.getpid()))  # fmt: skip

    pool = new_pool()
    pending: dict[Future[Outcome], Job] = {}
    suspects: deque[Job] = deque()
    solo: Job | None = None  # a suspect being read alone after a crash
    more = True
    finished = False
    try:
        while True:
            if solo is None and suspects and not pending:
                solo = suspects.popleft()
                pending[pool.submit(process_job, solo)] = solo
            while solo is None and not suspects and more and len(pending) < limit:
                job = next(jobs, None)
                if job is None:
                    more = False
                    break
                pending[pool.submit(process_job, job)] = job
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            broken: list[Job] = []
            for fut in done:
                job = pending.pop(fut)
                try:
                    outcome = fut.result()
                except BrokenProcessPool:
                    broken.append(job)
                    continue
                except Exception as e:  # e.g. a result that could not be pickled back
                    outcome = error_outcome(job, type(e).__name__, f"internal error: {e}", 1)
                if job is solo:
                    solo = None
                yield job, outcome
            if broken:
                broken.extend(pending.values())
                pending.clear()
                _stop(pool, wait_=False)
                pool = new_pool()
                if solo is not None:
                    yield solo, crashed_outcome(solo)
                    solo = None
                else:
                    suspects.extend(broken)
        finished = True
    finally:
        _stop(pool, wait_=finished)
