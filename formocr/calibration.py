"""A field's confidence as the chance, learnt on real handwriting, that its reading is right.

Fusion's confidence is made of rules chosen on synthetic strings; on real writers it says little (register years
of birth-register cells, read right nine times in ten, were accepted one time in ten). A small logistic model turns
what the readers said about a field (their confidences, whether they agree, which won, the least sure character,
the count of characters, marks left out, a printed line across it) into the probability that the reading is
right. The same evidence means different things for a field of one digit, of a fixed count of digits, of a
free count and of digits a pattern holds (a lone digit has no neighbour to be confused with, a free count can drop
one, a year's pattern has already ruled out most misreadings), so each of these :data:`KINDS` has a model of its
own, and a kind may weigh terms of its own beside them (:data:`KIND_TERMS`). They are fitted on real development
fields (``formocr-train calibrate-fields``) for one pair of models and name their sha256, so they are used only
with the models they were fitted to.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from formocr.errors import ModelError
from formocr.objects import FieldResult

FEATURES = ("confidence", "segmentation", "string_reader", "agree", "string_reader_won", "least_char",
            "characters", "left_out", "crossed")
KINDS = ("one digit", "fixed length", "free length", "pattern")
SHIPPED = Path(__file__).resolve().parent / "models" / "fields-calibration.json"
# A kind's own terms, weighed after FEATURES. A year's pattern leaves the string reader's own belief to say most:
# how far beyond a logit of 4 (p 0.982) it and the least sure character lie is evidence a straight line in the
# logits under-counts (5-fold log loss on half A's year lines 0.0743 → 0.0728). On the other kinds they do not pay.
def _above(feature: str, at: float) -> Callable[[np.ndarray], float]:
    i = FEATURES.index(feature)
    return lambda x: max(float(x[i]) - at, 0.0)


TERMS = {f"{f}_above_4": _above(f, 4.0) for f in ("string_reader", "least_char")}
KIND_TERMS = {"pattern": ("string_reader_above_4", "least_char_above_4")}


def kind_features(kind: str) -> tuple[str, ...]:
    """The names of the features a kind's model weighs: :data:`FEATURES`, then its own :data:`KIND_TERMS`."""
    return FEATURES + KIND_TERMS.get(kind, ())


def kind_terms_json() -> dict[str, list[str]]:
    """:data:`KIND_TERMS` as a calibration file records it."""
    return {k: list(v) for k, v in KIND_TERMS.items()}


def with_terms(x: np.ndarray, kind: str) -> np.ndarray:
    """:func:`field_features`' vector with the kind's own :data:`TERMS` appended, in :func:`kind_features` order."""
    names = KIND_TERMS.get(kind, ())
    return np.append(x, [TERMS[n](x) for n in names]) if names else x


def is_patterned(field_type: str, constraints: Mapping[str, Any]) -> bool:
    """A digits field its template gives a pattern (a year's), calibrated as the ``pattern`` kind: a postal
    code's pattern is its type's own, not a template's narrowing of it."""
    return field_type == "digits" and bool(constraints.get("pattern"))


def kind_of(min_digits: int, max_digits: int | None, patterned: bool = False) -> str:
    """The calibration kind of a field that holds ``min_digits`` to ``max_digits`` (None: any count) digits;
    ``patterned``: a digits field its template gives a pattern (a year's ``(19|20)\\d\\d``). A field whose count
    only its type's own pattern fixes (a postal code's) gives no such bounds and is free length."""
    if patterned and max_digits != 1:
        return "pattern"
    if max_digits == 1:
        return "one digit"
    if max_digits is not None and max_digits == min_digits:
        return "fixed length"
    return "free length"


def _logit(p: float) -> float:
    p = min(max(float(p), 1e-6), 1.0 - 1e-6)
    return math.log(p / (1.0 - p))


def field_features(confidence: float, readings: Mapping[str, Any], char_ps: Sequence[float], raw: str
                   ) -> np.ndarray:
    """The features of one fused field reading, in :data:`FEATURES` order: fusion's ``confidence``, the field's
    ``readings`` (as in its result), its characters' probabilities and its text."""
    left_out = int(readings.get("not_digits", 0))
    crossed = bool(readings.get("crossed", False))
    seg = readings.get("segmentation")
    crnn = readings.get("crnn")
    seg_c = float(seg["confidence"]) if isinstance(seg, Mapping) else 0.0
    crnn_c = float(crnn["confidence"]) if isinstance(crnn, Mapping) else 0.0
    return np.array([
        _logit(confidence), _logit(seg_c), _logit(crnn_c), float(bool(readings.get("agree"))),
        float(readings.get("chosen") in ("crnn", "joint")), _logit(min(char_ps, default=0.0)),
        sum(ch.isdigit() for ch in raw) / 10.0, float(left_out > 0), float(crossed),
    ], np.float64)  # fmt: skip


def features_of(result: FieldResult) -> np.ndarray | None:
    """The features of a field result read by both readers (None for one that was not)."""
    fused = result.readings.get("fused_confidence")
    if fused is None or float(fused) <= 0 or not any(ch.isdigit() for ch in result.raw):
        return None  # the product never calibrates these
    return field_features(float(fused), result.readings, [ch.p for ch in result.chars], result.raw)


@dataclass(frozen=True)
class KindModel:
    """Logistic weights over one kind of field's standardised features (:func:`kind_features`)."""

    weights: tuple[float, ...]
    bias: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]

    def probability(self, x: np.ndarray) -> float:
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        s = float(np.dot(z, np.asarray(self.weights)) + self.bias)
        return 1.0 / (1.0 + math.exp(-min(max(s, -50.0), 50.0)))

    def to_dict(self) -> dict[str, Any]:
        return {"weights": list(self.weights), "bias": self.bias, "mean": list(self.mean), "scale": list(self.scale)}


@dataclass(frozen=True)
class FieldCalibration:
    """One :class:`KindModel` per field kind, and the models they were fitted for."""

    kinds: Mapping[str, KindModel]
    models: Mapping[str, str]  # "digits" / "strings" → the sha256 of the weights fitted with
    path: Path | None = None

    def probability(self, x: np.ndarray, kind: str) -> float:
        """The chance a reading of this kind is right, from its :func:`field_features`."""
        return self.kinds[kind].probability(with_terms(x, kind))

    def fits(self, digits_sha256: str, strings_sha256: str) -> bool:
        return self.models.get("digits") == digits_sha256 and self.models.get("strings") == strings_sha256

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(FEATURES), "kind_terms": kind_terms_json(),
                "kinds": {k: m.to_dict() for k, m in self.kinds.items()}, "models": dict(self.models)}


def _kind_model(data: Any, name: str) -> KindModel:
    if not isinstance(data, dict):
        raise ValueError(f"kind {name!r}: expected a JSON object")
    m = KindModel(tuple(float(w) for w in data["weights"]), float(data["bias"]),
                  tuple(float(v) for v in data["mean"]), tuple(float(v) for v in data["scale"]))
    n = len(kind_features(name))
    if not (len(m.weights) == len(m.mean) == len(m.scale) == n):
        raise ValueError(f"kind {name!r}: expected {n} weights, means and scales")
    if not all(math.isfinite(v) for v in (*m.weights, m.bias, *m.mean, *m.scale)) or min(m.scale) <= 0:
        raise ValueError(f"kind {name!r}: weights must be finite and scales positive")
    return m


def load_calibration(path: str | Path) -> FieldCalibration:
    """Read a calibration file; a damaged one, or one for other features, is a :class:`ModelError`."""
    p = Path(path)
    try:
        data = json.loads(p.read_text("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        if list(data["features"]) != list(FEATURES):
            raise ValueError(f"its features are not this version's {list(FEATURES)}")
        if "kinds" not in data and "weights" in data:
            raise ValueError("a single-model calibration of an earlier version; refit it with formocr-train "
                             "calibrate-fields")
        if data.get("kind_terms") != kind_terms_json():
            raise ValueError(f"its kinds' own terms are not this version's {json.dumps(kind_terms_json())}: refit "
                             "it with formocr-train calibrate-fields")
        kinds = data["kinds"]
        if not isinstance(kinds, dict) or sorted(kinds) != sorted(KINDS):
            raise ValueError(f"expected one model for each kind of field {list(KINDS)}")
        cal = FieldCalibration({k: _kind_model(kinds[k], k) for k in KINDS},
                               {str(k): str(v) for k, v in dict(data["models"]).items()}, p)
    except OSError as e:
        raise ModelError(f"cannot read the field calibration: {e.strerror or e}", str(p)) from None
    except KeyError as e:
        raise ModelError(f"not a field calibration file: no {e}", str(p)) from None
    except (ValueError, TypeError, AttributeError, OverflowError) as e:
        raise ModelError(f"not a field calibration file: {e}", str(p)) from None
    except RecursionError:
        raise ModelError("not a field calibration file: nested too deeply", str(p)) from None
    return cal


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, steps: int = 50) -> tuple[np.ndarray, float,
                                                                                          np.ndarray, np.ndarray]:
    """L2-regularised logistic regression by Newton's method on standardised features: (weights, bias, mean,
    scale). Deterministic; a handful of features and a few thousand fields need nothing more."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    reg = np.full(z.shape[1], l2)
    reg[-1] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -50, 50)))
        grad = z.T @ (p - y) + reg * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(reg + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1]), mean, scale
