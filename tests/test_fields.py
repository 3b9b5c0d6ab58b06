"""Field types: value formatting and the checks that send a reading to a person."""

from __future__ import annotations

import pytest

from formocr.fields import interpret


@pytest.mark.parametrize(
    ("ftype", "raw", "constraints", "value", "normalized", "ok"),
    [
        ("digits", "0123456789", {"min_length": 10, "max_length": 10}, "0123456789", "0123456789", True),
        ("digits", "012345678", {"min_length": 10, "max_length": 10}, "012345678", "012345678", False),
        ("postal_code", "518057", {"country": "CN"}, "518057", "518057", True),
        ("postal_code", "51805", {"country": "CN"}, "51805", "51805", False),
        ("postal_code", "918057", {"country": "CN"}, "918057", "918057", False),
        ("postal_code", "021391234", {"country": "US"}, "02139-1234", "02139-1234", True),
        ("postal_code", "02139", {"country": "US"}, "02139", "02139", True),
        ("postal_code", "0213", {"country": "US"}, "0213", "0213", False),
        ("date", "03112026", {"order": "DMY"}, "03/11/2026", "2026-11-03", True),
        ("date", "11032026", {"order": "MDY"}, "11/03/2026", "2026-11-03", True),
        ("date", "31022026", {"order": "DMY"}, "31/02/2026", None, False),
        ("date", "03.11.2026", {"order": "DMY"}, "03/11/2026", "2026-11-03", True),
        ("amount", "1250.00", {"decimals": 2}, "1250.00", "1250.00", True),
        ("amount", "1,250.00", {"decimals": 2}, "1250.00", "1250.00", True),
        ("amount", "10.000", {"decimals": 2}, "10000.00", "10000.00", True),
        ("amount", "22.000-", {"decimals": 2}, "22000.00", "22000.00", True),
        ("amount", "87.5", {"decimals": 2}, "87.5", "87.5", False),
        ("amount", "125000", {"decimals": 2}, "125000.00", "125000.00", True),
    ],
)
def test_interpret(ftype: str, raw: str, constraints: dict, value: str, normalized: object, ok: bool) -> None:
    r = interpret(ftype, raw, constraints)
    assert r.value == value
    assert r.normalized == normalized
    assert (not r.problems) == ok, r.problems


def test_empty_field_needs_review() -> None:
    r = interpret("digits", "", {})
    assert r.value is None and r.problems == ("empty",)
