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


def _cell_ink(gray: np.ndarray, low: float = 0.08, share: float = 0.35) -> np.ndarray:
    """The writing in a cell: pixels darker than their paper, without long straight strokes.

    Rules across the cell and column lines or scanner margins down it are found first, as straight runs of at least
    two thirds of the width or half of the height, and left out; only then is the cell's own ink strength taken
    (its 99.5th percentile), so a black margin does not set the bar above faint pencil. Near-black pixels help
    find the straight strokes, but count as writing only where they are darker than their own paper."""
    g = gray.astype(np.float32)
    h, w = g.shape
    paper = cv2.dilate(gray, np.ones((15, 15), np.uint8)).astype(np.float32)  # the paper under the strokes
    darkness = np.clip(1.0 - g / np.maximum(paper, 1.0), 0.0, 1.0)
    loose = ((darkness > low) | (g < 60)).astype(np.uint8)
    down = cv2.morphologyEx(loose, cv2.MORPH_OPEN, np.ones((max(3, h // 2), 1), np.uint8))
    across = cv2.morphologyEx(loose, cv2.MORPH_OPEN, np.ones((1, max(3, 2 * w // 3)), np.uint8))
    straight = cv2.dilate(np.maximum(down, across), np.ones((3, 3), np.uint8)) > 0
    rest = darkness[~straight]
    strong = float(np.percentile(rest, 99.5)) if rest.size else 0.0
    return (darkness > max(low, share * strong)) & ~straight


def _split_line(profile: np.ndarray, y0: int, y1: int, min_height: int, out: list[tuple[int, int]]) -> None:
    """Append rows y0..y1 to ``out``, cut where the ink profile (smoothed over 5 rows) falls under 35% of the
    lower of its highest points on either side: two lines that touch (a descender meeting the next line's top).
    Each part keeps at least ``min_height`` rows."""
    seg = np.convolve(profile[y0:y1], np.ones(5) / 5, mode="same")
    if len(seg) >= 2 * min_height + 4:
        k = min_height + int(np.argmin(seg[min_height : len(seg) - min_height]))
        if seg[k] < 0.35 * min(seg[:k].max(), seg[k:].max()):
            _split_line(profile, y0, y0 + k, min_height, out)
            _split_line(profile, y0 + k, y1, min_height, out)
            return
    out.append((y0, y1))


def text_lines(gray: np.ndarray, min_height: int = 8) -> list[tuple[int, int]]:
    """The rows (y0, y1) of a cell's lines of writing, top to bottom, from its ink's row profile; ``gray`` is a
    uint8 cell several lines tall (a column line is a straight run of half its height).

    Ruled lines, column lines and the scanner's margins are left out first (:func:`_cell_ink`). Rows with ink are
    then grouped; gaps of a few rows inside a line (a loop's top, a dot) do not split it, a deep valley between
    two touching lines does."""
    if min_height < 1:
        raise ValueError(f"min_height must be at least 1, not {min_height}")
    h, w = gray.shape
    if h < 2 * min_height or w < 4:
        return []
    ink = _cell_ink(gray)
    opened = cv2.morphologyEx(ink.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    profile = opened.sum(axis=1).astype(np.float32)
    if profile.max() <= 0:
        return []
    on = profile > max(2.0, 0.06 * float(profile.max()))
    lines: list[tuple[int, int]] = []
    y = 0
    while y < h:
        if not on[y]:
            y += 1
            continue
        y0 = y
        gap = 0
        while y < h and (on[y] or gap < 3):
            gap = 0 if on[y] else gap + 1
            y += 1
        y1 = y - gap
        if y1 - y0 >= min_height:
            _split_line(profile, y0, y1, min_height, lines)
    return lines


def line_crop(gray: np.ndarray, lines: list[tuple[int, int]], k: int) -> np.ndarray | None:
    """Line ``k`` of :func:`text_lines` cut out of its cell with a quarter of its height above and below (the
    margins a field's frame would leave), or None when the cell has fewer lines."""
    if len(lines) <= k:
        return None
    y0, y1 = lines[k]
    pad = max(2, (y1 - y0) // 4)
    return gray[max(0, y0 - pad) : y1 + pad]
