"""The small typed objects the stages pass to each other.

Each stage is a plain function from one of these to the next (see ARCHITECTURE.md). Results that end up in the
JSON have ``to_dict()``; intermediate objects carry numpy arrays and are never serialised.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in pixels of the page it belongs to (x, y = top-left corner)."""

    x: int
    y: int
    w: int
    h: int

    @property
    def x2(self) -> int:
        return self.x + self.w

    @property
    def y2(self) -> int:
        return self.y + self.h

    @property
    def area(self) -> int:
        return self.w * self.h

    def to_list(self) -> list[int]:
        return [int(self.x), int(self.y), int(self.w), int(self.h)]

    def shifted(self, dx: int, dy: int) -> Box:
        return Box(self.x + dx, self.y + dy, self.w, self.h)

    def union(self, other: Box) -> Box:
        x, y = min(self.x, other.x), min(self.y, other.y)
        return Box(x, y, max(self.x2, other.x2) - x, max(self.y2, other.y2) - y)

    def clip(self, width: int, height: int) -> Box:
        x, y = max(0, self.x), max(0, self.y)
        x2, y2 = min(width, self.x2), min(height, self.y2)
        return Box(x, y, max(0, x2 - x), max(0, y2 - y))


@dataclass(frozen=True)
class Page:
    """One raster page as loaded; ``image`` is uint8 greyscale (H×W) or BGR (H×W×3)."""

    index: int
    image: np.ndarray
    dpi: float
    source: str

    @property
    def number(self) -> int:
        return self.index + 1

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True)
class CleanPage:
    """A page after preprocessing, in the deskewed frame.

    ``gray`` is uint8 with dark ink on light paper; ``ink`` is a bool mask (True = ink) after binarization and
    speckle removal. ``skew_deg`` is the angle that was measured and undone. ``form_ink`` is the printed form's
    drop-out colour ink (red, green, light blue) that colour drop-out took out of ``gray`` and ``ink``, or None
    for a page without it: readers must not see it, but registration and field finding need its lines.
    ``print_ink`` is the print a bare crop's analysis took out of ``ink`` (a scanner's margin, rules, a baseline;
    :func:`formocr.crop.crop_print`), or None: it is still in ``gray``, so no later pass may take it back as ink.
    """

    page: Page
    gray: np.ndarray
    ink: np.ndarray
    skew_deg: float
    binarizer: str
    form_ink: np.ndarray | None = None
    print_ink: np.ndarray | None = None

    @property
    def layout_ink(self) -> np.ndarray:
        """All printed structure and writing: ``ink`` plus any dropped-out form ink (for registration/finding)."""
        return self.ink if self.form_ink is None else (self.ink | self.form_ink)


FieldType = Literal["digits", "amount", "date", "postal_code"]
Style = Literal["box", "comb", "free", "line"]


@dataclass(frozen=True)
class FieldRegion:
    """Where one field lies on a clean page, and what it may contain."""

    name: str
    type: FieldType
    box: Box
    style: Style = "box"
    cells: int | None = None
    constraints: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Component:
    """A connected group of ink inside a field: one digit, or a separator kept for amounts/dates.

    ``mask`` is a bool crop of the ink (the size of ``box``); ``box`` is in page pixels.
    """

    box: Box
    mask: np.ndarray
    kind: Literal["digit", "separator"] = "digit"
    char: str | None = None  # the separator's character when kind == "separator"
    parts: int = 1  # how many connected components were merged into it
    group: int = -1  # pieces cut from one over-wide component share a group id (>= 0)


@dataclass(frozen=True)
class DigitReading:
    """What the digit classifier says about one tile."""

    label: int
    prob: float
    top3: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class CharResult:
    char: str
    p: float
    top3: tuple[tuple[str, float], ...]
    box: Box

    def to_dict(self) -> dict[str, Any]:
        return {
            "char": self.char,
            "p": round(float(self.p), 6),
            "top3": [[c, round(float(p), 6)] for c, p in self.top3],
            "box": self.box.to_list(),
        }


@dataclass(frozen=True)
class FieldResult:
    name: str
    type: str
    value: str | None
    raw: str
    confidence: float
    needs_review: bool
    why: tuple[str, ...]
    box: Box
    chars: tuple[CharResult, ...]
    normalized: Any = None  # e.g. the numeric amount or the ISO date
    readings: dict[str, Any] = field(default_factory=dict)  # each reader's text and confidence, and the choice

    def mapped(self, move: Callable[[Box], Box]) -> FieldResult:
        """The same result with the field's and each character's box moved into another frame (a page, a crop)."""
        return replace(self, box=move(self.box), chars=tuple(replace(c, box=move(c.box)) for c in self.chars))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "value": self.value,
            "raw": self.raw,
            "normalized": self.normalized,
            "confidence": round(float(self.confidence), 6),
            "needs_review": bool(self.needs_review),
            "why": list(self.why),
            "box": self.box.to_list(),
            "chars": [c.to_dict() for c in self.chars],
            "readings": dict(self.readings),
        }


@dataclass(frozen=True)
class PostalCode:
    """A postal code read by :func:`formocr.read_postal_code`, from a whole envelope or from a crop.

    ``value`` is formatted for the country (``518057``, ``02139-1234``); ``digits`` holds each character read with
    its probability and box; ``box`` is the field in pixels of the (deskewed) image that was given; ``source``
    says whether the code was located on a whole envelope or the image was read as the field itself.
    """

    value: str | None
    confidence: float
    digits: tuple[CharResult, ...]
    needs_review: bool
    why: tuple[str, ...]
    box: Box
    country: str
    source: Literal["envelope", "crop"]
    raw: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "raw": self.raw,
            "confidence": round(float(self.confidence), 6),
            "needs_review": bool(self.needs_review),
            "why": list(self.why),
            "box": self.box.to_list(),
            "country": self.country,
            "source": self.source,
            "digits": [{"char": c.char, "p": round(float(c.p), 6), "box": c.box.to_list()} for c in self.digits],
        }


@dataclass(frozen=True)
class PageResult:
    """One page's fields, or (``error`` set, no fields) why the page could not be read, e.g. it did not register.

    A failed page does not fail its document: the other pages are still read and reported.
    """

    number: int
    width: int
    height: int
    dpi: float
    skew_deg: float
    template: str | None
    fields: tuple[FieldResult, ...]
    alignment: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None  # {"type", "message", "exit_code"} of the page's error

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "page": self.number,
            "width": self.width,
            "height": self.height,
            "dpi": float(self.dpi),
            "skew_deg": round(float(self.skew_deg), 3),
            "template": self.template,
            "alignment": dict(self.alignment),
            "fields": [f.to_dict() for f in self.fields],
        }
        if self.error is not None:
            d["error"] = dict(self.error)
        return d


def is_document(head: bytes) -> bool:
    """Whether a file starting with ``head`` holds :meth:`Document.to_dict` JSON (``formocr scan -o``'s own)."""
    return re.match(rb'\s*\{\s*"formocr"\s*:', head) is not None


@dataclass(frozen=True)
class Document:
    """The result for one input file."""

    source: str
    pages: tuple[PageResult, ...]
    models: dict[str, str]
    timings_ms: dict[str, float]
    version: str

    @property
    def fields(self) -> tuple[FieldResult, ...]:
        return tuple(f for p in self.pages for f in p.fields)

    def field(self, name: str) -> FieldResult:
        """The first field of that name (KeyError when absent)."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "formocr": self.version,
            "source": self.source,
            "models": dict(self.models),
            "pages": [p.to_dict() for p in self.pages],
            "timings_ms": {k: round(float(v), 3) for k, v in self.timings_ms.items()},
        }
