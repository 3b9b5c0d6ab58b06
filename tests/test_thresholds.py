"""Review thresholds per kind of field (formocr.train.thresholds, `formocr-train review-thresholds`): chosen on
half A, confirmed on half B and on each set whole; a kind that cannot show the target keeps the default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from formocr.calibration import SHIPPED, load_calibration
from formocr.errors import ConfigError
from formocr.train.cli import main as train_main
from formocr.train.thresholds import DevCase, choose_thresholds, load_cases, thresholds_of


def _cases(set_: str, kind: str, half: str, right: int, sure: float, wrong: int, unsure: float) -> list[DevCase]:
    return ([DevCase(set_, kind, half, sure, False, True)] * right
            + [DevCase(set_, kind, half, unsure, False, False)] * wrong)


def test_the_lowest_threshold_both_halves_and_every_set_bear() -> None:
    # one digit: wrong readings at 0.93 only, so 0.95 keeps them out on both halves
    digits = [*_cases("tiles", "one digit", "A", 2000, 0.99, 10, 0.93),
              *_cases("tiles", "one digit", "B", 2000, 0.99, 10, 0.93)]
    assert choose_thresholds(digits)["one digit"]["threshold"] == 0.95
    # the same, but half B's wrong readings are surer: 0.95 is chosen on A and not confirmed on B
    shaky = [*_cases("tiles", "one digit", "A", 2000, 0.99, 10, 0.93),
             *_cases("tiles", "one digit", "B", 2000, 0.996, 10, 0.96)]
    assert choose_thresholds(shaky)["one digit"]["threshold"] == 0.98
    # a small set of the kind that cannot show the target whole keeps the kind at the default
    small = [*digits, *_cases("boxes", "one digit", "A", 100, 0.999, 0, 0.0)]
    got = choose_thresholds(small)["one digit"]
    assert got["threshold"] is None and got["sets"] == ["boxes", "tiles"]
    assert thresholds_of(choose_thresholds(small)) == {}
    choice = choose_thresholds(digits)
    assert choice["one digit"]["A"] == {"accepted": 2000, "wrong": 0, "low95": pytest.approx(0.99808, abs=1e-5)}
    assert thresholds_of(choice) == {"one digit": 0.95} and set(choice) == {"one digit"}


def test_cases_are_read_strictly_and_views_left_out(tmp_path: Path) -> None:
    base = {"set": "years", "kind": "pattern", "half": "A", "confidence": 0.99, "other_reasons": False,
            "value": "1891", "truth": "1891"}
    p = tmp_path / "cases.jsonl"
    p.write_text("\n".join(json.dumps(c) for c in [base, {**base, "set": "years, birth layout", "view": True},
                                                   {**base, "truth": ""}]) + "\n")
    got = load_cases(p)
    assert [(c.set, c.right) for c in got] == [("years", True), ("years", False)]  # no year written: never right
    for bad, words in [({**base, "kind": "two digits"}, "kind 'two digits'"), ({"set": "x"}, "line 1: not a case")]:
        p.write_text(json.dumps(bad) + "\n")
        with pytest.raises(ConfigError, match=words) as e:
            load_cases(p)
        assert str(p) in str(e.value)
    p.write_text("")
    with pytest.raises(ConfigError, match="no cases"):
        load_cases(p)
    with pytest.raises(ConfigError, match="cannot read"):
        load_cases(tmp_path / "missing.jsonl")


def test_the_command_writes_a_calibration_with_the_thresholds_and_leaves_the_shipped_one(tmp_path: Path) -> None:
    cases = tmp_path / "cases.jsonl"
    rows = [{"set": "cvl", "kind": "one digit", "half": h, "confidence": c, "other_reasons": False, "value": v,
             "truth": "7"} for h in "AB" for c, v in [(0.99, "7")] * 1500 + [(0.93, "1")] * 5]
    cases.write_text("".join(json.dumps(r) + "\n" for r in rows))
    shipped = SHIPPED.read_bytes()
    out = tmp_path / "cal.json"
    res = CliRunner().invoke(train_main, ["review-thresholds", str(cases), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["review_thresholds"] == {"one digit": 0.95}
    cal = load_calibration(out)
    assert cal.thresholds == {"one digit": 0.95} and cal.kinds == load_calibration(SHIPPED).kinds
    card = json.loads(out.read_text())["card"]["review_thresholds"]
    assert card["choice"]["one digit"]["B"]["wrong"] == 0 and "review-thresholds" in card["command"]
    assert SHIPPED.read_bytes() == shipped
    res = CliRunner().invoke(train_main, ["review-thresholds", str(tmp_path / "none.jsonl"), "--out", str(out)])
    assert res.exit_code != 0 and "none.jsonl" in res.output and "Traceback" not in res.output
