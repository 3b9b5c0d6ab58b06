"""Single digits cut from the register training cells' years and days, for the digit CNN.

The registers' clerks are hundreds of writers neither MNIST nor CVL has: continental 1s and 7s, iron-gall and
ballpoint, written small on ruled paper. Each located line of a training cell is cut into digit components by the
product's own segmentation (the expected count given, as a template's field would give it) and each component
normalized as the reader normalizes it, so the tiles are the ones the digit CNN meets in a field. A line is taken
for the year (or the day) when it is cut into that many digits and the shipped digit CNN agrees with the label on
all of them, or, on a year, on all but one to which it still gives some chance: a line that holds something else
(an age, the month, a ditto mark, a word) is left out, and the one digit the network gets wrong on a year it
otherwise reads is kept, since that is what there is to learn.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from formocr.data.real import Cell, line_crop, load_register_cells, text_lines
from formocr.errors import OutputError

log = logging.getLogger("formocr.train")
MAX_LINES = 4  # a birth-date cell's located lines that may hold its year or day


@dataclass(frozen=True)
class CutDigits:
    """Tiles (MNIST polarity, uint8), their labels, and the index of the cell each came from."""

    images: np.ndarray
    labels: np.ndarray
    cells: np.ndarray


MIN_CHANCE = 0.01  # the least chance the shipped network may give a year's one disagreeing digit


def labels_hold(probs: np.ndarray, text: str) -> bool:
    """Whether the digit CNN's readings (``probs``, one row per tile) bear ``text`` out: every digit read as the
    label says, or, in a string of three or more, all but one, and that one given at least :data:`MIN_CHANCE`."""
    ys = [int(ch) for ch in text]
    wrong = [k for k, (p, y) in enumerate(zip(probs, ys)) if int(np.argmax(p[:10])) != y]
    if not wrong:
        return True
    return len(text) >= 3 and len(wrong) == 1 and float(probs[wrong[0], ys[wrong[0]]]) >= MIN_CHANCE


def cut_line(api: Any, crop: np.ndarray, text: str) -> np.ndarray | None:
    """The line's digit tiles (float 28×28, MNIST polarity) if the reader's segmentation cuts it into
    ``len(text)`` digits that :func:`labels_hold` finds are ``text``; else None."""
    from formocr.api import _load

    n = len(text)
    clean, region, _ = api.prepare_crop(_load(crop, api.options), cons={"min_length": n, "max_length": n})
    work = api.pipeline.reader.read(clean, [region])[0]
    tiles = work.tiles
    if len(tiles) != n or sum(c.kind == "digit" for c in work.components) != n:
        return None
    probs = api.pipeline.classifier.probabilities(tiles)
    if not labels_hold(probs, text):
        return None
    return np.asarray(tiles, np.float32)


def cell_digits(api: Any, cell: Cell) -> Iterator[tuple[np.ndarray, str]]:
    """(tiles, text) for the year and the day of one training cell, each on the first located line that holds it
    by :func:`cut_line`'s test, the day on another line than the year's."""
    if len(cell.label) != 8 or not cell.label.isdigit():
        return
    lines = text_lines(cell.gray)
    taken: set[int] = set()
    for text in (cell.label[:4], str(int(cell.label[6:8]))):
        for k in range(min(len(lines), MAX_LINES)):
            if k in taken:
                continue
            crop = line_crop(cell.gray, lines, k)
            tiles = cut_line(api, crop, text) if crop is not None else None
            if tiles is not None:
                taken.add(k)
                yield tiles, text
                break


def cut_register_digits(folder: str | None = None, limit: int | None = None) -> tuple[CutDigits, dict[str, Any]]:
    """Digits of the register training cells (never the validation ones), and a record for the card."""
    from formocr.api import FieldReaderAPI
    from formocr.options import Options
    from formocr.progress import Bar

    api = FieldReaderAPI(Options(reader="segmentation"))
    cells, digest = load_register_cells("birthdate-train", folder, limit=limit)
    images: list[np.ndarray] = []
    labels: list[int] = []
    owners: list[int] = []
    lines = {"years": 0, "days": 0}
    bar = Bar(len(cells), "cutting register digits")
    for i, cell in enumerate(cells):
        for tiles, text in cell_digits(api, cell):
            lines["years" if len(text) == 4 else "days"] += 1
            images += [np.clip(np.round(t * 255.0), 0, 255).astype(np.uint8) for t in tiles]
            labels += [int(ch) for ch in text]
            owners += [i] * len(text)
        if i % 50 == 0:
            bar.update(i + 1, f"{len(labels)} digits")
    bar.close()
    x = np.stack(images) if images else np.zeros((0, 28, 28), np.uint8)
    y, owner = np.asarray(labels, np.int64), np.asarray(owners, np.int32)
    record = {"source": "danish-registers birthdate-train.zip", "sha256": digest, "cells": len(cells),
              "lines": lines, "digits": np.bincount(y, minlength=10).tolist(),
              "cut_by": api.pipeline.classifier.identity}
    return CutDigits(x, y, owner), record


def save_cut(path: str, cut: CutDigits, record: dict[str, Any]) -> None:
    """Write the cut digits and their record as one .npz; an existing file is never replaced."""
    p = Path(path)
    if p.exists():
        raise OutputError("exists already; choose another --out", p)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".part")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, images=cut.images, labels=cut.labels, cells=cut.cells, record=json.dumps(record))
    tmp.replace(p)
