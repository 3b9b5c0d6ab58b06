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

    reader: str  # "segmentation" | "crnn" | "resplit" (segmentation cut to the CRNN's count)
    raw: str
    confidence: float
    chars: tuple[CharResult, ...]
    valid: bool  # satisfies the field type's rules

    def to_dict(self) -> dict[str, Any]:
        return {"raw": self.raw, "confidence": round(float(self.confidence), 6), "valid": self.valid}


@dataclass(frozen=True)
class FusionRules:
    # 0.1: benchmarks/fusion_tune.py --n 1500 --seed 1 (held-out training digits): 92.27% of strings right,
    # against 91.33% with 0.02 and 92.07% with 0.2; the share accepted does not change
    no_opinion: float = 0.1
    # In comb cells the printed walls make the cuts, so segmentation's per-cell probabilities do speak for any
    # text of its length; the floor only keeps texts of another length possible. (With 0.1 here, 2 of 500
    # envelope postal codes went from segmentation's right reading to the CRNN's wrong one.)
    no_opinion_cells: float = 0.001
    invalid_penalty: float = 0.01
    corroborate: float = 0.8
    # The readers' doubts are not independent: both misread the same ill-formed digit (a 5 like a 3), so an
    # agreement's doubt is the product of theirs raised to this power (1: independent, 0.5: their geometric mean).
    # 0.5: benchmarks/fusion_tune.py --n 1500 --seed 1 (held-out training digits, ensemble string model):
    # accepted strings 99.83% right, 40.3% accepted; with 1, 99.40% right, 44.2% accepted. With the shipped three
    # members on digits new to both readers (--held-out both): 99.83% right at 38.8%; with 1, 99.69% at 43.3%
    agree_power: float = 0.5
    # Segmentation's own reading, when it has fewer digits than the CRNN reads, is most often touching digits
    # merged into one component that the digit CNN reads as one digit: its opinion of itself is multiplied by
    # this. 0.3: benchmarks/fusion_tune.py --n 1500 --seed 1 --held-out both (digits new to the digit CNN and to
    # every member of the shipped string model): fused 93.33% → 93.60%, accepted unchanged (0.1: 93.67%, one
    # string more). Of 1, 0.5, 0.3, 0.1, 0.03, 0.01 on four held-out sets with earlier ensembles, 0.3 was best or
    # tied on each.
    fewer_digits: float = 0.3
    # Off comb cells, segmentation says nothing of a text with another count of digits than it found components:
    # when such a text wins, its confidence is its share times the CRNN's belief alone, not times the floor.
    # benchmarks/fusion_tune.py --held-out both, review threshold 0.95: 1500 strings (--seed 1, shipped members)
    # accepted 41.5% → 57.1%, accepted right 99.68% → 99.77%; 3000 strings (--seed 11, stop 14's members) 37.9% →
    # 52.1%, 99.74% both; readings unchanged. (Touching strings accepted: 6.8% → 22.3% and 5.7% → 19.6% of all.)
    # With segmentation read by a digit CNN trained with --split-seed 0 (--digits-model), on 2 × 3000 strings of
    # 5000 images new to both readers (--n 3000 --seed 1 / --seed 2): 43.0% → 58.2% at 99.61% → 99.66% and 41.9% →
    # 57.8% at 99.68% → 99.60%.
    abstain: bool = True
    # Segmentation re-cut to the CRNN's count ("resplit") speaks for its text with the product of its pieces'
    # probabilities times this. Pieces cut out of touching digits carry strokes of their neighbours, and the digit
    # CNN, which never saw such pieces, may read them as surely as whole digits. Yet on digits new to both readers
    # the re-cut earns its place: benchmarks/fusion_tune.py --n 1500 --seed 1 --held-out both --resplit 1,0.3,0.1,0
    # (shipped members and digit CNN): fused 95.53 / 95.47 / 94.93 / 94.93%, accepted 57.1-57.3% at 99.77% right.
    # With stop 21's readers (grey digit tiles; members d, ge and gf, two of them reading grey strips, CRNN alone 1.7
    # points surer on val), 0.3: the same command with --strings-model of those members, --resplit 1,0.3,0.1,0: 97.27 /
    # 97.40 / 96.93 / 96.93%, and with --seed 2: 96.40 / 96.67 / 96.47 / 96.47%; accepted 60.3-60.4% and 56.5-56.9%. The
    # stop-21 gd, ge, gf were chosen after, with 0.3 (docs/string-reader-log.md "Grey for the readers"). Replayed with
    # the stop-22 members (hd, he, hf; --seed 1 --resplit 1,0.3,0.1): 97.27 / 97.07 / 96.60%, within the seed-to-seed
    # spread of the choice above, so 0.3 stays (docs/string-reader-log.md "A second grey cycle").
    resplit: float = 0.3
    # The blob reader's judging of an unsure string reading (formocr.recognize.blobs.judge, when a blob model is given):
    # candidates score log P_crnn + judge_weight × the pieces' log-probabilities. On the string reader's candidates for
    # 3000 strings of held-out training digits (val seeds 1 and 2, 1500 each), with the blob model of `formocr train
    # blobs --seed 0` (docs/string-reader-log.md), CRNN alone 94.03% → 94.17 / 94.37 / 94.60 / 94.33% for 0.2 / 0.3 /
    # 0.4 / 0.5 (strings fixed 10 / 20 / 28 / 31, broken 6 / 10 / 11 / 22). Readings at least judge_below sure are left
    # alone: with 0.8, 0.99 or none, the same strings changed (0.7: 25 fixed, 11 broken).
    judge_weight: float = 0.4
    judge_below: float = 0.9
    # The window judge (formocr.recognize.windows, when a window model is given): the string reader's reading and
    # up to window_keep - 1 of its one-edit neighbours with as many characters score log P_crnn + window_weight × the
    # windows' log-probabilities of their digits; readings at least window_below sure are left alone. No setting helped:
    # on 3000 strings of held-out training digits (val seeds 1 and 2) with the model of `formocr train windows --seed 0`
    # (docs/string-reader-log.md), 40 candidates a reading, readings fixed / broken for weight 0.3 / 0.5 / 0.7 / 1.0 /
    # 1.5 below 0.95: 10/11, 12/22, 14/28, 18/38, 20/56 (gates 0.8-0.99 alike). The least harmful pair is the default.
    window_weight: float = 0.3
    window_below: float = 0.95
    window_keep: int = 12


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
