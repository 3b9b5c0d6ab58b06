"""Reading the fields of a clean page: segmentation + digit CNN, the CRNN string reader, and their fusion.

Per page, every field's ink is cut once (:func:`formocr.segment.field_ink`) and shared by both readers; the
digit tiles of all fields go to the digit CNN in one batch and the strips of all fields to the CRNN in width-
sorted batches, so a page of 30 fields costs two model calls, not sixty.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from formocr.arbitrate import arbitrate, split_to_count
from formocr.calibration import FieldCalibration, field_features, is_patterned, kind_of
from formocr.fields import constraint_for, interpret
from formocr.fusion import Fused, FusionRules, Reading, fuse
from formocr.marks import SURE_NOT_DIGIT, SURE_WITH_MARK, digits_of, end_mark, one_digit_before, without_marks
from formocr.normalize import grey_ink, grey_tile
from formocr.objects import Box, CharResult, CleanPage, Component, FieldRegion, FieldResult
from formocr.options import Options
from formocr.recognize.ctc import Constraint, best_path
from formocr.recognize.digits import DigitClassifier
from formocr.recognize.strings import Evidence, StringReader, StripGeometry
from formocr.segment import field_cut, segment_ink, thin_strokes
from formocr.timing import StageTimer

MAX_FIELD_CHARS = 24  # more marks than any digit field plausibly holds (long account numbers included)
LETTER_MARKS = 5  # at least this many marks that are not digits, and ...
LETTER_SHARE = 0.3  # ... at least this share of the field's marks: letters or words, not digits
# How the reasons a field needs review begin, where the confidence decides them: the confidence below the
# threshold, and what explains it (added only beside a cause). Any other reason is a cause of its own.
CONFIDENCE_REASONS = ("confidence ", "readers disagree", "unsure of", "not a digit at position", "a printed line",
                      "no digit in the mark")


def review_is_confidences(result: FieldResult) -> bool:
    """Whether a field's review, if any, is the confidence's alone (a higher or lower threshold would change it),
    not a verdict, a broken rule of the field or the want of digits. Without a field calibration an unsure
    character is a cause of its own (the per-character rule), not the confidence's."""
    reasons = CONFIDENCE_REASONS if result.readings.get("calibrated") else \
        tuple(r for r in CONFIDENCE_REASONS if r != "unsure of")
    return bool(result.raw) and all(w.startswith(reasons) for w in result.why)


@dataclass(frozen=True)
class _Notes:
    """What was learnt about a field before reading it, for ``why``."""

    left_out: int = 0  # marks the digit CNN called "not a digit", left out
    dropped_at: tuple[int, ...] = ()  # their positions (from 1) among the field's marks
    painted_at: tuple[int, ...] = ()  # those also painted out of the string reader's input (see SURE_NOT_DIGIT)
    # the string reader's own evidence on the field with those marks in it: where it too reads no digit in them,
    # two readers, not the CNN alone, have decided them away
    unpainted: tuple[Evidence, StripGeometry] | None = None
    confirmed: bool = False  # the string reader, seeing the marks, read the very digits chosen
    restored: bool = False  # ... or one digit more, before them: the first mark held a digit, now read
    verdict: str | None = None  # the field is no digit field (decided before reading), and why
    crossed: bool = False  # a printed line runs through the writing area
    thin_at: tuple[int, ...] = ()  # where a digit-tall stroke stands that the speck rule left out (a fine "1"?)


@dataclass(frozen=True)
class FieldWork:
    """What was learnt about one field on the way to its result (the debug writer draws from it)."""

    region: FieldRegion
    components: list[Component]
    tiles: np.ndarray
    result: FieldResult


class FieldReader:
    """Holds the loaded models; :meth:`read` turns the fields of one clean page into results."""

    def __init__(self, options: Options, digits: DigitClassifier, strings: StringReader | None,
                 calibration: FieldCalibration | None = None) -> None:
        if options.reader != "segmentation" and strings is None:
            raise ValueError(f"reader {options.reader!r} needs a string model")
        self.options, self.digits, self.strings = options, digits, strings
        self.rules = FusionRules()
        # turns a fused reading's evidence into its chance of being right (None: fusion's confidence stands)
        self.calibration = calibration

    def read(self, clean: CleanPage, regions: Sequence[FieldRegion], timer: StageTimer | None = None
             ) -> list[FieldWork]:
        sw = timer or StageTimer()
        sw.restart()
        dpi = clean.page.dpi
        cuts = [field_cut(clean, r) for r in regions]
        cut = [(ink, box) for ink, box, _ in cuts]
        grays = [clean.gray[b.y : b.y2, b.x : b.x2] for _, b in cut]
        darks = ([grey_ink(g, ink) for g, (ink, _) in zip(grays, cut)] if self.options.digit_tiles == "grey"
                 else [None] * len(cut))
        mode = self.options.reader
        cons = [constraint_for(r.type, r.constraints, r.style == "comb") for r in regions]
        comps = [arbitrate(segment_ink(ink, box, r, dpi, separators=_separators(c.chars)), self.digits.top_probability)
                 if mode != "crnn" else [] for (ink, box), r, c in zip(cut, regions, cons)]
        sw.lap("segment")
        tiles = [
            np.stack([_tile(c, dark, box) for c in cs if c.kind == "digit"])
            if any(c.kind == "digit" for c in cs) else np.zeros((0, 28, 28), np.float32)
            for cs, dark, (_, box) in zip(comps, darks, cut)
        ]  # fmt: skip
        sw.lap("normalize")
        allt = np.concatenate(tiles) if tiles else np.zeros((0, 28, 28), np.float32)
        probs = self.digits.probabilities(allt) if len(allt) else np.zeros((0, len(self.digits.classes)), np.float32)
        left_out = [0] * len(regions)
        dropped_at: list[tuple[int, ...]] = [()] * len(regions)  # positions (from 1) of the marks left out
        painted_at: list[tuple[int, ...]] = [()] * len(regions)  # of those, the ones the string reader lost too
        unpainted: dict[int, tuple[np.ndarray, Box, np.ndarray, np.ndarray]] = {}  # their cut and grey as found
        if self.digits.rejects:  # marks the digit CNN calls "not a digit" leave the field before either reader
            digit = self.digits.is_digit(probs)
            k = 0
            for i, cs in enumerate(comps):
                n = len(tiles[i])
                keep = digit[k : k + n]
                k += n
                if keep.all():
                    continue
                left_out[i] = int((~keep).sum())
                digit_ids = [j for j, c in enumerate(cs) if c.kind == "digit"]
                out_tiles = np.nonzero(~keep)[0]
                drop = {digit_ids[j] for j in out_tiles}
                dropped_at[i] = tuple(sorted(j + 1 for j in drop))
                kept = [cs[j].box for j, ok in zip(digit_ids, keep) if ok]
                sure = [digit_ids[j] for j in out_tiles
                        if probs[k - n + j, 10] >= SURE_NOT_DIGIT and end_mark(cs[digit_ids[j]].box, kept)]
                if sure:
                    unpainted[i] = (*cuts[i], grays[i])
                    cuts[i], grays[i] = without_marks(cuts[i], grays[i], [cs[j] for j in sure])
                    painted_at[i] = tuple(j + 1 for j in sure)
                comps[i] = [c for j, c in enumerate(cs) if j not in drop]
                tiles[i] = tiles[i][keep]
            probs = probs[digit]
        probs = probs[:, :10]
        sw.lap("classify")
        evs: list[Evidence | None] = [None] * len(regions)
        unread: dict[int, tuple[Evidence, StripGeometry]] = {}
        geoms: list[StripGeometry | None] = [None] * len(regions)
        verdicts = [_not_digits(cs, n, None, None) for cs, n in zip(comps, left_out)]
        todo = [i for i, v in enumerate(verdicts) if v is None]  # the string reader costs most per mark
        if mode != "segmentation" and self.strings is not None and todo:
            made = [self.strings.field_strips(cuts[i][0], regions[i].box.h, dpi, grays[i],
                                              comb=regions[i].style == "comb", lines=cuts[i][2]) for i in todo]
            for i, (_, g), ev in zip(todo, made, self.strings.evidence([s for s, _ in made])):
                geoms[i], evs[i] = g, ev
            again = [i for i in todo if i in unpainted]  # fields that lost a mark: read once more with it
            if again:
                seen = [self.strings.field_strips(unpainted[i][0], regions[i].box.h, dpi, unpainted[i][3],
                                                  comb=regions[i].style == "comb", lines=unpainted[i][2])
                        for i in again]
                unread = dict(zip(again, zip(self.strings.evidence([s for s, _ in seen]), [g for _, g in seen])))
            sw.lap("strings")
        out = []
        k = 0
        for i, r in enumerate(regions):
            n = len(tiles[i])
            p = probs[k : k + n]
            k += n
            notes = _Notes(left_out[i], dropped_at[i], painted_at[i], verdict=verdicts[i],
                           crossed=_crossed(cuts[i][2], cuts[i][1], r), unpainted=unread.get(i),
                           thin_at=thin_strokes(*cut[i], r, dpi, comps[i]) if verdicts[i] is None else ())
            result = self._assemble(r, cons[i], comps[i], p, evs[i], geoms[i], cut[i], darks[i], notes)
            out.append(FieldWork(r, comps[i], tiles[i], result))
        sw.lap("assemble")
        return out

    # --- one field -------------------------------------------------------------------------------------------

    def _seg_reading(self, region: FieldRegion, comps: list[Component], probs: np.ndarray) -> Reading:
        chars: list[CharResult] = []
        it = iter(probs)
        for c in comps:
            if c.kind == "digit":
                p = next(it)
                order = np.argsort(-p)[:3]
                chars.append(CharResult(str(int(order[0])), float(p[order[0]]),
                                        tuple((str(int(j)), float(p[j])) for j in order), c.box))
            else:
                assert c.char is not None
                chars.append(CharResult(c.char, 1.0, ((c.char, 1.0),), c.box))
        raw = "".join(ch.char for ch in chars)
        digit_ps = [ch.p for ch in chars if ch.char.isdigit()]
        conf = float(np.prod(digit_ps)) if digit_ps else 0.0
        valid = not interpret(region.type, raw, region.constraints, comb=region.style == "comb").problems
        return Reading("segmentation", raw, conf, tuple(chars), valid)

    def _crnn_reading(self, region: FieldRegion, constraint: Constraint, ev: Evidence, geom: StripGeometry,
                      crop_box: Box) -> Reading:
        """The string reader's reading of the field, within its constraint."""
        assert self.strings is not None
        comb = region.style == "comb"
        reading = self.strings.decode(ev, constraint)
        alphabet = self.strings.alphabet
        lp = ev[0]  # character boxes come from view 0, the strip geometry ``geom`` describes
        chars = []
        for ch, p, (a, b) in zip(reading.text, reading.char_probs, reading.char_columns):
            t0, t1 = a // 4, max(a // 4, b // 4 - 1)
            k = alphabet.index(ch) + 1
            t = t0 + int(np.argmax(lp[t0 : t1 + 1, k])) if t1 >= t0 and t0 < len(lp) else 0
            row = np.exp(lp[min(t, len(lp) - 1), 1:])
            order = np.argsort(-row)[:3]
            x0 = crop_box.x + geom.crop_x(a)
            x1 = crop_box.x + geom.crop_x(b)
            box = Box(int(x0), crop_box.y + geom.y0, max(1, int(x1 - x0)), geom.h)
            chars.append(CharResult(ch, float(p), tuple((alphabet[int(j)], float(row[j])) for j in order), box))
        valid = reading.satisfied and not interpret(region.type, reading.text, region.constraints, comb=comb).problems
        return Reading("crnn", reading.text, reading.confidence, tuple(chars), valid)

    def _assemble(self, region: FieldRegion, constraint: Constraint, comps: list[Component], probs: np.ndarray,
                  ev: Evidence | None, geom: StripGeometry | None, cut: tuple[np.ndarray, Box],
                  dark: np.ndarray | None = None, notes: _Notes = _Notes()) -> FieldResult:
        mode = self.options.reader
        _, crop_box = cut
        left_out = notes.left_out
        verdict = notes.verdict or _not_digits(comps, left_out, ev, self.strings)
        if verdict is not None:  # decided before either reader spends time on it (each costs more per mark)
            readings: dict[str, object] = {"skipped": verdict, "not_digits": left_out}
            return self._field_result(region, Reading("none", "", 0.0, (), False), None, readings,
                                      replace(notes, verdict=verdict))
        seg = self._seg_reading(region, comps, probs) if mode != "crnn" else None
        crnn = None
        if ev is not None and geom is not None:  # a blank strip reads as nothing, as segmentation reads it
            crnn = (Reading("crnn", "", 0.0, (), False) if geom.blank
                    else self._crnn_reading(region, constraint, ev, geom, crop_box))
        readings = {}
        fused: Fused | None = None
        if seg is not None and crnn is not None:
            assert self.strings is not None and ev is not None
            strings = self.strings

            def seg_prob(text: str) -> float | None:
                return _seg_probability(probs, comps, text)

            alts = []
            n_seg = sum(c.kind == "digit" for c in comps)
            n_crnn = sum(ch.isdigit() for ch in crnn.raw)
            allowed = constraint.min_digits <= n_seg <= (constraint.max_digits or n_seg)
            if n_seg != n_crnn and n_seg > 0 and allowed and geom is not None:  # counts differ: so do the texts
                fixed = replace(constraint, min_digits=n_seg, max_digits=n_seg)
                alts.append(self._crnn_reading(region, fixed, ev, geom, crop_box))
            if 0 < n_seg < n_crnn and region.style != "comb":  # in comb cells the printed walls fix the cuts
                recut = split_to_count(comps, n_crnn, self.digits.top_probability)
                if recut is not None:
                    tiles = np.stack([_tile(c, dark, crop_box) for c in recut if c.kind == "digit"])
                    alts.append(replace(self._seg_reading(region, recut, self.digits.probabilities(tiles)[:, :10]),
                                        reader="resplit"))
            crnn_scores: dict[str, float] = {}  # fusion asks for some texts more than once

            def crnn_score(text: str) -> float:
                if text not in crnn_scores:
                    crnn_scores[text] = strings.score(ev, text)
                return crnn_scores[text]

            fused = fuse(seg, crnn, seg_prob, crnn_score, self.rules,
                         cells=region.style == "comb" and bool(region.cells), alternatives=alts)
            chosen = fused.reading
            readings = {"segmentation": seg.to_dict(), "crnn": crnn.to_dict(), "agree": fused.agree,
                        "chosen": fused.chosen}
        else:
            only = seg if seg is not None else crnn
            assert only is not None
            chosen = only
            readings = {only.reader: only.to_dict(), "chosen": only.reader}
        if notes.painted_at and notes.unpainted is not None and self.strings is not None:
            ev0, geom0 = notes.unpainted
            seen = self.strings.decode(ev0, None) if not geom0.blank else None
            text, sure = (seen.text, float(seen.confidence)) if seen is not None else ("", 0.0)
            confirmed = digits_of(text) == digits_of(chosen.raw) and sure >= SURE_WITH_MARK
            notes = replace(notes, confirmed=confirmed)
            marks: dict[str, object] = {"raw": text, "confidence": round(sure, 6), "confirms": confirmed}
            readings["with_marks"] = marks
            if not confirmed and notes.painted_at[0] == 1 and one_digit_before(text, chosen.raw):
                # a "$" touching the amount's first digit is one mark: painted out, it took the digit with it.
                # The string reader, seeing it, reads that digit before the very digits chosen: the field is its
                # reading of the field as found (still reviewed: one reader alone has read the digit back)
                restored = self._crnn_reading(region, constraint, ev0, geom0, crop_box)
                if digits_of(restored.raw) == digits_of(text):
                    chosen = replace(restored, reader="with_marks")
                    readings["chosen"] = "with_marks"
                    marks["restores"] = True
                    notes = replace(notes, restored=True)
                    fused = None  # the confidence is this one reader's own: neither fusion's nor the calibration's
        if left_out:
            readings["not_digits"] = left_out
        if notes.crossed:
            readings["crossed"] = True
        return self._field_result(region, chosen, fused, readings, notes,
                                  kind_of(constraint.min_digits, constraint.max_digits,
                                          is_patterned(region.type, region.constraints)))

    def _field_result(self, region: FieldRegion, chosen: Reading, fused: Fused | None, readings: dict[str, object],
                      notes: _Notes = _Notes(), kind: str = "free length") -> FieldResult:
        left_out, verdict, dropped_at = notes.left_out, notes.verdict, notes.dropped_at
        raw = chosen.raw
        interp = interpret(region.type, raw, region.constraints, comb=region.style == "comb")
        confidence = chosen.confidence if any(ch.isdigit() for ch in raw) else 0.0
        if fused is not None and math.isfinite(confidence):
            kept = round(float(confidence), 6)
            readings["fused_confidence"] = kept
            if kept > 0 and self.calibration is not None:  # from the figures the results keep, as fitted
                confidence = self.calibration.probability(
                    field_features(kept, readings, [ch.p for ch in chosen.chars], raw), kind)
                readings["calibrated"] = kind
        why = [verdict] if verdict else list(interp.problems)
        if not math.isfinite(confidence):  # fail closed: a score that is not a number is no confidence
            confidence = 0.0
            why.append("the readers' confidence could not be computed")
        if any(not math.isfinite(ch.p) for ch in chosen.chars):
            chosen = replace(chosen, chars=tuple(replace(ch, p=0.0) if not math.isfinite(ch.p) else ch
                                                 for ch in chosen.chars))
        if left_out and not any(ch.isdigit() for ch in raw) and not verdict:
            why.append(f"no digits found: {left_out} mark(s) that are not digits (rules, margins, letters, smudges)")
        if fused is not None and not fused.agree and confidence < self.options.review_threshold:
            seg_raw, crnn_raw = fused.scores_texts
            why.append(f"readers disagree: segmentation {seg_raw!r}, string reader {crnn_raw!r}")
        if raw and confidence < self.options.review_threshold:
            shown = math.floor(confidence * 1000) / 1000  # never rounded up to the threshold it is below
            why.append(f"confidence {shown:.3f} below {self.options.review_threshold}")
        low = [i for i, ch in enumerate(chosen.chars) if ch.p < self.options.char_review_threshold]
        if low and (why or not readings.get("calibrated")):  # calibrated, it explains a review, never causes one
            why.append("unsure of character(s) at position " + ", ".join(str(i + 1) for i in low))
        if notes.painted_at and any(ch.isdigit() for ch in raw):
            where = ", ".join(str(k) for k in notes.painted_at)
            if notes.restored:
                why.append(f"the mark at position 1, left out as no digit (a currency sign?), holds a digit the "
                           f"string reader reads before the others ({raw!r}): check the first digit")
                where = ", ".join(str(k) for k in notes.painted_at[1:])  # another mark, at the other end
            if where and not notes.confirmed:  # a cause: the CNN alone decided a mark away
                why.append(f"the mark at position {where}, before or after the digits, was left out as no digit (a "
                           "currency sign?): check that no digit was lost")
            elif where and why:  # both readers decided it away: it explains a review, never causes one
                why.append(f"no digit in the mark at position {where} (left out; the string reader read none there "
                           "either)")
        if notes.thin_at and any(ch.isdigit() for ch in raw):  # a cause: both readers lost it as a speck
            where = ", ".join(str(k) for k in notes.thin_at)
            why.append(f"a thin stroke as tall as a digit at position {where} was left out as a speck (a fine "
                       "pen's 1?): check that no digit was lost")
        if notes.restored:  # the first mark's digit is read back: it is no longer "not a digit"
            dropped_at = tuple(k for k in dropped_at if k != 1)
        if why and dropped_at and any(ch.isdigit() for ch in raw):  # these explain a review, never cause one
            where = ", ".join(str(k) for k in dropped_at)
            why.append(f"not a digit at position {where} (left out)")
        if why and notes.crossed:
            why.append("a printed line crosses the field")
        if interp.problems:
            confidence = min(confidence, 0.5)
        return FieldResult(
            name=region.name, type=region.type, value=interp.value, raw=raw, confidence=confidence,
            needs_review=bool(why), why=tuple(why), box=region.box, chars=chosen.chars,
            normalized=interp.normalized, readings=readings,
        )  # fmt: skip


def _not_digits(comps: list[Component], left_out: int, ev: Evidence | None, strings: StringReader | None
                ) -> str | None:
    """Why a field is no digit field, in a clerk's words, when that shows before reading: more marks than a
    digit field holds, or mostly marks the digit CNN calls "not a digit" (letters, words). None otherwise."""
    marks = sum(c.kind == "digit" for c in comps) + left_out
    if ev is not None and strings is not None:
        marks = max(marks, len(best_path(ev[0], strings.alphabet).text))
    if marks > MAX_FIELD_CHARS:
        return f"{marks} characters: more than a digit field holds (letters or words?)"
    if left_out >= LETTER_MARKS and left_out >= LETTER_SHARE * marks:
        return f"letters or words, not digits: {left_out} of {marks} marks are not digits"
    return None


def _crossed(lines: np.ndarray, crop_box: Box, region: FieldRegion) -> bool:
    """Whether a printed line (of those field_cut took out) runs across the middle of the field's writing area,
    not along its frame: half the field's width, in its middle 60% of height."""
    b = region.box
    y0, y1 = b.y - crop_box.y + round(0.2 * b.h), b.y - crop_box.y + round(0.8 * b.h)
    x0, x1 = max(0, b.x - crop_box.x), max(0, b.x2 - crop_box.x)
    band = lines[max(0, y0) : max(0, y1), x0:x1]
    return bool(band.size) and bool((band.sum(axis=1) >= 0.5 * b.w).any())


def _separators(chars: str) -> str:
    """Separator marks the segmenter may report: those the field's constraint allows."""
    return "".join(c for c in ".,-" if c in chars)


def _seg_probability(probs: np.ndarray, comps: list[Component], text: str) -> float | None:
    """Segmentation's probability of ``text``: defined only for as many characters as it found."""
    t = text.replace(" ", "")
    if len(t) != len(comps):
        return None
    p = 1.0
    k = 0
    for c, ch in zip(comps, t):
        if c.kind == "digit":
            if not ch.isdigit():
                return 0.0
            p *= float(probs[k][int(ch)])
            k += 1
        elif c.char != ch:
            return 0.0
    return p


def _tile(c: Component, dark: np.ndarray | None, crop_box: Box) -> np.ndarray:
    """A component's tile for the digit CNN, shaded by its field's grey (``dark``, crop coordinates) if given."""
    if dark is None:
        return grey_tile(c.mask, None)
    y, x = c.box.y - crop_box.y, c.box.x - crop_box.x
    return grey_tile(c.mask, dark[y : y + c.box.h, x : x + c.box.w])
