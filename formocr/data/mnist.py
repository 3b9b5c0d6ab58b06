"""MNIST in the standard idx format: reading with integrity checks, locating, and downloading.

Reads the four idx files (gzip or not) from a folder. The header (magic number, dimensions) and the byte count
are checked before anything is trusted, so a truncated download or a swapped file gives a clear
:class:`~formocr.errors.DatasetError` instead of garbage tensors. Known-good checksums are accepted: the
official md5 sums and the sha256 sums of the copies in ``../shared/datasets/mnist`` (whose training images were
rebuilt, see its README).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from formocr.errors import DatasetError

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
COUNTS = {"train": 60000, "test": 10000}

# Official md5 sums (yann.lecun.com) and sha256 of the rebuilt shared copy; either identifies a good file.
KNOWN_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
KNOWN_SHA256 = {
    "train-images-idx3-ubyte.gz": "8e59d4e6322d5e291f26338633ee8015e1369ee4616a784cd934bc27c2948978",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
DEFAULT_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
ENV_VAR = "FORMOCR_MNIST"


@dataclass(frozen=True)
class MnistSplit:
    images: np.ndarray  # N×28×28 uint8, white digit on black
    labels: np.ndarray  # N int64
    sha256: dict[str, str]  # file name → sha256, recorded in model cards


def default_dir() -> Path:
    """``$FORMOCR_MNIST``, else ``../shared/datasets/mnist`` seen from the current directory or the repo."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[2]
    for base in (Path.cwd(), here):
        cand = base.parent / "shared" / "datasets" / "mnist"
        if cand.is_dir():
            return cand
    return Path.home() / ".cache" / "formocr" / "mnist"


def _find(folder: Path, gz_name: str) -> Path:
    for name in (gz_name, gz_name[:-3]):
        p = folder / name
        if p.is_file():
            return p
    raise DatasetError(f"missing {gz_name} (or its uncompressed form); try `formocr data mnist --download`", folder)


def read_idx(path: str | Path, expect_ndim: int | None = None) -> np.ndarray:
    """Read one idx file (gzip or raw), checking magic number, dimensions and size."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise DatasetError(f"cannot read: {e.strerror or e}", p) from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise DatasetError(f"corrupt or truncated gzip data ({e})", p) from None
    if len(raw) < 4:
        raise DatasetError("too short to be an idx file", p)
    zero, dtype_code, ndim = raw[0:2], raw[2], raw[3]
    if zero != b"\x00\x00" or dtype_code != 0x08:
        raise DatasetError("not an idx file of unsigned bytes (bad magic number)", p)
    if expect_ndim is not None and ndim != expect_ndim:
        raise DatasetError(f"expected {expect_ndim} dimensions in the idx header, found {ndim}", p)
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError("truncated idx header", p)
    dims = struct.unpack(">" + "I" * ndim, raw[4:header])
    n = int(np.prod(dims))
    if len(raw) - header != n:
        raise DatasetError(f"size mismatch: header promises {n} bytes of data, file has {len(raw) - header}", p)
    return np.frombuffer(raw, np.uint8, count=n, offset=header).reshape(dims)


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_split(split: str, folder: str | Path | None = None) -> MnistSplit:
    """Load ``train`` or ``test`` with header, count and label-range checks."""
    if split not in COUNTS:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    d = Path(folder) if folder is not None else default_dir()
    if not d.is_dir():
        raise DatasetError("MNIST folder not found; give --data or set FORMOCR_MNIST", d)
    img_p = _find(d, FILES[f"{split}_images"])
    lab_p = _find(d, FILES[f"{split}_labels"])
    images = read_idx(img_p, expect_ndim=3)
    labels = read_idx(lab_p, expect_ndim=1)
    if images.shape[1:] != (28, 28):
        raise DatasetError(f"expected 28×28 images, found {images.shape[1]}×{images.shape[2]}", img_p)
    if len(images) != len(labels):
        raise DatasetError(f"{len(images)} images but {len(labels)} labels in {lab_p.name}", img_p)
    if len(images) != COUNTS[split]:
        raise DatasetError(f"expected {COUNTS[split]} items for the {split} split, found {len(images)}", img_p)
    if labels.max() > 9:
        raise DatasetError("labels outside 0-9", lab_p)
    return MnistSplit(images, labels.astype(np.int64), {img_p.name: _sha256(img_p), lab_p.name: _sha256(lab_p)})


def download(dest: str | Path, mirror: str = DEFAULT_MIRROR, timeout: float = 60.0) -> list[Path]:
    """Fetch the four files from ``mirror`` into ``dest``, verifying each against the known checksums.

    Each file is written to a temporary name and renamed only once verified, so an interrupted download never
    leaves a file that looks complete.
    """
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    got = []
    for name in FILES.values():
        target = out / name
        if target.is_file() and _is_known(target, name):
            got.append(target)
            continue
        url = mirror.rstrip("/") + "/" + name
        fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as r:
                shutil.copyfileobj(r, f)
            if not _is_known(Path(tmp), name):
                raise DatasetError(f"checksum mismatch for {url} (neither the official md5 nor a known sha256)", out)
            os.replace(tmp, target)
        except (urllib.error.URLError, OSError) as e:
            raise DatasetError(f"download of {url} failed: {getattr(e, 'reason', e)}", out) from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        got.append(target)
    return got


def _is_known(p: Path, name: str) -> bool:
    md5 = hashlib.md5(p.read_bytes()).hexdigest()
    return md5 == KNOWN_MD5.get(name) or _sha256(p) == KNOWN_SHA256.get(name)
