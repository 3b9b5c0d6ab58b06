"""Could a learned scorer choose among fusion's candidates better than the hand-set rules? The check made at stop
25 (docs/string-reader-log.md "A cycle on painted strips, and a learned fusion (stop 25)").

    for s in 1 2 3 4; do python benchmarks/fusion_tune.py --held-out both --n 1500 --seed $s \\
        --cases runs/cases_s$s.pkl; done
    python benchmarks/experiments/fusion_rerank.py runs/cases_s1.pkl runs/cases_s2.pkl runs/cases_s3.pkl \\
        runs/cases_s4.pkl

Each candidate text of a disagreement (the two readings, the string reader's "joint" reading, segmentation
re-cut to the CRNN's count) gets a linear score over what fusion itself sees (each reader's probability of the
text, whether segmentation has an opinion of it, which reader proposed it, whether the field allows it, its digit
count against each reading's, each reading's own doubt). The weights maximise the likelihood of the true text
among the candidates (a conditional logit, L-BFGS, L2 penalty) on all case files but one, and are scored on the
one left out; the shipped rules are scored on the same files. Prints one row per file left out.
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import table
from fusion_tune import Case  # noqa: F401  (the pickled cases are fusion_tune.Case objects)

from formocr.fusion import FusionRules, Reading, fuse


def _key(text: str) -> str:
    return text.replace(" ", "")


def _digits(text: str) -> int:
    return sum(ch.isdigit() for ch in text)


def candidates(c: Any) -> list[tuple[str, str, Reading]]:
    """Fusion's candidate texts for one case, as ``fuse`` builds them (one when the readers agree)."""
    if _key(c.seg.raw) == _key(c.crnn.raw):
        return [(c.seg.raw, "seg", c.seg)]
    out = [(c.seg.raw, "seg", c.seg), (c.crnn.raw, "crnn", c.crnn)]
    seen = {_key(c.seg.raw), _key(c.crnn.raw)}
    for a in c.alts:
        if _key(a.raw) not in seen:
            seen.add(_key(a.raw))
            out.append((a.raw, "resplit" if a.reader == "resplit" else "joint", a))
    return out


def features(c: Any) -> tuple[np.ndarray, list[str]]:
    rows, texts = [], []
    ns, nc = _digits(c.seg.raw), _digits(c.crnn.raw)
    doubt_s, doubt_c = math.log(max(1 - c.seg.confidence, 1e-6)), math.log(max(1 - c.crnn.confidence, 1e-6))
    for text, kind, r in candidates(c):
        pc = c.crnn.confidence if kind == "crnn" else (r.confidence if kind == "joint" else c.crnn_p[text])
        ps = c.seg.confidence if kind == "seg" else (r.confidence if kind == "resplit" else c.seg_p[text])
        rows.append([math.log(max(pc, 1e-9)), math.log(max(ps if ps is not None else 1e-4, 1e-9)),
                     float(ps is None), kind == "seg", kind == "joint", kind == "resplit", float(r.valid),
                     _digits(text) - ns, _digits(text) - nc, float(ns < nc and kind == "seg"), float(ns < nc),
                     float(c.cells), doubt_c, doubt_s, (kind == "seg") * doubt_s, (kind == "crnn") * doubt_c])
        texts.append(text)
    return np.asarray(rows, np.float32), texts


def fit(cases: list[Any], l2: float) -> torch.Tensor:
    data = []
    for c in cases:
        f, texts = features(c)
        if c.truth in texts and len(texts) > 1:
            data.append((torch.from_numpy(f), texts.index(c.truth)))
    w = torch.zeros(data[0][0].shape[1])
    w[0] = w[1] = 1.0  # start from the product of the readers' probabilities
    w.requires_grad_(True)
    opt = torch.optim.LBFGS([w], max_iter=300, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        nll = torch.stack([-torch.log_softmax(f @ w, 0)[y] for f, y in data]).mean()
        loss = nll + l2 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach()


def learned(w: torch.Tensor, cases: list[Any]) -> float:
    right = 0
    for c in cases:
        f, texts = features(c)
        right += texts[int(torch.argmax(torch.from_numpy(f) @ w))] == c.truth
    return 100.0 * right / len(cases)


def shipped(cases: list[Any]) -> float:
    return 100.0 * float(np.mean([fuse(c.seg, c.crnn, c.seg_p.__getitem__, c.crnn_p.__getitem__, FusionRules(),
                                      c.cells, c.alts).reading.raw == c.truth for c in cases]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="+", type=Path, help="case files written by fusion_tune.py --cases (2 or more)")
    ap.add_argument("--l2", type=float, default=1e-3)
    args = ap.parse_args()
    torch.manual_seed(0)
    folds = [pickle.loads(p.read_bytes()) for p in args.cases]
    rows, sums = [], np.zeros(5)
    for i, held in enumerate(folds):
        w = fit([c for j, f in enumerate(folds) if j != i for c in f], args.l2)
        either = 100.0 * float(np.mean([c.truth in (c.seg.raw, c.crnn.raw) for c in held]))
        reach = 100.0 * float(np.mean([c.truth in [t for t, _, _ in candidates(c)] for c in held]))
        crnn = 100.0 * float(np.mean([c.crnn.raw == c.truth for c in held]))
        vals = np.array([crnn, shipped(held), learned(w, held), either, reach])
        sums += vals
        rows.append([args.cases[i].name, str(len(held)), *(f"{v:.2f}" for v in vals)])
    rows.append(["mean", "", *(f"{v / len(folds):.2f}" for v in sums)])
    print(table(["left out", "strings", "CRNN alone %", "shipped rules %", "learned scorer %", "either reader %",
                 "truth among candidates %"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
