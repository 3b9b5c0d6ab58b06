"""What the window judge would change, replayed over its rules: tried at stop 27, not on by default
(docs/string-reader-log.md "The window judge").

    python benchmarks/experiments/window_judge.py --windows-model runs/windows-cnn.safetensors --split val \
        --seeds 1,2 --keep 40

Each benchmark string (``strings_accuracy.py``'s strings, same seeds) goes through the pipeline's field road once,
with the judge recording instead of judging: the string reader's reading, its confidence, the texts one digit
changed from it (``StringReader.neighbours(..., changes_only=True)``) with their probabilities, and the window
model's log-probabilities at the reading's CTC centres. Then every (review gate, weight) pair is replayed: how many
readings the judge would fix and break. Also printed: how often the window model reads the right digit at the
centres of readings the string reader got right in length, and on the strings where segmentation and the string
reader disagree with the same count, how often the window model, and fusion, pick the truth.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import strings_generator, strings_page, table

import formocr.read as read_mod
from formocr.fusion import FusionRules
from formocr.options import Options
from formocr.pipeline import Pipeline
from formocr.recognize.windows import judge, window_evidence

GATES = (0.8, 0.9, 0.95, 0.99, 1.01)
WEIGHTS = (0.3, 0.5, 0.7, 1.0, 1.5)


def collect(split: str, seed: int, n: int, model: str, strings_model: str | None, keep: int
            ) -> list[dict[str, Any]]:
    gen = strings_generator(split)
    pipe = Pipeline(Options(windows_model=model, strings_model=strings_model))
    seen: dict[str, Any] = {}

    def record(self: read_mod.FieldReader, crnn: Any, constraint: Any, ev: Any, strips: Any) -> None:
        assert self.strings is not None and self.windows is not None
        if not crnn.raw:
            return None
        strip = strips.of(self.windows.spec.input, strict=True)
        if not strip:
            return None
        seen.update(crnn=crnn.raw, conf=crnn.confidence,
                    cands=self.strings.neighbours(ev, crnn.raw, constraint, keep=keep, changes_only=True),
                    lp=self.windows.log_probs(strip[0], self.strings.strip_centres(ev, crnn.raw)))
        return None

    read_mod.FieldReader._window_judged = record  # type: ignore[method-assign]
    rows = []
    for i in range(n):
        s, clean = strings_page(gen, seed, i)
        seen.clear()
        res = pipe.reader.read(clean, [s.region])[0].result
        rows.append({"truth": s.text, "fused": res.raw, "seg": res.readings["segmentation"]["raw"], **seen})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows-model", required=True)
    ap.add_argument("--strings-model", default=None)
    ap.add_argument("--split", choices=["test", "val"], default="val")
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--keep", type=int, default=FusionRules().window_keep,
                    help="candidates per reading, the reading included (the pipeline's window_keep)")
    args = ap.parse_args()
    rows = [r for s in args.seeds.split(",")
            for r in collect(args.split, int(s), args.n, args.windows_model, args.strings_model, args.keep)]
    crnn = sum(r.get("crnn") == r["truth"] for r in rows)
    print(f"{len(rows)} strings: string reader right {100 * crnn / len(rows):.2f}%, "
          f"fused {100 * sum(r['fused'] == r['truth'] for r in rows) / len(rows):.2f}%")
    ok = tot = 0
    for r in rows:
        if "lp" in r and len(r["crnn"]) == len(r["truth"]):
            tot += len(r["truth"])
            ok += sum(int(c) == int(p) for c, p in zip(r["truth"], r["lp"].argmax(1)))
    print(f"window model at the CTC centres (readings of the right length): {100 * ok / max(tot, 1):.2f}% of {tot}")
    out = []
    for g in GATES:
        line: list[object] = [g]
        for w in WEIGHTS:
            fixed = broken = 0
            for r in rows:
                if "cands" not in r or r["conf"] >= g or len(r["cands"]) < 2:
                    continue
                pick = judge(r["cands"], r["lp"], w)
                if pick != r["crnn"]:
                    fixed += pick == r["truth"]
                    broken += r["crnn"] == r["truth"]
            line.append(f"+{fixed} / -{broken}")
        out.append(line)
    print(table(["judged below", *(f"weight {w}" for w in WEIGHTS)], out))
    n = either = fused = window = 0
    for r in rows:
        if "lp" in r and r["seg"] != r["crnn"] and len(r["seg"]) == len(r["crnn"]):
            n += 1
            either += r["truth"] in (r["seg"], r["crnn"])
            fused += r["fused"] == r["truth"]
            pick = r["seg"] if window_evidence(r["seg"], r["lp"]) > window_evidence(r["crnn"], r["lp"]) else r["crnn"]
            window += pick == r["truth"]
    print(f"readers disagree, same count: {n} strings; either right {either}, fusion right {fused}, "
          f"window model's pick right {window}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
