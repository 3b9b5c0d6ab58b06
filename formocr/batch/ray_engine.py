"""The Ray engine: the same documents, records and results file, read by actors on a Ray cluster.

Why actors: each one builds its pipeline (loads the model) once, like a local worker process. The driver stays
the only writer of the results file; actors return serialized records. Documents travel as bytes through
Ray's object store, so the cluster's nodes need formocr installed but not the driver's files; each actor
writes the bytes to a private temporary file (poppler reads files) and deletes it after the document.

One document is in flight per actor, so a dead actor names the document that killed it exactly: that
document gets a ``WorkerCrashed`` record and a fresh actor takes the dead one's place.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from formocr.batch.local import usable_cpus
from formocr.batch.worker import DocumentWorker, Job, Outcome, crashed_outcome, error_outcome
from formocr.errors import ConfigError, DependencyError, ExitCode
from formocr.options import Options


class RayDocumentWorker:
    """The body of a Ray actor: a :class:`DocumentWorker` that reads shipped bytes from a private temp dir."""

    def __init__(self, options: Options, threads: int) -> None:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self.worker = DocumentWorker(options, threads)
        self.tmp = Path(tempfile.mkdtemp(prefix="formocr-ray-"))

    def process(self, job: Job) -> Outcome:
        if job.data is None:  # a shared filesystem: read in place
            return self.worker.process(job)
        path = self.tmp / f"doc{Path(job.source).suffix.lower()}"
        try:
            path.write_bytes(job.data)
            return self.worker.process(job, path)
        finally:
            with contextlib.suppress(OSError):
                path.unlink()

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise DependencyError("--engine ray needs Ray: pip install 'formocr[ray]'") from None
    return ray


def run_ray(jobs: Iterator[Job], options: Options, workers: int | None, address: str | None = None
            ) -> Generator[tuple[Job, Outcome], None, None]:
    """Read ``jobs`` with ``workers`` actors (default: every CPU of the cluster); yields in completion order.

    Without ``address`` a local Ray instance is started for the run (and stopped after it); with one, the run
    joins that cluster. A Ray instance already initialized in this process is used as it is.
    """
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        # Ray's start-up chatter (auth tokens, the dashboard) means nothing for a private local instance.
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "logging_level": logging.WARNING if address else logging.ERROR}
        try:
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=workers or usable_cpus(), **kwargs)
        except Exception as e:  # Ray raises many types here (ConnectionError, RuntimeError, ValueError...)
            raise ConfigError(f"cannot start or reach Ray at {address or 'a local instance'}: {e}") from None
        started = True
    actor_cls = ray.remote(num_cpus=1, max_restarts=0)(RayDocumentWorker)
    # One CPU per actor; more actors than the cluster has CPUs would wait forever with documents assigned.
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    n = min(workers or cpus, cpus)
    actors: list[Any] = []

    def new_actor() -> Any:
        a = actor_cls.remote(options, 1)
        actors.append(a)
        return a

    pending: dict[Any, tuple[Any, Job]] = {}
    try:
        idle = [new_actor() for _ in range(n)]
        more = True
        while True:
            while idle and more:
                job = next(jobs, None)
                if job is None:
                    more = False
                    break
                actor = idle.pop()
                pending[actor.process.remote(job)] = (actor, job)
            if not pending:
                break
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                actor, job = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayActorError as e:
                    outcome = crashed_outcome(job, " ".join(str(e).split())[:300])
                    with contextlib.suppress(Exception):
                        ray.kill(actor)
                    actors.remove(actor)
                    actor = new_actor()
                except ray.exceptions.RayError as e:
                    outcome = error_outcome(job, type(e).__name__, f"internal error: {e}", ExitCode.INTERNAL)
                idle.append(actor)
                yield job, outcome
    finally:
        busy = {id(a) for a, _ in pending.values()}
        for a in actors:
            if id(a) not in busy:  # a busy actor would finish its document first: just kill it
                with contextlib.suppress(Exception):
                    ray.get(a.close.remote(), timeout=10)
            with contextlib.suppress(Exception):
                ray.kill(a)
        if started:
            ray.shutdown()
