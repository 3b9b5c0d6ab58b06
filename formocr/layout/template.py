"""Form templates: a documented JSON format, strict validation, built-in templates.

A template describes one form layout in millimetres, so one file serves any scan resolution::

    {
      "formocr_template": 1,
      "name": "cheque",
      "page": {"width_mm": 203.2, "height_mm": 88.9},
      "fields": [
        {"name": "date", "type": "date", "box_mm": [150, 8, 44, 9], "style": "comb", "cells": 8,
         "constraints": {"order": "DMY"}},
        {"name": "amount", "type": "amount", "box_mm": [140, 30, 55, 13]}
      ]
    }

Field keys: ``name`` (unique), ``type`` (digits | amount | date | postal_code), ``box_mm`` [x, y, w, h] from the
page's top-left corner, ``style`` (box: a printed rectangle, the default; comb: a row of ``cells`` boxes, one digit
each; free: no printed border; line: an underlined blank, one printed baseline along the bottom of ``box_mm``,
which is the writing area above it, the line included), ``cells`` (comb only), ``constraints`` (per type:
``min_length``/``max_length`` and ``pattern`` for digits (a year: ``(19|20)\\d\\d``; the reader picks the likeliest
reading the pattern allows, and a reading outside it goes to review), ``country`` or ``pattern`` for postal codes,
``order`` for dates, ``decimals`` and ``require_decimals`` for amounts: with ``true`` a reading with neither a
decimal part nor a closing dash is doubtful, since on such a form a point lost on the digit it touches is likelier
than a whole amount; amounts in comb cells are digits only, the point printed before the last ``decimals`` cells), and
``label`` (printed caption, used by the sample renderer only).

Optional ``marks``: printed lines and boxes that are not fields (a stamp box, address rules, a border), given so
registration has more than the fields' own frames to align on. A form with one small frame (an envelope's
postal-code comb) is otherwise easy to confuse with a stamp or a table; its other print pins it down. Each mark
has a ``name`` (unique among marks and fields) and either ``box_mm`` [x, y, w, h] (a printed rectangle, its
lines inside the box like a field's frame) or ``line_mm`` [x0, y0, x1, y1] (a horizontal or vertical rule, on
its centre line, at least 5 mm long)::

    "marks": [{"name": "stamp_box", "box_mm": [186, 8, 24, 28]},
              {"name": "address_1", "line_mm": [40, 52.1, 190, 52.1]}]

Every mistake is a :class:`~formocr.errors.TemplateError` naming the key, e.g. ``fields[1].box_mm: expected 4
numbers``. Limits that keep a hostile template from hanging or crashing a run: numbers must be finite, a page at
most :data:`MAX_PAGE_MM` on a side, at most :data:`MAX_FIELDS` fields and as many marks, and a
``pattern`` must be in the subset the constrained reader understands (literals, ``\\d``, classes, groups,
``|``, ``? * + {m,n}``; no look-arounds or backreferences) with counts of at most :data:`MAX_PATTERN_REPEAT`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from formocr.errors import TemplateError
from formocr.objects import Box, FieldRegion

FIELD_TYPES = ("digits", "amount", "date", "postal_code")
STYLES = ("box", "comb", "free", "line")
_TOP_KEYS = {"formocr_template", "name", "page", "fields", "marks", "description"}
_MARK_KEYS = {"name", "box_mm", "line_mm"}
MIN_MARK_MM = 5.0  # shorter rules cannot be told from lettering by the page-stroke finder
MAX_PAGE_MM = 2000.0  # A0 is 841 × 1189 mm; a larger "page" is a typo, and 1e308 mm would overflow pixel sizes
MAX_FIELDS = 200  # fields (and, separately, marks) per template: each costs reading time on every page
MAX_PATTERN_CHARS = 200
MAX_PATTERN_REPEAT = 64  # a {m,n} count: a comb has at most 64 cells; larger counts blow up the pattern automaton
MAX_PATTERN_STATES = 20_000
_PAGE_KEYS = {"width_mm", "height_mm"}
_FIELD_KEYS = {"name", "type", "box_mm", "style", "cells", "constraints", "label"}
_CONSTRAINT_KEYS = {
    "digits": {"min_length", "max_length", "pattern"},
    "amount": {"decimals", "require_decimals", "min_length", "max_length"},
    "date": {"order"},
    "postal_code": {"country", "pattern"},
}


@dataclass(frozen=True)
class TemplateField:
    name: str
    type: str
    box_mm: tuple[float, float, float, float]
    style: str = "box"
    cells: int | None = None
    constraints: dict[str, Any] = field(default_factory=dict)
    label: str | None = None

    def region(self, dpi: float, offset: tuple[int, int] = (0, 0)) -> FieldRegion:
        """The field in page pixels at ``dpi``."""
        k = dpi / 25.4
        x, y, w, h = self.box_mm
        box = Box(round(x * k) + offset[0], round(y * k) + offset[1], round(w * k), round(h * k))
        return FieldRegion(
            name=self.name,
            type=self.type,  # type: ignore[arg-type]
            box=box,
            style=self.style,  # type: ignore[arg-type]
            cells=self.cells,
            constraints=dict(self.constraints),
        )


@dataclass(frozen=True)
class Mark:
    """Printed form structure that is not a field: evidence for registration, never read."""

    name: str
    kind: str  # "box": a rectangle [x, y, w, h]; "line": a rule [x0, y0, x1, y1]
    mm: tuple[float, float, float, float]

    @property
    def style(self) -> str:
        return self.kind

    @property
    def cells(self) -> None:
        return None  # a mark is one box or one rule, never a comb

    @property
    def box_mm(self) -> tuple[float, float, float, float]:
        """The mark's extent as [x, y, w, h] (a rule has zero width or height)."""
        if self.kind == "box":
            return self.mm
        x0, y0, x1, y1 = self.mm
        return min(x0, x1), min(y0, y1), abs(x1 - x0), abs(y1 - y0)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "box_mm" if self.kind == "box" else "line_mm": list(self.mm)}


@dataclass(frozen=True)
class Template:
    name: str
    width_mm: float
    height_mm: float
    fields: tuple[TemplateField, ...]
    source: str = "<memory>"
    marks: tuple[Mark, ...] = ()

    @property
    def frames(self) -> tuple[TemplateField | Mark, ...]:
        """Everything printed that registration can align on: the fields' frames and the marks."""
        return tuple(f for f in self.fields if f.style != "free") + self.marks

    def page_size_px(self, dpi: float) -> tuple[int, int]:
        k = dpi / 25.4
        return round(self.width_mm * k), round(self.height_mm * k)

    def to_dict(self) -> dict[str, Any]:
        fields = []
        for f in self.fields:
            d: dict[str, Any] = {"name": f.name, "type": f.type, "box_mm": list(f.box_mm), "style": f.style}
            if f.cells is not None:
                d["cells"] = f.cells
            if f.constraints:
                d["constraints"] = dict(f.constraints)
            if f.label is not None:
                d["label"] = f.label
            fields.append(d)
        out: dict[str, Any] = {
            "formocr_template": 1,
            "name": self.name,
            "page": {"width_mm": self.width_mm, "height_mm": self.height_mm},
            "fields": fields,
        }
        if self.marks:
            out["marks"] = [m.to_dict() for m in self.marks]
        return out


def _num(value: Any, where: str, src: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TemplateError(f"{where}: expected a number, got {_short(value)}", src)
    try:
        number = float(value)
    except OverflowError:  # an integer with hundreds of digits
        number = math.inf
    if not math.isfinite(number):  # JSON's NaN and Infinity: every comparison with NaN is False
        raise TemplateError(f"{where}: expected a finite number, got {_short(value)}", src)
    if positive and number <= 0:
        raise TemplateError(f"{where}: must be > 0, got {value!r}", src)
    return number


def _short(value: Any, limit: int = 60) -> str:
    """A value's repr cut short, so that a message stays one readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unknown(d: dict[str, Any], allowed: set[str], where: str, src: str | None) -> None:
    extra = sorted(set(d) - allowed)
    if extra:
        prefix = f"{where}." if where else ""
        raise TemplateError(f"{prefix}{extra[0]}: unknown key (allowed: {', '.join(sorted(allowed))})", src)


def parse_template(data: Any, source: str = "<memory>") -> Template:
    """Validate a template given as parsed JSON; every error names the key at fault."""
    if not isinstance(data, dict):
        raise TemplateError("template must be a JSON object", source)
    _unknown(data, _TOP_KEYS, "", source)
    if data.get("formocr_template") != 1:
        raise TemplateError("formocr_template: must be 1 (the format version)", source)
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise TemplateError("name: expected a non-empty string", source)
    page = data.get("page")
    if not isinstance(page, dict):
        raise TemplateError("page: expected an object with width_mm and height_mm", source)
    _unknown(page, _PAGE_KEYS, "page", source)
    for key in _PAGE_KEYS:
        if key not in page:
            raise TemplateError(f"page.{key}: missing", source)
    width = _num(page["width_mm"], "page.width_mm", source, positive=True)
    height = _num(page["height_mm"], "page.height_mm", source, positive=True)
    for key, size in (("width_mm", width), ("height_mm", height)):
        if size > MAX_PAGE_MM:
            raise TemplateError(f"page.{key}: at most {MAX_PAGE_MM:g} mm, got {size:g}", source)
    raw_fields = data.get("fields")
    if not isinstance(raw_fields, list) or not raw_fields:
        raise TemplateError("fields: expected a non-empty list", source)
    if len(raw_fields) > MAX_FIELDS:
        raise TemplateError(f"fields: at most {MAX_FIELDS} fields per template, got {len(raw_fields)}", source)
    seen: set[str] = set()
    fields = []
    for i, f in enumerate(raw_fields):
        where = f"fields[{i}]"
        fname = _named(f, _FIELD_KEYS, where, seen, "field name", source)
        ftype = f.get("type")
        if ftype not in FIELD_TYPES:
            raise TemplateError(f"{where}.type: {ftype!r} is not one of {', '.join(FIELD_TYPES)}", source)
        box = f.get("box_mm")
        if not isinstance(box, list) or len(box) != 4:
            raise TemplateError(f"{where}.box_mm: expected 4 numbers [x, y, w, h]", source)
        x, y = (_num(v, f"{where}.box_mm", source) for v in box[:2])
        w, h = (_num(v, f"{where}.box_mm", source, positive=True) for v in box[2:])
        if x < 0 or y < 0 or x + w > width + 1e-6 or y + h > height + 1e-6:
            raise TemplateError(f"{where}.box_mm: box {box} lies outside the page ({width}×{height} mm)", source)
        style = f.get("style", "box")
        if style not in STYLES:
            raise TemplateError(f"{where}.style: {style!r} is not one of {', '.join(STYLES)}", source)
        cells = f.get("cells")
        if style == "comb":
            if not isinstance(cells, int) or isinstance(cells, bool) or not 1 <= cells <= 64:
                raise TemplateError(f"{where}.cells: a comb field needs an integer 1..64", source)
        elif cells is not None:
            raise TemplateError(f"{where}.cells: only comb fields have cells", source)
        constraints = f.get("constraints", {})
        if not isinstance(constraints, dict):
            raise TemplateError(f"{where}.constraints: expected an object", source)
        check_constraints(ftype, constraints, f"{where}.constraints", source)
        label = f.get("label")
        if label is not None and not isinstance(label, str):
            raise TemplateError(f"{where}.label: expected a string", source)
        fields.append(TemplateField(fname, ftype, (x, y, w, h), style, cells, dict(constraints), label))
    marks = _parse_marks(data.get("marks", []), seen, width, height, source)
    return Template(name, width, height, tuple(fields), source, marks)


def _named(entry: Any, allowed: set[str], where: str, seen: set[str], what: str, source: str) -> str:
    """A field's or mark's object checked for unknown keys, and its name, unique among ``seen`` (added to it)."""
    if not isinstance(entry, dict):
        raise TemplateError(f"{where}: expected an object", source)
    _unknown(entry, allowed, where, source)
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise TemplateError(f"{where}.name: expected a non-empty string", source)
    if name in seen:
        raise TemplateError(f"{where}.name: duplicate {what}: {name!r}", source)
    seen.add(name)
    return name


def _parse_marks(raw: Any, names: set[str], width: float, height: float, source: str) -> tuple[Mark, ...]:
    if not isinstance(raw, list):
        raise TemplateError("marks: expected a list", source)
    if len(raw) > MAX_FIELDS:
        raise TemplateError(f"marks: at most {MAX_FIELDS} marks per template, got {len(raw)}", source)
    marks = []
    for i, m in enumerate(raw):
        where = f"marks[{i}]"
        mname = _named(m, _MARK_KEYS, where, names, "name (marks and fields share names)", source)
        if ("box_mm" in m) == ("line_mm" in m):
            raise TemplateError(f"{where}: give exactly one of box_mm or line_mm", source)
        key = "box_mm" if "box_mm" in m else "line_mm"
        v = m[key]
        if not isinstance(v, list) or len(v) != 4:
            raise TemplateError(f"{where}.{key}: expected 4 numbers", source)
        a, b, c, d = (_num(x, f"{where}.{key}", source) for x in v)
        if key == "box_mm":
            if c <= 0 or d <= 0:
                raise TemplateError(f"{where}.box_mm: width and height must be > 0", source)
            x0, y0, x1, y1 = a, b, a + c, b + d
        else:
            if a != c and b != d:
                raise TemplateError(f"{where}.line_mm: a rule must be horizontal or vertical", source)
            if abs(c - a) + abs(d - b) < MIN_MARK_MM:
                raise TemplateError(f"{where}.line_mm: a rule must be at least {MIN_MARK_MM:g} mm long", source)
            x0, y0, x1, y1 = min(a, c), min(b, d), max(a, c), max(b, d)
        if x0 < 0 or y0 < 0 or x1 > width + 1e-6 or y1 > height + 1e-6:
            raise TemplateError(f"{where}.{key}: {v} lies outside the page ({width}×{height} mm)", source)
        marks.append(Mark(mname, "box" if key == "box_mm" else "line", (a, b, c, d)))
    return tuple(marks)


def check_constraints(field_type: str, c: dict[str, Any], where: str = "constraints", src: str | None = None) -> None:
    """The one check of a field's constraints, for templates and for :func:`formocr.read_field` alike: unknown keys
    and bad values are a :class:`TemplateError` (a ConfigError) naming the key."""
    _unknown(c, _CONSTRAINT_KEYS[field_type], where, src)
    _check_constraints(c, where, src)
    if field_type == "digits" and "pattern" in c:
        _check_digits_only(c["pattern"], f"{where}.pattern", src)


def _check_constraints(c: dict[str, Any], where: str, src: str | None) -> None:
    for key in ("min_length", "max_length", "decimals"):
        if key in c and (not isinstance(c[key], int) or isinstance(c[key], bool) or c[key] < 0):
            raise TemplateError(f"{where}.{key}: expected a non-negative integer", src)
    if "min_length" in c and "max_length" in c and c["min_length"] > c["max_length"]:
        raise TemplateError(f"{where}.min_length: larger than max_length", src)
    if "require_decimals" in c and not isinstance(c["require_decimals"], bool):
        raise TemplateError(f"{where}.require_decimals: expected true or false", src)
    if "order" in c and c["order"] not in ("DMY", "MDY", "YMD"):
        raise TemplateError(f"{where}.order: expected DMY, MDY or YMD", src)
    if "country" in c and c["country"] not in ("CN", "US"):
        raise TemplateError(f"{where}.country: expected CN or US (or give a pattern)", src)
    if "pattern" in c:
        _check_pattern(c["pattern"], f"{where}.pattern", src)


def _check_pattern(pattern: Any, where: str, src: str | None) -> None:
    """A field's pattern (a postal code's, a digits field's) both Python's ``re`` (the check of the reading) and
    the reader's automaton accept.

    Checked here, at load, so that a bad pattern is a TemplateError naming the key rather than a failure in
    the middle of reading a page; the size limits keep a pattern like ``(\\d{64}){64}`` from exhausting memory.
    """
    from formocr.constraints import Constraint, Pattern, PatternError, PatternParser

    if not isinstance(pattern, str) or not pattern:
        raise TemplateError(f"{where}: expected a regular expression string", src)
    if len(pattern) > MAX_PATTERN_CHARS:
        raise TemplateError(f"{where}: at most {MAX_PATTERN_CHARS} characters, got {len(pattern)}", src)
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as e:
        raise TemplateError(f"{where}: not a valid regular expression ({e})", src) from None
    universe = Constraint().universe
    try:
        tree = PatternParser(pattern, universe).parse()
    except (PatternError, RecursionError) as e:
        raise TemplateError(f"{where}: {pattern!r} uses what formocr's reader cannot follow ({e}); use literals, "
                            "\\d, [...] classes, groups, | and ? * + {m,n}", src) from None
    states = _pattern_states(tree, where, src)
    if states > MAX_PATTERN_STATES:
        raise TemplateError(f"{where}: {pattern!r} is too large for the reader (about {states} automaton states, "
                            f"at most {MAX_PATTERN_STATES})", src)
    Pattern(pattern, universe)  # parsed and small: builds


def _check_digits_only(pattern: str, where: str, src: str | None) -> None:
    """A digits field's reading holds digits only, so a pattern that asks for a separator could never match."""
    from formocr.constraints import DIGITS, Constraint, PatternParser

    def chars(node: tuple[Any, ...]) -> set[str]:
        if node[0] == "set":
            return set(node[1])
        subs = node[1] if node[0] in ("cat", "alt") else [node[1]]
        return set().union(*(chars(n) for n in subs)) if subs else set()

    extra = chars(PatternParser(pattern, Constraint().universe).parse()) - set(DIGITS)
    if extra:
        raise TemplateError(f"{where}: a digits field reads digits only, so {pattern!r} (with "
                            f"{''.join(sorted(extra))!r}) could never match", src)


def _pattern_states(node: tuple[Any, ...], where: str, src: str | None) -> int:
    """Automaton states that :class:`formocr.constraints.Pattern` would build for a parsed pattern (an upper
    bound), computed without building it."""
    kind = node[0]
    if kind == "set":
        return 2
    if kind in ("cat", "alt"):
        return 2 + sum(_pattern_states(n, where, src) for n in node[1])
    _, sub, lo, hi = node
    if max(lo, hi or 0) > MAX_PATTERN_REPEAT:
        raise TemplateError(f"{where}: a repeat count of at most {MAX_PATTERN_REPEAT}, got {max(lo, hi or 0)}", src)
    return 2 + (max(lo, hi or 0) + 1) * _pattern_states(sub, where, src)


BUILTIN = ("cheque", "envelope", "numeric_form")


def load_template(name_or_path: str | Path) -> Template:
    """A built-in template by name, or a template file by path."""
    text: str
    src = str(name_or_path)
    if isinstance(name_or_path, str) and name_or_path in BUILTIN:
        text = resources.files("formocr.layout").joinpath(f"templates/{name_or_path}.json").read_text("utf-8")
        src = f"builtin:{name_or_path}"
    else:
        p = Path(name_or_path)
        try:
            text = p.read_text("utf-8")
        except FileNotFoundError:
            raise TemplateError(
                f"no such template file (built-in templates: {', '.join(BUILTIN)})", p
            ) from None
        except (OSError, UnicodeDecodeError) as e:
            raise TemplateError(f"cannot read template: {e}", p) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise TemplateError(f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})", src) from None
    except RecursionError:
        raise TemplateError("not valid JSON (nested too deeply)", src) from None
    except ValueError as e:  # an integer over Python's digit limit
        raise TemplateError(f"not valid JSON ({e})", src) from None
    return parse_template(data, src)
