"""Real handwriting sets: CVL single digits and the Danish parish-register cells, with integrity checks.

Both are read from ``../shared/datasets/<name>`` (seen from the working directory or the checkout) or from the
folder an environment variable names (``FORMOCR_CVL``, ``FORMOCR_REGISTERS``). Each file is checked against the
sha256 its distribution publishes before anything in it is trusted, so a truncated copy or a swapped file is a
one-line :class:`~formocr.errors.DatasetError`, not a silently wrong figure.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from formocr.errors import DatasetError

CVL_SHA256 = {
    "train.npz": "457502de4b9a9dbb9920216a64ce3a62b42b357354fb1bf547cf1da5b4cc1433",
    "valid.npz": "71ff6991ca5ff0b689ee0ab8e99e41dcb4c414c1610de00a39f24bfdbe4eaf17",
}
REGISTER_SHA256 = {
    "birthdate-train.zip": "4ab14bcd156d9540b6a68f1649efa640d7350d010b7567bb7d470fccbaea1c57",
    "birthdate-validation.zip": "fe9dba315450ffa91bfe0c327733a3b5854bd048ec1bc6050dcb870cfbe26e5f",
    "row_id-validation.zip": "7bab8a4c8c1fc29e83f4dc36c1555c071e6f3ab4097d1cc01a62e4c4edcfa36c",
}
CVL_TERMS = ("CVL Single Digit dataset (ICDAR 2013 competition), Computer Vision Lab, TU Wien: research data set; "
             "cite Diem et al., ICDAR 2013 Competition on Handwritten Digit Recognition")
REGISTER_TERMS = ("Danish parish-register crops published for research by Cabello Piqueras et al., 'Date Recognition "
                  "in Historical Parish Records', ICFHR 2022")


def dataset_dir(name: str, env: str, folder: str | Path | None = None) -> Path:
    """``folder``, else ``$env``, else ``../shared/datasets/<name>`` beside the working directory or the checkout."""
    if folder is not None:
        return Path(folder)
    if os.environ.get(env):
        return Path(os.environ[env])
    here = Path(__file__).resolve().parents[2]
    for base in (Path.cwd(), here):
        cand = base.parent / "shared" / "datasets" / name
        if cand.is_dir():
            return cand
    return Path.cwd().parent / "shared" / "datasets" / name


def sha256_of(p: Path) -> str:
    h = hashlib.sha256()
    try:
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as e:
        raise DatasetError(f"cannot read: {e.strerror or e}", p) from None
    return h.hexdigest()


def _checked(folder: Path, name: str, sums: dict[str, str], env: str, verify: bool) -> tuple[Path, str]:
    p = folder / name
    if not p.is_file():
        raise DatasetError(f"missing {name}; give the dataset folder or set {env}", folder)
    digest = sha256_of(p)
    if verify and digest != sums[name]:
        raise DatasetError(f"sha256 {digest[:16]}… is not the published {sums[name][:16]}… (corrupt or another "
                           "version)", p)
    return p, digest


@dataclass(frozen=True)
class DigitSet:
    """Single digits as MNIST gives them: N×28×28 uint8, white ink on black, with labels and writer ids."""

    images: np.ndarray
    labels: np.ndarray  # int64 0-9
    writers: np.ndarray  # int32
    sha256: dict[str, str]


def mnist_polarity(images: np.ndarray) -> np.ndarray:
    """Dark-on-paper tiles → MNIST's white ink on black, the paper level (each tile's median border) at 0."""
    a = images.astype(np.float32)
    border = np.concatenate([a[:, 0, :], a[:, -1, :], a[:, :, 0], a[:, :, -1]], axis=1)
    paper = np.median(border, axis=1)[:, None, None]
    darkest = a.min(axis=(1, 2), keepdims=True)
    ink = (paper - a) / np.maximum(paper - darkest, 1.0)
    return np.clip(np.round(ink * 255.0), 0, 255).astype(np.uint8)


def load_cvl(split: str, folder: str | Path | None = None, verify: bool = True) -> DigitSet:
    """CVL ``train`` (67 writers) or ``valid`` (60 other writers), in MNIST's polarity."""
    if split not in ("train", "valid"):
        raise ValueError(f"CVL split must be 'train' or 'valid', not {split!r}")
    d = dataset_dir("cvl-digits", "FORMOCR_CVL", folder)
    p, digest = _checked(d, f"{split}.npz", CVL_SHA256, "FORMOCR_CVL", verify)
    try:
        with np.load(p, allow_pickle=False) as z:
            images, labels, writers = z["images"], z["labels"], z["writers"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise DatasetError(f"not a CVL digits file ({e})", p) from None
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise DatasetError(f"expected N×28×28 uint8 images, found {images.shape} {images.dtype}", p)
    if not (len(images) == len(labels) == len(writers)) or len(images) == 0:
        raise DatasetError(f"{len(images)} images, {len(labels)} labels, {len(writers)} writers", p)
    if labels.max() > 9:
        raise DatasetError("labels outside 0-9", p)
    return DigitSet(mnist_polarity(images), labels.astype(np.int64), writers.astype(np.int32), {p.name: digest})


@dataclass(frozen=True)
class Cell:
    """One register cell: its grey crop (uint8, dark ink on paper), label and file name inside the zip."""

    name: str
    label: str
    gray: np.ndarray


def load_register_cells(part: str, folder: str | Path | None = None, verify: bool = True,
                        limit: int | None = None) -> tuple[list[Cell], str]:
    """The cells of ``birthdate-train``, ``birthdate-validation`` or ``row_id-validation``, in the zip's label
    order, and the zip's sha256. Unreadable crops are a :class:`DatasetError` naming the member."""
    name = f"{part}.zip"
    if name not in REGISTER_SHA256:
        raise ValueError(f"register part must be one of {sorted(n[:-4] for n in REGISTER_SHA256)}, not {part!r}")
    d = dataset_dir("danish-registers", "FORMOCR_REGISTERS", folder)
    p, digest = _checked(d, name, REGISTER_SHA256, "FORMOCR_REGISTERS", verify)
    cells = []
    try:
        with zipfile.ZipFile(p) as z:
            rows = list(csv.reader(io.TextIOWrapper(z.open("labels.csv"), encoding="utf-8")))
            if not rows or rows[0] != ["filename", "label"]:
                raise DatasetError("labels.csv does not start with 'filename,label'", p)
            for row in rows[1 : None if limit is None else limit + 1]:
                if len(row) != 2:
                    raise DatasetError(f"labels.csv: bad row {row!r}", p)
                raw = np.frombuffer(z.read(row[0]), np.uint8)
                gray = cv2.imdecode(raw, cv2.IMREAD_GRAYSCALE)
                if gray is None or gray.size == 0:
                    raise DatasetError(f"{row[0]}: not a readable image", p)
                cells.append(Cell(row[0], row[1].strip(), gray))
    except (zipfile.BadZipFile, KeyError, OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"not a register zip ({e})", p) from None
    return cells, digest


@dataclass(frozen=True)
class AuditEntry:
    """One audited register field: the label the data set publishes, what the cell holds (``""``: no year written)
    and why they differ."""

    published: str
    written: str
    reason: str


AUDIT_PATH = Path(__file__).with_name("register-audit.csv")
# what each field may hold, in the part it belongs to: a year of four digits (or none), a day without a leading zero
AUDIT_FIELDS = {"year": ("birthdate-validation", r"[0-9]{4}|"), "day": ("birthdate-validation", r"[1-9][0-9]?"),
                "row": ("row_id-validation", r"[0-9]{1,4}")}


def register_audit(path: str | Path = AUDIT_PATH) -> dict[tuple[str, str], AuditEntry]:
    """Register cells whose published label is not what the cell holds, as a person read them from the crops:
    (file, field) → the label, the digits written there (``""`` where the cell holds no year: a clerk's ditto) and
    why.

    Some pages' labels belong to other cells of the page (the day written in cell 1 is cell 0's label), and some
    cells hold no year. Read against those labels, a right reading counts as wrong, and the precision among
    accepted readings measures the labels. ``register-audit.csv`` records each one looked at and why (only cells
    the shipped readers disagreed with were looked at: see ``docs/decisions.md``)."""
    p = Path(path)
    out: dict[tuple[str, str], AuditEntry] = {}
    try:
        rows = list(csv.reader(p.read_text("utf-8").splitlines()))
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read the label audit: {e}", p) from None
    if not rows or rows[0] != ["part", "file", "field", "published", "written", "reason"]:
        raise DatasetError("not a label audit: the header must be part,file,field,published,written,reason", p)
    for k, row in enumerate(rows[1:], start=2):
        spec = AUDIT_FIELDS.get(row[2]) if len(row) == 6 else None
        ok = (spec is not None and row[0] == spec[0] and row[1] != "" and re.fullmatch(r"[0-9]+", row[3]) is not None
              and re.fullmatch(spec[1], row[4]) is not None and row[4] != row[3] and row[5] != "")
        if not ok or (row[1], row[2]) in out:
            raise DatasetError(f"line {k}: not an audit row (or a repeated cell): {row!r}", p)
        out[(row[1], row[2])] = AuditEntry(row[3], row[4], row[5])
    return out
