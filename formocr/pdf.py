"""PDF pages through poppler: ``pdfinfo`` checks the document up front, ``pdftoppm`` renders one page at a time.

Why: pdfinfo (through pdf2image) gives the page count, encryption and every page's size before anything is
rasterized, so a hostile or huge PDF fails before it costs memory; each page is then one ``pdftoppm`` call read
straight from its pipe (no temporary files). PDFs are rasterized at the requested ``dpi``.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from formocr.errors import CorruptInputError, DependencyError, EmptyInputError, EncryptedInputError, InputTooLargeError
from formocr.images import rgb_to_page_array
from formocr.limits import LoadLimits, megapixels
from formocr.objects import Page

__all__ = ["pdf_pages", "pdfinfo"]


_POPPLER_HINT = "install poppler-utils: apt-get install poppler-utils (macOS: brew install poppler)"


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


def pdfinfo(path: Path, last_page: int | None, timeout_s: int) -> dict[str, Any]:
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


def pdf_pages(path: Path, dpi: int, limits: LoadLimits) -> Iterator[Page]:
    info = pdfinfo(path, last_page=limits.max_pages, timeout_s=limits.render_timeout_s)
    n = int(info["Pages"])
    if n <= 0:
        raise EmptyInputError("PDF without pages", path)
    if n > limits.max_pages:
        raise InputTooLargeError(f"{n} pages, over the limit of {limits.max_pages} pages", path)
    for number, size_pt in enumerate(_pdf_page_sizes(info, n), start=1):
        w, h = _pdf_pixels(size_pt, dpi)
        if w * h > limits.max_pixels:
            raise InputTooLargeError(
                f"page {number} would be {w}×{h} px at {dpi} dpi, over the {megapixels(limits.max_pixels)} limit;"
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
    return rgb_to_page_array(pixels.reshape(h, w, 3))  # grey when the page has no colour, else BGR


def _render_pdf(path: Path, n: int, dpi: int, limits: LoadLimits) -> Iterator[Page]:
    """One pdftoppm call per page, its PNM read straight from the pipe (no temporary files, no PIL round trip).

    In colour, so colour drop-out and registration see the same page from a PDF as from a PNG scan of it; a page
    without colour comes back grey, as an image file would (about 0.03 s more a page at 300 dpi than ``-gray``).
    """
    exe = shutil.which("pdftoppm")
    if exe is None:
        raise DependencyError(f"cannot read PDFs: poppler's pdftoppm not found on PATH; {_POPPLER_HINT}", path)
    for number in range(1, n + 1):
        cmd = [exe, "-r", str(dpi), "-f", str(number), "-l", str(number), "-cropbox", _cli_path(path)]
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
                f"{megapixels(limits.max_pixels)} limit; lower --dpi",
                path,
            )
        yield Page(index=number - 1, image=array, dpi=float(dpi), source=str(path))
