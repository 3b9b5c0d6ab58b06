"""A template made from a blank form: every box, comb and underline :func:`find_fields` finds becomes a field.

What ``formocr template from-image`` runs; the fields are named field_1, field_2, ... in reading order, type
digits, boxes in millimetres, for a person to name and constrain afterwards.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from formocr.errors import InputError, TemplateError
from formocr.layout.boxes import DetectOptions
from formocr.layout.detect import find_fields
from formocr.layout.template import Template, TemplateField
from formocr.objects import CleanPage, Page

__all__ = ["template_from_file", "template_from_image"]


def template_from_image(
    image_or_clean: np.ndarray | CleanPage,
    dpi: float | None = None,
    name: str = "auto",
    options: DetectOptions | None = None,
) -> Template:
    """A template from a BLANK form: every box, comb and underline becomes a digits field (millimetres).

    ``dpi`` is required for an image (its resolution) and, for a CleanPage, overrides the page's.
    """
    from formocr.preprocess import preprocess

    if isinstance(image_or_clean, CleanPage):
        clean = image_or_clean
        if dpi is not None and float(dpi) != clean.page.dpi:
            page = Page(clean.page.index, clean.page.image, float(dpi), clean.page.source)
            clean = replace(clean, page=page)
    else:
        img = np.asarray(image_or_clean)
        if img.ndim not in (2, 3) or img.size == 0:
            raise InputError(f"expected a greyscale or colour image, got an array of shape {img.shape}")
        if dpi is None or not 50 <= float(dpi) <= 2400:
            raise InputError(f"the image's resolution must be given (50..2400 dpi), got {dpi!r}")
        clean = preprocess(Page(0, img, float(dpi), "<array>"))
    if not name:
        raise TemplateError("name: expected a non-empty string")
    regions = find_fields(clean, include_empty=True, options=options)
    if not regions:
        raise TemplateError("no boxes, combs or underlines found on this page", clean.page.source)
    k = 25.4 / clean.page.dpi
    h, w = clean.gray.shape
    width_mm, height_mm = round(w * k, 1), round(h * k, 1)
    fields = []
    for r in regions:
        b = r.box
        box_mm = (round(b.x * k, 1), round(b.y * k, 1), round(b.w * k, 1), round(b.h * k, 1))
        box_mm = (box_mm[0], box_mm[1], min(box_mm[2], width_mm - box_mm[0]), min(box_mm[3], height_mm - box_mm[1]))
        fields.append(TemplateField(r.name, "digits", box_mm, r.style, r.cells, {}, None))
    return Template(name, width_mm, height_mm, tuple(fields), source=str(clean.page.source))


def template_from_file(path: str | Path, dpi: float | None = None, name: str | None = None) -> Template:
    """:func:`template_from_image` on the first page of an image or PDF file (``dpi`` overrides the file's)."""
    from formocr.io import load_pages
    from formocr.preprocess import preprocess

    p = Path(path)
    pages = iter(load_pages(p, dpi=round(dpi) if dpi else 300))
    try:
        page = next(pages)
    except StopIteration:
        raise InputError("no pages in this file", p) from None
    if dpi is not None:
        page = Page(page.index, page.image, float(dpi), page.source)
    return template_from_image(preprocess(page), name=name or p.stem)
