"""What loading one document may cost: pixels per page, pages, file size, poppler's time.

Shared by the loaders (:mod:`formocr.io`, :mod:`formocr.pdf`, :mod:`formocr.images`) so that every guard against
decompression bombs and runaway documents is set, and reported, the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LoadLimits", "megapixels"]


@dataclass(frozen=True)
class LoadLimits:
    """Guards against decompression bombs and runaway documents; a caller may loosen them on purpose."""

    max_pixels: int = 200_000_000 // 2  # per page, i.e. 100 MP
    max_pages: int = 500
    max_file_bytes: int = 2 * 1024**3
    render_timeout_s: int = 300  # per poppler call; a hostile PDF must not hang a batch


def megapixels(pixels: float) -> str:
    """A pixel count as error messages give it."""
    return f"{pixels / 1e6:.0f} MP" if pixels >= 1e7 else f"{pixels / 1e6:.3g} MP"
