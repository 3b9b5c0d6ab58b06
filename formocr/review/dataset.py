"""The fields clerks keyed in review, as a labelled data set: the best training data there is, kept.

Each keyed field's crop is cut from its document as the scan saw it (:class:`formocr.review.crops.CropCache`) and
written as ``NNNNN.png`` beside one ``labels.csv`` (file, source, page, field, type, keyed value, value read).
Fields marked illegible are left out (no label), as are fields whose document cannot be found. The folder is
created; a file already in it is never replaced (the export stops with an error naming it), and labels.csv is
written last and atomically, so a half-done export has no labels.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

from formocr.batch.export import safe_cell
from formocr.errors import FormOcrError, OutputError
from formocr.options import Options
from formocr.outputs import check_output_dir, write_atomic
from formocr.review.corrections import read_corrections
from formocr.review.crops import CropCache
from formocr.review.queue import load_queue

__all__ = ["export_corrections"]

log = logging.getLogger("formocr.review")

COLUMNS = ("file", "source", "page", "field", "type", "value", "read")


def export_corrections(results: str | os.PathLike[str], out: str | os.PathLike[str],
                       root: str | os.PathLike[str] | None = None, options: Options | None = None) -> int:
    """Write the keyed fields of ``results`` into folder ``out``; returns how many crops were written."""
    answers = read_corrections(results)
    keyed = [it for it in load_queue(Path(results), None if root is None else Path(root))
             if (a := answers.get(it.key)) is not None and a.action == "keyed" and a.sha256 == it.sha256]
    items = [it for it in keyed if it.path is not None]
    if len(items) < len(keyed):
        missing = sorted({it.source for it in keyed if it.path is None})
        log.warning("%d keyed field(s) left out: their document was not found or has changed (%s); give --root, "
                    "the folder the documents were read from", len(keyed) - len(items), ", ".join(missing[:5]))
    folder = check_output_dir(out, "data set folder")
    if (folder / "labels.csv").exists():
        raise OutputError("already holds a data set (labels.csv); give a new folder", folder)
    crops = CropCache(options)
    rows = []
    for n, it in enumerate(items, 1):
        name = f"{n:05d}.png"
        try:
            png = crops.crop(it)
        except FormOcrError as e:
            raise OutputError(f"{it.source} page {it.page} field {it.field}: {e.one_line()}", folder) from None
        try:
            fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise OutputError(f"{name} is already there; give a new folder", folder) from None
        with os.fdopen(fd, "wb") as f:
            f.write(png)
        a = answers[it.key]
        rows.append((name, it.source, it.page, it.field, it.type, a.value, a.read))

    def write(stream: object) -> None:
        w = csv.writer(stream)  # type: ignore[arg-type]
        w.writerow(COLUMNS)
        w.writerows([safe_cell(v) for v in row] for row in rows)

    write_atomic(Path(folder) / "labels.csv", write, OutputError, "labels")
    return len(rows)
