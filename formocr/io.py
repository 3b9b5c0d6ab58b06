"""Loading scans (PDF, PNG, JPEG, BMP, TIFF files or numpy arrays) as :class:`~formocr.objects.Page` objects.

Design points:

* The type comes from the file's magic bytes, never from its extension.
* :func:`load_pages` validates the whole document up front (type, size, page count, pixel size of every
  page), then returns an iterator that decodes one page at a time: a 300-page PDF never sits in memory.
* Everything the input can cause becomes a typed :mod:`formocr.errors` error with a one-line message naming
  the file; nothing here prints or exits.
* Page images are uint8: H×W when the source is greyscale (or colour with three identical channels), BGR
  H×W×3 otherwise, so later stages can still drop coloured form print.

Outputs (:func:`check_output`, :func:`write_atomic`, :func:`write_stdout`): a file is only ever written through a
temporary file, fsync and a rename, and only over a regular file (never a device, FIFO or folder); every failure
is an :class:`~formocr.errors.OutputError` naming the path.

Resolution: PDFs are rasterized at the requested ``dpi``. Image files keep the resolution recorded in the
file (``info['dpi']``) when it lies in 50..2400 dpi; otherwise the ``dpi`` argument (300 by default) is
assumed. Many cameras and editors write a nominal 72 or 96 dpi, which passes that check.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from struct import error as struct_error  # raised by some Pillow plugins on short headers
from typing import Any, TextIO, TypeVar

import numpy as np
from PIL import Image, ImageFile, ImageSequence

from formocr.errors import (
    ConfigError,
    CorruptInputError,
    DependencyError,
    EmptyInputError,
    EncryptedInputError,
    InputTooLargeError,
    OutputError,
    UnreadableInputError,
    UnsupportedInputError,
)
from formocr.objects import Page

__all__ = [
    "DEFAULT_DPI",
    "SUPPORTED_TYPES",
    "LoadLimits",
    "check_output",
    "check_output_dir",
    "count_pages",
    "default_mode",
    "fsync_dir",
    "load_pages",
    "sniff",
    "stdout_error",
    "write_atomic",
    "write_stdout",
]

DEFAULT_DPI = 300
SUPPORTED_TYPES = ("pdf", "png", "jpeg", "bmp", "tiff")
_SUPPORTED_TEXT = "PDF, PNG, JPEG, BMP or TIFF"
_SANE_DPI = (50.0, 2400.0)
_POPPLER_HINT = "install poppler-utils: apt-get install poppler-utils (macOS: brew install poppler)"
ARRAY_SOURCE = "<array>"


@dataclass(frozen=True)
class LoadLimits:
    """Guards against decompression bombs and runaway documents; a caller may loosen them on purpose."""

    max_pixels: int = 200_000_000 // 2  # per page, i.e. 100 MP
    max_pages: int = 500
    max_file_bytes: int = 2 * 1024**3
    render_timeout_s: int = 300  # per poppler call; a hostile PDF must not hang a batch


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


# --------------------------------------------------------------------------------------------------- PDF


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # pdf2image prefixes its own sentence; poppler's message is the interesting part.
    lines = [ln for ln in lines if not ln.startswith("Unable to get page count")]
    return lines[0] if lines else "no details"


def _cli_path(path: Path) -> str:
    """Absolute, so a file named like an option ("-v.pdf") cannot be taken for one by poppler."""
    return os.path.abspath(path)


def _require_poppler(path: Path) -> None:
    missing = [tool for tool in ("pdfinfo", "pdftoppm") if shutil.which(tool) is None]
    if missing:
        raise DependencyError(
            f"cannot read PDFs: poppler's {' and '.join(missing)} not found on PATH; {_POPPLER_HINT}", path
        )


def _pdf_error(exc: Exception, path: Path, timeout_s: int) -> Exception:
    """Map a pdf2image/poppler failure to a typed formocr error."""
    from pdf2image import exceptions as pe

    if isinstance(exc, pe.PopplerNotInstalledError):
        return DependencyError(f"cannot read PDFs: poppler not found; {_POPPLER_HINT}", path)
    if isinstance(exc, pe.PDFPopplerTimeoutError):
        return CorruptInputError(f"poppler gave up after {timeout_s} s; the PDF is damaged or hostile", path)
    text = str(exc)
    low = text.lower()
    if "incorrect password" in low or "passwordincorrect" in type(exc).__name__.lower():
        return EncryptedInputError(
            "encrypted PDF: it needs a password to open; save an unprotected copy and try again", path
        )
    if "page count 0" in low or "wrong page range" in low:
        return EmptyInputError("PDF without pages", path)
    return CorruptInputError(f"not a valid PDF (pdfinfo: {_first_line(text)})", path)


def _pdfinfo(path: Path, last_page: int | None, timeout_s: int) -> dict[str, Any]:
    from pdf2image import pdfinfo_from_path

    _require_poppler(path)
    try:
        kwargs: dict[str, Any] = {"timeout": timeout_s}
        if last_page:
            kwargs.update(first_page=1, last_page=last_page)
        info: dict[str, Any] = pdfinfo_from_path(_cli_path(path), **kwargs)
    except Exception as exc:  # pdf2image raises several unrelated classes; map them all.
        raise _pdf_error(exc, path, timeout_s) from None
    if not isinstance(info.get("Pages"), int):
        raise CorruptInputError("not a valid PDF (pdfinfo reports no page count)", path)
    return info


_SIZE_RE = re.compile(r"([0-9.]+)\s*x\s*([0-9.]+)\s*pts")
_PAGE_KEY_RE = re.compile(r"^Page\s+(\d+)\s+(size|rot)$")


def _pdf_page_sizes(info: dict[str, Any], n: int) -> list[tuple[float, float]]:
    """Displayed size (points, rotation applied) of pages 1..n from pdfinfo's output."""
    sizes: dict[int, tuple[float, float]] = {}
    rots: dict[int, int] = {}
    for key, value in info.items():
        m = _PAGE_KEY_RE.match(str(key).strip())
        if not m:
            continue
        number = int(m.group(1))
        if m.group(2) == "size":
            sm = _SIZE_RE.search(str(value))
            if sm:
                sizes[number] = (float(sm.group(1)), float(sm.group(2)))
        else:
            try:
                rots[number] = int(float(str(value).strip()))
            except ValueError:
                rots[number] = 0
    default = None
    sm = _SIZE_RE.search(str(info.get("Page size", "")))
    if sm:
        default = (float(sm.group(1)), float(sm.group(2)))
    out: list[tuple[float, float]] = []
    for number in range(1, n + 1):
        w, h = sizes.get(number) or default or (0.0, 0.0)
        if rots.get(number, 0) % 180 == 90:
            w, h = h, w
        out.append((w, h))
    return out


def _pdf_pixels(size_pt: tuple[float, float], dpi: int) -> tuple[int, int]:
    # pdftoppm rounds up: ceil(points * dpi / 72).
    return (math.ceil(size_pt[0] * dpi / 72 - 1e-9), math.ceil(size_pt[1] * dpi / 72 - 1e-9))


def _bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} GiB"


def _mp(pixels: float) -> str:
    return f"{pixels / 1e6:.0f} MP" if pixels >= 1e7 else f"{pixels / 1e6:.3g} MP"


def _pdf_pages(path: Path, dpi: int, limits: LoadLimits) -> Iterator[Page]:
    info = _pdfinfo(path, last_page=limits.max_pages, timeout_s=limits.render_timeout_s)
    n = int(info["Pages"])
    if n <= 0:
        raise EmptyInputError("PDF without pages", path)
    if n > limits.max_pages:
        raise InputTooLargeError(f"{n} pages, over the limit of {limits.max_pages} pages", path)
    for number, size_pt in enumerate(_pdf_page_sizes(info, n), start=1):
        w, h = _pdf_pixels(size_pt, dpi)
        if w * h > limits.max_pixels:
            raise InputTooLargeError(
                f"page {number} would be {w}×{h} px at {dpi} dpi, over the {_mp(limits.max_pixels)} limit;"
                " lower --dpi",
                path,
            )
    return _render_pdf(path, n, dpi, limits)


def _read_pnm(data: bytes) -> np.ndarray:
    """Parse the binary PGM (P5) or PPM (P6) that pdftoppm writes to stdout."""
    fields: list[bytes] = []
    pos = 0
    while len(fields) < 4:
        while pos < len(data) and data[pos : pos + 1].isspace():
            pos += 1
        if data[pos : pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while end < len(data) and not data[end : end + 1].isspace():
            end += 1
        if end == pos:
            raise ValueError("truncated image header")
        fields.append(data[pos:end])
        pos = end
    magic, w, h, maxval = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
    if magic not in (b"P5", b"P6") or maxval != 255:
        raise ValueError(f"unexpected image format {magic!r}/{maxval}")
    channels = 3 if magic == b"P6" else 1
    pixels = np.frombuffer(data, np.uint8, count=w * h * channels, offset=pos + 1)
    if channels == 1:
        return pixels.reshape(h, w)
    return np.ascontiguousarray(pixels.reshape(h, w, 3)[:, :, ::-1])  # RGB → BGR, as everywhere else


def _render_pdf(path: Path, n: int, dpi: int, limits: LoadLimits, color: bool = False) -> Iterator[Page]:
    """One pdftoppm call per page, its PNM read straight from the pipe (no temporary files, no PIL round trip).

    Greyscale by default: it halves what poppler writes, and nothing downstream uses colour yet.
    """
    exe = shutil.which("pdftoppm")
    if exe is None:
        raise DependencyError(f"cannot read PDFs: poppler's pdftoppm not found on PATH; {_POPPLER_HINT}", path)
    for number in range(1, n + 1):
        cmd = [exe, "-r", str(dpi), "-f", str(number), "-l", str(number), "-cropbox"]
        if not color:
            cmd.append("-gray")
        cmd.append(_cli_path(path))
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=limits.render_timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise CorruptInputError(
                f"poppler gave up after {limits.render_timeout_s} s on page {number}; the PDF is damaged or hostile",
                path,
            ) from None
        except OSError as exc:
            raise DependencyError(f"cannot run pdftoppm ({exc.strerror or exc}); {_POPPLER_HINT}", path) from None
        if proc.returncode != 0 or not proc.stdout:
            err = proc.stderr.decode("utf-8", "replace") or f"pdftoppm exit code {proc.returncode}"
            raise _pdf_error(RuntimeError(err), path, limits.render_timeout_s)
        try:
            array = _read_pnm(proc.stdout)
        except (ValueError, IndexError) as exc:
            raise CorruptInputError(f"page {number} could not be rendered ({exc})", path) from None
        if array.shape[0] * array.shape[1] > limits.max_pixels:  # belt and braces: pdfinfo said otherwise
            raise InputTooLargeError(
                f"page {number} is {array.shape[1]}×{array.shape[0]} px at {dpi} dpi, over the "
                f"{_mp(limits.max_pixels)} limit; lower --dpi",
                path,
            )
        yield Page(index=number - 1, image=array, dpi=float(dpi), source=str(path))


# --------------------------------------------------------------------------------------------------- images

_PIL_LOCK = threading.RLock()


@contextmanager
def _pillow_guards(max_pixels: int) -> Iterator[None]:
    """Pillow's bomb guard and truncation flag are process globals: set ours, restore theirs afterwards.

    Held while opening and while decoding, so concurrent threads decode one image at a time.
    """
    with _PIL_LOCK:
        old_max, old_trunc = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
        Image.MAX_IMAGE_PIXELS = max(1, int(max_pixels))
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            with warnings.catch_warnings():
                # Sizes between the limit and twice it only warn; we check the size ourselves.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                yield
        finally:
            Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = old_max, old_trunc


def _file_dpi(im: Image.Image, fallback: int) -> float:
    raw: Any = im.info.get("dpi")
    try:
        if isinstance(raw, (tuple, list)) and raw:
            x = float(raw[0])
            y = float(raw[1]) if len(raw) > 1 else x
            value = (x + y) / 2 if abs(x - y) > 0.5 else x
        elif raw is not None:
            value = float(raw)
        else:
            return float(fallback)
    except (TypeError, ValueError, ZeroDivisionError):
        return float(fallback)
    if not math.isfinite(value) or not _SANE_DPI[0] <= value <= _SANE_DPI[1]:
        return float(fallback)
    return float(round(value, 2))


def _check_pixels(size: tuple[int, int], limits: LoadLimits, path: Path, frame: int | None) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise CorruptInputError(f"image with an impossible size {w}×{h}", path)
    if w * h > limits.max_pixels:
        where = f"page {frame} is" if frame is not None else "image is"
        raise InputTooLargeError(
            f"{where} {w}×{h} px ({_mp(w * h)}), over the {_mp(limits.max_pixels)} limit", path
        )


def _composite_on_white(gray_or_rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Transparent pixels are paper: blend onto white instead of letting them turn black."""
    a = alpha.astype(np.uint16)
    if gray_or_rgb.ndim == 3:
        a = a[..., None]
    out = (gray_or_rgb.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _scale_to_uint8(a: np.ndarray) -> np.ndarray:
    """High-bit-depth greyscale to 8 bits, keeping the full tonal range."""
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind == "f":
        finite = a[np.isfinite(a)]
        top = float(finite.max()) if finite.size else 1.0
        scaled = a * 255.0 if top <= 1.0 else a
        return np.clip(np.nan_to_num(scaled, nan=255.0), 0, 255).round().astype(np.uint8)
    if a.dtype == np.uint16 or a.dtype.itemsize == 2:
        return (a.astype(np.uint16) >> 8).astype(np.uint8)
    top = int(a.max()) if a.size else 0
    if top <= 255:
        return np.clip(a, 0, 255).astype(np.uint8)
    if top <= 65535:
        return (np.clip(a, 0, 65535).astype(np.uint32) >> 8).astype(np.uint8)
    return (np.clip(a, 0, None).astype(np.float64) * (255.0 / top)).round().astype(np.uint8)


def _rgb_to_page_array(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 → greyscale when the channels are identical (saves memory), else BGR."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    if np.array_equal(r, g) and np.array_equal(g, b):
        return np.ascontiguousarray(r)
    return np.ascontiguousarray(rgb[..., ::-1])


def _pil_to_array(im: Image.Image, path: Path) -> np.ndarray:
    """Any Pillow mode → uint8 H×W (grey) or H×W×3 (BGR), compositing transparency onto white."""
    mode = im.mode
    if mode == "L":
        return np.array(im, dtype=np.uint8)
    if mode == "1":
        return np.array(im.convert("L"), dtype=np.uint8)
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _scale_to_uint8(np.array(im))
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    elif mode == "PA":
        im = im.convert("RGBA")
        mode = im.mode
    if mode in ("LA", "La"):
        la = np.array(im.convert("LA"), dtype=np.uint8)
        return _composite_on_white(la[..., 0], la[..., 1])
    if mode in ("RGBA", "RGBa"):
        rgba = np.array(im.convert("RGBA"), dtype=np.uint8)
        return _rgb_to_page_array(_composite_on_white(rgba[..., :3], rgba[..., 3]))
    if mode != "RGB":
        try:
            im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, 16-bit RGB...
        except (ValueError, OSError) as exc:
            raise UnsupportedInputError(f"unsupported image mode {mode} ({exc})", path) from None
    return _rgb_to_page_array(np.array(im, dtype=np.uint8))


_ORIENTATION = 0x0112
# EXIF orientation → the transpose that shows the image upright (as ImageOps.exif_transpose does).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _decode(frame: Image.Image, kind: str, path: Path, limits: LoadLimits, label: str) -> np.ndarray:
    """Decode one frame under our guards, turning Pillow's many failure types into CorruptInputError."""
    try:
        with _pillow_guards(limits.max_pixels):
            frame.load()
            # Phones store the turn in EXIF instead of the pixels. Recent Pillow applies a TIFF's orientation
            # itself while loading and then drops the tag, so only a tag still present needs applying.
            orientation = frame.getexif().get(_ORIENTATION, 1) if kind in ("jpeg", "tiff", "png") else 1
            method = _TRANSPOSE.get(orientation) if isinstance(orientation, int) else None
            if method is not None:
                frame = frame.transpose(method)
        return _pil_to_array(frame, path)
    except Image.DecompressionBombError:
        raise InputTooLargeError(f"{label} is over the {_mp(limits.max_pixels)} limit", path) from None
    except MemoryError:
        raise InputTooLargeError(f"{label} does not fit in memory", path) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct_error, ZeroDivisionError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise CorruptInputError(f"corrupt or truncated {kind.upper()} ({label}: {reason})", path) from None


def _open_image(path: Path, kind: str, limits: LoadLimits) -> Image.Image:
    try:
        with _pillow_guards(limits.max_pixels):
            im = Image.open(path, formats=[kind.upper()])
    except Image.DecompressionBombError as exc:
        size = re.search(r"\((\d+) pixels\)", str(exc))
        detail = f"image has {_mp(int(size.group(1)))}" if size else "image"
        raise InputTooLargeError(f"{detail}, over the {_mp(limits.max_pixels)} limit", path) from None
    except PermissionError:
        raise UnreadableInputError("permission denied", path) from None
    except FileNotFoundError:
        raise UnreadableInputError("no such file", path) from None
    except Image.UnidentifiedImageError:
        reason = "the decoder does not recognise its content"
        raise CorruptInputError(f"corrupt {kind.upper()} ({reason})", path) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct_error) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise CorruptInputError(f"corrupt {kind.upper()} ({reason})", path) from None
    return im


def _image_pages(path: Path, kind: str, dpi: int, limits: LoadLimits) -> Iterator[Page]:
    im = _open_image(path, kind, limits)
    try:
        # Only TIFF frames are pages; an animated PNG's frames are not.
        n = _frame_count(im, path, kind) if kind == "tiff" else 1
        if n > limits.max_pages:
            raise InputTooLargeError(f"{n} pages, over the limit of {limits.max_pages} pages", path)
        if n == 1:
            _check_pixels(im.size, limits, path, None)
        else:
            # TIFF frames can differ in size; check them all before decoding any (seeking reads headers only).
            for i in range(n):
                try:
                    im.seek(i)
                except (OSError, EOFError, ValueError, SyntaxError, struct_error) as exc:
                    raise CorruptInputError(f"corrupt TIFF (page {i + 1}: {exc})", path) from None
                _check_pixels(im.size, limits, path, i + 1)
            im.seek(0)
    except BaseException:
        im.close()
        raise
    return _decode_frames(im, path, kind, n, dpi, limits)


def _frame_count(im: Image.Image, path: Path, kind: str) -> int:
    try:
        return max(1, int(getattr(im, "n_frames", 1)))
    except (OSError, EOFError, ValueError, SyntaxError, struct_error) as exc:
        raise CorruptInputError(f"corrupt {kind.upper()} ({exc})", path) from None


def _decode_frames(
    im: Image.Image, path: Path, kind: str, n: int, dpi: int, limits: LoadLimits
) -> Iterator[Page]:
    with im:
        frames = ImageSequence.Iterator(im) if n > 1 else iter([im])
        for index in range(n):
            try:
                frame = next(frames)
            except (StopIteration, OSError, EOFError, ValueError, SyntaxError, struct_error) as exc:
                raise CorruptInputError(f"corrupt TIFF (page {index + 1}: {exc})", path) from None
            label = f"page {index + 1}" if n > 1 else "image"
            page_dpi = _file_dpi(frame, dpi)
            array = _decode(frame, kind, path, limits, label)
            yield Page(index=index, image=array, dpi=page_dpi, source=str(path))


# --------------------------------------------------------------------------------------------------- arrays


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
    _check_pixels((int(a.shape[1]), int(a.shape[0])), limits, Path(ARRAY_SOURCE), None)
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
        a = _composite_on_white(a[..., :3], a[..., 3])
    return Page(index=0, image=np.ascontiguousarray(a), dpi=float(dpi), source=ARRAY_SOURCE)


# --------------------------------------------------------------------------------------------------- public


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
        pages = int(_pdfinfo(p, last_page=None, timeout_s=LoadLimits().render_timeout_s)["Pages"])
        if pages <= 0:
            raise EmptyInputError("PDF without pages", p)
        return pages
    if kind != "tiff":
        return 1
    # Counting must not trip on a huge page: the size guard belongs to load_pages.
    im = _open_image(p, kind, LoadLimits(max_pixels=2**62))
    with im:
        return _frame_count(im, p, kind)


def load_pages(
    source: str | os.PathLike[str] | np.ndarray,
    dpi: int = DEFAULT_DPI,
    limits: LoadLimits = LoadLimits(),  # frozen, so a shared default is safe
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
        return _pdf_pages(path, dpi, limits)
    return _image_pages(path, kind, dpi, limits)


# --------------------------------------------------------------------------------------------------- outputs

T = TypeVar("T")
STDOUT = "<stdout>"


def default_mode() -> int:
    """rw for everyone the umask allows, as a plain open() would create (mkstemp makes files private)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def fsync_dir(folder: Path) -> None:
    """Make a new or renamed directory entry durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def check_output(path: str | os.PathLike[str], error: type[OutputError] = OutputError, what: str = "output"
                 ) -> Path:
    """The file to write for the output ``path``: ``path`` when it is new or a regular file; through a link to
    one, the file it points to (the link stays a link).

    Anything else is an ``error``: renaming a regular file over a device (``/dev/full``: as root that works), a
    FIFO or a folder would break the system or lose the user's data, and a path under a file cannot be created.
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        return Path(os.path.realpath(p))  # new (a dangling link: its target is created)
    except NotADirectoryError:
        raise error(f"cannot write the {what}: a folder on its path is a file", p) from None
    except OSError as exc:
        raise error(f"cannot write the {what} ({_why(exc)})", p) from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"is a folder; give a file name for the {what}", p)
    if not stat.S_ISREG(st.st_mode):
        raise error(f"is not a regular file (a device, FIFO or socket); the {what} only ever replaces a regular "
                    "file", p)
    return Path(os.path.realpath(p))


def write_atomic(path: str | os.PathLike[str], write: Callable[[TextIO], T], error: type[OutputError] = OutputError,
                 what: str = "output") -> T:
    """Write a UTF-8 text file through ``write(stream)``: a temporary file beside it, fsync, then a rename.

    A reader, a crash or a full disk leaves the old file or the whole new one, never half of it; a failure is
    one ``error`` naming ``path``. Only a new path or a regular file is written (:func:`check_output`); a file
    replaced keeps its permissions, a new one gets the umask's. Returns what ``write`` returns.
    """
    name = Path(path)
    dst = check_output(name, error, what)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    except (FileExistsError, NotADirectoryError):
        raise error(f"cannot write the {what}: a folder on its path is a file", name) from None
    except OSError as exc:
        raise error(f"cannot write the {what} ({_why(exc)})", name) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            try:
                mode = stat.S_IMODE(os.stat(dst).st_mode)
            except FileNotFoundError:
                mode = default_mode()
            os.fchmod(f.fileno(), mode)
            result = write(f)
            f.flush()
            os.fsync(f.fileno())
        check_output(dst, error, what)  # still a regular file (or none) at the moment of the rename
        os.replace(tmp, dst)
        fsync_dir(dst.parent)
    except OSError as exc:
        raise error(f"cannot write the {what} ({_why(exc)})", name) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return result


def check_output_dir(path: str | os.PathLike[str], what: str = "output folder") -> Path:
    """Create a folder for output files and make sure it takes a file: fail before the work, not after it."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=p, prefix=".formocr-probe.")
        os.close(fd)
        os.unlink(probe)
    except FileExistsError:
        raise OutputError(f"is not a folder; the {what} must be one", p) from None
    except NotADirectoryError:
        raise OutputError(f"cannot create the {what}: a folder on its path is a file", p) from None
    except OSError as exc:
        raise OutputError(f"cannot write in the {what} ({_why(exc)})", p) from None
    return p


def stdout_error(exc: OSError) -> OutputError:
    """The one-line error for a failed write to stdout (full disk, closed pipe).

    stdout is pointed at /dev/null first: the interpreter flushes it again at exit, and that second failure would
    print an "Exception ignored" report and change the exit code.
    """
    with contextlib.suppress(OSError, ValueError, AttributeError):
        target = sys.stdout.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, target)
        finally:
            os.close(null)
    return OutputError(f"cannot write ({_why(exc)})", STDOUT)


def write_stdout(text: str) -> None:
    """Write ``text`` to stdout and flush it now, so a failure is an :class:`OutputError` here, not at exit."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as exc:
        raise stdout_error(exc) from None
