"""Digit strings read by segmentation alone, the CRNN alone, and both fused, on strings of MNIST *test* digits.

    python benchmarks/strings_accuracy.py --n 5000 --seed 0          # the figures in the string model's card
    python benchmarks/strings_accuracy.py --split val --seed 1       # held-out *training* digits (for tuning)

Each string has 3-8 digits drawn only from MNIST test images (never seen in training), on a generated strip of
paper (security patterns, printed box or ruled line, blur, noise, JPEG); every other string is asked to have
touching neighbours and the table is split by whether neighbours actually touch in the drawn ink. Every strip
goes through the pipeline's own field road (binarize, border removal, both readers, fusion) as a ``digits``
field without a length constraint. "accepted" is a field not marked needs_review at the shipped threshold.
A second table says how often the truth was there to be chosen: read by either reader, or among all the texts
fusion weighed (the most any fusion rule could reach with these readers). A third sets apart the strings that hold
an MNIST image the digit CNN misreads even as a clean 28×28 tile (ill-formed or mislabelled digits, which no
reader can be asked to get right), as a floor under the errors that better readers cannot remove.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
from common import machine, strings_generator, strings_page, table

import formocr.read as read_mod
from formocr.fusion import Fused, FusionRules, Reading, fuse
from formocr.normalize import normalize_digit
from formocr.options import Options
from formocr.pipeline import Pipeline
from formocr.recognize.modelfile import card_path
from formocr.synth.strings import PAPER_EFFECTS


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", choices=["test", "val"], default="test",
                    help="test: MNIST test digits; val: the 5000 training digits held out from string training")
    ap.add_argument("--strings-model", default=None)
    ap.add_argument("--digits-model", default=None,
                    help="digit CNN (default: the shipped one; with --split val, one trained with --split-seed 0 "
                         "has never seen the strings' digits)")
    ap.add_argument("--string-views", type=int, default=None,
                    help="widths the string reader reads each strip at (default: the pipeline's)")
    ap.add_argument("--clean-paper", action="store_true",
                    help="the same strings on plain paper: no pattern, box, rule, slant, blur, noise or JPEG")
    ap.add_argument("--without", default="",
                    help="paper effects to leave out, comma-separated (" + ", ".join(PAPER_EFFECTS) + "): the same "
                         "strings otherwise, to measure what each effect costs the readers")
    ap.add_argument("--dump", default=None, help="write every reading as JSON lines here")
    ap.add_argument("--write-card", action="store_true",
                    help="record the table in the string model's card under 'evaluation' (weights untouched)")
    args = ap.parse_args()

    without = frozenset(e for e in args.without.split(",") if e)
    if without - set(PAPER_EFFECTS):
        ap.error(f"--without: unknown effects {sorted(without - set(PAPER_EFFECTS))}")
    gen = strings_generator(args.split, without)
    views = {"string_views": args.string_views} if args.string_views is not None else {}
    pipe = Pipeline(Options(strings_model=args.strings_model, digits_model=args.digits_model,
                            **views))
    # Every text fusion weighs (both readings and the alternatives), so the table can say how often the truth was
    # there to be chosen at all: the most any fusion rule could reach with these readers.
    weighed: list[str] = []

    def spy(seg: Reading, crnn: Reading, seg_prob: Callable[[str], float | None], crnn_prob: Callable[[str], float],
            rules: FusionRules | None = None, cells: bool = False, alternatives: Sequence[Reading] = ()) -> Fused:
        weighed.extend([seg.raw, crnn.raw, *(alt.raw for alt in alternatives)])
        return fuse(seg, crnn, seg_prob, crnn_prob, rules or FusionRules(), cells, alternatives)

    read_mod.fuse = spy
    # the bank images the digit CNN misreads as clean MNIST tiles
    bank = gen.bank
    assert bank is not None
    clean_tiles = np.stack([normalize_digit(im) for im in bank.images])
    bank_labels = np.zeros(len(bank.images), np.int64)
    for d, idx in enumerate(bank.by_label):
        bank_labels[idx] = d
    misread = set(np.flatnonzero(pipe.classifier.probabilities(clean_tiles).argmax(1) != bank_labels).tolist())
    hard: dict[bool, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    stats: dict[tuple[int, bool], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    dump = open(args.dump, "w") if args.dump else None  # noqa: SIM115
    t0 = time.perf_counter()
    read_ms = 0.0
    for i in range(args.n):
        sample, clean = strings_page(gen, args.seed, i, clean=args.clean_paper)
        t = time.perf_counter()
        weighed.clear()
        res = pipe.reader.read(clean, [sample.region])[0].result
        read_ms += (time.perf_counter() - t) * 1000
        r = res.readings
        truth = sample.text
        row = stats[(len(truth), sample.touching)]
        row["n"] += 1
        row["seg"] += r["segmentation"]["raw"] == truth
        row["crnn"] += r["crnn"]["raw"] == truth
        row["fused"] += res.raw == truth
        h = hard[any(k in misread for k in sample.sources)]
        h["n"] += 1
        h["touching"] += sample.touching
        h["crnn"] += r["crnn"]["raw"] == truth
        h["fused"] += res.raw == truth
        row["agree"] += bool(r["agree"])
        row["either"] += truth in (r["segmentation"]["raw"], r["crnn"]["raw"])
        row["reachable"] += truth in weighed if weighed else res.raw == truth
        if not res.needs_review:
            row["accepted"] += 1
            row["accepted_ok"] += res.raw == truth
        if r["segmentation"]["confidence"] >= pipe.options.review_threshold:
            row["seg_accepted"] += 1
            row["seg_accepted_ok"] += r["segmentation"]["raw"] == truth
        if dump:
            dump.write(json.dumps({"i": i, "truth": truth, "touching": sample.touching, "raw": res.raw,
                                   "confidence": res.confidence, "needs_review": res.needs_review,
                                   "readings": r, "candidates": list(dict.fromkeys(weighed))}) + "\n")
    if dump:
        dump.close()
    seconds = time.perf_counter() - t0

    def line(label: str, rows: list[dict[str, int]]) -> list[object]:
        n = sum(r["n"] for r in rows)
        acc = sum(r["accepted"] for r in rows)
        pct = lambda k: 100.0 * sum(r[k] for r in rows) / max(n, 1)  # noqa: E731
        return [label, n, f"{pct('seg'):.2f}", f"{pct('crnn'):.2f}", f"{pct('fused'):.2f}", f"{pct('agree'):.1f}",
                f"{100.0 * acc / max(n, 1):.1f}",
                f"{100.0 * sum(r['accepted_ok'] for r in rows) / max(acc, 1):.2f}",
                f"{100.0 * sum(r['seg_accepted_ok'] for r in rows) / max(sum(r['seg_accepted'] for r in rows), 1):.2f}"]

    header = ["strings", "n", "segmentation %", "CRNN %", "fused %", "readers agree %", "accepted %",
              "correct when accepted %", "segmentation-only: correct when accepted %"]
    rows = []
    for length in range(3, 9):
        for touching in (False, True):
            rows.append(line(f"length {length}, {'touching' if touching else 'apart'}",
                             [stats[(length, touching)]]))
    rows.append(line("apart (all lengths)", [v for (_, t), v in stats.items() if not t]))
    rows.append(line("touching (all lengths)", [v for (_, t), v in stats.items() if t]))
    rows.append(line("all", list(stats.values())))
    paper = " on clean paper" if args.clean_paper else ""
    paper += f" without {', '.join(sorted(without))}" if without else ""
    print(f"# strings of MNIST {args.split} digits{paper}, n={args.n}, seed={args.seed}; {machine()}")
    print(f"# models: {pipe.models}; review threshold {pipe.options.review_threshold}")
    print(table(header, rows))
    print("\n# how often the truth was there to choose: by either reader, or among all the texts fusion weighed")
    ceiling = []
    for label, keep in (("apart", False), ("touching", True), ("all", None)):
        rows_ = [v for (_, t), v in stats.items() if keep is None or t == keep]
        n = max(sum(v["n"] for v in rows_), 1)
        ceiling.append([label, n] + [f"{100.0 * sum(v[k] for v in rows_) / n:.2f}"
                                      for k in ("fused", "either", "reachable")])
    print(table(["strings", "n", "fused %", "segmentation or CRNN right %", "truth among fusion's candidates %"],
                ceiling))
    print(f"\n# strings holding an image the digit CNN misreads as a clean MNIST tile ({len(misread)} of "
          f"{len(bank.images)} images)")
    print(table(["strings", "n", "touching", "CRNN %", "fused %"],
                [[label, v["n"], v["touching"], f"{100.0 * v['crnn'] / max(v['n'], 1):.2f}",
                  f"{100.0 * v['fused'] / max(v['n'], 1):.2f}"]
                 for label, v in (("with such an image", hard[True]), ("without", hard[False]))]))
    print(f"# {seconds:.0f} s in all; reading (both readers + fusion) {read_ms / max(args.n, 1):.1f} ms per string")
    if args.write_card:
        assert pipe.strings is not None
        path = card_path(pipe.strings.loaded.path)
        card = json.loads(path.read_text("utf-8"))
        card["evaluation"] = {
            "command": "python benchmarks/strings_accuracy.py " + " ".join(sys.argv[1:]).replace(" --write-card", ""),
            "data": f"{args.n} strings of 3-8 MNIST {args.split} digits{paper}, half asked to touch; seed {args.seed}",
            "review_threshold": pipe.options.review_threshold,
            "columns": header, "rows": rows, "ms_per_string": round(read_ms / max(args.n, 1), 2),
        }
        path.write_text(json.dumps(card, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
