"""Templates: built-ins load, and every mistake names its key."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from formocr.errors import TemplateError
from formocr.layout.template import BUILTIN, load_template, parse_template

GOOD: dict[str, Any] = {
    "formocr_template": 1,
    "name": "t",
    "page": {"width_mm": 100, "height_mm": 50},
    "fields": [{"name": "a", "type": "digits", "box_mm": [10, 10, 40, 10], "style": "comb", "cells": 5}],
}


@pytest.mark.parametrize("name", BUILTIN)
def test_builtins_load(name: str) -> None:
    t = load_template(name)
    assert t.fields and t.name == name
    again = parse_template(t.to_dict())
    assert again.fields == t.fields and again.marks == t.marks


def test_marks_parse_and_join_the_frames() -> None:
    d = copy.deepcopy(GOOD)
    d["marks"] = [{"name": "rule", "line_mm": [60, 40, 10, 40]}, {"name": "logo", "box_mm": [70, 5, 20, 10]}]
    t = parse_template(d)
    assert [m.kind for m in t.marks] == ["line", "box"]
    assert t.marks[0].box_mm == (10, 40, 50, 0)  # ends given in either order
    assert [f.name for f in t.frames] == ["a", "rule", "logo"]
    assert parse_template(t.to_dict()).marks == t.marks
    env = load_template("envelope")
    assert {m.name for m in env.marks} == {"stamp_box", "address_1", "address_2", "address_3"}


def _bad(change: Any) -> dict[str, Any]:
    d = copy.deepcopy(GOOD)
    change(d)
    return d


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(colour=1), "colour: unknown key"),
        (lambda d: d.update(formocr_template=2), "formocr_template"),
        (lambda d: d["page"].pop("width_mm"), "page.width_mm: missing"),
        (lambda d: d["page"].update(height_mm=-1), "page.height_mm: must be > 0"),
        (lambda d: d["fields"][0].update(typ="digits"), "fields[0].typ: unknown key"),
        (lambda d: d["fields"][0].update(type="money"), "fields[0].type"),
        (lambda d: d["fields"][0].update(box_mm=[1, 2, 3]), "fields[0].box_mm: expected 4 numbers"),
        (lambda d: d["fields"][0].update(box_mm=[90, 10, 40, 10]), "outside the page"),
        (lambda d: d["fields"][0].update(cells=0), "fields[0].cells"),
        (lambda d: d["fields"][0].update(style="box"), "only comb fields have cells"),
        (lambda d: d["fields"][0].update(constraints={"min_lenght": 3}), "constraints.min_lenght: unknown key"),
        (lambda d: d["fields"][0].update(constraints={"min_length": 5, "max_length": 3}), "larger than"),
        (lambda d: d["fields"].append(dict(d["fields"][0])), "duplicate field name"),
        (lambda d: d.update(fields=[]), "fields: expected a non-empty list"),
        (
            lambda d: d["fields"][0].update(type="amount", style="box", cells=None,
                                            constraints={"require_decimals": "yes"}),
            "constraints.require_decimals: expected true or false",
        ),
        (lambda d: d.update(marks={}), "marks: expected a list"),
        (lambda d: d.update(marks=[{"name": "m", "box_mm": [1, 1, 5, 5], "colour": 1}]), "marks[0].colour: unknown"),
        (lambda d: d.update(marks=[{"box_mm": [1, 1, 5, 5]}]), "marks[0].name"),
        (lambda d: d.update(marks=[{"name": "a", "box_mm": [1, 1, 5, 5]}]), "marks[0].name: duplicate name"),
        (lambda d: d.update(marks=[{"name": "m"}]), "marks[0]: give exactly one of box_mm or line_mm"),
        (
            lambda d: d.update(marks=[{"name": "m", "box_mm": [1, 1, 5, 5], "line_mm": [1, 1, 9, 1]}]),
            "exactly one of",
        ),
        (lambda d: d.update(marks=[{"name": "m", "box_mm": [1, 1, 0, 5]}]), "marks[0].box_mm: width and height"),
        (lambda d: d.update(marks=[{"name": "m", "line_mm": [1, 1, 20, 9]}]), "horizontal or vertical"),
        (lambda d: d.update(marks=[{"name": "m", "line_mm": [1, 1, 3, 1]}]), "at least 5 mm"),
        (lambda d: d.update(marks=[{"name": "m", "line_mm": [1, 1, 1, 60]}]), "marks[0].line_mm: [1, 1, 1, 60] lies"),
        (lambda d: d.update(marks=[{"name": "m", "line_mm": [1, "a", 9, 1]}]), "marks[0].line_mm: expected a num"),
    ],
)
def test_errors_name_the_key(mutate: Any, message: str) -> None:
    with pytest.raises(TemplateError) as e:
        parse_template(_bad(mutate), "my.json")
    assert message in str(e.value) and "my.json" in str(e.value)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="no such template file"):
        load_template(tmp_path / "missing.json")
    p = tmp_path / "broken.json"
    p.write_text('{"formocr_template": 1,')
    with pytest.raises(TemplateError, match="not valid JSON"):
        load_template(p)
    p.write_text(json.dumps(GOOD))
    assert load_template(p).name == "t"
