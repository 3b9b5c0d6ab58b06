"""Image files (PNG, JPEG, BMP, TIFF) through Pillow, with the pixel limit checked before decoding.

Why: Pillow's decompression-bomb guard and truncation flag are process globals, so they are set and restored
around every open and decode; multi-page TIFFs are checked frame by frame before any is decoded, then decoded
one at a time. Image files keep the resolution recorded in the file (``info['dpi']``) when it lies in
50..2400 dpi; otherwise the ``dpi`` argument is assumed (many cameras and editors write a nominal 72 or 96 dpi,
which passes that check). Pages come out as uint8 H×W (grey) or H×W×3 (BGR), transparency composited onto white.
"""

from __future__ import annotations

import math
import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from struct import error as struct_error  # raised by some Pillow plugins on short headers
from typing import Any

import numpy as np
from PIL import Image, ImageFile, ImageSequence

from formocr.errors import CorruptInputError, InputTooLargeError, UnreadableInputError, UnsupportedInputError
from formocr.limits import LoadLimits, megapixels
from formocr.objects import Page

__all__ = ["check_pixels", "composite_on_white", "frame_count", "image_pages", "open_image"]


_SANE_DPI = (50.0, 2400.0)


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
                # Sizes between the limit and twice it only warn; we check the size ourselves. Pillow's other
                # warnings on a damaged file (corrupt EXIF, tags past the end) would be extra lines beside the one
                # error line a bad file gets: the decode decides, and its error names the file.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                warnings.simplefilter("ignore", UserWarning)
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


def check_pixels(size: tuple[int, int], limits: LoadLimits, path: Path, frame: int | None) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise CorruptInputError(f"image with an impossible size {w}×{h}", path)
    if w * h > limits.max_pixels:
        where = f"page {frame} is" if frame is not None else "image is"
        raise InputTooLargeError(
            f"{where} {w}×{h} px ({megapixels(w * h)}), over the {megapixels(limits.max_pixels)} limit", path
        )


def composite_on_white(gray_or_rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
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


def rgb_to_page_array(rgb: np.ndarray) -> np.ndarray:
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
        return composite_on_white(la[..., 0], la[..., 1])
    if mode in ("RGBA", "RGBa"):
        rgba = np.array(im.convert("RGBA"), dtype=np.uint8)
        return rgb_to_page_array(composite_on_white(rgba[..., :3], rgba[..., 3]))
    if mode != "RGB":
        try:
            im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, 16-bit RGB...
        except (ValueError, OSError) as exc:
            raise UnsupportedInputError(f"unsupported image mode {mode} ({exc})", path) from None
    return rgb_to_page_array(np.array(im, dtype=np.uint8))


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
        raise InputTooLargeError(f"{label} is over the {megapixels(limits.max_pixels)} limit", path) from None
    except MemoryError:
        raise InputTooLargeError(f"{label} does not fit in memory", path) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct_error, ZeroDivisionError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise CorruptInputError(f"corrupt or truncated {kind.upper()} ({label}: {reason})", path) from None


def open_image(path: Path, kind: str, limits: LoadLimits) -> Image.Image:
    try:
        with _pillow_guards(limits.max_pixels):
            im = Image.open(path, formats=[kind.upper()])
    except Image.DecompressionBombError as exc:
        size = re.search(r"\((\d+) pixels\)", str(exc))
        detail = f"image has {megapixels(int(size.group(1)))}" if size else "image"
        raise InputTooLargeError(f"{detail}, over the {megapixels(limits.max_pixels)} limit", path) from None
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


def image_pages(path: Path, kind: str, dpi: int, limits: LoadLimits) -> Iterator[Page]:
    im = open_image(path, kind, limits)
    try:
        # Only TIFF frames are pages; an animated PNG's frames are not.
        n = frame_count(im, path, kind) if kind == "tiff" else 1
        if n > limits.max_pages:
            raise InputTooLargeError(f"{n} pages, over the limit of {limits.max_pages} pages", path)
        if n == 1:
            check_pixels(im.size, limits, path, None)
        else:
            # TIFF frames can differ in size; check them all before decoding any (seeking reads headers only).
            for i in range(n):
                try:
                    im.seek(i)
                except (OSError, EOFError, ValueError, SyntaxError, struct_error) as exc:
                    raise CorruptInputError(f"corrupt TIFF (page {i + 1}: {exc})", path) from None
                check_pixels(im.size, limits, path, i + 1)
            im.seek(0)
    except BaseException:
        im.close()
        raise
    return _decode_frames(im, path, kind, n, dpi, limits)


def frame_count(im: Image.Image, path: Path, kind: str) -> int:
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
