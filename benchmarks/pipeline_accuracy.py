"""Field and digit accuracy of `formocr scan` on freshly generated synthetic scanned pages.

    python benchmarks/pipeline_accuracy.py --pages 200 --seed 9000

Pages cycle through the built-in templates (cheque, envelope, numeric_form); every page has a new random
writer, skew up to ±5°, noise, blur, uneven light and JPEG artefacts (formocr.synth.Degrade.random). Seeds
start at --seed, far from the committed samples' seeds (101-405). Pages go to the pipeline as 300-dpi arrays
(the rasterization step is measured by pipeline_speed.py).

    python benchmarks/pipeline_accuracy.py --pages 60 --write scans/    # also keep each page and its truth

With --write, every page is also saved as a 300-dpi PNG with its truth file (samples' format), so the same pages
can go through `formocr batch` and `formocr eval results` as a user's own keyed scans would.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import HANDS, hands_source, levenshtein, machine, table

from formocr.layout.template import load_template
from formocr.options import Options
from formocr.pipeline import Pipeline
from formocr.synth import Degrade, Writer, render_form, write_truth


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=200)
    ap.add_argument("--seed", type=int, default=9000)
    ap.add_argument("--max-skew", type=float, default=5.0)
    ap.add_argument("--hands", choices=HANDS, default="strokes",
                    help="who writes the digits: the stroke renderer, MNIST test digits, or one CVL validation writer "
                         "a page (real handwriting)")
    ap.add_argument("--templates", default="cheque,envelope,numeric_form")
    ap.add_argument("--model", default=None, help="digit model (default: the shipped one)")
    ap.add_argument("--strings-model", default=None, help="string model (default: the shipped one)")
    ap.add_argument("--show-errors", action="store_true")
    ap.add_argument("--write", type=Path, default=None,
                    help="also save every page here as page-SEED.png with page-SEED.truth.json")
    args = ap.parse_args()
    if args.write:
        args.write.mkdir(parents=True, exist_ok=True)

    names = args.templates.split(",")
    templates = {n: load_template(n) for n in names}
    pipe = Pipeline(Options(digits_model=args.model, strings_model=args.strings_model))
    stats: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    t0 = time.perf_counter()
    for i in range(args.pages):
        name = names[i % len(names)]
        rng = np.random.default_rng(args.seed + i)
        page = render_form(templates[name], None, rng, dpi=300, writer=Writer.random(rng),
                           degrade=Degrade.random(rng, max_skew=args.max_skew),
                           digits=hands_source(args.hands, args.seed + i))
        doc = pipe.scan(page.image)
        if args.write:
            stem = f"page-{args.seed + i}"
            Image.fromarray(page.image).save(args.write / f"{stem}.png", dpi=(300, 300))
            write_truth(args.write / f"{stem}.truth.json", f"{stem}.png", [page], args.seed + i)
        for f in doc.fields:
            truth = page.values[f.name]
            got = f.value or ""
            ok = got == truth
            want_digits = "".join(c for c in truth if c.isdigit())
            got_digits = "".join(c for c in got if c.isdigit())
            for key in (name, f.type, "all"):
                s = stats[key]
                s["fields"] += 1
                s["correct"] += ok
                s["digits"] += len(want_digits)
                s["digit_errors"] += levenshtein(got_digits, want_digits)
                s["accepted"] += not f.needs_review
                s["accepted_correct"] += ok and not f.needs_review
            if not ok and args.show_errors:
                print(f"page {i} seed {args.seed + i} {name}.{f.name}: got {got!r} want {truth!r} "
                      f"conf {f.confidence:.3f} review {f.needs_review}", file=sys.stderr)
    elapsed = time.perf_counter() - t0
    rows = []
    for key, s in sorted(stats.items(), key=lambda kv: (kv[0] == "all", kv[0])):
        acc_ok = s["accepted_correct"] / s["accepted"] if s["accepted"] else float("nan")
        rows.append([key, int(s["fields"]), s["correct"] / s["fields"], 1 - s["digit_errors"] / max(1, s["digits"]),
                     s["accepted"] / s["fields"], acc_ok])
    print(f"# pipeline accuracy: {args.pages} synthetic pages, seeds {args.seed}..{args.seed + args.pages - 1}, "
          f"skew ≤ ±{args.max_skew}°, model {pipe.classifier.identity}, "
          f"strings {pipe.strings.identity if pipe.strings else None}")
    print(f"# {machine()}; {elapsed:.0f} s in all ({elapsed / args.pages:.2f} s/page incl. generation)")
    print(table(["group", "fields", "field acc", "digit acc", "accepted", "acc. when accepted"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
