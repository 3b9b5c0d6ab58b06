"""Loading scans (PDF, PNG, JPEG, BMP, TIFF files or numpy arrays) as :class:`~formocr.objects.Page` objects.

Design points:

* The type comes from the file's magic bytes, never from its extension.
* :func:`load_pages` validates the whole document up front (type, size, page count, pixel size of every
  page), then returns an iterator that decodes one page at a time: a 300-page PDF never sits in memory.
* Everything the input can cause becomes a typed :mod:`formocr.errors` error with a one-line message naming
  the file; nothing here prints or exits.
* Page images are uint8: H×W when the source is greyscale (or colour with three identical channels), BGR
  H×W×3 otherwise, so later stages can still drop coloured form print.

Resolution: PDFs are rasterized at the requested ``dpi`` (:mod:`formocr.pdf`); image files keep the one they
record when it is sane (:mod:`formocr.images`); arrays take ``dpi``.
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from formocr.errors import ConfigError, EmptyInputError, InputTooLargeError, UnreadableInputError, UnsupportedInputError
from formocr.images import check_pixels, composite_on_white, frame_count, image_pages, open_image
from formocr.limits import LoadLimits
from formocr.objects import Page
from formocr.pdf import pdf_pages, pdfinfo

__all__ = ["ARRAY_SOURCE", "DEFAULT_DPI", "SUPPORTED_TYPES", "LoadLimits", "count_pages", "load_pages", "sniff"]


DEFAULT_DPI = 300
SUPPORTED_TYPES = ("pdf", "png", "jpeg", "bmp", "tiff")
_SUPPORTED_TEXT = "PDF, PNG, JPEG, BMP or TIFF"
ARRAY_SOURCE = "<array>"

# --------------------------------------------------------------------------------------------------- sniffing

# (prefix, offset, kind) for formats we recognise but do not read: lets the error say what the file really is.
_OTHER_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"PK\x03\x04", 0, "a ZIP archive (or an Office/OpenDocument file)"),
    (b"PK\x05\x06", 0, "an empty ZIP archive"),
    (b"\x1f\x8b", 0, "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", 0, "a 7-Zip archive"),
    (b"Rar!\x1a\x07", 0, "a RAR archive"),
    (b"BZh", 0, "a bzip2 archive"),
    (b"\xfd7zXZ\x00", 0, "an xz archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 0, "an old Microsoft Office document"),
    (b"GIF87a", 0, "a GIF image"),
    (b"GIF89a", 0, "a GIF image"),
    (b"WEBP", 8, "a WebP image"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", 0, "a JPEG 2000 image"),
    (b"\xff\x4f\xff\x51", 0, "a JPEG 2000 codestream"),
    (b"ftypheic", 4, "a HEIC image"),
    (b"ftypheix", 4, "a HEIC image"),
    (b"ftypmif1", 4, "a HEIF image"),
    (b"ftypavif", 4, "an AVIF image"),
    (b"AT&TFORM", 0, "a DjVu document"),
    (b"8BPS", 0, "a Photoshop image"),
    (b"%!PS", 0, "a PostScript file"),
    (b"\xc5\xd0\xd3\xc6", 0, "an EPS file"),
    (b"{\\rtf", 0, "an RTF document"),
    (b"\x7fELF", 0, "an executable"),
    (b"MZ", 0, "a Windows executable"),
    (b"\x00\x00\x01\x00", 0, "an icon file"),
    (b"\x93NUMPY", 0, "a numpy .npy file"),
)


def _pdf_header(head: bytes) -> bool:
    # Readers accept junk before the header (poppler looks in the first 1 KiB), but a text file that merely
    # mentions "%PDF-" is not a PDF: away from offset 0 the header must start a line and carry a version.
    if head.startswith(b"%PDF-"):
        return True
    return re.search(rb"[\r\n]%PDF-\d\.\d", head[:1024]) is not None


def _detect(head: bytes) -> str | None:
    """The supported type of a file from its first bytes, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    # "BM" alone is too weak (text can start with it): also require a known DIB header size.
    if head.startswith(b"BM") and len(head) >= 18 and int.from_bytes(head[14:18], "little") in (
        12, 16, 40, 52, 56, 64, 108, 124,
    ):
        return "bmp"
    if _pdf_header(head):
        return "pdf"
    return None


def _describe_other(head: bytes) -> str:
    """A human name for an unsupported file, for the error message."""
    for magic, offset, kind in _OTHER_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return kind
    if head[:4] == b"RIFF":
        return "a RIFF file (WebP, WAV or AVI)"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if stripped.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    if stripped.startswith(b"<svg") or (stripped.startswith(b"<?xml") and b"<svg" in stripped):
        return "an SVG image"
    if stripped.startswith(b"<?xml"):
        return "an XML file"
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
            return "text"
        except UnicodeDecodeError as exc:
            # A multi-byte character cut at the end of the sample is still text.
            if exc.start >= len(head) - 3:
                return "text"
    return "an unrecognised binary file"


def _unreadable(exc: OSError, path: Path) -> UnreadableInputError:
    """The one-line reason an OS error gives for a path we cannot read."""
    if isinstance(exc, FileNotFoundError):
        return UnreadableInputError("no such file", path)
    if isinstance(exc, IsADirectoryError):
        return UnreadableInputError("is a directory, not a file", path)
    if isinstance(exc, PermissionError):
        return UnreadableInputError("permission denied", path)
    return UnreadableInputError(f"cannot read ({exc.strerror or exc})", path)


def _stat_regular(path: Path) -> os.stat_result:
    """stat() a path and make sure it is a regular file we may read, with a typed error otherwise."""
    try:
        st = path.stat()
    except OSError as exc:
        raise _unreadable(exc, path) from None
    if stat.S_ISDIR(st.st_mode):
        raise UnreadableInputError("is a directory, not a file", path)
    if not stat.S_ISREG(st.st_mode):
        # A FIFO or device would block or never end.
        raise UnreadableInputError("not a regular file", path)
    return st


def _read_head(path: Path, n: int = 8192) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError as exc:
        raise _unreadable(exc, path) from None


def sniff(path: str | os.PathLike[str]) -> str:
    """The file's type from its magic bytes ("pdf", "png", "jpeg", "bmp" or "tiff").

    Extensions lie (a ``.pdf`` that is an HTML error page is a classic), so only the content counts.
    """
    p = Path(path)
    st = _stat_regular(p)
    if st.st_size == 0:
        raise EmptyInputError("empty file (0 bytes)", p)
    head = _read_head(p)
    if not head:
        raise EmptyInputError("empty file (0 bytes)", p)
    kind = _detect(head)
    if kind is None:
        raise UnsupportedInputError(
            f"unsupported file type: looks like {_describe_other(head)}; formocr reads {_SUPPORTED_TEXT}", p
        )
    return kind


def _bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} GiB"


def _array_page(array: np.ndarray, dpi: int, limits: LoadLimits) -> Page:
    """Normalise an in-memory image the way files are: uint8 grey or BGR, transparency onto white."""
    a = np.asarray(array)
    if a.size == 0:
        raise EmptyInputError("empty array", ARRAY_SOURCE)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        raise UnsupportedInputError(
            f"array of shape {a.shape}; expected H×W (grey) or H×W×3/4 (BGR/BGRA)", ARRAY_SOURCE
        )
    check_pixels((int(a.shape[1]), int(a.shape[0])), limits, Path(ARRAY_SOURCE), None)
    if a.dtype == np.bool_:
        a = np.where(a, np.uint8(255), np.uint8(0))
    elif a.dtype.kind == "f":
        finite = a[np.isfinite(a)]
        if finite.size != a.size or (finite.size and (finite.min() < 0.0 or finite.max() > 1.0)):
            raise UnsupportedInputError("float array with values outside [0, 1] (or NaN)", ARRAY_SOURCE)
        a = (a * 255.0).round().astype(np.uint8)
    elif a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif a.dtype != np.uint8:
        raise UnsupportedInputError(
            f"array of dtype {a.dtype}; expected uint8, uint16, bool or float", ARRAY_SOURCE
        )
    if a.ndim == 3 and a.shape[2] == 4:
        a = composite_on_white(a[..., :3], a[..., 3])
    return Page(index=0, image=np.ascontiguousarray(a), dpi=float(dpi), source=ARRAY_SOURCE)


def _check_dpi(dpi: float) -> int:
    if isinstance(dpi, bool) or not isinstance(dpi, (int, float)) or not math.isfinite(dpi):
        raise ConfigError(f"dpi must be a number, not {dpi!r}")
    if not 10 <= dpi <= 2400:
        raise ConfigError(f"dpi {dpi} is out of range (10..2400)")
    return round(float(dpi))


def _open_checked(path: Path, limits: LoadLimits) -> str:
    st = _stat_regular(path)
    if st.st_size > limits.max_file_bytes:
        raise InputTooLargeError(
            f"file is {_bytes(st.st_size)}, over the {_bytes(limits.max_file_bytes)} limit", path
        )
    return sniff(path)


def count_pages(path: str | os.PathLike[str]) -> int:
    """Pages in a document without decoding any (pdfinfo for PDFs, the frame count for TIFFs)."""
    p = Path(path)
    kind = sniff(p)
    if kind == "pdf":
        pages = int(pdfinfo(p, last_page=None, timeout_s=LoadLimits().render_timeout_s)["Pages"])
        if pages <= 0:
            raise EmptyInputError("PDF without pages", p)
        return pages
    if kind != "tiff":
        return 1
    # Counting must not trip on a huge page: the size guard belongs to load_pages.
    im = open_image(p, kind, LoadLimits(max_pixels=2**62))
    with im:
        return frame_count(im, p, kind)


def load_pages(
    source: str | os.PathLike[str] | np.ndarray,
    dpi: int = DEFAULT_DPI,
    limits: LoadLimits = LoadLimits(),  # noqa: B008 (frozen, so a shared default is safe)
) -> Iterator[Page]:
    """Pages of a scan, decoded one at a time.

    Checks happen now, before anything is decoded (type, file size, page count, every page's pixel size), so a
    bad document fails fast; decoding errors of a single page surface while iterating. ``dpi`` is the PDF
    rendering resolution, the resolution assumed for image files that record none (or an absurd one), and the
    resolution of an array.
    """
    dpi = _check_dpi(dpi)
    if isinstance(source, np.ndarray):
        return iter([_array_page(source, dpi, limits)])
    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError(f"cannot load pages from a {type(source).__name__}; give a path or a numpy array")
    path = Path(source)
    kind = _open_checked(path, limits)
    if kind == "pdf":
        return pdf_pages(path, dpi, limits)
    return image_pages(path, kind, dpi, limits)
