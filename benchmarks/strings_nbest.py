"""Where the string reader misreads a string, how highly does it rank the truth among one-edit neighbours?

    python benchmarks/strings_nbest.py --split val --seed 2 --n 1500

Reads the benchmark's strings (the same generator, seeds and field road as ``strings_accuracy.py``) with the string
reader alone. For each misread string it scores, by the reader's own P(text | strip) (mean over members and views),
its reading and every text one edit away (one digit changed, dropped or added), and reports where the truth
ranks. A truth ranked second by the reader is a text fusion could pick if another reader spoke for it; a truth
beyond one edit is out of reach of any re-ranking of this kind. Use ``--split val`` (held-out training digits)
when the figures are to guide a design, so that the test strings stay unseen.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, strings_generator, strings_page, table

from formocr.fields import constraint_for
from formocr.options import Options
from formocr.pipeline import Pipeline
from formocr.segment import field_cut

DIGITS = "0123456789"
RANKS = ("2", "3", "4-10", ">10", "more than one edit away")


def one_edit(text: str) -> set[str]:
    """Every digit text one substitution, deletion or insertion of a digit away from ``text``."""
    out = set()
    for i in range(len(text)):
        out.add(text[:i] + text[i + 1 :])
        out.update(text[:i] + d + text[i + 1 :] for d in DIGITS)
    for i in range(len(text) + 1):
        out.update(text[:i] + d + text[i:] for d in DIGITS)
    out.discard(text)
    return out


def rank_bucket(rank: int | None) -> str:
    if rank is None:
        return RANKS[-1]
    return str(rank) if rank <= 3 else "4-10" if rank <= 10 else ">10"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--split", choices=["test", "val"], default="val")
    ap.add_argument("--strings-model", default=None)
    args = ap.parse_args()

    gen = strings_generator(args.split)
    pipe = Pipeline(Options(strings_model=args.strings_model))
    reader = pipe.strings
    if reader is None:
        raise SystemExit("this benchmark needs a string model")
    n = Counter[str]()
    wrong = Counter[str]()
    ranks = Counter[tuple[str, str]]()
    t0 = time.perf_counter()
    for i in range(args.n):
        sample, clean = strings_page(gen, args.seed, i)
        kind = "touching" if sample.touching else "apart"
        n[kind] += 1
        ink, box, lines = field_cut(clean, sample.region)  # as the pipeline reads a field (border_out too)
        gray = clean.gray[box.y : box.y2, box.x : box.x2]
        strips, _ = reader.field_strips(ink, sample.region.box.h, sample.dpi, gray, lines=lines)
        ev = reader.evidence([strips])[0]
        got = reader.decode(ev, constraint_for(sample.region.type, sample.region.constraints)).text
        if got == sample.text:
            continue
        wrong[kind] += 1
        rank = None
        if sample.text in one_edit(got):
            cands = [got, *sorted(one_edit(got))]
            scores = {c: reader.score(ev, c) for c in cands}
            rank = sorted(cands, key=lambda c: -scores[c]).index(sample.text) + 1
        ranks[(kind, rank_bucket(rank))] += 1
    rows = []
    for kind in ("apart", "touching", "all"):
        kinds = ("apart", "touching") if kind == "all" else (kind,)
        total = sum(n[k] for k in kinds)
        misread = sum(wrong[k] for k in kinds)
        by = [sum(ranks[(k, r)] for k in kinds) for r in RANKS]
        top3 = by[0] + by[1]
        rows.append([kind, total, misread, *by, f"{100.0 * (total - misread) / max(total, 1):.2f}",
                     f"{100.0 * (total - misread + top3) / max(total, 1):.2f}"])
    print(f"# strings of MNIST {args.split} digits, n={args.n}, seed={args.seed}; {machine()}")
    print(f"# string model: {reader.identity}; rank of the truth among the reader's reading and its one-edit "
          "neighbours, where the reading is wrong")
    print(table(["strings", "n", "misread", *(f"truth ranked {r}" for r in RANKS[:4]), RANKS[4],
                 "reader right %", "truth in the reader's top 3 %"], rows))
    print(f"# {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
