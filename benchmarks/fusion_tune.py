"""Tune the fusion rules on held-out *training* digits, never on the test strings the string benchmark reports.

    python benchmarks/fusion_tune.py --n 3000 --seed 1
    python benchmarks/fusion_tune.py --n 1500 --seed 1 --held-out both     # digits new to both readers
    python benchmarks/fusion_tune.py --n 3000 --seed 1 --held-out both --digits-model runs/digits-s0.safetensors

Reads ``--n`` strings of 3-8 digits from the 5000 MNIST training images held out of string training (the
``val`` split of ``strings_accuracy.py``), or with ``--held-out both`` from those the digit CNN
did not learn from either (see ``held_out``; for a digit model whose members all hold out ``--split-seed 0``,
that is all 5000), records what fusion sees for each (both readings, the alternatives,
and each reader's probability of every candidate text), then replays fusion offline for a grid of
``FusionRules`` and prints, per rule set and review threshold: string accuracy, the share accepted, and the accuracy
of the accepted strings. Also printed: how often the truth was among the candidates at all (the most any rule
could reach). The shipped rules are marked.

    python benchmarks/fusion_tune.py --n 1500 --seed S --held-out both --cases runs/cases-S.pkl   # S = 1..4, then
    python benchmarks/fusion_tune.py --cases runs/cases-1.pkl,runs/cases-2.pkl,runs/cases-3.pkl,runs/cases-4.pkl \
        --sweep 0.99,0.98,0.95,0.93,0.9,0.85,0.8

``--cases`` naming several recorded files pools them; ``--sweep`` also replays the shipped rules at each review
threshold given: how many strings it accepts, how many of those are wrong, and the low end of the 95% (Wilson)
interval of their accuracy, as ``formocr eval results`` reports it for a user's own scans.
"""

from __future__ import annotations

import argparse
import itertools
import pickle
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bank_generator, machine, record_fusion, strings_page, table

from formocr.data.mnist import load_split
from formocr.fusion import FusionRules, Reading, fuse
from formocr.options import Options
from formocr.pipeline import Pipeline
from formocr.recognize.digits import DEFAULT_MODEL as DIGITS_MODEL
from formocr.recognize.modelfile import load_model
from formocr.score import wilson_low
from formocr.train.splits import digit_cnn_split, held_out_split


@dataclass
class Case:
    truth: str
    touching: bool
    seg: Reading
    crnn: Reading
    alts: tuple[Reading, ...]
    cells: bool
    seg_p: dict[str, float | None]
    crnn_p: dict[str, float]


def held_out(n: int, both: bool, digits_model: str | None = None) -> np.ndarray:
    """Training images held out of string training (seed 0), and with ``both`` also out of digit CNN training.

    The digit CNN learnt from all but its own 5000 validation images, so on the string trainer's held-out digits
    segmentation reads digits it has seen; their intersection is new to both readers: all 5000 for the shipped
    digit ensemble and any digit CNN trained with ``--split-seed 0``, 413 for a network whose split was drawn from
    its seed. The strings' part is fixed by ``formocr-train strings
    --split-seed`` (0, for every member of the shipped model).
    """
    val_idx = held_out_split(n, 0)[0]
    if not both:
        return val_idx
    return np.intersect1d(val_idx, digit_cnn_held_out(n, digits_model))


def digit_cnn_held_out(n: int, digits_model: str | None = None) -> np.ndarray:
    """The digit CNN's held-out images (the shipped one unless given), as its card records them; for an
    ensemble, the images every member held out."""
    training = load_model(digits_model or DIGITS_MODEL).card["training"]
    held: np.ndarray | None = None
    for t in training.get("members", [{"training": training}]):
        tr = t["training"]
        split_seed = tr["data"].get("held_out", {}).get("split_seed")
        mine = digit_cnn_split(n, tr["seed"], tr.get("val_size", 5000), split_seed)[0]
        held = mine if held is None else np.intersect1d(held, mine)
    assert held is not None
    return held


def _record(n: int, seed: int, both: bool = False, strings_model: str | None = None,
            digits_model: str | None = None) -> list[Case]:
    s = load_split("train")
    idx = held_out(len(s.images), both, digits_model)
    gen = bank_generator(s.images[idx], s.labels[idx])
    pipe = Pipeline(Options(strings_model=strings_model, digits_model=digits_model))
    seen: list[dict[str, Any]] = []

    record_fusion(seen)
    cases = []
    for i in range(n):
        sample, clean = strings_page(gen, seed, i)
        seen.clear()
        pipe.reader.read(clean, [sample.region])
        if len(seen) != 1:  # one reader had nothing to say: fusion was not asked
            continue
        cases.append(Case(sample.text, sample.touching, **seen[0]))
    return cases


def _replay(cases: list[Case], rules: FusionRules, threshold: float, char_threshold: float
            ) -> tuple[int, int, int]:
    """Strings fused right, accepted, and accepted and right."""
    ok = acc = acc_ok = 0
    for c in cases:
        f = fuse(c.seg, c.crnn, c.seg_p.__getitem__, c.crnn_p.__getitem__, rules, c.cells, c.alts)
        right = f.reading.raw == c.truth
        ok += right
        if f.confidence >= threshold and all(ch.p >= char_threshold for ch in f.reading.chars):
            acc += 1
            acc_ok += right
    return ok, acc, acc_ok


def _percent(ok: int, acc: int, acc_ok: int, n: int) -> tuple[float, float, float]:
    """Fused right and accepted, as percentages of ``n`` strings, and right among the accepted."""
    return 100.0 * ok / n, 100.0 * acc / n, 100.0 * acc_ok / max(acc, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threshold", type=float, default=Options().review_threshold, help="the shipped one")
    ap.add_argument("--held-out", choices=["strings", "both"], default="strings",
                    help="digits held out of string training only, or of both models' training (all 5000 with the "
                         "shipped digit ensemble)")
    ap.add_argument("--strings-model", default=None)
    ap.add_argument("--digits-model", default=None,
                    help="a digit CNN other than the shipped one; with --held-out both, its card's held-out images")
    ap.add_argument("--resplit", default="1",
                    help="comma-separated values of FusionRules.resplit to cross with the grid (default: 1 only)")
    ap.add_argument("--cases", default=None,
                    help="a pickle of the recorded cases: read when it exists (same --n, --seed and models), "
                         "else written, so a second grid costs no reading; several, comma-separated and all "
                         "recorded, are pooled")
    ap.add_argument("--sweep", default=None,
                    help="comma-separated review thresholds to replay the shipped rules at (accepted, wrong, "
                         "Wilson low end)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    recorded = [Path(c) for c in args.cases.split(",")] if args.cases else []
    if recorded and all(c.exists() for c in recorded):
        cases = [case for c in recorded for case in pickle.loads(c.read_bytes())]
    elif len(recorded) > 1:
        ap.error("--cases: files to pool must all exist (record each with its own --seed first)")
    else:
        cases = _record(args.n, args.seed, args.held_out == "both", args.strings_model, args.digits_model)
        if args.cases:
            Path(args.cases).write_bytes(pickle.dumps(cases))
    n = max(len(cases), 1)
    reachable = 100.0 * sum(c.truth in {c.seg.raw, c.crnn.raw, *(a.raw for a in c.alts)} for c in cases) / n
    shipped = FusionRules()
    char_threshold = Options().char_review_threshold
    rows = []
    resplits = [float(v) for v in args.resplit.split(",")]
    grid = itertools.product((0.05, 0.1, 0.2), (0.8, 0.9), (1.0, 0.75, 0.5), (1.0, 0.3, 0.1), resplits,
                             (0.95, 0.98))
    for no_op, corr, power, fewer, resplit, threshold in grid:
        rules = FusionRules(no_opinion=no_op, invalid_penalty=shipped.invalid_penalty, corroborate=corr,
                            agree_power=power, fewer_digits=fewer, resplit=resplit)
        a, share, good = _percent(*_replay(cases, rules, threshold, char_threshold), n)
        mark = " (shipped)" if rules == shipped and threshold == args.threshold else ""
        rows.append([f"{no_op:g}{mark}", f"{corr:g}", f"{power:g}", f"{fewer:g}", f"{resplit:g}", f"{threshold:g}",
                     f"{a:.2f}",
                     f"{share:.1f}", f"{good:.2f}"])
    if len(recorded) > 1:  # what they were recorded from is in the command that recorded them
        drawn = f"recorded in {args.cases}"
    else:
        held = "digit CNN and string" if args.held_out == "both" else "string"
        drawn = f"of training digits held out of {held} training, seed {args.seed}"
    print(f"# fusion rules replayed on {len(cases)} strings {drawn}; {machine()}")
    print(f"# truth among the candidates: {reachable:.2f}%; shipped review threshold {args.threshold}")
    print(table(["no_opinion", "corroborate", "agree_power", "fewer_digits", "resplit", "threshold", "fused %",
                 "accepted %",
                 "correct when accepted %"], rows))
    if args.sweep:
        sweep = []
        for threshold in sorted({float(v) for v in args.sweep.split(",")}, reverse=True):
            ok, acc, acc_ok = _replay(cases, shipped, threshold, char_threshold)
            a, share, good = _percent(ok, acc, acc_ok, n)
            low = wilson_low(acc_ok, acc)
            sweep.append([f"{threshold:g}", f"{a:.2f}", f"{share:.1f}", str(acc - acc_ok), f"{good:.2f}",
                          "-" if low is None else f"{100.0 * low:.2f}"])
        print(f"\n# shipped rules at each review threshold, {len(cases)} strings; character threshold {char_threshold}")
        print(table(["threshold", "fused %", "accepted %", "accepted wrong", "correct when accepted %",
                     "low end 95% %"], sweep))
    print(f"# {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
