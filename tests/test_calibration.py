"""The field calibration: fitted deterministically, used only with the models it was fitted to, and a damaged
file is a one-line model error."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from formocr.calibration import (
    FEATURES,
    KIND_TERMS,
    KINDS,
    FieldCalibration,
    KindModel,
    features_of,
    fit_logistic,
    kind_features,
    kind_of,
    load_calibration,
)
from formocr.errors import ModelError
from formocr.options import Options
from formocr.pipeline import Pipeline


def _data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES)))
    y = (rng.random(n) < 1 / (1 + np.exp(-(2.0 * x[:, 0] - 1.0 * x[:, 2])))).astype(float)
    return x, y


def test_fit_finds_the_signs_and_is_deterministic() -> None:
    x, y = _data()
    w, b, mean, scale = fit_logistic(x, y)
    assert w[0] > 1.0 and w[2] < -0.5 and max(abs(w[1]), abs(w[3])) < 0.5
    w2, b2, _, _ = fit_logistic(x, y)
    assert np.array_equal(w, w2) and b == b2
    model = KindModel(tuple(w), b, tuple(mean), tuple(scale))
    cal = FieldCalibration({k: model for k in KINDS}, {})
    sure, unsure = np.array([3.0] + [0.0] * 8), np.array([-3.0] + [0.0] * 8)
    assert cal.probability(sure, "one digit") > 0.95 > 0.05 > cal.probability(unsure, "free length")


def test_each_kind_of_field_has_its_own_model() -> None:
    """A lone digit, a fixed count and a free count of digits: the same evidence means different things."""
    assert kind_of(1, 1) == kind_of(0, 1) == "one digit"
    assert kind_of(4, 4) == kind_of(6, 6) == "fixed length"
    assert kind_of(1, 2) == kind_of(0, None) == kind_of(3, None) == "free length"
    assert kind_of(4, 4, patterned=True) == kind_of(1, None, patterned=True) == "pattern"
    assert kind_of(1, 1, patterned=True) == "one digit"
    from formocr.train.fieldcal import field_kind  # the development fields take the kind the reader gives them

    assert field_kind("digits", {"min_length": 4, "max_length": 4}) == "fixed length"
    assert field_kind("digits", {"min_length": 1, "max_length": 1}) == "one digit"
    assert field_kind("digits", {}) == field_kind("postal_code", {}) == "free length"
    assert field_kind("digits", {"min_length": 4, "max_length": 4, "pattern": r"1[89]\d\d"}) == "pattern"
    assert field_kind("postal_code", {"pattern": r"\d{4}"}) == "free length"  # its type's pattern, no template's
    one = KindModel((1.0,) + (0.0,) * 8, 2.0, (0.0,) * 9, (1.0,) * 9)
    free = KindModel((1.0,) + (0.0,) * 8, -2.0, (0.0,) * 9, (1.0,) * 9)
    cal = FieldCalibration({"one digit": one, "fixed length": one, "free length": free, "pattern": one}, {})
    x = np.zeros(len(FEATURES))
    assert cal.probability(x, "one digit") > 0.85 > 0.15 > cal.probability(x, "free length")
    # a year's pattern also weighs how far the string reader's belief lies beyond a logit of 4, in a term of its own
    n = len(kind_features("pattern"))
    terms = KindModel((0.0,) * (n - 2) + (1.0, 0.0), -1.0, (0.0,) * n, (1.0,) * n)
    cal = FieldCalibration({**cal.kinds, "pattern": terms}, {})
    sure, surer = x.copy(), x.copy()
    sure[FEATURES.index("string_reader")], surer[FEATURES.index("string_reader")] = 4.0, 7.0
    assert cal.probability(sure, "pattern") == pytest.approx(1 / (1 + np.e))  # no term: the bias alone
    assert cal.probability(surer, "pattern") == pytest.approx(1 / (1 + np.exp(-2.0)))


def _kind(name: str = "one digit", w: float = 0.5, scale: float = 1.0, **override: object) -> dict[str, object]:
    n = len(kind_features(name))
    return {"weights": [w] * n, "bias": 1.0, "mean": [0.0] * n, "scale": [scale] * n, **override}


def _write(path: Path, models: dict[str, str], kind: dict[str, object] | None = None, **override: object) -> Path:
    """A calibration file: each kind's model :func:`_kind` with ``kind``'s keys in place of its own."""
    data = {"features": list(FEATURES), "kind_terms": {k: list(v) for k, v in KIND_TERMS.items()},
            "kinds": {k: _kind(k, **(kind or {})) for k in KINDS}, "models": models, **override}
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("override, kind, words", [
    ({"features": ["confidence"]}, {}, "not this version's"),
    ({"kind_terms": {}}, {}, "own terms are not this version's"),
    ({}, {"w": float("nan")}, "finite"),
    ({}, {"scale": 0.0}, "positive"),
    ({}, {"weights": [1.0]}, "expected"),
    ({"kinds": {"one digit": _kind()}}, {}, "one model for each kind"),
    ({"kinds": [1]}, {}, "one model for each kind"),
    ({"kinds": {k: [1] for k in KINDS}}, {}, "expected a JSON object"),
])
def test_a_damaged_calibration_is_one_model_error(tmp_path: Path, override: dict[str, object],
                                                  kind: dict[str, object], words: str) -> None:
    p = _write(tmp_path / "cal.json", {}, kind, **override)
    with pytest.raises(ModelError, match=words) as e:
        load_calibration(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ModelError, match="not a field calibration"):
        load_calibration(tmp_path / "junk.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ModelError, match="expected a JSON object"):
        load_calibration(tmp_path / "list.json")
    with pytest.raises(ModelError, match="cannot read"):
        load_calibration(tmp_path / "missing.json")
    with pytest.raises(ModelError, match="cannot read"):
        load_calibration(tmp_path)  # a folder


def test_the_shipped_calibration_fits_the_shipped_models() -> None:
    pipe = Pipeline(Options())
    assert pipe.reader.calibration is not None
    assert pipe.reader.calibration.fits(pipe.classifier.loaded.sha256, pipe.strings.loaded.sha256)  # type: ignore[union-attr]


def test_a_calibration_for_other_models_is_refused_or_left_aside(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    from formocr.recognize.strings import DEFAULT_MODEL, extract_member

    other = _write(tmp_path / "other.json", {"digits": "0" * 64, "strings": "1" * 64})
    with pytest.raises(ModelError, match="other models"):
        Pipeline(Options(calibration=str(other)))
    assert Pipeline(Options(reader="segmentation")).reader.calibration is None  # one reader: nothing to calibrate
    assert Pipeline(Options(calibration="none")).reader.calibration is None
    with pytest.raises(ModelError, match="cannot read"):  # a file named is checked even where no reader uses it
        Pipeline(Options(reader="segmentation", calibration=str(tmp_path / "missing.json")))
    member = tmp_path / "member.safetensors"
    extract_member(DEFAULT_MODEL, 0, member)
    with caplog.at_level(logging.WARNING, logger="formocr"):
        pipe = Pipeline(Options(strings_model=str(member)))
    assert pipe.reader.calibration is None and "does not fit these models" in caplog.text


def test_calibrated_confidence_is_the_calibrations_reading_of_the_fields_evidence(tmp_path: Path) -> None:
    from formocr.api import FieldReaderAPI
    from formocr.layout.template import Template, TemplateField
    from formocr.synth import Writer, render_form

    pipe = Pipeline(Options())
    models = {"digits": pipe.classifier.loaded.sha256, "strings": pipe.strings.loaded.sha256}  # type: ignore[union-attr]
    cal_path = _write(tmp_path / "cal.json", models, {"w": 0.05, "bias": -2.0})
    f = TemplateField("f", "digits", (20.0, 20.0, 60.0, 12.0), "box", None, {})
    sp = render_form(Template("one", 100.0, 52.0, (f,)), {"f": "40729"}, np.random.default_rng(11),
                     writer=Writer(slant=-0.05, pen=0.11), touch_border_prob=0.0)
    b, m = sp.field_boxes["f"], 35
    crop = sp.image[b.y - m : b.y2 + m, b.x - m : b.x2 + m]
    r = FieldReaderAPI(Options(calibration=str(cal_path))).read_field(crop, "digits")
    x = features_of(r)
    assert r.value == "40729" and x is not None and r.readings["calibrated"] == "free length"

    def logit(p: float) -> float:
        q = min(max(p, 1e-6), 1 - 1e-6)
        return float(np.log(q / (1 - q)))

    assert x[0] == pytest.approx(logit(r.readings["fused_confidence"])) and x[3] == float(r.readings["agree"])
    assert x[6] == pytest.approx(0.5) and x[5] == pytest.approx(logit(min(c.p for c in r.chars)))
    assert 0.02 < r.confidence < 0.98  # weights that make each feature count
    assert r.confidence == pytest.approx(load_calibration(cal_path).probability(x, "free length"))
    fixed = FieldReaderAPI(Options(calibration=str(cal_path))).read_field(crop, "digits", min_length=5, max_length=5)
    assert fixed.readings["calibrated"] == "fixed length"
    patterned = FieldReaderAPI(Options(calibration=str(cal_path))).read_field(crop, "digits", pattern=r"4\d{4}")
    assert patterned.readings["calibrated"] == "pattern"
    plain = FieldReaderAPI(Options()).read_field(crop, "digits")
    assert plain.readings["fused_confidence"] == r.readings["fused_confidence"]


def test_a_review_the_confidence_decides_is_told_from_one_it_does_not() -> None:
    """The threshold sweeps of the benchmark and the calibration move only the reviews the confidence decides."""
    from formocr.objects import Box, FieldResult
    from formocr.read import review_is_confidences

    def result(raw: str, *why: str, calibrated: bool = True) -> FieldResult:
        return FieldResult(name="f", type="digits", value=raw or None, raw=raw, confidence=0.5,
                           needs_review=bool(why), why=why, box=Box(0, 0, 1, 1), chars=(), normalized=None,
                           readings={"calibrated": "free length"} if calibrated else {})

    assert review_is_confidences(result("12"))
    assert review_is_confidences(result("12", "confidence 0.500 below 0.995", "readers disagree: x",
                                        "not a digit at position 2 (left out)", "a printed line crosses the field"))
    assert not review_is_confidences(result("12", "letters or words, not digits: 5 of 6 marks are not digits"))
    assert not review_is_confidences(result("123", "expected at most 2 digits", "confidence 0.400 below 0.995"))
    assert not review_is_confidences(result("", "no digits found: 2 mark(s) that are not digits"))
    unsure = ("confidence 0.900 below 0.995", "unsure of character(s) at position 2")
    assert review_is_confidences(result("12", *unsure))
    assert not review_is_confidences(result("12", *unsure, calibrated=False))  # the per-character rule's own


def test_an_earlier_single_model_calibration_says_so(tmp_path: Path) -> None:
    n = len(FEATURES)
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"features": list(FEATURES), "weights": [0.1] * n, "bias": 0.0, "mean": [0.0] * n,
                               "scale": [1.0] * n, "models": {}}))
    with pytest.raises(ModelError, match="earlier version; refit") as e:
        load_calibration(old)
    assert str(old) in str(e.value)


def test_the_schema_names_each_kind() -> None:
    schema = json.loads((Path(__file__).resolve().parents[1] / "formocr" / "schema" / "document.schema.json")
                        .read_text("utf-8"))
    found = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "calibrated" in node and isinstance(node["calibrated"], dict):
                found.append(node["calibrated"].get("enum"))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    assert found == [list(KINDS)]


def test_too_few_fields_of_a_kind_is_a_config_error() -> None:
    """`formocr-train calibrate-fields --digits 0` leaves the one-digit kind with nothing to fit: a one-line error."""
    from formocr.errors import ConfigError
    from formocr.train.fieldcal import fit_fields

    with pytest.raises(ConfigError, match="too few one digit fields"):
        fit_fields([], {})
