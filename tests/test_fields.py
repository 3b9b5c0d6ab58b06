"""Field types: value formatting and the checks that send a reading to a person."""

from __future__ import annotations

import pytest

from formocr.fields import constraint_for, interpret


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


@pytest.mark.parametrize(
    ("ftype", "raw", "constraints", "value", "normalized", "ok"),
    [
        # digit strings: length bounds, either side alone, and no separators
        ("digits", "1234", {"min_length": 5}, "1234", "1234", False),
        ("digits", "123456", {"max_length": 5}, "123456", "123456", False),
        ("digits", "12345", {"min_length": 5}, "12345", "12345", True),
        ("digits", "12-34", {}, "1234", "1234", False),
        # a digits field's own pattern: a year of this century or the last
        ("digits", "1948", {"pattern": r"(19|20)\d\d"}, "1948", "1948", True),
        ("digits", "1748", {"pattern": r"(19|20)\d\d"}, "1748", "1748", False),
        # postal codes: CN six digits, first 0-8 (Hohhot is 010010); US ZIP / ZIP+4; the template's own pattern
        ("postal_code", "100086", {"country": "CN"}, "100086", "100086", True),
        ("postal_code", "010010", {"country": "CN"}, "010010", "010010", True),
        ("postal_code", "5180571", {"country": "CN"}, "5180571", "5180571", False),
        ("postal_code", "02139-1234", {"country": "US"}, "02139-1234", "02139-1234", True),
        ("postal_code", "0213912", {"country": "US"}, "0213912", "0213912", False),
        ("postal_code", "2000", {"pattern": r"\d{4}"}, "2000", "2000", True),
        ("postal_code", "20001", {"pattern": r"\d{4}"}, "20001", "20001", False),
        # amounts: thousands and decimal separators either way round, closing dash, normalized beside raw
        ("amount", "1.250,00", {"decimals": 2}, "1250.00", "1250.00", True),
        ("amount", "1 250.5", {"decimals": 1}, "1250.5", "1250.5", True),
        ("amount", "22.000.-", {"decimals": 2}, "22000.00", "22000.00", True),
        ("amount", "22.000,-", {"decimals": 2}, "22000.00", "22000.00", True),
        ("amount", "1,250.000,00", {"decimals": 2}, "1250000.00", "1250000.00", False),  # mixed thousands marks
        ("amount", "1.250.50", {"decimals": 2}, "1250.50", "1250.50", False),  # '.' for both
        ("amount", "12,34,567", {"decimals": 2}, "1234567.00", "1234567.00", False),  # groups not of three
        ("amount", "0012.00", {"decimals": 2}, "0012.00", "12.00", False),
        ("amount", "1250", {"decimals": 0}, "1250", "1250", True),
        ("amount", "12.50", {"decimals": 0}, "12.50", "12.50", False),
        ("amount", "-", {"decimals": 2}, "-", None, False),
        # a form whose amounts always carry cents: a reading without them is doubtful (a lost point), a dash is not
        ("amount", "972928", {"decimals": 2, "require_decimals": True}, "972928.00", "972928.00", False),
        ("amount", "9729.28", {"decimals": 2, "require_decimals": True}, "9729.28", "9729.28", True),
        ("amount", "22.000,-", {"decimals": 2, "require_decimals": True}, "22000.00", "22000.00", True),
        ("amount", "1250", {"decimals": 0, "require_decimals": True}, "1250", "1250", True),
        # dates: valid calendar dates in the configured order
        ("date", "2026/11/03", {"order": "YMD"}, "2026/11/03", "2026-11-03", True),
        ("date", "20261103", {"order": "YMD"}, "2026/11/03", "2026-11-03", True),
        ("date", "02/29/2024", {"order": "MDY"}, "02/29/2024", "2024-02-29", True),
        ("date", "29/02/2025", {"order": "DMY"}, "29/02/2025", None, False),  # not a leap year
        ("date", "03/13/2026", {"order": "DMY"}, "03/13/2026", None, False),  # month 13
        ("date", "031126", {"order": "DMY"}, "03/11/26", "2026-11-03", True),  # DDMMYY
        ("date", "0311202", {"order": "DMY"}, "0311202", None, False),
    ],
)
def test_interpret_validation(ftype: str, raw: str, constraints: dict, value: str, normalized: object,
                              ok: bool) -> None:
    r = interpret(ftype, raw, constraints)
    assert r.value == value
    assert r.normalized == normalized
    assert (not r.problems) == ok, r.problems


def test_comb_amounts_put_the_printed_point_before_the_last_cells() -> None:
    assert interpret("amount", "972928", {"decimals": 2}, comb=True).value == "9729.28"
    r = interpret("amount", "5", {"decimals": 2}, comb=True)
    assert (r.value, r.normalized, r.problems) == ("0.05", "0.05", ())
    assert interpret("amount", "1250", {"decimals": 0}, comb=True).value == "1250"
    assert interpret("amount", "12.50", {"decimals": 2}, comb=True).problems == ("separators in comb cells",)


@pytest.mark.parametrize(
    ("ftype", "constraints", "comb", "good", "bad"),
    [
        ("digits", {"min_length": 3, "max_length": 4}, False, ["123", "1234"], ["12", "12345", "12.3"]),
        ("digits", {"pattern": r"(19|20)\d\d"}, False, ["1948", "2026"], ["1748", "194", "19480"]),
        ("postal_code", {"country": "CN"}, True, ["518057", "100086", "010010"], ["51805", "5180571", "918057"]),
        ("postal_code", {"country": "US"}, False, ["02139", "021391234", "02139-1234"], ["0213", "021391"]),
        ("postal_code", {"pattern": r"\d{4}"}, False, ["2000"], ["200", "20001"]),
        ("date", {"order": "DMY"}, True, ["03112026"], ["0311202", "03/11/2026"]),
        ("date", {"order": "DMY"}, False, ["03/11/2026", "3.11.26"], ["2026/11/03x", "03//11"]),
        ("amount", {"decimals": 2}, False, ["1250.00", "1,250.00", "22.000.-", "1250"], ["12.5", "1.2.3"]),
        ("amount", {"decimals": 2, "require_decimals": True}, False, ["1250.00", "22.000.-", "22.000,-"],
         ["1250", "125000", "12.5"]),
        ("amount", {"decimals": 2}, True, ["125000", "5"], ["1250.00", "12,50"]),
    ],
)
def test_decoder_constraint_matches_the_type(ftype: str, constraints: dict, comb: bool, good: list[str],
                                             bad: list[str]) -> None:
    c = constraint_for(ftype, constraints, comb)
    for text in good:
        assert c.accepts(text), text
    for text in bad:
        assert not c.accepts(text), text
