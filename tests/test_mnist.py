"""MNIST loader: format checks, clear errors, and download from a local HTTP server (never the internet)."""

from __future__ import annotations

import gzip
import http.server
import shutil
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from formocr.data import mnist
from formocr.errors import DatasetError

SHARED = mnist.default_dir()
needs_shared = pytest.mark.skipif(not (SHARED / "t10k-labels-idx1-ubyte.gz").is_file(), reason="no shared MNIST")


def _idx(arr: np.ndarray) -> bytes:
    return b"\x00\x00\x08" + bytes([arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()


def test_read_idx_raw_and_gzip(tmp_path: Path) -> None:
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.idx").write_bytes(_idx(arr))
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(_idx(arr)))
    assert np.array_equal(mnist.read_idx(tmp_path / "a.idx", 3), arr)
    assert np.array_equal(mnist.read_idx(tmp_path / "a.idx.gz", 3), arr)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "too short"),
        (b"PK\x03\x04junkjunk", "bad magic"),
        (_idx(np.zeros((2, 3, 4), np.uint8))[:-5], "size mismatch"),
        (_idx(np.zeros((2, 3, 4), np.uint8)) + b"xx", "size mismatch"),
        (gzip.compress(_idx(np.zeros((5, 5, 5), np.uint8)))[:-12], "gzip"),
        (_idx(np.zeros(7, np.uint8)), "expected 3 dimensions"),
    ],
)
def test_read_idx_errors_name_file_and_problem(tmp_path: Path, content: bytes, message: str) -> None:
    p = tmp_path / "bad-idx3-ubyte.gz"
    p.write_bytes(content)
    with pytest.raises(DatasetError) as e:
        mnist.read_idx(p, 3)
    assert message in str(e.value) and str(p) in str(e.value) and "\n" not in str(e.value)


def test_missing_folder_and_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        mnist.load_split("test", tmp_path / "nope")
    with pytest.raises(DatasetError, match="missing t10k-images"):
        mnist.load_split("test", tmp_path)


def test_wrong_count_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx(np.zeros((10, 28, 28), np.uint8)))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx(np.zeros(10, np.uint8)))
    with pytest.raises(DatasetError, match="expected 10000 items"):
        mnist.load_split("test", tmp_path)


@needs_shared
def test_loads_shared_test_split() -> None:
    s = mnist.load_split("test", SHARED)
    assert s.images.shape == (10000, 28, 28) and s.images.dtype == np.uint8
    assert np.bincount(s.labels).min() > 800
    assert s.sha256["t10k-labels-idx1-ubyte.gz"] == mnist.KNOWN_SHA256["t10k-labels-idx1-ubyte.gz"]


@pytest.fixture()
def http_dir(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "mirror"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):  # type: ignore[no-untyped-def]
            super().__init__(*a, directory=str(root), **k)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", root
    finally:
        server.shutdown()
        server.server_close()


@needs_shared
def test_download_from_local_mirror(http_dir: tuple[str, Path], tmp_path: Path) -> None:
    url, root = http_dir
    for name in mnist.FILES.values():
        shutil.copy(SHARED / name, root / name)
    got = mnist.download(tmp_path / "dest", url)
    assert sorted(p.name for p in got) == sorted(mnist.FILES.values())
    assert mnist.load_split("test", tmp_path / "dest").labels.shape == (10000,)


@needs_shared
def test_download_rejects_tampered_file_and_leaves_nothing(http_dir: tuple[str, Path], tmp_path: Path) -> None:
    url, root = http_dir
    for name in mnist.FILES.values():
        data = (SHARED / name).read_bytes()
        (root / name).write_bytes(data[:-100] if name.startswith("train-images") else data)
    dest = tmp_path / "dest"
    with pytest.raises(DatasetError, match="checksum mismatch"):
        mnist.download(dest, url)
    assert not (dest / "train-images-idx3-ubyte.gz").exists()
    assert not [p for p in dest.iterdir() if p.name.endswith(".part")]


def test_download_unreachable_mirror(http_dir: tuple[str, Path], tmp_path: Path) -> None:
    url, _root = http_dir  # serves an empty folder: every file is a 404
    with pytest.raises(DatasetError, match=r"download of .* failed"):
        mnist.download(tmp_path / "dest", url)
