"""``--debug-dir``: pictures a person can check at a glance.

Per page: the binarized page, an overlay drawn on the deskewed scan, and a sheet of the 28×28 tiles the
classifier saw, one row per field. On the overlay each field's frame is thin blue and its characters' boxes thin
green (accepted) or red (needs review), separators orange; its value and confidence sit in a label on white, green
or red, placed above, below or beside the field where it covers no ink and no other label, so the print and the
writing stay readable under it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from formocr.objects import Box, FieldResult

if TYPE_CHECKING:
    from formocr.pipeline import PageWork

ACCEPTED = (0, 150, 0)  # BGR
REVIEW = (0, 0, 220)
FRAME = (255, 120, 0)
SEPARATOR = (0, 140, 255)


def _stem(source: object) -> str:
    return "array" if isinstance(source, np.ndarray) else Path(str(source)).stem


def write_debug(folder: Path, source: object, work: PageWork) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    base = f"{_stem(source)}-p{work.result.number:03d}"
    clean = work.clean
    paths = []
    p = folder / f"{base}-binary.png"
    cv2.imwrite(str(p), np.where(clean.ink, 0, 255).astype(np.uint8))
    paths.append(p)

    overlay = draw_overlay(work)
    p = folder / f"{base}-overlay.png"
    cv2.imwrite(str(p), overlay)
    paths.append(p)

    rows = []
    width = max((len(t) for t in work.tiles.values()), default=0)
    for tiles in work.tiles.values():
        row = np.zeros((30, max(1, width) * 30), np.uint8)
        for i, t in enumerate(tiles):
            row[1:29, i * 30 + 1 : i * 30 + 29] = (t * 255).astype(np.uint8)
        rows.append(row)
    if rows:
        sheet = cv2.resize(np.vstack(rows), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
        p = folder / f"{base}-tiles.png"
        cv2.imwrite(str(p), sheet)
        paths.append(p)
    return paths


def label_spot(field: Box, size: tuple[int, int], taken: np.ndarray, gap: int) -> Box:
    """Where a ``size`` (w, h) label for ``field`` covers the fewest ``taken`` pixels (ink, other labels).

    Tried in order: above the field, below it, right of it, left of it, each at the field's left or right end;
    the first that covers nothing wins."""
    H, W = taken.shape
    w, h = size
    spots = [
        (field.x, field.y - gap - h), (field.x2 - w, field.y - gap - h),
        (field.x, field.y2 + gap), (field.x2 - w, field.y2 + gap),
        (field.x2 + gap, field.y), (field.x - gap - w, field.y),
    ]  # fmt: skip
    best: tuple[int, Box] | None = None
    for x, y in spots:
        b = Box(min(max(0, x), max(0, W - w)), min(max(0, y), max(0, H - h)), w, h)
        cost = int(taken[b.y : b.y2, b.x : b.x2].sum())
        if best is None or cost < best[0]:
            best = (cost, b)
        if cost == 0:
            break
    assert best is not None
    return best[1]


def _style(dpi: float) -> tuple[int, int, float, int, int]:
    """(font, line thickness, font scale, font weight, gap) for a page of ``dpi``."""
    return cv2.FONT_HERSHEY_SIMPLEX, max(1, round(dpi / 300)), 0.5 * dpi / 150, max(1, round(dpi / 200)), max(
        2, round(dpi / 100))


def _label_text(field: FieldResult) -> str:
    return f"{field.name}: {field.value if field.value is not None else '-'}  {field.confidence:.2f}"


def label_boxes(work: PageWork) -> list[Box]:
    """Each field's label box on the overlay, in field order: on no ink, no frame and no other label if it can."""
    clean = work.clean
    font, thin, scale, weight, gap = _style(clean.page.dpi)
    taken = cv2.dilate(clean.ink.astype(np.uint8), np.ones((3, 3), np.uint8))
    for region in work.regions:
        b = region.box
        cv2.rectangle(taken, (b.x, b.y), (b.x2, b.y2), 1, thin + 2)
    out = []
    for region, field in zip(work.regions, work.result.fields):
        (tw, th), base = cv2.getTextSize(_label_text(field), font, scale, weight)
        pad = max(2, weight * 2)
        spot = label_spot(region.box, (tw + 2 * pad, th + base + 2 * pad), taken, gap)
        taken[spot.y : spot.y2, spot.x : spot.x2] = 1
        out.append(spot)
    return out


def draw_overlay(work: PageWork) -> np.ndarray:
    """The deskewed scan with each field's frame, characters and a legible label (module docstring)."""
    clean = work.clean
    overlay = cv2.cvtColor(clean.gray, cv2.COLOR_GRAY2BGR)
    font, thin, scale, weight, _ = _style(clean.page.dpi)
    pad = max(2, weight * 2)
    for region, field, spot in zip(work.regions, work.result.fields, label_boxes(work)):
        b = region.box
        colour = REVIEW if field.needs_review else ACCEPTED
        cv2.rectangle(overlay, (b.x, b.y), (b.x2, b.y2), FRAME, thin)
        for comp in work.components.get(region.name, []):
            cb = comp.box
            cv2.rectangle(overlay, (cb.x, cb.y), (cb.x2, cb.y2), SEPARATOR if comp.kind == "separator" else colour,
                          thin)
        (_, th), _ = cv2.getTextSize(_label_text(field), font, scale, weight)
        cv2.rectangle(overlay, (spot.x, spot.y), (spot.x2 - 1, spot.y2 - 1), (255, 255, 255), -1)
        cv2.rectangle(overlay, (spot.x, spot.y), (spot.x2 - 1, spot.y2 - 1), colour, 1)
        cv2.putText(overlay, _label_text(field), (spot.x + pad, spot.y + pad + th), font, scale, colour, weight,
                    cv2.LINE_AA)
    return overlay
