"""End-to-end seconds per page of `formocr scan` next to `pdftoppm` alone on the same page.

    python benchmarks/pipeline_speed.py --runs 7

Three 300-dpi pages are generated and saved as one-page PDFs: a cheque, the 30-field numeric form, and a
handwriting-sample form (formocr.synth.layouts.sample_form_layout: 30 digit boxes, two long boxes of handwritten
letters, printed paragraphs) that no built-in template describes. Each is (1) rasterized by `pdftoppm -r 300` to a
PPM file, and (2) read by the pipeline end to end as `formocr scan page.pdf` reads it, no template given (load
through poppler, preprocess, template choice or automatic field finding, segment, normalize, classify, assemble,
JSON); the handwriting-sample page is also read with ``--template auto`` (no template choice). The models are
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
from formocr.synth.layouts import layout_values, sample_form_layout


def _page(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, str]]:
    if kind == "sample form":
        t = sample_form_layout(rng)
        values = layout_values(t, rng)
    else:
        t, values = load_template(kind), None
    page = render_form(t, values, rng, dpi=300, writer=Writer.random(rng), degrade=Degrade.random(rng, max_skew=3.0))
    return page.image, {k: v for k, v in page.values.items() if k.startswith(("field_", "f", "date", "amount",
                                                                               "account"))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--seed", type=int, default=77)
    args = ap.parse_args()
    pipes: dict[str | None, Pipeline] = {None: Pipeline(Options())}
    pipes["auto"] = Pipeline(Options(template="auto"), classifier=pipes[None].classifier, strings=pipes[None].strings)
    rows, stage_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, template in (("cheque", None), ("numeric_form", None), ("sample form", None),
                               ("sample form", "auto")):
            pipe = pipes[template]
            image, truth = _page(kind, np.random.default_rng(args.seed))
            pdf = Path(tmp) / f"{kind.replace(' ', '_')}.pdf"
            save_pdf([image], pdf, dpi=300)
            raster, full, stages = [], [], []
            for i in range(args.runs + 1):
                t = time.perf_counter()
                subprocess.run(["pdftoppm", "-r", "300", str(pdf), str(Path(tmp) / f"r{i}")], check=True)
                raster.append(time.perf_counter() - t)
                t = time.perf_counter()
                doc = pipe.scan(pdf)
                json.dumps(doc.to_dict())
                full.append(time.perf_counter() - t)
                stages.append(doc.timings_ms)
            r, f = statistics.median(raster[1:]), statistics.median(full[1:])
            right = sum(fr.value == truth.get(fr.name) for fr in doc.fields if fr.name in truth)
            name = kind if template is None else f"{kind}, --template {template}"
            rows.append([name, doc.pages[0].template, f"{len(doc.fields)} ({right} right)", f"{r:.3f}", f"{f:.3f}",
                         f"{f / r:.1f}×"])
            med = {k: statistics.median(s.get(k, 0.0) for s in stages[1:]) for k in stages[-1]}
            stage_rows.append([name, *(f"{med.get(k, 0.0):.0f}" for k in STAGES)])
    print(f"# 300-dpi pages, one PDF each; {machine()}; median of {args.runs} runs after a warm-up")
    print(table(["page", "read as", "fields", "pdftoppm -r 300 (s)", "formocr scan (s)", "ratio"], rows))
    print(table(["page (ms)", *STAGES], stage_rows))
    print(f"# peak RSS {peak_rss_mib():.0f} MiB")
    return 0


STAGES = ("load", "preprocess", "locate", "segment", "normalize", "classify", "strings", "assemble")


if __name__ == "__main__":
    raise SystemExit(main())
