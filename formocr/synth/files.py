"""Synthetic pages as files: multi-page PDF and TIFF with byte-stable output, and their ground-truth JSON."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from formocr.synth.forms import SynthPage

__all__ = ["save_pdf", "save_tiff", "truth_dict", "write_truth"]


def _pil(img: np.ndarray) -> Image.Image:
    if img.ndim == 3:
        return Image.fromarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    return Image.fromarray(img, mode="L") if img.dtype == np.uint8 else Image.fromarray(img.astype(np.uint8))


_FIXED_DATE = time.gmtime(1767225600)  # 2026-01-01, Pillow wants a struct_time


def save_pdf(pages: Sequence[np.ndarray], path: str | Path, dpi: int = 300, quality: int = 85) -> None:
    """A multi-page PDF whose pages rasterise back (poppler at ``dpi``) to the same pixel size.

    Greyscale pages are stored as 'L' images (JPEG-compressed by Pillow at ``quality``), which keeps a page
    well under 1 MB. The file dates are fixed so that the same pages give the same bytes.
    """
    if not pages:
        raise ValueError("no pages to save")
    ims = [_pil(p) for p in pages]
    ims[0].save(
        str(path),
        "PDF",
        save_all=True,
        append_images=ims[1:],
        resolution=float(dpi),
        quality=quality,
        creationDate=_FIXED_DATE,
        modDate=_FIXED_DATE,
        producer="formocr.synth",
    )


def save_tiff(pages: Sequence[np.ndarray], path: str | Path, dpi: int = 300) -> None:
    """A multi-page TIFF (deflate-compressed, lossless) with the resolution tag set to ``dpi``."""
    if not pages:
        raise ValueError("no pages to save")
    ims = [_pil(p) for p in pages]
    ims[0].save(
        str(path),
        "TIFF",
        save_all=True,
        append_images=ims[1:],
        compression="tiff_adobe_deflate",
        dpi=(dpi, dpi),
    )


def truth_dict(page: SynthPage) -> dict[str, Any]:
    """The ground truth of one page, JSON-ready: values as the pipeline should output them, and char boxes."""
    return {
        "template": page.template,
        "width": int(page.image.shape[1]),
        "height": int(page.image.shape[0]),
        "dpi": page.dpi,
        "skew_deg": round(page.skew_deg, 4),
        "offset_px": list(page.offset_px),
        "fields": dict(page.values),
        "field_boxes": {n: b.to_list() for n, b in page.field_boxes.items()},
        "chars": {n: [[c, b.to_list()] for c, b in cs] for n, cs in page.char_boxes.items()},
    }


def write_truth(
    path: str | Path,
    source: str,
    pages: Sequence[SynthPage],
    seed: int | Sequence[int],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the ground-truth JSON for a file of ``pages`` and return it."""
    names = {p.template for p in pages}
    doc: dict[str, Any] = {
        "source": source,
        "template": names.pop() if len(names) == 1 else None,
        "seed": seed if isinstance(seed, int) else list(seed),
        "generator": "formocr.synth (project stroke renderer; no dataset images)",
        "pages": [{"page": i + 1, **truth_dict(p)} for i, p in enumerate(pages)],
    }
    if extra:
        doc.update(extra)
    Path(path).write_text(_compact_json(doc) + "\n", encoding="utf-8")
    return doc


def _compact_json(doc: Any) -> str:
    """Indented JSON with each box, and each [char, box] pair, on one line: readable and diff-friendly."""
    text = json.dumps(doc, indent=1, ensure_ascii=False)
    text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    return re.sub(r'\[\s+("(?:[^"\\]|\\.)*"),\s+(\[[^\[\]]*\])\s+\]', r"[\1, \2]", text)
