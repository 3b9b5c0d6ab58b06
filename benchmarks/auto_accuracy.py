"""Automatic mode (no template) against template mode, on random numeric forms nobody has seen.

    OMP_NUM_THREADS=1 python benchmarks/auto_accuracy.py --forms 300 --seed 20000

Each form is a new random layout (formocr.synth.layouts.random_layout: A4 or letter; boxes, combs of 4-10
cells, underlined blanks; labels; printed paragraphs, headings, tables with printed figures, ruled lists and
empty fields as decoys), filled in by a new random writer and scanned with Degrade.random (skew up to ±5°,
shift, blur, noise, uneven light, JPEG half the time).

* detection: a filled field is found when a reported field overlaps its true box (mapped into the deskewed
  frame) with IoU >= 0.5; a reported field matching no filled field is spurious;
* reading: exact value. Automatic mode reads the fields formocr.layout.detect.find_fields found with the
  pipeline's FieldReader; template mode runs formocr.pipeline.Pipeline(Options(template=...)) with the
  form's own template (its real fields, filled or empty, written to a temporary JSON file).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import HANDS, hands_source, machine, table

from formocr.layout.detect import find_fields
from formocr.objects import Box, Page
from formocr.options import Options
from formocr.pipeline import Pipeline
from formocr.preprocess import preprocess
from formocr.synth import Degrade, Writer, render_form
from formocr.synth.layouts import fillable, layout_values, random_layout


def iou(a: Box, b: Box) -> float:
    x0, y0, x1, y1 = max(a.x, b.x), max(a.y, b.y), min(a.x2, b.x2), min(a.y2, b.y2)
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / float(a.area + b.area - inter) if inter else 0.0


def deskewed_box(box: Box, skew: float, offset: tuple[int, int], measured: float, w: int, h: int) -> Box:
    """A template box after the synthetic scan (rotation + shift) and the pipeline's deskew."""
    m = cv2.getRotationMatrix2D((w / 2, h / 2), skew, 1.0)
    m[:, 2] += offset
    d = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), -measured, 1.0)
    c = np.array([box.x + box.w / 2, box.y + box.h / 2, 1.0])
    c2 = d @ np.append(m @ c, 1.0)
    return Box(round(c2[0] - box.w / 2), round(c2[1] - box.h / 2), box.w, box.h)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--forms", type=int, default=300)
    ap.add_argument("--seed", type=int, default=20000)
    ap.add_argument("--max-skew", type=float, default=5.0)
    ap.add_argument("--hands", choices=HANDS, default="strokes",
                    help="who writes the digits: the stroke renderer, MNIST test digits, or one CVL validation writer "
                         "a page (real handwriting)")
    ap.add_argument("--show-errors", action="store_true")
    args = ap.parse_args()

    base = Pipeline(Options())
    stats: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    find_ms: list[float] = []
    reported = spurious = 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.forms):
            seed = args.seed + i
            rng = np.random.default_rng(seed)
            layout = random_layout(rng)
            values = layout_values(layout, rng)
            synth = render_form(
                layout,
                values,
                rng,
                dpi=300,
                writer=Writer.random(rng),
                degrade=Degrade.random(rng, max_skew=args.max_skew),
                digits=hands_source(args.hands, seed),
            )
            page = Page(0, synth.image, 300.0, f"seed{seed}")
            # automatic mode
            clean = preprocess(page, base.pre)
            t1 = time.perf_counter()
            regions = find_fields(clean)
            find_ms.append((time.perf_counter() - t1) * 1000)
            works = base.reader.read(clean, regions)
            auto = {w.region.name: (w.region, w.result.value or "") for w in works}
            # template mode, through the existing pipeline
            path = Path(tmp) / f"form{seed}.json"
            path.write_text(json.dumps(fillable(layout).to_dict()), encoding="utf-8")
            pipe = Pipeline(Options(template=str(path)), classifier=base.classifier, strings=base.strings)
            doc = pipe.scan(synth.image)
            by_template = {f.name: f.value or "" for f in doc.fields}
            # score
            H, W = synth.image.shape[:2]
            truth = {f.name: f for f in layout.fields if values[f.name]}
            matched: set[str] = set()
            for name, f in truth.items():
                tb = deskewed_box(f.region(300).box, synth.skew_deg, synth.offset_px, clean.skew_deg, W, H)
                best, best_iou = None, 0.5
                for rname, (r, _) in auto.items():
                    v = iou(r.box, tb)
                    if rname not in matched and v >= best_iou:
                        best, best_iou = rname, v
                want = values[name]
                got = auto[best][1] if best else None
                if best:
                    matched.add(best)
                for key in (f.style, "all"):
                    s = stats[key]
                    s["truth"] += 1
                    s["found"] += best is not None
                    s["auto_ok"] += got == want
                    s["tmpl_ok"] += by_template.get(name) == want
                if args.show_errors and got != want:
                    print(
                        f"seed {seed} {name} ({f.style}): auto {got!r} template {by_template.get(name)!r} "
                        f"want {want!r}",
                        file=sys.stderr,
                    )
            reported += len(auto)
            spurious += len(set(auto) - matched)
            if args.show_errors:
                for rname in sorted(set(auto) - matched):
                    print(f"seed {seed} spurious {rname} {auto[rname][0].style} {auto[rname][0].box}", file=sys.stderr)
    elapsed = time.perf_counter() - t0
    rows = []
    for key in ("box", "comb", "line", "all"):
        s = stats[key]
        if not s["truth"]:
            continue
        rows.append(
            [
                key,
                int(s["truth"]),
                f"{100 * s['found'] / s['truth']:.2f}%",
                f"{100 * s['auto_ok'] / max(1, s['found']):.2f}%",
                f"{100 * s['auto_ok'] / s['truth']:.2f}%",
                f"{100 * s['tmpl_ok'] / s['truth']:.2f}%",
            ]
        )
    print(
        f"# automatic mode: {args.forms} random forms, seeds {args.seed}..{args.seed + args.forms - 1}, "
        f"skew ≤ ±{args.max_skew}°, models {base.models}"
    )
    print(
        f"# {machine()}; {elapsed:.0f} s in all; find_fields {np.median(find_ms):.0f} ms median, "
        f"{np.percentile(find_ms, 95):.0f} ms p95 per page"
    )
    print(f"# spurious fields: {spurious} of {reported} reported ({100 * spurious / max(1, reported):.2f}%)")
    print(
        table(["style", "filled fields", "found (IoU≥0.5)", "auto acc (found)", "auto acc (all)", "template acc"], rows)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
