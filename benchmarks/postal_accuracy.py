"""Postal-code accuracy of ``formocr.read_postal_code`` on freshly generated envelopes, whole and cropped.

    python benchmarks/postal_accuracy.py --n 500 --seed 70000
    python benchmarks/postal_accuracy.py --n 0 --dropout 10 --pipeline 20   # colour drop-out figures only

Envelope ``i`` is drawn from ``numpy.random.default_rng(seed + i)`` (default seeds 70000.., far from the samples'
101-405, pipeline_accuracy's 9000.. and the tests'): the built-in ``envelope`` template (six CN comb boxes), a
random writer, a random scan (``Degrade.random``: skew up to 5°, offset up to 3 mm, blur, noise, dust, shadow,
JPEG half the time), printed in a drop-out colour (red, green or light blue; writing in blue or black ballpoint)
for even ``i`` and in grey for odd ``i``. Each envelope is read twice: (1) the whole envelope, (2) a crop of the
postal-code boxes from the ground-truth box with a random margin of 0.5-5 mm on each side.

Reported per road and per colour: exact reads, the share marked ``needs_review``, accuracy among the reads not
marked, and seconds per call (the first call, which loads the models, is left out). ``--dropout N`` also
measures colour drop-out on N colour pages per built-in template: the share of form-print pixels left in the
ink mask, of handwriting pixels kept, of pen pixels kept where they cross the print, and milliseconds of
preprocessing per page; ``--pipeline N`` reads N colour pages per template through the pipeline, and the same
pages converted to grey (print left in), and compares field accuracy. Synthetic figures measure the project's
own renderer, not real mail.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, table

import formocr
from formocr.layout.template import BUILTIN, load_template
from formocr.objects import Page
from formocr.preprocess import PreprocessOptions, preprocess
from formocr.synth import Degrade, forms, render_form


def postal(n: int, seed: int, show: int, digits_model: str | None = None) -> None:
    t = load_template("envelope")
    reader = formocr.FieldReaderAPI(formocr.Options(digits_model=digits_model))
    stats: dict[tuple[str, str], list[tuple[bool, bool, float]]] = defaultdict(list)
    failures: list[str] = []
    warm = False
    for i in range(n):
        rng = np.random.default_rng(seed + i)
        colour = i % 2 == 0
        sp = render_form(t, None, rng, color=colour, degrade=Degrade.random(rng))
        truth = sp.values["postal_code"]
        b = sp.field_boxes["postal_code"]
        k = sp.dpi / 25.4
        m = [round(float(rng.uniform(0.5, 5.0)) * k) for _ in range(4)]
        H, W = sp.image.shape[:2]
        crop = sp.image[max(0, b.y - m[0]) : min(H, b.y2 + m[1]), max(0, b.x - m[2]) : min(W, b.x2 + m[3])]
        if not warm:
            reader.read_postal_code(crop)
            warm = True
        for road, img in (("whole envelope", sp.image), ("crop", crop)):
            t0 = time.perf_counter()
            r = reader.read_postal_code(img)
            dt = time.perf_counter() - t0
            ok = r.value == truth
            stats[(road, "colour" if colour else "grey")].append((ok, r.needs_review, dt))
            if not ok and len(failures) < show:
                failures.append(f"seed {seed + i} {road} {'colour' if colour else 'grey'}: read {r.value!r} "
                                f"want {truth!r} conf {r.confidence:.3f} review {r.needs_review} source "
                                f"{r.source} why {list(r.why)}")
    rows = []
    for road in ("whole envelope", "crop"):
        for col in ("colour", "grey", "all"):
            s = [x for (rd, c), v in stats.items() if rd == road and (col == "all" or c == col) for x in v]
            if not s:
                continue
            exact = np.mean([ok for ok, _, _ in s])
            rev = np.mean([nr for _, nr, _ in s])
            kept = [ok for ok, nr, _ in s if not nr]
            acc = float(np.mean(kept)) if kept else float("nan")
            rows.append([road, col, len(s), f"{100 * exact:.2f}%", f"{100 * rev:.2f}%",
                         f"{100 * acc:.2f}% ({len(kept) - sum(kept)} wrong)", f"{np.mean([d for *_, d in s]):.3f}"])
    print(f"# read_postal_code: {n} envelopes, seeds {seed}..{seed + n - 1}; {machine()}\n")
    print(table(["road", "print", "n", "exact", "needs_review", "right when not needs_review", "s/call"], rows))
    for f in failures:
        print(f)


def dropout(n: int, seed: int) -> None:
    """Form print left in ``ink`` and handwriting kept, on colour pages whose layers the renderer reports."""
    captured: dict[str, np.ndarray] = {}
    original = forms.decorate

    def capture(p, template, rng, hand, writer):  # the renderer's private signature, passed through
        original(p, template, rng, hand, writer)
        captured["form"], captured["hand"] = p.layer.copy(), hand.copy()

    forms.decorate = capture  # the layers before the scan; skew and offset are off so they stay aligned
    opts = PreprocessOptions(deskew=False, speckle_mm=0.0)
    rows = []
    try:
        for name in BUILTIN:
            t = load_template(name)
            left, kept, kept_grey, cross, ms, found = [], [], [], [], [], 0
            for i in range(n):
                rng = np.random.default_rng(seed + 50_000 + i)
                deg = Degrade.random(rng)
                deg.max_skew, deg.max_offset_mm = 0.0, 0.0
                sp = render_form(t, None, rng, color=True, degrade=deg)
                form, hand = captured["form"] > 128, captured["hand"] > 0.5
                near_hand = cv2.dilate(hand.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
                t0 = time.perf_counter()
                clean = preprocess(Page(0, sp.image, sp.dpi, "bench"), opts)
                ms.append(1000 * (time.perf_counter() - t0))
                grey = preprocess(Page(0, cv2.cvtColor(sp.image, cv2.COLOR_BGR2GRAY), sp.dpi, "bench"), opts)
                found += clean.form_ink is not None
                only_form = form & ~near_hand
                left.append((clean.ink & only_form).sum() / max(1, only_form.sum()))
                kept.append((clean.ink & hand).sum() / max(1, hand.sum()))
                kept_grey.append((grey.ink & hand).sum() / max(1, hand.sum()))
                if (form & hand).any():
                    cross.append((clean.ink & form & hand).sum() / (form & hand).sum())
            rows.append([name, n, f"{found}/{n}", f"{100 * np.mean(left):.3f}%", f"{100 * np.max(left):.3f}%",
                         f"{100 * np.mean(kept):.2f}%", f"{100 * np.mean(kept_grey):.2f}%",
                         f"{100 * np.mean(cross):.2f}%" if cross else "-", f"{np.mean(ms):.0f}"])
    finally:
        forms.decorate = original
    print(f"\n# colour drop-out: {n} colour pages per template, seeds {seed + 50_000}..; {machine()}\n")
    print(table(["template", "pages", "drop-out found", "form ink left (mean)", "(worst page)",
                 "handwriting kept", "same page grey", "pen kept on print", "preprocess ms/page"], rows))


def pipeline(n: int, seed: int) -> None:
    """Field accuracy through the whole pipeline: each colour page, and the same page converted to grey."""
    from formocr.pipeline import Pipeline
    from formocr.timing import StageTimer

    pipes = {name: Pipeline(formocr.Options(template=name)) for name in BUILTIN}
    rows = []
    for name in BUILTIN:
        t = load_template(name)
        right = {"colour": 0, "grey": 0}
        total = 0
        secs = {"colour": 0.0, "grey": 0.0}
        for i in range(n):
            rng = np.random.default_rng(seed + 60_000 + i)
            sp = render_form(t, None, rng, color=True, degrade=Degrade.random(rng))
            for kind, img in (("colour", sp.image), ("grey", cv2.cvtColor(sp.image, cv2.COLOR_BGR2GRAY))):
                t0 = time.perf_counter()
                try:
                    work = pipes[name].process_page(Page(0, img, sp.dpi, "bench"), StageTimer())
                    got = {f.name: f.value for f in work.result.fields}
                except formocr.FormOcrError:
                    got = {}
                secs[kind] += time.perf_counter() - t0
                right[kind] += sum(got.get(k) == v for k, v in sp.values.items())
            total += len(sp.values)
        rows.append([name, n, total, f"{100 * right['colour'] / total:.2f}%", f"{100 * right['grey'] / total:.2f}%",
                     f"{secs['colour'] / n:.2f}", f"{secs['grey'] / n:.2f}"])
    print(f"\n# pipeline on colour pages vs the same pages in grey: {n} per template, seeds {seed + 60_000}..\n")
    print(table(["template", "pages", "fields", "exact (colour, drop-out)", "exact (grey)", "s/page colour",
                 "s/page grey"], rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500, help="envelopes (0: skip)")
    ap.add_argument("--seed", type=int, default=70000)
    ap.add_argument("--show", type=int, default=10, help="wrong reads to print")
    ap.add_argument("--digits-model", default=None, help="a digit model in place of the shipped one (--n only)")
    ap.add_argument("--dropout", type=int, default=0, help="colour pages per template for the drop-out table")
    ap.add_argument("--pipeline", type=int, default=0, help="colour pages per template read whole, colour vs grey")
    args = ap.parse_args()
    if args.n:
        postal(args.n, args.seed, args.show, args.digits_model)
    if args.dropout:
        dropout(args.dropout, args.seed)
    if args.pipeline:
        pipeline(args.pipeline, args.seed)


if __name__ == "__main__":
    main()
