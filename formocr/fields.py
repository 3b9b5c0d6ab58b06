"""Field types: turning the characters read into a value, and saying when that value cannot be right.

Each type checks what a person would check before keying the number in: the length of an account number, a
postal code's format, a date that exists in the calendar, an amount with a sane decimal part. A reading that
fails its check is still returned (so a person sees what was read) but is marked ``needs_review`` with the
reason in ``why``.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import Any

from formocr.constraints import DIGITS, Constraint

# CN: six digits, first 0-8 (010000-079999: Inner Mongolia, Shanxi, Hebei; no mainland code starts with 9).
# US: ZIP or ZIP+4.
POSTAL_PATTERNS = {"CN": r"[0-8]\d{5}", "US": r"\d{5}(-?\d{4})?"}


@dataclass(frozen=True)
class Interpretation:
    value: str | None
    normalized: Any
    problems: tuple[str, ...]


def interpret(field_type: str, raw: str, constraints: dict[str, Any], comb: bool = False) -> Interpretation:
    """Value, normalized form and problems for ``raw`` (digits and separators as read, left to right)."""
    if not raw.replace(" ", ""):
        return Interpretation(None, None, ("empty",))
    if field_type == "digits":
        return _digits(raw, constraints)
    if field_type == "postal_code":
        return _postal(raw, constraints)
    if field_type == "date":
        return _date(raw, constraints, comb)
    if field_type == "amount":
        return _amount(raw, constraints, comb)
    raise ValueError(f"unknown field type {field_type!r}")


def _length_problems(n: int, constraints: dict[str, Any]) -> list[str]:
    lo, hi = constraints.get("min_length"), constraints.get("max_length")
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        want = f"{lo}" if lo == hi else f"{lo or 0}..{hi if hi is not None else '∞'}"
        return [f"length {n}, expected {want}"]
    return []


def _digits(raw: str, c: dict[str, Any]) -> Interpretation:
    digits = re.sub(r"\D", "", raw)
    problems = _length_problems(len(digits), c)
    if digits != raw.replace(" ", ""):
        problems.append("separators in a digits-only field")
    if c.get("pattern") and not re.fullmatch(c["pattern"], digits):
        problems.append(f"does not match the field's pattern {c['pattern']}")
    return Interpretation(digits, digits, tuple(problems))


def _postal(raw: str, c: dict[str, Any]) -> Interpretation:
    country = c.get("country", "CN")
    pattern = c.get("pattern") or POSTAL_PATTERNS[country]
    value = raw.replace(" ", "")
    if country == "US" and not c.get("pattern"):
        d = re.sub(r"\D", "", value)
        value = d if len(d) != 9 else f"{d[:5]}-{d[5:]}"
    if re.fullmatch(pattern, value):
        problems: tuple[str, ...] = ()
    elif c.get("pattern"):  # the template's own pattern: naming a country here would send the reviewer astray
        problems = (f"does not match the template's postal-code pattern {pattern}",)
    else:
        problems = (f"does not match the {country} postal-code pattern",)
    return Interpretation(value, value, problems)


_DATE_GROUPS = {"DMY": (2, 2, 4), "MDY": (2, 2, 4), "YMD": (4, 2, 2)}


def _date(raw: str, c: dict[str, Any], comb: bool) -> Interpretation:
    order = c.get("order", "DMY")
    groups = [g for g in re.split(r"[^\d]+", raw) if g]
    if len(groups) != 3:
        digits = "".join(groups)
        sizes = _DATE_GROUPS[order]
        if len(digits) == 6:  # DDMMYY, MMDDYY, YYMMDD
            sizes = (2, 2, 2)
        if len(digits) != sum(sizes):
            return Interpretation(raw, None, (f"cannot split {raw!r} into a {order} date",))
        i = 0
        groups = []
        for s in sizes:
            groups.append(digits[i : i + s])
            i += s
    parts = dict(zip(order, groups))
    value = "/".join(groups)
    try:
        year = int(parts["Y"])
        if len(parts["Y"]) == 2:
            year += 2000 if year < 70 else 1900
        date = _dt.date(year, int(parts["M"]), int(parts["D"]))
    except ValueError:
        return Interpretation(value, None, ("not a valid calendar date",))
    return Interpretation(value, date.isoformat(), ())


def _amount(raw: str, c: dict[str, Any], comb: bool = False) -> Interpretation:
    decimals = c.get("decimals", 2)
    if comb:
        return _comb_amount(raw, decimals)
    # A closing dash after the amount ("22.000,-", "22.000.-") says "no cents" on cheques: drop it.
    compact = raw.replace(" ", "")
    dash = re.search(r"[.,]?-+$", compact)
    text = (compact[: dash.start()] if dash else compact).lstrip("-")
    if not text or not text[0].isdigit():
        return Interpretation(raw, None, ("no digits",))
    m = re.fullmatch(r"(\d+(?:[.,]\d+)*?)(?:([.,])(\d+))?", text)
    problems: list[str] = []
    if not m:
        return Interpretation(raw, None, ("not an amount",))
    int_part, sep, frac = m.group(1), m.group(2), m.group(3)
    if sep is not None and frac is not None and len(frac) != decimals and len(frac) == 3:
        int_part, sep, frac = int_part + sep + frac, None, None  # "10.000": a thousands separator
    if sep is not None and frac is not None and len(frac) != decimals:
        problems.append(f"{len(frac)} decimal digits, expected {decimals}")
    if c.get("require_decimals") and decimals and sep is None and not dash:
        # On a form whose amounts always carry cents, a missing mark is far likelier a decimal point lost on a
        # digit it touches than a whole amount: "9729.28" read as 972928 is off by a factor of 100.
        problems.append(f"no decimal mark read (this form's amounts have {decimals} decimals)")
    groups = re.split(r"[.,]", int_part)
    if len(groups) > 1 and any(len(g) != 3 for g in groups[1:]):
        problems.append("thousands separators in the wrong places")
    marks = set(re.findall(r"[.,]", int_part))
    if len(marks) > 1:
        problems.append("mixed thousands separators")
    elif sep is not None and sep in marks:
        problems.append(f"{sep!r} used both for thousands and for decimals")
    integer = "".join(groups)
    frac = frac or ("0" * decimals if decimals else "")
    number = f"{int(integer)}.{frac}" if decimals or frac else str(int(integer))
    if len(integer) > 1 and integer.startswith("0"):
        problems.append("leading zero")
    value = f"{integer}.{frac}" if frac else integer
    return Interpretation(value, number, tuple(problems))


def _comb_amount(raw: str, decimals: int) -> Interpretation:
    """An amount in comb cells: digits only, right-aligned, the decimal point printed by the form before the
    last ``decimals`` cells (:func:`formocr.synth.values.comb_text` writes them so)."""
    digits = re.sub(r"\D", "", raw)
    if not digits:
        return Interpretation(raw, None, ("no digits",))
    problems = ["separators in comb cells"] if digits != raw.replace(" ", "") else []
    if not decimals:
        integer, frac = digits, ""
    else:
        digits = digits.rjust(decimals + 1, "0")
        integer, frac = digits[:-decimals], digits[-decimals:]
    if len(integer) > 1 and integer.startswith("0"):
        problems.append("leading zero")
    number = f"{int(integer)}.{frac}" if frac else str(int(integer))
    return Interpretation(f"{integer}.{frac}" if frac else integer, number, tuple(problems))


def _date_pattern(order: str) -> str:
    sep = "[./-]"
    if order == "YMD":
        return rf"(\d{{4}}|\d{{2}}){sep}\d{{1,2}}{sep}\d{{1,2}}|\d{{8}}"
    return rf"\d{{1,2}}{sep}\d{{1,2}}{sep}(\d{{4}}|\d{{2}})|\d{{8}}"


def constraint_for(field_type: str, constraints: dict[str, Any], comb: bool = False) -> Constraint:
    """What the string reader's decoder may produce for a field: the same rules :func:`interpret` checks.

    Dates in comb boxes are eight digits (the slashes are printed); on a line they may carry ``/ . -``.
    Amounts allow thousands separators (``. , space``), a decimal part of the configured size, and a closing
    dash (``22.000.-``).
    """
    lo, hi = constraints.get("min_length"), constraints.get("max_length")
    if field_type == "digits":  # a pattern narrows it further: a year's "(19|20)\d\d", an account's format
        return Constraint(chars=DIGITS, min_digits=lo or 1, max_digits=hi, pattern=constraints.get("pattern"))
    if field_type == "postal_code":
        country = constraints.get("country", "CN")
        pattern = constraints.get("pattern") or POSTAL_PATTERNS[country]
        return Constraint(chars=DIGITS + ("-" if "-" in pattern else ""), min_digits=1, pattern=pattern)
    if field_type == "date":
        if comb:
            return Constraint(chars=DIGITS, min_digits=8, max_digits=8)
        return Constraint(chars=DIGITS + "./-", min_digits=4, max_digits=8,
                          pattern=_date_pattern(constraints.get("order", "DMY")))
    if field_type == "amount":
        if comb:  # one digit per cell, the decimal point printed
            return Constraint(chars=DIGITS, min_digits=lo or 1, max_digits=hi)
        decimals = int(constraints.get("decimals", 2))
        frac = rf"[.,]\d{{{decimals}}}" if decimals else ""
        # the decimals, or a closing dash ("no cents"), or (unless the form requires cents) neither
        tail = rf"({frac}|[.,]?-)" if decimals and constraints.get("require_decimals") else rf"({frac})?(\.?-)?"
        return Constraint(chars=DIGITS + ".,- ", min_digits=lo or 1, max_digits=hi,
                          pattern=rf"\d+([., ]?\d{{3}})*{tail}")
    raise ValueError(f"unknown field type {field_type!r}")
