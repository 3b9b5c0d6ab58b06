"""Batch processing: a folder of scans into one JSON Lines results file, in parallel and resumably.

``formocr batch IN_DIR -o results.jsonl`` and :func:`run_batch` do the same. Layout:

* :mod:`~formocr.batch.discover`: which files, in which order;
* :mod:`~formocr.batch.record`: the record of one document (one line of the results file);
* :mod:`~formocr.batch.results`: the results file (atomic appends, torn-tail repair, resume index, compaction);
* :mod:`~formocr.batch.worker`: reading one document, the same for every engine;
* :mod:`~formocr.batch.local` and :mod:`~formocr.batch.ray_engine`: the engines;
* :mod:`~formocr.batch.runner`: the driver loop, :class:`BatchConfig` and :class:`BatchSummary`;
* :mod:`~formocr.batch.export`: CSV of the field values; :mod:`~formocr.batch.progress`: the progress bar.
"""

from formocr.batch.discover import SUPPORTED_SUFFIXES, discover
from formocr.batch.export import export_csv
from formocr.batch.progress import BatchObserver, Progress
from formocr.batch.record import ErrorInfo, Record, RecordSummary, WorkerInfo, field_columns
from formocr.batch.results import ResultsFile
from formocr.batch.runner import BatchConfig, BatchSummary, run_batch

__all__ = [
    "SUPPORTED_SUFFIXES",
    "BatchConfig",
    "BatchObserver",
    "BatchSummary",
    "ErrorInfo",
    "Progress",
    "Record",
    "RecordSummary",
    "ResultsFile",
    "WorkerInfo",
    "discover",
    "export_csv",
    "field_columns",
    "run_batch",
]
