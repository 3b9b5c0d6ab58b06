"""The field crops the review page shows: cut from the source page as the scan saw it.

The page is loaded at the resolution the results record and cleaned up as a scan with the same options does
(:func:`formocr.preprocess.reading_preprocess`: the same deskew), so the field's box from the results lands on the
same pixels; a margin of context is kept around it. Pages are cached a few at a time, since fields of one page
come one after another. Only documents named in the results are ever opened: the server asks by item index.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from formocr.errors import FormOcrError
from formocr.io import load_pages
from formocr.limits import LoadLimits
from formocr.objects import Box
from formocr.options import Options
from formocr.preprocess import preprocess, reading_preprocess
from formocr.review.queue import ReviewItem

__all__ = ["CropCache"]


class CropCache:
    """PNG crops of review items, pages kept for the last ``pages`` (document, page, dpi) asked for."""

    def __init__(self, options: Options | None = None, pages: int = 4) -> None:
        self.options = options or Options()
        self.pre = reading_preprocess(self.options)
        self._pages: OrderedDict[tuple[Path, int, float], np.ndarray] = OrderedDict()
        self._size = pages
        self._lock = threading.Lock()

    def _page(self, path: Path, number: int, dpi: float) -> np.ndarray:
        key = (path, number, dpi)
        with self._lock:
            if key in self._pages:
                self._pages.move_to_end(key)
                return self._pages[key]
        gray = None
        limits = LoadLimits(max_pixels=self.options.max_pixels, max_pages=self.options.max_pages)
        for page in load_pages(path, dpi=round(dpi), limits=limits):
            if page.index + 1 == number:
                gray = preprocess(page, self.pre).gray
                break
        if gray is None:
            raise FormOcrError(f"the document has no page {number}", path)
        with self._lock:
            self._pages[key] = gray
            while len(self._pages) > self._size:
                self._pages.popitem(last=False)
        return gray

    def crop(self, item: ReviewItem) -> bytes:
        """The field with context around it (a third of its height, at least 3 mm), as PNG bytes."""
        if item.path is None:
            raise FormOcrError(f"{item.source}: the document was not found beside the results")
        gray = self._page(item.path, item.page, item.dpi)
        h, w = gray.shape
        b = item.box
        pad = max(round(3 * item.dpi / 25.4), b.h // 3)
        c = Box(b.x - pad, b.y - pad, b.w + 2 * pad, b.h + 2 * pad).clip(w, h)
        if c.w <= 0 or c.h <= 0:
            raise FormOcrError(f"{item.source}: the field's box lies outside page {item.page}", item.path)
        out = cv2.cvtColor(gray[c.y : c.y2, c.x : c.x2], cv2.COLOR_GRAY2BGR)
        cv2.rectangle(out, (b.x - c.x, b.y - c.y), (b.x2 - c.x - 1, b.y2 - c.y - 1), (255, 120, 0), 1)
        scale = min(1.0, 900 / max(1, out.shape[1]))
        if scale < 1.0:
            out = cv2.resize(out, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        ok, png = cv2.imencode(".png", out)
        if not ok:
            raise FormOcrError(f"{item.source}: the crop could not be encoded", item.path)
        return png.tobytes()
