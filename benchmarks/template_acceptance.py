"""What registration scores pages of other layouts get against each built-in template, and pages of its own form.

    OMP_NUM_THREADS=1 python benchmarks/template_acceptance.py --strangers 200 --own 30

Strangers, none of them a built-in form: random numeric forms (formocr.synth.layouts.random_layout: boxes,
combs, underlined blanks, paragraphs, tables, ruled lists), handwriting-sample forms (sample_form_layout: 30
boxes, two long letter boxes, paragraphs), blank pages, and each built-in form's pages scored against the other
built-ins. Own: each built-in filled in by a new writer and scanned with Degrade.random (skew, shift, blur,
noise, stamps and scribbles), plus the committed samples. Pages at --dpi (registration works at 25-100 dpi
inside, whatever the scan's resolution).

For each (template, set): how many pages register at all (quality >= MIN_QUALITY), the lowest and highest
quality, and the lowest and highest share of the template's fields whose frames are found; then how many the
automatic choice accepts (formocr.layout.locate: ACCEPT_QUALITY and ACCEPT_FIELDS). The acceptance is set
between what strangers reach and what own pages reach.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

from common import machine, table

from formocr.errors import RegistrationError
from formocr.io import load_pages
from formocr.layout.locate import ACCEPT_FIELDS, ACCEPT_QUALITY, accepts
from formocr.layout.register import register
from formocr.layout.registration import Registration
from formocr.layout.strokes import page_lines
from formocr.layout.template import BUILTIN, load_template
from formocr.objects import Page
from formocr.preprocess import PreprocessOptions, preprocess
from formocr.synth import Degrade, Writer, render_form
from formocr.synth.layouts import layout_values, random_layout, sample_form_layout

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _scores(image: np.ndarray, dpi: float) -> dict[str, Registration]:
    clean = preprocess(Page(0, image, dpi, "bench"), PreprocessOptions())
    lines = page_lines(clean)
    out = {}
    for name in BUILTIN:
        with contextlib.suppress(RegistrationError):
            out[name] = register(clean, load_template(name), lines)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strangers", type=int, default=200, help="generated pages of other layouts")
    ap.add_argument("--own", type=int, default=30, help="generated pages of each built-in form")
    ap.add_argument("--dpi", type=int, default=150)
    ap.add_argument("--seed", type=int, default=60000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    seen: dict[tuple[str, str], list[Registration]] = defaultdict(list)
    pages: dict[str, int] = defaultdict(int)

    def add(kind: str, image: np.ndarray, dpi: float, own: str | None = None) -> None:
        pages[kind] += 1
        for name, reg in _scores(image, dpi).items():
            seen[(name, "own" if name == own else kind)].append(reg)

    for i in range(args.strangers):
        rng = np.random.default_rng(args.seed + i)
        kind = "random form" if i % 2 == 0 else "sample form"
        lay = random_layout(rng) if i % 2 == 0 else sample_form_layout(rng)
        sp = render_form(lay, layout_values(lay, rng), rng, dpi=args.dpi, writer=Writer.random(rng),
                         degrade=Degrade.random(rng))
        add(kind, sp.image, args.dpi)
    for size in ((1275, 1650), (1650, 1275), (1240, 620)):
        add("blank page", np.full(size[::-1], 235, np.uint8), args.dpi)
    for name in BUILTIN:
        t = load_template(name)
        for i in range(args.own):
            rng = np.random.default_rng(args.seed + 100_000 + i)
            sp = render_form(t, None, rng, dpi=args.dpi, writer=Writer.random(rng), degrade=Degrade.random(rng))
            add(f"{name} pages", sp.image, args.dpi, own=name)
    for path in sorted(SAMPLES.glob("*.*")):
        if path.suffix in (".pdf", ".png", ".tiff"):
            own = path.stem if path.stem in BUILTIN else None
            for page in load_pages(path, dpi=args.dpi):
                add("samples", page.image, page.dpi, own=own)
    rows = []
    for (name, kind), regs in sorted(seen.items()):
        q = [r.quality for r in regs]
        f = [r.found / max(1, len(r.per_field)) for r in regs]
        rows.append([name, kind, len(regs), f"{min(q):.3f}", f"{max(q):.3f}", f"{min(f):.2f}", f"{max(f):.2f}",
                     sum(accepts(r) for r in regs)])
    print(f"# pages: {dict(pages)}; each built-in tried on every page; {machine()}; "
          f"{time.perf_counter() - t0:.0f} s")
    print(f"# accepted by the automatic choice: quality >= {ACCEPT_QUALITY} and >= {ACCEPT_FIELDS:.0%} of the "
          "template's fields found; a (template, set) pair not listed never registered")
    print(table(["template", "pages", "registered", "quality min", "quality max", "fields found min",
                 "fields found max", "accepted"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
