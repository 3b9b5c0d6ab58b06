"""Where fused readings go wrong, and whether the string reader's one-edit neighbours, judged by segmentation's digit
CNN, would fix them (stop 29; docs/string-reader-log.md "Where the fused errors lie"). Not shipped: no setting changed a
reading for the better.

    python benchmarks/experiments/neighbour_fusion.py record --split val --n 1500 --seed 1 --out runs/nb-v1.pkl
    python benchmarks/experiments/neighbour_fusion.py replay runs/nb-v1.pkl runs/nb-v2.pkl ...
    python benchmarks/experiments/neighbour_fusion.py anatomy runs/nb-v1.pkl runs/nb-v2.pkl ...
    python benchmarks/experiments/neighbour_fusion.py rules runs/nb-v1.pkl runs/nb-v2.pkl ...       (stop 30)
    python benchmarks/experiments/neighbour_fusion.py seg-errors runs/nb-v1.pkl runs/nb-v2.pkl ...  (stop 30)
    python benchmarks/experiments/neighbour_fusion.py edits runs/nb-v1.pkl runs/nb-v2.pkl ...       (stop 32)

``record`` reads the strings of ``strings_accuracy.py`` (same generator, seeds and indices) through the pipeline's
field reader and keeps, per string, what fusion was given (as ``fusion_tune.py`` records it) and more: the digit
CNN's ten probabilities for each of segmentation's components and for segmentation re-cut to the string reader's
count (``split_to_count``, when it counts more digits), and the string reader's probability of every text one
edit away from each reading fusion weighed (``StringReader.neighbours``, up to ``--keep`` per reading).

``replay`` adds those neighbours to fusion's candidates. Segmentation speaks for a neighbour with as many digits as
it found components (the product of their probabilities) or as the re-cut has pieces (that product × ``resplit``);
each scores max(P_seg, floor)^pow · P_crnn, like fusion's own candidates, and wins only above all of them.

``anatomy`` sorts the strings fused wrong: both readers agreeing on the same wrong text; the truth among fusion's
candidates but not chosen; the truth absent, by whether segmentation has an opinion of it and its rank among the
string reader's neighbours of its reading.

``rules`` replays fusion's own candidates under other weights for segmentation's merged and re-cut readings;
``seg-errors`` sorts segmentation's misreadings of the apart strings; ``edits`` sorts the wrong fused and string
reader readings by how they differ from the truth.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import strings_generator, strings_page
from fusion_tune import Case as FusionCase

import formocr.read as read_mod
from formocr.fusion import Fused, FusionRules, Reading, fuse
from formocr.fusion import _digits as _count
from formocr.options import Options
from formocr.pipeline import Pipeline
from formocr.segment import split_to_count

RULES = FusionRules()


@dataclass
class Case(FusionCase):
    """What fusion was given (``fusion_tune.py``'s record), and what else both readers know."""

    seg_probs: np.ndarray  # components × 10 (the benchmark strings have no separators)
    recut_probs: np.ndarray | None  # pieces of the re-cut to the string reader's count × 10
    near: dict[str, float] = field(default_factory=dict)  # P_crnn of the one-edit neighbours of every reading

    def fused(self, rules: FusionRules = RULES) -> Fused:
        return fuse(self.seg, self.crnn, self.seg_p.__getitem__, self.crnn_p.__getitem__, rules, self.cells,
                    self.alts)


def record(split: str, n: int, seed: int, keep: int, strings_model: str | None) -> list[Case]:
    gen = strings_generator(split)
    reader = Pipeline(Options(strings_model=strings_model)).reader
    assert reader.strings is not None
    strings = reader.strings
    given: dict[str, Any] = {}
    assemble = read_mod.FieldReader._assemble

    def spy_assemble(self: Any, region: Any, constraint: Any, comps: Any, probs: Any, ev: Any, geom: Any, cut: Any,
                     dark: Any = None, strips: Any = None) -> Any:
        given.update(constraint=constraint, comps=comps, probs=probs, ev=ev, cut=cut, dark=dark)
        return assemble(self, region, constraint, comps, probs, ev, geom, cut, dark, strips)

    seen: list[dict[str, Any]] = []

    def spy_fuse(seg: Reading, crnn: Reading, seg_prob: Callable[[str], float | None],
                 crnn_prob: Callable[[str], float], rules: FusionRules = RULES, cells: bool = False,
                 alternatives: Sequence[Reading] = ()) -> Any:
        texts = {seg.raw, crnn.raw, *(a.raw for a in alternatives)}
        comps = given["comps"]
        n_crnn = _count(crnn.raw)
        recut_probs = None
        if 0 < len(comps) < n_crnn:
            recut = split_to_count(comps, n_crnn, reader.digits.top_probability)
            if recut is not None:
                crop_box = given["cut"][1]
                tiles = np.stack([read_mod._tile(c, given["dark"], crop_box) for c in recut if c.kind == "digit"])
                recut_probs = reader.digits.probabilities(tiles)
        near: dict[str, float] = {}
        for t in texts:
            if t:
                near.update(strings.neighbours(given["ev"], t, given["constraint"], keep=keep))
        seen.append({"seg": seg, "crnn": crnn, "alts": tuple(alternatives), "cells": cells,
                     "seg_p": {t: seg_prob(t) for t in texts}, "crnn_p": {t: crnn_prob(t) for t in texts},
                     "seg_probs": np.asarray(given["probs"], np.float32), "recut_probs": recut_probs, "near": near})
        return fuse(seg, crnn, seg_prob, crnn_prob, rules, cells, alternatives)

    read_mod.FieldReader._assemble = spy_assemble  # type: ignore[method-assign]
    read_mod.fuse = spy_fuse
    cases = []
    for i in range(n):
        sample, clean = strings_page(gen, seed, i)
        seen.clear()
        reader.read(clean, [sample.region])
        if len(seen) == 1:  # else one reader had nothing to say: fusion was not asked
            cases.append(Case(sample.text, sample.touching, **seen[0]))
    return cases


def seg_opinion(c: Case, text: str, resplit: float = RULES.resplit) -> float | None:
    """Segmentation's probability of ``text``: from its components, or from the re-cut; None: it has none."""
    for probs, weight in ((c.seg_probs, 1.0), (c.recut_probs, resplit)):
        if probs is not None and len(probs) == len(text) > 0:
            if not text.isdigit():
                return 0.0
            return weight * float(np.prod([probs[i, int(ch)] for i, ch in enumerate(text)]))
    return None


def with_neighbours(c: Case, keep: int, power: float, recut: bool) -> tuple[str, float]:
    """Fusion's choice with the neighbours as further candidates, and its confidence."""
    f = c.fused()
    if f.agree:
        return f.reading.raw, f.confidence
    names = {"segmentation": c.seg.raw, "crnn": c.crnn.raw}
    for a in c.alts:
        names.setdefault("resplit" if a.reader == "resplit" else "joint", a.raw)
    scores = {names[k]: v for k, v in f.scores.items()}
    floor = RULES.no_opinion_cells if c.cells else RULES.no_opinion
    extra: dict[str, float] = {}
    for text, pc in sorted(c.near.items(), key=lambda kv: -kv[1])[:keep]:
        ps = seg_opinion(c, text, RULES.resplit if recut else 0.0)
        if text not in scores and ps is not None and ps > 0:
            extra[text] = max(ps**power, floor) * pc
    best = max(extra, key=extra.__getitem__, default=None)
    if best is None or extra[best] <= max(scores.values()):
        return f.reading.raw, f.confidence
    share = extra[best] / (sum(scores.values()) + sum(extra.values()))
    ps = seg_opinion(c, best, RULES.resplit if recut else 0.0) or 0.0
    return best, share * min(max(ps, floor), c.near[best])


def replay(sets: list[list[Case]], threshold: float) -> None:
    print("| candidates | " + " | ".join(f"set {i + 1}" for i in range(len(sets)))
          + " | mean | accepted (right) | fixed / broken |")
    print("|---" * (len(sets) + 4) + "|")
    def shipped(c: Case) -> tuple[str, float]:
        f = c.fused()
        return f.reading.raw, f.confidence

    def variant(keep: int, power: float, recut: bool) -> Callable[[Case], tuple[str, float]]:
        return lambda c: with_neighbours(c, keep, power, recut)

    variants: list[tuple[str, Callable[[Case], tuple[str, float]]]] = [("fusion's own (shipped)", shipped)]
    for keep in (5, 40):
        for power in (1.0, 0.5):
            for recut in (True, False):
                variants.append((f"+ {keep} neighbours, P_seg^{power}, re-cut {'yes' if recut else 'no'}",
                                 variant(keep, power, recut)))
    shipped_texts = [[c.fused().reading.raw for c in cases] for cases in sets]
    for name, choose in variants:
        accs, acc, acc_ok, fixed, broken, n = [], 0, 0, 0, 0, 0
        for cases, shipped_of in zip(sets, shipped_texts):
            ok = 0
            for c, shipped_text in zip(cases, shipped_of):
                text, conf = choose(c)
                ok += text == c.truth
                fixed += text == c.truth != shipped_text
                broken += shipped_text == c.truth != text
                if conf >= threshold:
                    acc += 1
                    acc_ok += text == c.truth
            accs.append(100.0 * ok / max(len(cases), 1))
            n += len(cases)
        print(f"| {name} | " + " | ".join(f"{a:.2f}" for a in accs) + f" | {np.mean(accs):.2f} | "
              f"{100.0 * acc / max(n, 1):.1f}% ({100.0 * acc_ok / max(acc, 1):.2f}%) | +{fixed} / -{broken} |")
    print(f"# accepted: fusion's confidence at least {threshold} (the per-character threshold left out)")


def anatomy(cases: list[Case]) -> None:
    rows: Counter[tuple[str, str]] = Counter()
    for c in cases:
        f = c.fused()
        if f.reading.raw == c.truth:
            continue
        kind = "touching" if c.touching else "apart"
        weighed = {c.seg.raw, c.crnn.raw, *(a.raw for a in c.alts)}
        if f.agree:
            why = "both readers read the same wrong text"
        elif c.truth in weighed:
            who = {c.seg.raw: "segmentation's", c.crnn.raw: "the string reader's"}.get(c.truth, "an alternative's")
            why = f"the truth was {who} reading, not chosen"
        else:
            ranked = sorted(c.near, key=lambda t: -c.near[t])
            rank = ranked.index(c.truth) if c.truth in c.near else None
            where = ("not a neighbour" if rank is None
                     else "the string reader's 2nd text" if rank == 1 else "its 3rd or later")
            opinion = "segmentation has an opinion" if seg_opinion(c, c.truth) is not None else "no opinion"
            why = f"truth not weighed: {where}, {opinion}"
        rows[(why, kind)] += 1
    print(f"| the {len(cases)} strings fused wrong: {sum(rows.values())} | apart | touching |")
    print("|---|---|---|")
    for why in sorted({w for w, _ in rows}):
        print(f"| {why} | {rows[(why, 'apart')]} | {rows[(why, 'touching')]} |")


def rules(sets: list[list[Case]]) -> None:
    """Fusion's own candidates under other weights for segmentation's merged and re-cut readings (stop 30), and a
    rule that takes the string reader's reading whenever segmentation found fewer digits than it reads."""
    # each rule chooses a text from the case and the shipped fusion's verdict on it (computed once per case)
    def merged_to_crnn(c: Case, f: Fused) -> str:
        if not f.agree and not c.cells and _count(c.seg.raw) < _count(c.crnn.raw):
            return c.crnn.raw
        return f.reading.raw

    variants: list[tuple[str, Callable[[Case, Fused], str]]] = [
        ("fusion (shipped: resplit 0.3, fewer_digits 0.3)", lambda c, f: f.reading.raw),
        ("the string reader alone", lambda c, f: c.crnn.raw),
        ("the string reader's reading where segmentation found fewer digits", merged_to_crnn)]

    def under(r: FusionRules) -> Callable[[Case, Fused], str]:
        return lambda c, f: c.fused(r).reading.raw

    for resplit in (1.0, 0.3, 0.1, 0.0):
        for fewer in (0.3, 0.1):
            variants.append((f"resplit {resplit}, fewer_digits {fewer}",
                             under(replace(RULES, resplit=resplit, fewer_digits=fewer))))
    print("| rule | " + " | ".join(f"set {i + 1}" for i in range(len(sets))) + " | mean | apart | touching |"
          " fixed / broken |")
    print("|---" * (len(sets) + 5) + "|")
    verdicts = [[c.fused() for c in cases] for cases in sets]
    for name, choose in variants:
        accs, fixed, broken = [], 0, 0
        right = {False: [0, 0], True: [0, 0]}
        for cases, verdicts_of in zip(sets, verdicts):
            ok = 0
            for c, f in zip(cases, verdicts_of):
                text, shipped = choose(c, f), f.reading.raw
                ok += text == c.truth
                right[c.touching][0] += text == c.truth
                right[c.touching][1] += 1
                fixed += text == c.truth != shipped
                broken += shipped == c.truth != text
            accs.append(100.0 * ok / max(len(cases), 1))
        share = {k: 100.0 * v[0] / max(v[1], 1) for k, v in right.items()}
        print(f"| {name} | " + " | ".join(f"{a:.2f}" for a in accs) + f" | {np.mean(accs):.2f} | "
              f"{share[False]:.2f} | {share[True]:.2f} | +{fixed} / -{broken} |")


def seg_errors(cases: list[Case]) -> None:
    """How segmentation misreads the apart strings: a wrong count, or the right count with digits misread."""
    kinds: Counter[str] = Counter()
    swaps: Counter[str] = Counter()
    apart = [c for c in cases if not c.touching]
    for c in apart:
        text = c.seg.raw.replace(" ", "")
        if text == c.truth:
            kinds["right"] += 1
        elif len(text) != len(c.truth):
            kinds["fewer digits" if len(text) < len(c.truth) else "more digits"] += 1
        else:
            kinds["right count, digits misread"] += 1
            swaps.update(f"{a}→{b}" for a, b in zip(c.truth, text) if a != b)
    print(f"| segmentation on {len(apart)} apart strings | strings |")
    print("|---|---|")
    for kind, k in kinds.most_common():
        print(f"| {kind} | {k} ({100.0 * k / max(len(apart), 1):.2f}%) |")
    print("# digits misread (truth→read), most frequent: " + ", ".join(f"{s} {k}" for s, k in swaps.most_common(10)))


def edit_kind(truth: str, read: str) -> str:
    """How a reading differs from the truth: digits changed in place, one left out (of a doubled digit or not),
    one added, or more."""
    if len(read) == len(truth):
        return f"{sum(a != b for a, b in zip(truth, read))} changed"
    if len(read) == len(truth) - 1:
        for i, ch in enumerate(truth):
            if truth[:i] + truth[i + 1 :] == read:
                doubled = ch in truth[max(0, i - 1) : i] + truth[i + 1 : i + 2]
                return "one left out of a doubled digit" if doubled else "one left out"
    if len(read) == len(truth) + 1 and any(read[:i] + read[i + 1 :] == truth for i in range(len(read))):
        return "one added"
    return "other"


def edits(cases: list[Case]) -> None:
    """What the wrong readings are made of (stop 32): mostly one digit read as another, where a better reader
    of single digits in context is what would help, not a better count."""
    kinds: dict[str, Counter[tuple[bool, str]]] = {"fused": Counter(), "string reader": Counter()}
    swaps: Counter[str] = Counter()
    for c in cases:
        for who, text in (("fused", c.fused().reading.raw), ("string reader", c.crnn.raw)):
            text = text.replace(" ", "")
            if text != c.truth:
                kind = edit_kind(c.truth, text)
                kinds[who][(c.touching, kind)] += 1
                if who == "fused" and kind == "1 changed":
                    swaps.update(f"{a}→{b}" for a, b in zip(c.truth, text) if a != b)
    names = sorted({k for cnt in kinds.values() for _, k in cnt})
    print(f"| the {len(cases)} strings: wrong readings | fused apart | fused touching | string reader apart | "
          "string reader touching |")
    print("|---|---|---|---|---|")
    for name in [*names, "all"]:
        cells = [sum(v for (t, k), v in kinds[who].items() if t == touching and name in (k, "all"))
                 for who in ("fused", "string reader") for touching in (False, True)]
        print(f"| {name} | " + " | ".join(map(str, cells)) + " |")
    print("# fused, one digit changed (truth→read), most frequent: "
          + ", ".join(f"{s} {k}" for s, k in swaps.most_common(10)))


def _load(paths: Sequence[str]) -> list[list[Case]]:
    return [pickle.loads(Path(p).read_bytes()) for p in paths]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("--split", choices=["val", "test"], default="val")
    rec.add_argument("--n", type=int, default=1500)
    rec.add_argument("--seed", type=int, default=1)
    rec.add_argument("--keep", type=int, default=40, help="neighbours kept per reading")
    rec.add_argument("--strings-model", default=None)
    rec.add_argument("--out", required=True)
    rep = sub.add_parser("replay")
    rep.add_argument("cases", nargs="+")
    rep.add_argument("--threshold", type=float, default=Options().review_threshold)
    ana = sub.add_parser("anatomy")
    ana.add_argument("cases", nargs="+")
    for name in ("rules", "seg-errors", "edits"):
        sub.add_parser(name).add_argument("cases", nargs="+")
    args = ap.parse_args()
    if args.cmd == "record":
        t = time.perf_counter()
        cases = record(args.split, args.n, args.seed, args.keep, args.strings_model)
        Path(args.out).write_bytes(pickle.dumps(cases))
        print(f"# {len(cases)} cases in {time.perf_counter() - t:.0f} s -> {args.out}", file=sys.stderr)
    elif args.cmd == "replay":
        replay(_load(args.cases), args.threshold)
    elif args.cmd == "rules":
        rules(_load(args.cases))
    elif args.cmd == "seg-errors":
        seg_errors([c for cases in _load(args.cases) for c in cases])
    elif args.cmd == "edits":
        edits([c for cases in _load(args.cases) for c in cases])
    else:
        anatomy([c for cases in _load(args.cases) for c in cases])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
