"""``--debug-dir``: pictures a person can check at a glance.

Per page: the binarized page, an overlay of fields (blue), digit components (green, red when the field needs
review), separators (orange) and the digits read, drawn on the deskewed scan, and a sheet of the 28×28 tiles the
classifier saw, one row per field.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from formocr.pipeline import PageWork


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

    overlay = cv2.cvtColor(clean.gray, cv2.COLOR_GRAY2BGR)
    scale = max(1, round(clean.page.dpi / 150))
    font = cv2.FONT_HERSHEY_SIMPLEX
    for region, field in zip(work.regions, work.result.fields):
        b = region.box
        cv2.rectangle(overlay, (b.x, b.y), (b.x2, b.y2), (255, 120, 0), scale)
        colour = (0, 0, 230) if field.needs_review else (0, 170, 0)
        label = f"{field.name}={field.value} ({field.confidence:.2f})"
        cv2.putText(overlay, label, (b.x, max(12, b.y - 4 * scale)), font, 0.45 * scale, colour, scale, cv2.LINE_AA)
        for comp, ch in zip(work.components[region.name], field.chars):
            cb = comp.box
            c = (0, 140, 255) if comp.kind == "separator" else colour
            cv2.rectangle(overlay, (cb.x, cb.y), (cb.x2, cb.y2), c, max(1, scale // 2))
            cv2.putText(overlay, ch.char, (cb.x, cb.y2 + 14 * scale), font, 0.5 * scale, c, scale, cv2.LINE_AA)
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
