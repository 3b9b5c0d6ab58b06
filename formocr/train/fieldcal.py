"""Real development fields, read as the product reads them, and the field calibration fitted on them.

The fields:
- ``years``: each Danish register birth-date cell (validation part) handed whole to
  :meth:`formocr.api.FieldReaderAPI.read_field` as a year field (4 digits, :data:`YEAR_PATTERN`): the reader finds
  the line the pattern fits, the year wherever the clerk wrote it. ``days``: the second located line of the cell,
  a 1-2 digit field. Only a cell of a birth register in which the locator finds three lines has the layout the
  data set describes (year, day, month; ``layout``): a death register's cell often starts with the age and ends
  with the year, and a split or missed line moves the others. There the second line is often not the day the
  label holds, so a day counts as ``standard`` (its label is in its crop) only in that layout; a whole cell's year
  always does. The calibration learns years from the first line of cells of that layout (``whole_cells=False``);
- ``row numbers``: whole row-number cells (scanner margin, rules, the next column's print) as 1-4 digits;
- ``cvl digits``: CVL's validation digits (writers none of the models learnt from) one by one, as one-digit fields;
- ``cvl strings``: strings of 3-8 digits the generator composes of CVL's validation digits on generated paper;
  ``cvl strings, length given`` others alike, read as fields of their own count of digits;
- ``cvl amounts``: cheque amounts composed alike (thousands marks, cents or a closing dash, half after a ``$``),
  read as ``amount`` fields (benchmark only, not fitted on).

A register field's truth is its label, except where the label audit (:func:`formocr.data.real.register_audit`)
records what a person read in the cell: some pages' labels belong to other cells, and some cells hold no year
(the truth is then ``""``: any year read from such a cell is wrong).

Each field is of a calibration kind (:data:`formocr.calibration.KINDS`) by its count of digits and pattern: CVL
digits are the one-digit fields, the strings of a given length the fixed-length ones, days, row numbers and the
other strings the free-length ones, years (a year field's pattern) the pattern ones.

Each field falls in half ``A`` or ``B``: register cells by their scanned page (one clerk's hand stays on one
side), CVL digits and strings by their writer's id (even: ``A``). The calibration is fitted on ``A`` only, so ``B`` can
confirm it.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from formocr.api import FieldReaderAPI
from formocr.calibration import (
    FEATURES,
    KINDS,
    FieldCalibration,
    KindModel,
    features_of,
    fit_logistic,
    is_patterned,
    kind_of,
    kind_terms_json,
    with_terms,
)
from formocr.data.real import (
    AUDIT_PATH,
    CVL_SHA256,
    CVL_TERMS,
    REGISTER_SHA256,
    REGISTER_TERMS,
    AuditEntry,
    load_cvl,
    load_register_cells,
    register_audit,
    sha256_of,
)
from formocr.errors import ConfigError, DatasetError
from formocr.fields import constraint_for
from formocr.objects import FieldResult
from formocr.recognize.modelfile import code_version
from formocr.textlines import line_crop, text_lines
from formocr.train.calibrate import ece

log = logging.getLogger("formocr.train")


@dataclass(frozen=True)
class DevField:
    set: str
    item: str
    half: str  # "A" (fitting) or "B" (confirming)
    truth: str
    result: FieldResult | None  # None: the locator found no such line (a miss)
    seconds: float
    kind: str  # the calibration kind the reader gives the field (:func:`field_kind`)
    standard: bool = True  # the label is what the crop was cut to hold (see the module's notes)
    layout: bool = False  # a register cell of the documented layout, found as three lines
    written: str = ""  # what was written, where it is not the truth itself (an amount's "$15.000.-")
    published: str | None = None  # the data set's label, where the label audit replaced it as the truth

    @property
    def right(self) -> bool:
        return is_right(self.value, self.truth)

    @property
    def value(self) -> str:
        v = str(self.result.value or "") if self.result is not None else ""
        return str(int(v)) if self.set == "days" and v.isdigit() else v


def is_right(value: str, truth: str) -> bool:
    """A reading is right when it is the truth; a cell with nothing to read (no year written: truth ``""``) is never
    read right, so it counts as a miss whatever is read from it."""
    return truth != "" and value == truth


def page_half(name: str) -> str:
    """The half of a register cell, by its scanned page."""
    return "A" if zlib.crc32(name.rsplit("_", 1)[0].encode()) % 2 == 0 else "B"


def field_kind(field_type: str, constraints: dict[str, Any], comb: bool = False) -> str:
    """The calibration kind the reader gives a field of this type and these constraints (its digit bounds, as
    :mod:`formocr.read` takes them)."""
    c = constraint_for(field_type, constraints, comb)
    return kind_of(c.min_digits, c.max_digits, is_patterned(field_type, constraints))


# A year field of a 19th-20th century register, as its template would give it (the data set's own description)
YEAR_PATTERN = r"1[89]\d\d"


def _timed(api: FieldReaderAPI, crop: np.ndarray, **constraints: Any) -> tuple[FieldResult, float]:
    t0 = time.perf_counter()
    f = api.read_field(crop, "digits", **constraints)
    return f, time.perf_counter() - t0


def register_fields(api: FieldReaderAPI, limit: int | None = None, folder: str | None = None,
                    first_lines: bool = False, whole_cells: bool = True) -> Iterator[DevField]:
    """Years and days of the birth-date validation cells. A year is read as a year field (4 digits,
    :data:`YEAR_PATTERN`) from the whole cell, as a user would hand it over: the reader finds the line the pattern
    fits. A day is read from the second located line, a 1-2 digit field. With ``first_lines`` the first located
    line is also read as the year field (set ``years, first line``).

    ``whole_cells=False``: the year is read from the first located line instead, ``standard`` only in the
    documented layout, where that line is the year. The calibration is fitted on these: the reader chooses a
    cell's line by the calibrated chance that its reading is right, so the pattern kind learns from the year's
    own line, not from the lines it is chosen over."""
    cells, _ = load_register_cells("birthdate-validation", folder, limit=limit)
    audit = register_audit()
    for c in cells:
        if len(c.label) != 8 or not c.label.isdigit():
            continue
        lines = text_lines(c.gray)
        layout = c.name.startswith("born") and len(lines) == 3
        year = {"min_length": 4, "max_length": 4, "pattern": YEAR_PATTERN}
        y_truth, y_pub = _audited(audit, c.name, "year", c.label[:4])
        if whole_cells:
            whole, sec = _timed(api, c.gray, **year)
            yield DevField("years", c.name, page_half(c.name), y_truth, whole, sec, field_kind("digits", year),
                           layout=layout, published=y_pub)
        reads: list[tuple[str, int, tuple[str, str | None], dict[str, Any]]] = (
            [] if whole_cells else [("years", 0, (y_truth, y_pub), year)])
        reads.append(("days", 1, _audited(audit, c.name, "day", str(int(c.label[6:8]))),
                      {"min_length": 1, "max_length": 2}))
        if first_lines:
            reads.append(("years, first line", 0, (y_truth, y_pub), year))
        for name, k, (truth, pub), cons in reads:
            crop = line_crop(c.gray, lines, k)
            line, sec = _timed(api, crop, **cons) if crop is not None else (None, 0.0)
            yield DevField(name, c.name, page_half(c.name), truth, line, sec, field_kind("digits", cons), layout,
                           layout=layout, published=pub)


def _audited(audit: dict[tuple[str, str], AuditEntry], name: str, field: str, label: str
             ) -> tuple[str, str | None]:
    """The truth of a cell's field and, where the label audit replaced it, the published label. An audit entry
    whose label is not the data set's is a :class:`DatasetError`: the audit was made on other labels."""
    entry = audit.get((name, field))
    if entry is None:
        return label, None
    if entry.published != label:
        raise DatasetError(f"the label audit has {entry.published!r} as {name}'s {field}, the data set {label!r}",
                           AUDIT_PATH)
    return entry.written, label


def row_fields(api: FieldReaderAPI, limit: int | None = None, folder: str | None = None) -> Iterator[DevField]:
    """Whole row-number cells with an all-digit label."""
    cells, _ = load_register_cells("row_id-validation", folder, limit=limit)
    kind = field_kind("digits", {"min_length": 1, "max_length": 4})
    audit = register_audit()
    for c in cells:
        if c.label.isdigit():
            f, sec = _timed(api, c.gray, min_length=1, max_length=4)
            truth, pub = _audited(audit, c.name, "row", c.label)
            yield DevField("row numbers", c.name, page_half(c.name), truth, f, sec, kind, published=pub)


def _one_digit_fields(api: FieldReaderAPI, name: str, n: int, key: Sequence[int], folder: str | None,
                      crop_of: Callable[[np.ndarray, np.random.Generator], np.ndarray]) -> Iterator[DevField]:
    """``n`` CVL validation digits of each half's writers (``A`` the even ids, ``B`` the odd), each handed over as
    ``crop_of(tile, rng)`` makes it from CVL's 28×28 tile (MNIST's polarity) and read as a one-digit field; ``rng``
    (seeded by ``key`` and the half) drew the digits and may draw the crop's size too."""
    s = load_cvl("valid", folder)
    kind = field_kind("digits", {"min_length": 1, "max_length": 1})
    for half, parity in (("A", 0), ("B", 1)):
        idx = np.flatnonzero(s.writers % 2 == parity)
        rng = np.random.default_rng([key[0], parity, *key[1:]])
        for i in rng.permutation(idx)[:n]:
            f, sec = _timed(api, crop_of(s.images[i], rng), min_length=1, max_length=1)
            yield DevField(name, f"{i}", half, str(int(s.labels[i])), f, sec, kind)


def cvl_digit_fields(api: FieldReaderAPI, n: int, seed: int = 0, folder: str | None = None) -> Iterator[DevField]:
    """CVL's digits each as a scanned one-digit box would give it (dark ink on paper, scaled to about 4 mm at 300
    dpi with a margin)."""
    import cv2

    def crop_of(tile: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        big = cv2.resize(255 - tile, (84, 84), interpolation=cv2.INTER_CUBIC)
        return cv2.copyMakeBorder(big, 24, 24, 24, 24, cv2.BORDER_CONSTANT, value=255)

    return _one_digit_fields(api, "cvl digits", n, (seed,), folder, crop_of)


def cvl_tight_fields(api: FieldReaderAPI, n: int, seed: int = 0, folder: str | None = None) -> Iterator[DevField]:
    """CVL's digits cut to their ink, as digit sets and sorting machines hand single digits over: dark on white,
    16-64 px tall, at most a pixel of paper round them (the crop's resolution guessed, as a caller who knows none
    leaves it)."""
    import cv2

    def crop_of(tile: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        ys, xs = np.nonzero(tile > 127)
        ink = 255 - tile[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        h = int(rng.integers(16, 65))
        w = max(1, round(ink.shape[1] * h / ink.shape[0]))
        m = int(rng.integers(0, 2))
        return cv2.copyMakeBorder(cv2.resize(ink, (w, h), interpolation=cv2.INTER_CUBIC), m, m, m, m,
                                  cv2.BORDER_CONSTANT, value=255)

    return _one_digit_fields(api, "cvl digits, cut tight", n, (seed, 7), folder, crop_of)


def cvl_tile_fields(api: FieldReaderAPI, n: int, seed: int = 0, folder: str | None = None, size: int = 16
                    ) -> Iterator[DevField]:
    """CVL's digits as a digit set of small tiles cut to the digit's height (USPS's zip-code digits): grey,
    ``size`` px tall, the digit centred across a square of that size."""
    import cv2

    def crop_of(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        ys, xs = np.nonzero(image > 40)
        ink = image[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32)
        w = min(size, max(1, round(ink.shape[1] * size / ink.shape[0])))
        tile = np.zeros((size, size), np.float32)
        tile[:, (size - w) // 2 : (size - w) // 2 + w] = cv2.resize(ink, (w, size), interpolation=cv2.INTER_AREA)
        return (255 - np.clip(tile, 0, 255)).astype(np.uint8)

    return _one_digit_fields(api, f"cvl digits, {size}-px tiles", n, (seed, size), folder, crop_of)


def cvl_stored_fields(api: FieldReaderAPI, n: int, seed: int = 0, folder: str | None = None) -> Iterator[DevField]:
    """CVL's digits as the data set stores them (MNIST's square tile: 28×28, the digit scaled to about 20 px and
    centred), dark on white."""
    return _one_digit_fields(api, "cvl digits, 28-px tiles as stored", n, (seed, 28), folder,
                             lambda tile, rng: 255 - tile)


def cvl_string_fields(api: FieldReaderAPI, n: int, seed: int = 0, folder: str | None = None,
                      length_given: bool = False) -> Iterator[DevField]:
    """``n`` strings of each half's CVL validation writers, 3-8 plain digits on generated paper, every other one
    asked to touch, read as ``digits`` fields with no length constraint (``length_given``: another ``n``, each
    read as a field of its own count of digits)."""
    from formocr.synth.strings import DigitBank, StringGenerator, clean_page

    s = load_cvl("valid", folder)
    name = "cvl strings, length given" if length_given else "cvl strings"
    for half, parity in (("A", 0), ("B", 1)):
        keep = s.writers % 2 == parity
        gen = StringGenerator(DigitBank(s.images[keep], s.labels[keep]), synth_share=0.0, min_len=3, max_len=8,
                              separators=False)
        for i in range(n):
            rng = np.random.default_rng([seed, parity, i, 1] if length_given else [seed, parity, i])
            sample = gen.sample(rng, touching=bool(i % 2))
            count = len(sample.text)
            region = replace(sample.region, constraints={"min_length": count, "max_length": count}) \
                if length_given else sample.region
            t0 = time.perf_counter()
            work = api.pipeline.reader.read(clean_page(sample), [region])
            yield DevField(name, f"{half}{i}", half, sample.text, work[0].result, time.perf_counter() - t0,
                           field_kind(region.type, region.constraints, region.style == "comb"))


def _amount_text(rng: np.random.Generator) -> tuple[str, str]:
    """A cheque's courtesy amount as written, and its value: whole (``15.000.-``, ``1.250``) or with cents
    (``1,250.00``), every other one after a ``$``."""
    whole = str(int(rng.integers(1, 10))) + "".join(str(int(d)) for d in rng.integers(0, 10, int(rng.integers(0, 7))))
    groups = [whole[max(0, i - 3) : i] for i in range(len(whole), 0, -3)][::-1]
    if rng.random() < 0.5:
        text, value = ".".join(groups) + str(rng.choice(["", "", ".-", "-"])), whole
    else:
        cents = "".join(str(int(d)) for d in rng.integers(0, 10, 2))
        text, value = ",".join(groups) + "." + cents, f"{whole}.{cents}"
    return ("$" + text if rng.random() < 0.5 else text), value


def cvl_amount_fields(api: FieldReaderAPI, n: int, seed: int = 0, folder: str | None = None
                      ) -> Iterator[DevField]:
    """``n`` cheque amounts of each half's CVL validation writers (:func:`_amount_text`; the separators and the
    ``$`` drawn by the stroke renderer), read as ``amount`` fields of the amount's own decimals."""
    from formocr.synth.strings import DigitBank, StringGenerator, clean_page

    s = load_cvl("valid", folder)
    for half, parity in (("A", 0), ("B", 1)):
        keep = s.writers % 2 == parity
        gen = StringGenerator(DigitBank(s.images[keep], s.labels[keep]), synth_share=0.0)
        for i in range(n):
            rng = np.random.default_rng([seed, parity, i, 2])
            text, value = _amount_text(rng)
            sample = gen.sample(rng, text=text, touching=bool(i % 2))
            cons = {"decimals": 2 if "." in value else 0}
            region = replace(sample.region, type="amount", constraints=cons)
            t0 = time.perf_counter()
            work = api.pipeline.reader.read(clean_page(sample), [region])
            yield DevField("cvl amounts", f"{half}{i}", half, value, work[0].result, time.perf_counter() - t0,
                           field_kind("amount", cons), written=text)


def calibration_curve(fields: list[DevField], cal: FieldCalibration | None) -> dict[str, Any]:
    """Per set: fields, share right, and with ``cal`` the expected calibration error (15 bins)."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(_row(f) for f in fields):
        fs = [f for f in fields if _row(f) == name]
        right = np.array([f.right for f in fs])
        conf = np.array([confidence(f, cal) for f in fs])
        out[name] = {"fields": len(fs), "right": round(float(right.mean()), 4), "ece": round(ece(conf, right), 4)}
    return out


def _row(f: DevField) -> str:
    return f.set if f.standard else f"{f.set}, other cells"


def confidence(f: DevField, cal: FieldCalibration | None) -> float:
    """The field's confidence, or what ``cal`` makes of its readings."""
    if f.result is None:
        return 0.0
    x = features_of(f.result)
    if cal is None or x is None:
        return float(f.result.confidence)
    return cal.probability(x, f.kind)


def fit_fields(fields: list[DevField], models: dict[str, str], l2: float = 1.0
               ) -> tuple[FieldCalibration, dict[str, int]]:
    """Fit one model per kind on the half-``A`` fields read by both readers, for ``models`` (their sha256);
    (calibration, fields fitted on per kind)."""
    kinds: dict[str, KindModel] = {}
    counts: dict[str, int] = {}
    for kind in KINDS:
        rows = [(features_of(f.result), f.right) for f in fields
                if f.half == "A" and f.standard and f.result is not None and f.kind == kind]
        xs = [(with_terms(x, kind), r) for x, r in rows if x is not None and bool(np.isfinite(x).all())]
        if len({r for _, r in xs}) < 2:
            raise ConfigError(f"too few {kind} fields to fit its calibration (both right and wrong readings are "
                              "needed): read more fields (--digits, --strings, --limit)")
        x = np.stack([x for x, _ in xs])
        y = np.array([float(r) for _, r in xs])
        w, b, mean, scale = fit_logistic(x, y, l2)
        kinds[kind] = KindModel(tuple(map(float, w)), b, tuple(map(float, mean)), tuple(map(float, scale)))
        counts[kind] = len(xs)
    return FieldCalibration(kinds, models), counts


def write_calibration(path: str | Path, cal: FieldCalibration, card: dict[str, Any]) -> None:
    """The calibration and its card in one JSON file, written whole or not at all."""
    from formocr.outputs import write_atomic

    text = json.dumps({**cal.to_dict(), "card": card}, indent=2) + "\n"
    write_atomic(path, lambda fh: fh.write(text), what="calibration file")


def card_for(command: str, fields: list[DevField], cal: FieldCalibration, n_fit: dict[str, int], seconds: float
             ) -> dict[str, Any]:
    """The calibration's card. The data's sums are the published ones, which every loader checked."""
    return {
        "name": "fields-calibration", "task": "a fused field reading's evidence → the chance it is right",
        "command": command, "features": list(FEATURES),
        "kind_terms": kind_terms_json(), "kinds": list(KINDS), "fitted_on": n_fit,
        "data": {"registers": {"files": "danish-registers birthdate-validation.zip, row_id-validation.zip",
                               "sha256": {k: REGISTER_SHA256[k] for k in ("birthdate-validation.zip",
                                                                          "row_id-validation.zip")},
                               "terms": REGISTER_TERMS,
                               "label_audit": {"file": "formocr/data/register-audit.csv",
                                               "sha256": sha256_of(AUDIT_PATH), "cells": len(register_audit())}},
                 "cvl": {"file": "cvl-digits/valid.npz", "sha256": CVL_SHA256["valid.npz"], "terms": CVL_TERMS},
                 "halves": "fitted on half A: register cells of the documented layout on pages with an even "
                           "crc32 of their page name, CVL even writers; half B confirms"},
        "models": dict(cal.models), "seconds": round(seconds, 1), "code": code_version(),
        "uncalibrated_B": calibration_curve([f for f in fields if f.half == "B"], None),
        "calibrated_B": calibration_curve([f for f in fields if f.half == "B"], cal),
    }
