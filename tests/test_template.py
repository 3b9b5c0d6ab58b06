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
    assert again.fields == t.fields


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
