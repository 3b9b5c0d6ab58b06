"""Reading the fields of a clean page: segmentation + digit CNN, the CRNN string reader, and their fusion.

Per page, every field's ink is cut once (:func:`formocr.segment.field_ink`) and shared by both readers; the
digit tiles of all fields go to the digit CNN in one batch and the strips of all fields to the CRNN in width-
sorted batches, so a page of 30 fields costs two model calls, not sixty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from formocr.fields import constraint_for, interpret
from formocr.fusion import Fused, FusionRules, Reading, fuse
from formocr.normalize import grey_ink, grey_tile
from formocr.objects import Box, CharResult, CleanPage, Component, FieldRegion, FieldResult
from formocr.options import Options
from formocr.recognize.blobs import BlobReader, ink_blobs, judge
from formocr.recognize.ctc import Constraint
from formocr.recognize.digits import DigitClassifier
from formocr.recognize.strings import Evidence, FieldStrips, StringReader, StripGeometry
from formocr.recognize.windows import WindowReader
from formocr.recognize.windows import judge as window_judge
from formocr.segment import arbitrate, field_cut, segment_ink, split_to_count
from formocr.timing import StageTimer


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
                 blobs: BlobReader | None = None, windows: WindowReader | None = None) -> None:
        if options.reader != "segmentation" and strings is None:
            raise ValueError(f"reader {options.reader!r} needs a string model")
        if windows is not None and strings is None:
            raise ValueError("the window judge needs a string model")
        self.options, self.digits, self.strings, self.blobs = options, digits, strings, blobs
        self.windows = windows
        self.rules = FusionRules()

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
        probs = self.digits.probabilities(allt) if len(allt) else np.zeros((0, 10), np.float32)
        sw.lap("classify")
        evs: list[Evidence | None] = [None] * len(regions)
        geoms: list[StripGeometry | None] = [None] * len(regions)
        field_strips: list[FieldStrips | None] = [None] * len(regions)
        if mode != "segmentation" and self.strings is not None and regions:
            also = (self.windows.spec.input,) if self.windows is not None else ()
            made = [self.strings.field_strips(ink, r.box.h, dpi, g, comb=r.style == "comb", lines=lines, also=also)
                    for (ink, _, lines), r, g in zip(cuts, regions, grays)]
            geoms = [g for _, g in made]
            field_strips = [s for s, _ in made]
            evs = list(self.strings.evidence([s for s, _ in made]))
            sw.lap("strings")
        out = []
        k = 0
        for i, r in enumerate(regions):
            n = len(tiles[i])
            p = probs[k : k + n]
            k += n
            result = self._assemble(r, cons[i], comps[i], p, evs[i], geoms[i], cut[i], darks[i], field_strips[i])
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
                      crop_box: Box, text: str | None = None) -> Reading:
        """The string reader's reading, or its reading of ``text`` (a candidate the blob reader chose)."""
        assert self.strings is not None
        comb = region.style == "comb"
        reading = (self.strings.decode(ev, constraint) if text is None
                   else self.strings.reading_of(ev, text, constraint.accepts(text)))
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

    def _judged(self, crnn: Reading, constraint: Constraint, ev: Evidence, geom: StripGeometry, ink: np.ndarray
                ) -> str | None:
        """The blob reader's choice among the string reader's reading and its one-digit neighbours, when the
        reading is not sure and the choice differs from it (None otherwise)."""
        if self.blobs is None or self.strings is None or crnn.confidence >= self.rules.judge_below:
            return None
        blobs = ink_blobs(ink, self.blobs.spec)
        if not blobs.boxes:
            return None
        cands = self.strings.neighbours(ev, crnn.raw, constraint)
        if len(cands) < 2:
            return None
        lp = self.blobs.log_probs(blobs)
        pick = judge([(t, p, self.strings.centres(ev, t, geom)) for t, p in cands], blobs, lp, self.rules.judge_weight,
                     self.blobs.spec)
        return cands[pick][0] if pick else None

    def _window_judged(self, crnn: Reading, constraint: Constraint, ev: Evidence, strips: FieldStrips | None
                       ) -> str | None:
        """The window judge's choice among the string reader's reading and the texts one digit changed from it,
        when the reading is not sure and the choice differs from it (None otherwise)."""
        if self.windows is None or self.strings is None or strips is None or not crnn.raw:
            return None
        if crnn.confidence >= self.rules.window_below:
            return None
        strip = strips.of(self.windows.spec.input, strict=True)
        if not strip:  # no grey given
            return None
        text = crnn.raw
        cands = self.strings.neighbours(ev, text, constraint, keep=self.rules.window_keep, changes_only=True)
        if len(cands) < 2:
            return None
        lp = self.windows.log_probs(strip[0], self.strings.strip_centres(ev, text))
        pick = window_judge(cands, lp, self.rules.window_weight)
        return pick if pick != text else None

    def _assemble(self, region: FieldRegion, constraint: Constraint, comps: list[Component], probs: np.ndarray,
                  ev: Evidence | None, geom: StripGeometry | None, cut: tuple[np.ndarray, Box],
                  dark: np.ndarray | None = None, strips: FieldStrips | None = None) -> FieldResult:
        mode = self.options.reader
        ink, crop_box = cut
        seg = self._seg_reading(region, comps, probs) if mode != "crnn" else None
        crnn = None
        judged: dict[str, str] = {}
        judged_w: dict[str, str] = {}
        if ev is not None and geom is not None:  # a blank strip reads as nothing, as segmentation reads it
            crnn = (Reading("crnn", "", 0.0, (), False) if geom.blank
                    else self._crnn_reading(region, constraint, ev, geom, crop_box))
            better = None if geom.blank else self._judged(crnn, constraint, ev, geom, ink)
            if better is not None:
                judged = {"from": crnn.raw, "to": better}
                crnn = self._crnn_reading(region, constraint, ev, geom, crop_box, text=better)
            windowed = (None if geom.blank or region.style == "comb"
                        else self._window_judged(crnn, constraint, ev, strips))
            if windowed is not None:
                judged_w = {"from": crnn.raw, "to": windowed}
                crnn = self._crnn_reading(region, constraint, ev, geom, crop_box, text=windowed)
        readings: dict[str, object] = {}
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
                    alts.append(replace(self._seg_reading(region, recut, self.digits.probabilities(tiles)),
                                        reader="resplit"))
            fused = fuse(seg, crnn, seg_prob, lambda text: strings.score(ev, text), self.rules,
                         cells=region.style == "comb" and bool(region.cells), alternatives=alts)
            chosen = fused.reading
            readings = {"segmentation": seg.to_dict(), "crnn": crnn.to_dict(), "agree": fused.agree,
                        "chosen": fused.chosen}
        else:
            only = seg if seg is not None else crnn
            assert only is not None
            chosen = only
            readings = {only.reader: only.to_dict(), "chosen": only.reader}
        if judged:
            readings["blob_judge"] = judged
        if judged_w:
            readings["window_judge"] = judged_w
        return self._field_result(region, chosen, fused, readings)

    def _field_result(self, region: FieldRegion, chosen: Reading, fused: Fused | None, readings: dict[str, object]
                      ) -> FieldResult:
        raw = chosen.raw
        interp = interpret(region.type, raw, region.constraints, comb=region.style == "comb")
        confidence = chosen.confidence if any(ch.isdigit() for ch in raw) else 0.0
        why = list(interp.problems)
        if fused is not None and not fused.agree and confidence < self.options.review_threshold:
            seg_raw, crnn_raw = fused.scores_texts
            why.append(f"readers disagree: segmentation {seg_raw!r}, string reader {crnn_raw!r}")
        if raw and confidence < self.options.review_threshold:
            why.append(f"confidence {confidence:.3f} below {self.options.review_threshold}")
        low = [i for i, ch in enumerate(chosen.chars) if ch.p < self.options.char_review_threshold]
        if low:
            why.append("unsure of character(s) at position " + ", ".join(str(i + 1) for i in low))
        if interp.problems:
            confidence = min(confidence, 0.5)
        return FieldResult(
            name=region.name, type=region.type, value=interp.value, raw=raw, confidence=confidence,
            needs_review=bool(why), why=tuple(why), box=region.box, chars=chosen.chars,
            normalized=interp.normalized, readings=readings,
        )  # fmt: skip


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
