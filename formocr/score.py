"""Score formocr's results against the values people keyed in: accuracy, and what the review threshold lets by.

Why: every figure in this project's README comes from synthetic strips. A back office has its own scans, pens
and forms; before it lets unreviewed fields through it needs the share accepted and how often an accepted field
is wrong *on its own documents*, and the review threshold that keeps that rate under its target. The library
does the counting; ``formocr eval results`` is the thin command over it.

Results and keyed values are read by :mod:`formocr.scorefiles`. A keyed value counts as read right when it equals
the field's ``value`` or its ``normalized`` form (``03/11/2026`` or ``2026-11-03``), after surrounding spaces are
stripped; or, matching by digits, when it has the field's digits (``03112026``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from formocr.errors import ConfigError
from formocr.marks import digits_of
from formocr.options import REVIEW_THRESHOLD
from formocr.scorefiles import ResultDocument, TruthField

log = logging.getLogger(__name__)

# The sweep's fixed thresholds (the review threshold in use is added). A field at threshold t is accepted when its
# confidence is at least t and every character at least the character threshold, as the pipeline decides
# needs_review; a reading breaking its field's rules has confidence at most 0.5, so thresholds stay above that.
SWEEP = (0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
Z95 = 1.959964  # two-sided 95% normal quantile, for the Wilson bound


@dataclass(frozen=True, slots=True)
class FieldOutcome:
    """What the results say of one keyed field. ``status``: read, or why there is no reading."""

    truth: TruthField
    status: str  # "read" | "no such document" | "document failed" | "no such page" | "page failed" | "no such field"
    value: str | None = None
    normalized: str | None = None
    confidence: float = 0.0
    needs_review: bool = True
    min_char_p: float = 0.0
    readings: dict[str, str] = field(default_factory=dict)  # reader → its raw text ("segmentation", "crnn")
    detail: str = ""
    document: str | None = None  # the results document it was found in (None: none, or one that failed)
    match: str = "exact"  # "exact": the value or its normalized form; "digits": the same digits, whatever else
    keyed: str | None = None  # what a clerk keyed in review ("" illegible); None: the reading stands

    @property
    def right(self) -> bool:
        if self.status != "read":
            return False
        return self._same(self.value, self.normalized)

    @property
    def final_right(self) -> bool:
        """Whether the final value (keyed in review where a clerk did, else the reading) is the truth's."""
        if self.keyed is None:
            return self.right
        return self.status == "read" and self._same(self.keyed, None)

    def _same(self, value: str | None, normalized: str | None) -> bool:
        if self.match == "digits":
            return digits_of(self.truth.value) == digits_of(value or "")
        want = self.truth.value.strip()
        return want in {(value or "").strip(), (normalized or "").strip()}

    def accepted_at(self, threshold: float, char_threshold: float) -> bool:
        return self.status == "read" and self.confidence >= threshold and self.min_char_p >= char_threshold

    def reader_right(self, reader: str) -> bool | None:
        """Whether one reader alone had the truth's digits (None: that reader did not read the field)."""
        raw = self.readings.get(reader)
        return None if raw is None else digits_of(raw) == digits_of(self.truth.value)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.truth.source, "page": self.truth.page, "field": self.truth.field,
                "truth": self.truth.value, "status": self.status, "value": self.value,
                "confidence": round(self.confidence, 6), "needs_review": self.needs_review,
                **({"keyed": self.keyed} if self.keyed is not None else {}),
                **({"detail": self.detail} if self.detail else {})}


def wilson_low(right: int, n: int, z: float = Z95) -> float | None:
    """Lower end of the 95% Wilson interval of a proportion: how low the accepted fields' accuracy may really be."""
    if n == 0:
        return None
    p = right / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def needed_without_error(target: float, z: float = Z95) -> int:
    """Accepted fields, none wrong, it takes for the Wilson lower bound to reach ``target``."""
    return math.ceil(z * z * target / (1 - target)) if target < 1 else 0


# --- matching and counting --------------------------------------------------------------------------------------

def _parts(path: str) -> tuple[str, ...]:
    return PurePosixPath(path.replace("\\", "/")).parts


class _Sources:
    """Finds the results document a truth source names: the same path, or one path ending in the other (truth
    keyed by file name against results of ``formocr scan scans/a.pdf``, or the reverse). Two candidates: an error.
    Every document is indexed once by each tail of its path, so a lookup does not walk the results."""

    def __init__(self, docs: dict[str, ResultDocument]) -> None:
        self.docs = docs
        self.whole = {_parts(name): doc for name, doc in docs.items()}
        self.by_tail: dict[tuple[str, ...], list[ResultDocument]] = {}
        for parts, doc in self.whole.items():
            for k in range(1, len(parts) + 1):
                self.by_tail.setdefault(parts[-k:], []).append(doc)
        self.found: dict[str, ResultDocument | None] = {}

    def find(self, source: str) -> ResultDocument | None:
        if source not in self.found:
            self.found[source] = self._find(source)
        return self.found[source]

    def _find(self, source: str) -> ResultDocument | None:
        if source in self.docs:
            return self.docs[source]
        want = _parts(source)
        hits = {id(d): d for d in self.by_tail.get(want, [])}  # documents whose path ends with the truth's
        for k in range(1, len(want)):  # the truth's path ends with a document's whole path
            if (d := self.whole.get(want[-k:])) is not None:
                hits[id(d)] = d
        if len(hits) > 1:
            names = ", ".join(sorted(d.source for d in hits.values())[:3])
            raise ConfigError(f"truth source {source!r} matches several documents of the results ({names}); "
                              "key the truth by the path the results give")
        return next(iter(hits.values()), None)


MATCHES = ("exact", "digits")


def outcomes(truth: Sequence[TruthField], docs: dict[str, ResultDocument], match: str = "exact"
             ) -> list[FieldOutcome]:
    """One outcome per keyed field. No truth source found among the results at all is an error (the wrong
    results file, or sources keyed under other names), not a 0% score. ``match``: see :class:`FieldOutcome`
    ("digits" for values keyed without their separators: 03112026 for 03/11/2026)."""
    if match not in MATCHES:
        raise ConfigError(f"match must be one of {', '.join(MATCHES)}, not {match!r}")
    sources = _Sources(docs)
    out = []
    matched = 0
    for t in truth:
        doc = sources.find(t.source)
        matched += doc is not None
        page = doc.pages.get(t.page) if doc is not None and doc.pages is not None else None
        f = page.fields.get(t.field) if page is not None else None
        if doc is None:
            out.append(FieldOutcome(t, "no such document", match=match))
        elif doc.pages is None:
            out.append(FieldOutcome(t, "document failed", detail=doc.error or "", match=match))
        elif page is None:
            out.append(FieldOutcome(t, "no such page", document=doc.source, match=match))
        elif page.error is not None:
            out.append(FieldOutcome(t, "page failed", detail=page.error, document=doc.source, match=match))
        elif f is None:
            out.append(FieldOutcome(t, "no such field", document=doc.source, match=match))
        else:
            out.append(FieldOutcome(t, "read", value=f.value, normalized=f.normalized, confidence=f.confidence,
                                    needs_review=f.needs_review, min_char_p=f.min_char_p, readings=f.readings,
                                    document=doc.source, match=match, keyed=f.keyed))
    if truth and not matched:
        raise ConfigError(f"no document of the truth is in the results (truth names {truth[0].source!r}, the "
                          f"results e.g. {next(iter(docs))!r})")
    return out


@dataclass(frozen=True, slots=True)
class Tally:
    """Counts over a group of keyed fields."""

    n: int
    right: int
    unread: int  # no reading at all: the document, its page or the field missing or failed
    accepted: int  # not needs_review, as the results recorded it
    accepted_right: int
    readers: dict[str, tuple[int, int]]  # reader → (fields it read, of them with the truth's digits)
    keyed: int = 0  # fields a clerk answered in review (keyed, or marked illegible)
    final_right: int = 0  # right after review: the keyed value where there is one, else the reading

    @classmethod
    def of(cls, group: Sequence[FieldOutcome]) -> Tally:
        readers: dict[str, tuple[int, int]] = {}
        for o in group:
            for r in o.readings:
                ok = o.reader_right(r)
                seen, good = readers.get(r, (0, 0))
                readers[r] = (seen + 1, good + bool(ok))
        acc = [o for o in group if o.status == "read" and not o.needs_review]
        return cls(len(group), sum(o.right for o in group), sum(o.status != "read" for o in group), len(acc),
                   sum(o.right for o in acc), readers, sum(o.keyed is not None for o in group),
                   sum(o.final_right for o in group))

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "right": self.right, "accuracy": _share(self.right, self.n), "unread": self.unread,
                "accepted": self.accepted, "accepted_share": _share(self.accepted, self.n),
                "accepted_right": self.accepted_right, "accepted_accuracy": _share(self.accepted_right, self.accepted),
                "accepted_accuracy_low95": _round(wilson_low(self.accepted_right, self.accepted)),
                "readers": {r: {"read": s, "digits_right": g, "accuracy": _share(g, s)}
                            for r, (s, g) in sorted(self.readers.items())},
                "keyed": self.keyed, "final_right": self.final_right,
                "final_accuracy": _share(self.final_right, self.n)}


def _share(k: int, n: int) -> float | None:
    return round(k / n, 6) if n else None


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 6)


def sweep_row(group: Sequence[FieldOutcome], threshold: float, char_threshold: float) -> dict[str, Any]:
    acc = [o for o in group if o.accepted_at(threshold, char_threshold)]
    right = sum(o.right for o in acc)
    return {"threshold": threshold, "accepted": len(acc), "accepted_share": _share(len(acc), len(group)),
            "accepted_right": right, "accepted_wrong": len(acc) - right, "accepted_accuracy": _share(right, len(acc)),
            "accepted_accuracy_low95": _round(wilson_low(right, len(acc)))}


def recommend(group: Sequence[FieldOutcome], target: float, char_threshold: float) -> dict[str, Any]:
    """The lowest review threshold whose accepted fields' accuracy is at least ``target`` even at the low end of
    its 95% interval; None when these fields are too few (or too often wrong) to show that at any threshold.
    The thresholds tried are the fields' own confidences: one pass from the surest down, so any number of fields
    is quick."""
    eligible = sorted((o for o in group if o.status == "read" and o.min_char_p >= char_threshold
                       and o.confidence > 0.5),
                      key=lambda o: -o.confidence)
    best: float | None = None
    right = 0
    for k, o in enumerate(eligible, 1):
        right += o.right
        last = k == len(eligible) or eligible[k].confidence < o.confidence  # every field this sure is counted
        if last and (wilson_low(right, k) or 0.0) >= target:
            best = o.confidence
    if best is None:
        return {"target": target, "threshold": None,
                "note": f"no threshold shows {target:.2%} at the low end of its 95% interval on these fields; "
                        f"that takes at least {needed_without_error(target)} accepted fields without an error"}
    row = sweep_row(group, best, char_threshold)
    return {"target": target, "threshold": round(best, 6), **{k: v for k, v in row.items() if k != "threshold"},
            "note": "chosen on these fields; confirm it on fields it was not chosen on"}


@dataclass(frozen=True, slots=True)
class ScoreReport:
    outcomes: tuple[FieldOutcome, ...]
    review_threshold: float
    char_review_threshold: float
    target: float
    extra_fields: int  # fields in the results' matched pages that the truth does not key
    match: str = "exact"

    def to_dict(self) -> dict[str, Any]:
        by_name: dict[str, list[FieldOutcome]] = {}
        for o in self.outcomes:
            by_name.setdefault(o.truth.field, []).append(o)
        thresholds = sorted({*SWEEP, self.review_threshold})
        return {
            "formocr_score": 1,
            "match": self.match,
            "review_threshold": self.review_threshold,
            "char_review_threshold": self.char_review_threshold,
            "all": Tally.of(self.outcomes).to_dict(),
            "fields": {name: Tally.of(g).to_dict() for name, g in sorted(by_name.items())},
            "sweep": [sweep_row(self.outcomes, t, self.char_review_threshold) for t in thresholds if t > 0.5],
            "recommended": recommend(self.outcomes, self.target, self.char_review_threshold),
            "fields_not_in_truth": self.extra_fields,
            "wrong": [o.to_dict() for o in self.outcomes if not o.right],
        }


def score(truth: Sequence[TruthField], docs: dict[str, ResultDocument], review_threshold: float = REVIEW_THRESHOLD,
          char_review_threshold: float = 0.80, target: float = 0.995, match: str = "exact") -> ScoreReport:
    if not 0.5 < target < 1:
        raise ConfigError(f"target: an accuracy between 0.5 and 1 (exclusive), got {target}")
    outs = outcomes(truth, docs, match)
    absent = {o.truth.source for o in outs if o.status == "no such document"}
    if absent:
        log.warning("%d keyed document(s) are not in the results, so their fields count as unread: %s", len(absent),
                    ", ".join(sorted(absent)[:5]))
    keyed = {(o.document, o.truth.page, o.truth.field) for o in outs if o.document is not None}
    extra = sum((src, number, name) not in keyed for src in {o.document for o in outs if o.document is not None}
                for number, page in (docs[src].pages or {}).items() for name in page.fields)
    read = [o for o in outs if o.status == "read"]
    differ = sum((not o.needs_review) != o.accepted_at(review_threshold, char_review_threshold) for o in read)
    if differ:
        log.warning("%d of %d fields were accepted or sent to review otherwise than a review threshold of %s and a "
                    "character threshold of %s decide: were the results read with other thresholds (--config, "
                    "--review-threshold)?", differ, len(read), review_threshold, char_review_threshold)
    return ScoreReport(tuple(outs), review_threshold, char_review_threshold, target, extra, match)


def format_report(report: dict[str, Any]) -> str:
    """The report as tables for people (stderr, or stdout without --json)."""

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.2f}"

    lines = [f"review threshold {report['review_threshold']}, character threshold {report['char_review_threshold']}, "
             f"values matched {'by their digits' if report['match'] == 'digits' else 'exactly'}",
             "| fields | n | right % | unread | accepted % | accepted right % | low end 95% | "
             + " | ".join(f"{r} alone %" for r in report["all"]["readers"])
             + (" | keyed in review | right after review %" if report["all"]["keyed"] else "") + " |",
             "|---|---|---|---|---|---|---|" + "---|" * len(report["all"]["readers"])
             + ("---|---|" if report["all"]["keyed"] else "")]
    for name, t in [("all", report["all"]), *report["fields"].items()]:
        readers = " | ".join(pct(t["readers"].get(r, {}).get("accuracy")) for r in report["all"]["readers"])
        after = f" | {t['keyed']} | {pct(t['final_accuracy'])}" if report["all"]["keyed"] else ""
        lines.append(f"| {name} | {t['n']} | {pct(t['accuracy'])} | {t['unread']} | {pct(t['accepted_share'])} | "
                     f"{pct(t['accepted_accuracy'])} | {pct(t['accepted_accuracy_low95'])} | {readers}{after} |")
    lines += ["", "| review threshold | accepted % | accepted wrong | accepted right % | low end 95% |",
              "|---|---|---|---|---|"]
    for row in report["sweep"]:
        lines.append(f"| {row['threshold']} | {pct(row['accepted_share'])} | {row['accepted_wrong']} | "
                     f"{pct(row['accepted_accuracy'])} | {pct(row['accepted_accuracy_low95'])} |")
    rec = report["recommended"]
    lines.append("")
    if rec["threshold"] is None:
        lines.append(f"recommended threshold for {pct(rec['target'])}%: none ({rec['note']})")
    else:
        lines.append(f"recommended threshold for {pct(rec['target'])}%: {rec['threshold']} (accepts "
                     f"{pct(rec['accepted_share'])}%, {rec['accepted_wrong']} wrong; {rec['note']})")
    if report["fields_not_in_truth"]:
        lines.append(f"{report['fields_not_in_truth']} fields of these documents are not in the truth (not counted)")
    return "\n".join(lines)
