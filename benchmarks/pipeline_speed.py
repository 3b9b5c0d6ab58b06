"""End-to-end seconds per page of `formocr scan` next to `pdftoppm` alone on the same page.

    python benchmarks/pipeline_speed.py --runs 7

A 300-dpi US-letter numeric form with 30 handwritten digit fields is generated, saved as a one-page PDF, and
then (1) rasterized by `pdftoppm -r 300 -gray` to a PGM file, and (2) read by the pipeline end to end (load
through pdf2image/poppler, preprocess, locate, segment, normalize, classify, assemble, JSON). The models are
loaded once beforehand, as in batch use. Median of --runs, after one warm-up run each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_mib, table

from formocr.layout.template import load_template
from formocr.options import Options
from formocr.pipeline import Pipeline
from formocr.synth import Degrade, Writer, render_form, save_pdf


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--seed", type=int, default=77)
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    page = render_form(load_template("numeric_form"), None, rng, dpi=300, writer=Writer.random(rng),
                       degrade=Degrade.random(rng, max_skew=3.0))
    with tempfile.TemporaryDirectory() as tmp:
        pdf = Path(tmp) / "form.pdf"
        save_pdf([page.image], pdf, dpi=300)
        raster = []
        for i in range(args.runs + 1):
            t = time.perf_counter()
            subprocess.run(["pdftoppm", "-r", "300", "-gray", str(pdf), str(Path(tmp) / f"r{i}")], check=True)
            raster.append(time.perf_counter() - t)
        pipe = Pipeline(Options(digits_model=args.model))
        full, stages = [], []
        for _ in range(args.runs + 1):
            t = time.perf_counter()
            doc = pipe.scan(pdf)
            json.dumps(doc.to_dict())
            full.append(time.perf_counter() - t)
            stages.append(doc.timings_ms)
    correct = sum(f.value == page.values[f.name] for f in doc.fields)
    r, f = statistics.median(raster[1:]), statistics.median(full[1:])
    print(f"# one 300-dpi letter page ({page.image.shape[1]}×{page.image.shape[0]}), {len(doc.fields)} fields "
          f"({correct} read right); {machine()}; median of {args.runs} runs after a warm-up")
    rows = [["pdftoppm -r 300 -gray (rasterize only)", f"{r:.3f}"], ["formocr scan, end to end", f"{f:.3f}"],
            ["ratio scan / pdftoppm", f"{f / r:.2f}"]]
    print(table(["what", "seconds per page"], rows))
    med = {k: statistics.median(s.get(k, 0.0) for s in stages[1:]) for k in stages[-1]}
    print(table(["stage", "ms (median)"], [[k, f"{v:.1f}"] for k, v in med.items()]))
    print(f"# peak RSS {peak_rss_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
