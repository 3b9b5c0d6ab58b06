"""Random field values, formatted as the pipeline outputs them, and what a comb's cells hold for a value."""

from __future__ import annotations

import calendar
import re

import numpy as np

from formocr.layout.template import TemplateField

__all__ = ["comb_text", "random_value"]


def _digits(rng: np.random.Generator, n: int, first_nonzero: bool = False) -> str:
    s = "".join(str(int(d)) for d in rng.integers(0, 10, n))
    if first_nonzero and n > 1 and s[0] == "0":
        s = str(int(rng.integers(1, 10))) + s[1:]
    return s


def random_value(f: TemplateField, rng: np.random.Generator) -> str:
    """A plausible value for ``f``, formatted as the pipeline outputs it ("03/11/2026", "1250.00", ...).

    Digits fields respect ``min_length``/``max_length`` (default 1..10) and a comb's cell count; for amounts
    ``min_length``/``max_length`` bound the number of integer digits (default 1..6).
    """
    c = f.constraints
    if f.type == "digits":
        hi = int(c.get("max_length", 10))
        if f.style == "comb" and f.cells:
            hi = min(hi, f.cells)
        lo = min(int(c.get("min_length", 1)), hi)
        return _digits(rng, int(rng.integers(lo, hi + 1)))
    if f.type == "postal_code":
        if "pattern" in c:
            for n in (6, 5, 4, 7, 3, 8, 9, 10):
                s = _digits(rng, n)
                if re.fullmatch(c["pattern"], s):
                    return s
            raise ValueError(f"field {f.name!r}: cannot invent a postal code for pattern {c['pattern']!r}")
        if c.get("country") == "US":
            return _digits(rng, 5)
        return str(int(rng.integers(1, 9))) + _digits(rng, 5)  # CN: 6 digits, first 1-8
    if f.type == "date":
        y = int(rng.integers(1990, 2036))
        m = int(rng.integers(1, 13))
        d = int(rng.integers(1, calendar.monthrange(y, m)[1] + 1))
        order = c.get("order", "DMY")
        if order == "MDY":
            return f"{m:02d}/{d:02d}/{y:04d}"
        if order == "YMD":
            return f"{y:04d}/{m:02d}/{d:02d}"
        return f"{d:02d}/{m:02d}/{y:04d}"
    if f.type == "amount":
        decimals = int(c.get("decimals", 2))
        hi = max(1, min(6, int(c.get("max_length", 6))))
        lo = max(1, min(int(c.get("min_length", 1)), hi))
        n = int(rng.choice(np.arange(lo, hi + 1), p=_amount_len_weights(lo, hi)))
        whole = _digits(rng, n, first_nonzero=True)
        if n == 1 and rng.random() < 0.1:
            whole = "0"
        if decimals == 0:
            return whole
        frac = "0" * decimals if rng.random() < 0.4 else _digits(rng, decimals)
        return f"{whole}.{frac}"
    raise ValueError(f"field {f.name!r}: unknown type {f.type!r}")


def _amount_len_weights(lo: int, hi: int) -> np.ndarray:
    w = np.array([{1: 0.1, 2: 0.25, 3: 0.3, 4: 0.2, 5: 0.1, 6: 0.05}.get(n, 0.05) for n in range(lo, hi + 1)])
    return w / w.sum()


def comb_text(f: TemplateField, value: str) -> str:
    """What is written in a comb's cells for ``value``: its digits only, one per cell.

    Amounts are right-aligned so the decimals land in the last cells (the dot is printed by the form, not
    written); everything else fills from the left.
    """
    text = re.sub(r"\D", "", value)
    cells = f.cells or len(text)
    if len(text) > cells:
        raise ValueError(f"field {f.name!r}: {value!r} has {len(text)} digits for {cells} cells")
    return text.rjust(cells) if f.type == "amount" else text
