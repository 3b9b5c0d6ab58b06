"""Fusion of the two readers of a field: segmentation + digit CNN, and the CRNN string reader.

The readers fail differently. Segmentation miscounts when digits touch, overlap or break, but reads each digit
it cuts correctly with a calibrated probability; the CRNN reads touching digits but may drop or double a
character. Each reader can also judge the other's text: the CRNN gives P(text | strip) for any text (the CTC
forward pass), and segmentation gives the product of its per-digit probabilities for any text with as many
characters as it found components.

The rules:

* **agreement** (same characters): the reading stands. When each reader is itself at least ``corroborate`` sure,
  the chance that both are wrong together is taken from the product of their chances of being wrong, 1 − ((1 −
  c_seg)(1 − c_crnn))^``agree_power``. A power below 1 says that their errors go together (both misread the same
  ill-formed digit); at the shipped 0.5 the doubt is the geometric mean of the two, so an agreement stands above
  the weaker reader's confidence but not above the stronger one's. Otherwise the weaker confidence stands: on
  touching digits both readers can drop the same digit (segmentation reads two touching digits as one,
  confidently), and on held-out strings the plain product accepted such agreements (98.85% of accepted strings
  right, against 99.78% with this rule; benchmarks/strings_accuracy.py --split val --seed 1). In comb boxes, where
  the cells fix the count and touching cannot merge digits, segmentation's own confidence stands instead (and on a
  disagreement its opinion is floored at ``no_opinion_cells``, not ``no_opinion``: the cut cannot be wrong);
* **disagreement**: the candidates are both readings plus the CRNN's best reading with as many digits as
  segmentation found ("joint": its count is often right where one digit is misread and the CRNN dropped another)
  and, when the CRNN counts more digits, segmentation's components cut into that many pieces and read by the digit
  CNN ("resplit": touching digits the CRNN counts right but misreads one of). For a resplit text, segmentation's
  opinion is the product of its pieces' probabilities. Each candidate text x scores w(x) = max(P_seg(x),
  ``no_opinion``) · P_crnn(x), times ``invalid_penalty`` if x breaks the field's rules. The floor stands for the
  chance that the cut itself went wrong: then segmentation's per-digit probabilities, however sure, say nothing
  about the text (on touching strings a confident misreading of a merged blob would otherwise outvote a CRNN that
  is nearly sure). When segmentation has fewer digits than the CRNN (off comb cells), its own reading's opinion
  is also multiplied by ``fewer_digits``: such a reading is most often two touching digits read as one. The
  highest score wins; its confidence is its share of all scores times the weaker reader's
  belief in it, so a disagreement is only accepted when the losing reader itself finds the winner likely.
  Except when segmentation has no opinion of the winner: off comb cells, a CRNN text with another count of digits
  than segmentation found components (most often touching digits merged into one component). There the floor
  stands for segmentation's silence, not for its doubt, and the CRNN's own belief times the share stands
  (``abstain``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from formocr.objects import CharResult


@dataclass(frozen=True)
class Reading:
    """One reader's reading of a field."""

    reader: str  # "segmentation" | "crnn" | "resplit" (segmentation cut to the CRNN's count) | "with_marks"
    raw: str
    confidence: float
    chars: tuple[CharResult, ...]
    valid: bool  # satisfies the field type's rules

    def to_dict(self) -> dict[str, Any]:
        return {"raw": self.raw, "confidence": round(float(self.confidence), 6), "valid": self.valid}


@dataclass(frozen=True)
class FusionRules:
    """The constants of fusion, each chosen on held-out strings with benchmarks/fusion_tune.py and checked on the
    real development fields with benchmarks/fusion_real.py (docs/decisions.md records the figures)."""

    # Segmentation's probability floor for a text it has no opinion of (another count of digits than it cut).
    no_opinion: float = 0.1
    # In comb cells the printed walls make the cuts, so segmentation's per-cell probabilities speak for any text of
    # its length; the floor only keeps texts of another length possible.
    no_opinion_cells: float = 0.001
    invalid_penalty: float = 0.01
    corroborate: float = 0.8
    # The readers' doubts are not independent (both misread the same ill-formed digit): an agreement's doubt is the
    # product of theirs raised to this power (1: independent, 0.5: their geometric mean).
    agree_power: float = 0.5
    # Segmentation with fewer digits than the CRNN reads is most often touching digits merged into one component:
    # its opinion of itself is multiplied by this.
    fewer_digits: float = 0.3
    # Off comb cells, a text with another count of digits than segmentation cut takes the CRNN's belief alone.
    abstain: bool = True
    # Segmentation re-cut to the CRNN's count speaks for its text with its pieces' product times this: pieces cut
    # out of touching digits carry their neighbours' strokes.
    resplit: float = 0.3


@dataclass(frozen=True)
class Fused:
    reading: Reading  # the reading whose text (and characters) the field reports
    confidence: float
    agree: bool
    chosen: str  # "both" | "segmentation" | "crnn" | "joint" | "resplit"
    scores: dict[str, float]
    scores_texts: tuple[str, str]  # (segmentation's text, the string reader's text)


def _key(text: str) -> str:
    return text.replace(" ", "")


def _digits(text: str) -> int:
    return sum(ch.isdigit() for ch in text)


def fuse(seg: Reading, crnn: Reading, seg_prob: Callable[[str], float | None], crnn_prob: Callable[[str], float],
         rules: FusionRules = FusionRules(), cells: bool = False, alternatives: Sequence[Reading] = ()) -> Fused:
    """Choose among the readings of one field and say how sure the choice is.

    ``alternatives`` are further readings to weigh on a disagreement: string-reader readings ("joint" when one
    wins; the pipeline passes the CRNN's best reading with as many digits as segmentation found) and
    segmentation re-cut to the CRNN's count (reader "resplit").
    """
    if _key(seg.raw) == _key(crnn.raw):
        if min(seg.confidence, crnn.confidence) >= rules.corroborate:
            conf = 1.0 - ((1.0 - seg.confidence) * (1.0 - crnn.confidence)) ** rules.agree_power
        elif cells:
            conf = max(seg.confidence, crnn.confidence)
        else:
            conf = min(seg.confidence, crnn.confidence)
        chars = seg.chars
        if len(crnn.chars) == len(seg.chars):
            chars = tuple(replace(a, p=1.0 - (1.0 - a.p) * (1.0 - b.p)) for a, b in zip(seg.chars, crnn.chars))
        return Fused(replace(seg, chars=chars, confidence=conf), conf, True, "both",
                     {"segmentation": seg.confidence, "crnn": crnn.confidence}, (seg.raw, crnn.raw))
    cands: list[tuple[str, Reading]] = [("segmentation", seg), ("crnn", crnn)]
    seen = {_key(seg.raw), _key(crnn.raw)}
    for alt in alternatives:
        if _key(alt.raw) not in seen:
            seen.add(_key(alt.raw))
            cands.append(("resplit" if alt.reader == "resplit" else "joint", alt))
    w: dict[str, float] = {}
    beliefs: dict[str, tuple[float, float]] = {}
    silent: set[str] = set()  # candidates segmentation has no opinion of
    merged = not cells and _digits(seg.raw) < _digits(crnn.raw)
    for name, r in cands:
        if name == "segmentation":
            ps: float | None = seg.confidence * (rules.fewer_digits if merged else 1.0)
        else:
            ps = r.confidence * rules.resplit if name == "resplit" else seg_prob(r.raw)
        # segmentation's opinion is floored: a cut that went wrong says nothing about any text
        floor = rules.no_opinion_cells if cells else rules.no_opinion
        if ps is None:
            silent.add(name)
        ps = floor if ps is None else max(ps, floor)
        pc = crnn.confidence if name == "crnn" else (r.confidence if name == "joint" else crnn_prob(r.raw))
        beliefs[name] = (ps, pc)
        w[name] = ps * pc * (1.0 if r.valid else rules.invalid_penalty)
    order = {"crnn": 3, "joint": 2, "resplit": 1, "segmentation": 0}
    win = max(w, key=lambda k: (w[k], order[k]))
    total = sum(w.values())
    share = w[win] / total if total > 0 else 0.0
    ps, pc = beliefs[win]
    conf = share * (pc if rules.abstain and not cells and win in silent else min(ps, pc))
    chosen = dict(cands)[win]
    return Fused(replace(chosen, confidence=conf), conf, False, win, w, (seg.raw, crnn.raw))
