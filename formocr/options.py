"""One options object for the CLI, the Python API and config files.

Every entry point builds an :class:`Options` through :meth:`Options.from_mapping`, so a misspelled key is an
error everywhere (with a suggestion), and defaults live in one place.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser from PyPI (a dependency there)
    import tomli as tomllib

from formocr.errors import ConfigError

DROPOUT_MODES = ("auto", "none", "red", "green", "blue")  # see formocr.dropout.estimate_dropout


# Chosen on real handwriting (benchmarks/real_accuracy.py; README, "Accuracy on real handwriting"). A field's
# confidence is the calibrated chance that its reading is right (formocr.calibration), so the threshold is the
# least chance a reading posted without review may have. On the real development fields (register years, days and
# row numbers, CVL digits and strings, scored against the audited labels) 0.995 accepts 49.4% of half A, 99.92%
# right, and 50.7% of half B, 99.91% right (low end of the 95% interval 99.69%); 0.99 is 99.77% right on half B
# (low end 99.51%), but on days alone the low end of its interval is 99.27%, on row numbers 99.32%: under 99.5%.
REVIEW_THRESHOLD = 0.995


@dataclass(frozen=True)
class Options:
    dpi: int = 300  # rasterization of PDFs; images keep their own dpi when they record one
    template: str | None = None  # built-in name, path, or "auto" (find fields); None = best built-in, else auto
    review_threshold: float = REVIEW_THRESHOLD  # below this a field needs review
    char_review_threshold: float = 0.80  # ... as does a field with any character below this
    binarizer: str = "auto"  # auto | sauvola | otsu
    deskew: bool = True
    max_skew_deg: float = 10.0
    max_pixels: int = 100_000_000  # per page: decompression-bomb guard
    max_pages: int = 500
    digits_model: str | None = None  # path; None = the shipped model
    strings_model: str | None = None  # path; None = the shipped model
    calibration: str | None = None  # field calibration file; None = the shipped one where it fits; "none" = off
    reader: str = "fused"  # fused | segmentation | crnn: which readers read each field
    string_views: int = 3  # 1-5: the string reader reads each field at this many widths (more: surer, slower)
    digit_tiles: str = "grey"  # grey | ink: the digit CNN reads how dark each pixel is, or the binarized mask
    dropout: str = "auto"  # auto | none | red | green | blue: colour form print removed before reading
    debug_dir: str | None = None

    def __post_init__(self) -> None:
        if not 50 <= self.dpi <= 1200:
            raise ConfigError(f"dpi: must be between 50 and 1200, got {self.dpi}")
        for name in ("review_threshold", "char_review_threshold"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name}: must be between 0 and 1, got {v}")
        if self.binarizer not in ("auto", "sauvola", "otsu"):
            raise ConfigError(f"binarizer: must be auto, sauvola or otsu, got {self.binarizer!r}")
        if self.reader not in ("fused", "segmentation", "crnn"):
            raise ConfigError(f"reader: must be fused, segmentation or crnn, got {self.reader!r}")
        if self.dropout not in DROPOUT_MODES:
            raise ConfigError(f"dropout: must be one of {', '.join(DROPOUT_MODES)}, got {self.dropout!r}")
        if self.digit_tiles not in ("grey", "ink"):
            raise ConfigError(f"digit_tiles: must be grey or ink, got {self.digit_tiles!r}")
        if not 1 <= self.string_views <= 5:
            raise ConfigError(f"string_views: must be between 1 and 5, got {self.string_views}")
        if not 0 <= self.max_skew_deg <= 45:  # checked here too, so that a config file's error names the file
            raise ConfigError(f"max_skew_deg: must be between 0 and 45, got {self.max_skew_deg}")
        if self.max_pixels < 1 or self.max_pages < 1:
            raise ConfigError("max_pixels and max_pages must be positive")

    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str | None = None) -> Options:
        """Build from a dict (config file, API keywords, CLI); unknown keys and wrong types are errors."""
        known = {f.name: f for f in fields(cls)}
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(key, list(known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"unknown option {key!r}{hint}", source)
        clean: dict[str, Any] = {}
        for key, value in data.items():
            clean[key] = _coerce(key, known[key].type, value, source)
        try:
            return cls(**clean)
        except ConfigError as e:
            raise ConfigError(e.message, source) from None

    @classmethod
    def from_file(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> Options:
        """Read a JSON or TOML config file; ``overrides`` (e.g. CLI flags) win over the file.

        Whatever the file holds, the outcome is an :class:`Options` or a one-line :class:`ConfigError`: bytes that
        are not UTF-8, a top level or ``formocr`` table that is not a table, nesting deep enough to exhaust the
        parser's recursion, numbers too long to convert.
        """
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as e:
            raise ConfigError(f"cannot read config file: {e.strerror or e}", p) from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"config file is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})",
                              p) from None
        kind = "TOML" if p.suffix.lower() == ".toml" else "JSON"
        try:
            data = tomllib.loads(text) if kind == "TOML" else json.loads(text)
        except RecursionError:
            raise ConfigError(f"config file is not valid {kind}: nested too deeply", p) from None
        except ValueError as e:  # TOMLDecodeError, JSONDecodeError, an integer over Python's digit limit
            raise ConfigError(f"config file is not valid {kind}: {e}", p) from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file must hold a table/object of options, not {_kind(data)}", p)
        if "formocr" in data:  # allow a [formocr] table; other keys are other tools', unless they name an option
            names = [f.name for f in fields(cls)]
            stray = [k for k in data if k != "formocr" and difflib.get_close_matches(k, names, n=1, cutoff=0.8)]
            if stray:
                raise ConfigError(f"{stray[0]!r} lies outside the [formocr] table, where it would be ignored: move it "
                                  "into the table", p)
            data = data["formocr"]
            if not isinstance(data, dict):
                raise ConfigError(f"formocr: expected a table/object of options, got {_kind(data)}", p)
        data = dict(data)
        data.update(overrides or {})
        return cls.from_mapping(data, str(p))

    def replace(self, **changes: Any) -> Options:
        return Options.from_mapping({**dataclasses.asdict(self), **changes})


def _kind(value: Any) -> str:
    """What a parsed JSON/TOML value is, for a message (never its repr: it may be huge or deeply nested)."""
    names = {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return names.get(type(value), "null" if value is None else f"a {type(value).__name__}")


def _short(value: Any, limit: int = 60) -> str:
    """A value's repr cut to ``limit`` characters, so that an error message stays one short line."""
    if isinstance(value, (list, dict, tuple)):
        return _kind(value)
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _coerce(key: str, typ: Any, value: Any, source: str | None) -> Any:
    t = str(typ)
    if value is None and "None" in t:
        return None
    if t.startswith("bool"):
        if isinstance(value, bool):
            return value
    elif t.startswith("int"):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif t.startswith("float"):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif t.startswith("str") and isinstance(value, (str, Path)):
        return str(value)
    raise ConfigError(f"option {key!r}: expected {t.replace(' | None', ' or null')}, got {_short(value)}", source)
