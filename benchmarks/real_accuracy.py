r"""Accuracy and trust on real handwriting: CVL digits and Danish parish-register cells.

    python benchmarks/real_accuracy.py                       # every set, the shipped models (about 8 minutes)
    python benchmarks/real_accuracy.py --limit 300 --cases out.jsonl --png plots/

One table, one row per real development set:
- ``cvl even`` / ``cvl odd``: CVL's validation digits (60 writers none of whom the models learnt from), split by
  writer id. The digit CNN's temperature and epoch are chosen on the even writers; the odd ones are touched by
  nothing but this benchmark, so they confirm what the even ones suggest. Read by the digit CNN alone (the tiles
  are already cut); accepted = the shipped field rule for a one-digit field (confidence ≥ the review threshold,
  not "not a digit").
- ``years``: each register birth-date cell handed whole to :func:`formocr.read_field` as a year field of a
  19th-20th century register (4 digits, ``pattern=r"1[89]\d\d"``, as a template gives it): the reader reads the
  cell's lines (:func:`formocr.textlines.text_lines`) and keeps the one the pattern fits, wherever the clerk wrote
  the year. ``days``: the second located line, read as a 1-2 digit field. Exact match against the label, or
  against what the label audit (:func:`formocr.data.real.register_audit`) found written where the label is not
  (a page whose labels belong to other cells; a cell with no year, a miss whatever is read from it); a cell whose line
  the locator misses counts as a miss. ``years, a year written``: the whole cells the audit did not find without a
  year. ``years, first line``: the cell's first located line read as the year field (the year's line in the
  layout the data set describes).
- ``years, birth layout`` / ``days, birth layout``: the same, on the cells of a birth register where the locator
  finds three lines, the layout the data set describes (year, day, month). In a death register's cell the first
  line is often the age and the year comes last, and a split or missed line moves the others: there the second
  line is often not the day, and the days row measures the locator, not the reader.
- ``cvl digits``: CVL's validation digits again, each drawn as a scanned one-digit box and read by ``read_field``
  (both readers, fusion, the field calibration): the product's road for a single digit, where the rows above read
  the cut tile with the digit CNN alone. ``A`` holds the even writers, ``B`` the odd ones. ``cvl digits, cut
  tight``: others cut to their ink (16-64 px tall, at most a pixel of paper round them), as digit sets and sorting
  machines hand single digits over. ``cvl digits, 16-px tiles``: others as a digit set of small grey tiles cut to
  the digit's height and centred across a 16-px square (USPS's zip-code digits). ``cvl digits, 28-px tiles as
  stored``: others as the data set stores them, MNIST's square tile (28×28, the digit about 20 px and centred).
- ``cvl strings``: strings of 3-8 digits the generator composes of CVL's validation digits on generated paper,
  every other one touching; ``A`` holds the even writers, ``B`` the odd ones. ``cvl strings, length given``:
  as many others, each read as a field of its own count of digits (an account number, a box of a given
  length).
- ``cvl amounts``: cheque amounts composed alike of CVL's validation digits (``15.000.-``, ``1,250.00``; half
  after a ``$``; the marks drawn by the project's stroke renderer), read as ``amount`` fields with the amount's own
  decimals; exact value. ``$ amounts``: those of them with the ``$``.
- ``row numbers``: whole row-number cells (scanner margin, rules and print of the next column inside) read by
  ``read_field`` as digits; labels with letters are dropped.

For each: accuracy, the share accepted without review, accuracy among the accepted with the lower end of its
95% Wilson interval, the expected calibration error of the confidence (15 bins), seconds per item (read by one
of two processes of one thread each, ``--jobs 2``, the default: the register cells in one, the rest in the
other), and the exact share and accuracy among the accepted against the labels as published. Then, per
set, the accepted share and precision along a sweep of review thresholds. ``--png DIR`` draws a reliability
diagram per set; ``--cases FILE`` writes every item's reading (JSON Lines) for later sweeps.

What these figures cannot show: how the readers do on cheques, forms or writers unlike these (Austrian students'
digits, Danish clerks' 19th-20th century dates); the register sets also measure the line locator.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_mib, table

from formocr.api import FieldReaderAPI
from formocr.data.real import load_cvl
from formocr.normalize import normalize_digit
from formocr.options import Options
from formocr.read import review_is_confidences
from formocr.recognize.digits import DigitClassifier
from formocr.recognize.modelfile import card_path
from formocr.score import wilson_low
from formocr.train.calibrate import ece
from formocr.train.fieldcal import (
    DevField,
    cvl_amount_fields,
    cvl_digit_fields,
    cvl_stored_fields,
    cvl_string_fields,
    cvl_tight_fields,
    cvl_tile_fields,
    is_right,
    register_fields,
    row_fields,
)

SWEEP = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


@dataclass(frozen=True)
class Case:
    set: str
    item: str  # CVL: the image's index; registers: the cell's file name; CVL strings: half and number
    half: str  # "A" (where thresholds and the calibration are chosen) or "B" (where they are confirmed)
    truth: str  # the label, or what the label audit found written (registers: "" where the cell holds no year)
    value: str
    confidence: float
    needs_review: bool
    other_reasons: bool  # needs review for a reason the confidence does not decide
    seconds: float
    published: str  # the data set's label (the truth unless the label audit replaced it)

    @property
    def right(self) -> bool:
        return is_right(self.value, self.truth)


def cvl_cases(clf: DigitClassifier, threshold: float, limit: int | None) -> Iterator[Case]:
    s = load_cvl("valid")
    idx = np.arange(len(s.images)) if limit is None else np.random.default_rng(0).permutation(len(s.images))[:limit]
    t0 = time.perf_counter()
    tiles = np.stack([normalize_digit(s.images[i]) for i in idx])
    probs = clf.probabilities(tiles)
    per = (time.perf_counter() - t0) / max(len(idx), 1)
    for k, i in enumerate(idx):
        p = probs[k]
        d = int(np.argmax(p[:10]))
        reject = clf.rejects and p[10] > p[d]
        conf = 0.0 if reject else float(p[d])
        even = s.writers[i] % 2 == 0
        review = bool(reject or conf < threshold)
        label = str(int(s.labels[i]))  # no audit applies to CVL: the label is the truth and the published label
        yield Case("cvl even" if even else "cvl odd", f"{i}", "A" if even else "B", label,
                   "" if reject else str(d), conf, review, bool(reject), per, label)


def field_cases(fields: Iterator[DevField]) -> Iterator[Case]:
    """Cases of real fields read by ``read_field``; a register cell of the documented layout counts twice: in its
    set (the issue's definition, every cell) and in the set's "birth layout" row; a whole cell in which a year is
    written (by the label audit) in ``years, a year written`` too."""
    for f in fields:
        r = f.result
        case = Case(f.set, f.item, f.half, f.truth, f.value, float(r.confidence) if r else 0.0,
                    r.needs_review if r else True, not review_is_confidences(r) if r else True, f.seconds,
                    f.truth if f.published is None else f.published)
        yield case
        if f.set in ("years", "days") and f.layout:
            yield replace(case, set=f"{f.set}, birth layout")
        if f.set == "years" and f.truth:
            yield replace(case, set="years, a year written")
        if f.set == "cvl amounts" and f.written.startswith("$"):
            yield replace(case, set="$ amounts")


def reliability_png(path: Path, title: str, conf: np.ndarray, right: np.ndarray, bins: int = 10) -> None:
    """A reliability diagram: per confidence bin, the share right (bar) against the diagonal, counts below."""
    size, m = 400, 40
    img = np.full((size + 2 * m, size + 2 * m, 3), 255, np.uint8)
    edges = np.linspace(0.0, 1.0, bins + 1)
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (conf >= lo) & ((conf < hi) if hi < 1 else (conf <= hi))
        x0, x1 = m + int(lo * size), m + int(hi * size)
        if sel.any():
            acc = float(right[sel].mean())
            cv2.rectangle(img, (x0 + 2, m + size - int(acc * size)), (x1 - 2, m + size), (200, 140, 60), -1)
            cv2.putText(img, str(int(sel.sum())), (x0 + 2, m + size + 14), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 0, 0), 1)
    cv2.line(img, (m, m + size), (m + size, m), (0, 0, 200), 1)
    cv2.rectangle(img, (m, m), (m + size, m + size), (0, 0, 0), 1)
    cv2.putText(img, f"{title}: ECE {100 * ece(conf, right):.2f}%", (m, m - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                (0, 0, 0), 1)
    cv2.putText(img, "confidence", (m + size // 2 - 40, m + size + 32), cv2.FONT_HERSHEY_PLAIN, 1, (0, 0, 0), 1)
    cv2.imwrite(str(path), img)


def choose(cases: list[Case], target: float) -> float | None:
    """The lowest swept threshold whose accepted cases reach ``target`` at the low end of their Wilson interval."""
    for t in SWEEP:
        acc = [c for c in cases if c.confidence >= t and not c.other_reasons]
        if acc and (wilson_low(sum(c.right for c in acc), len(acc)) or 0.0) >= target:
            return t
    return None


def _halves(name: str, cases: list[Case], target: float) -> list[list[object]]:
    """Rows of thresholds chosen on one half and confirmed on the other: CVL's even writers then its odd ones (the
    digit CNN's temperature was fitted on the even writers too), each register set both ways round."""
    if name == "cvl even":
        return []
    if name == "cvl odd":
        pairs = [("cvl even", [c for c in cases if c.set == "cvl even"], "cvl odd",
                  [c for c in cases if c.set == "cvl odd"])]
    else:
        cs = [c for c in cases if c.set == name]
        pairs = [(f"{name} {a}", [c for c in cs if c.half == a], f"{name} {b}", [c for c in cs if c.half == b])
                 for a, b in (("A", "B"), ("B", "A"))]
    rows: list[list[object]] = []
    for tuned_name, tuned, conf_name, conf in pairs:
        t = choose(tuned, target)
        if t is None:
            rows.append([name, tuned_name, "none reaches it", conf_name, "-", "-", "-"])
            continue
        acc = [c for c in conf if c.confidence >= t and not c.other_reasons]
        r = sum(c.right for c in acc)
        rows.append([name, tuned_name, t, conf_name, _pct(len(acc) / max(len(conf), 1)),
                     _pct(r / len(acc) if acc else None), _pct(wilson_low(r, len(acc)))])
    return rows


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _read_sets(opts: Options, sources: set[str], args: argparse.Namespace, pooled: bool = False
               ) -> dict[str, list[Case]]:
    """Read the chosen sources' items with a reader of this process's own (``pooled``: one thread, as two worker
    processes share the machine's cores), each source's cases apart."""
    if pooled:
        torch.set_num_threads(1)
    api = FieldReaderAPI(opts)
    out: dict[str, list[Case]] = {}
    if "cvl" in sources:
        out["cvl"] = list(cvl_cases(api.pipeline.classifier, opts.review_threshold, args.limit))
    if "registers" in sources:
        out["registers"] = list(field_cases(register_fields(api, args.limit, first_lines=True)))
    if "rows" in sources:
        out["rows"] = list(field_cases(row_fields(api, args.limit)))
    if "strings" in sources:
        fields = [cvl_digit_fields(api, args.digits), cvl_tight_fields(api, args.digits),
                  cvl_tile_fields(api, args.digits), cvl_stored_fields(api, args.digits),
                  cvl_string_fields(api, args.strings), cvl_string_fields(api, args.strings, length_given=True),
                  cvl_amount_fields(api, args.amounts)]
        out["strings"] = [c for f in fields for c in field_cases(f)]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--digits-model", default=None, help="digit model (default: the shipped one)")
    ap.add_argument("--strings-model", default=None, help="string model (default: the shipped one)")
    ap.add_argument("--limit", type=int, default=None, help="at most N items of each source (default: all)")
    ap.add_argument("--sets", default="cvl,registers,rows,strings",
                    help="comma-separated: cvl, registers, rows, strings")
    ap.add_argument("--strings", type=int, default=500, help="CVL strings composed for each half of the writers")
    ap.add_argument("--amounts", type=int, default=500, help="CVL cheque amounts composed for each half of the writers")
    ap.add_argument("--digits", type=int, default=1000, help="CVL digits read as fields, for each half of the writers")
    ap.add_argument("--cases", type=Path, default=None, help="write every item's reading here (JSON Lines)")
    ap.add_argument("--png", type=Path, default=None, help="write a reliability diagram per set into this folder")
    ap.add_argument("--target", type=float, default=0.995, help="accepted accuracy a chosen threshold must show")
    ap.add_argument("--write-card", action="store_true",
                    help="record the table in both models' cards under 'real_evaluation' (weights untouched)")
    ap.add_argument("--jobs", type=int, choices=(1, 2), default=2,
                    help="2: the register cells in one process and the other sets in another, one thread each")
    args = ap.parse_args()
    opts = Options(digits_model=args.digits_model, strings_model=args.strings_model)
    chosen = set(args.sets.split(","))
    t_all = time.perf_counter()
    groups = [g for g in (("cvl", "rows", "strings"), ("registers",)) if chosen & set(g)]
    processes = 1 if args.jobs == 1 or len(groups) < 2 else len(groups)
    if processes == 1:
        parts = [_read_sets(opts, chosen & set(g), args) for g in groups]
    else:
        with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
            parts = list(pool.map(_read_sets, [opts] * processes, [chosen & set(g) for g in groups],
                                  [args] * processes, [True] * processes))
    order = ("cvl", "registers", "rows", "strings")  # the table's order, whichever process read a set
    by_source = {k: v for part in parts for k, v in part.items()}
    cases = [c for k in order for c in by_source.get(k, [])]
    if args.cases:
        args.cases.write_text("".join(json.dumps(asdict(c)) + "\n" for c in cases))
    if args.png:
        args.png.mkdir(parents=True, exist_ok=True)
    names = list(dict.fromkeys(c.set for c in cases))
    rows, sweep_rows = [], []
    for name in names:
        cs = [c for c in cases if c.set == name]
        right = np.array([c.right for c in cs])
        conf = np.array([c.confidence for c in cs])
        acc = np.array([not c.needs_review for c in cs])
        n_acc, n_acc_right = int(acc.sum()), int((acc & right).sum())
        pub = np.array([c.value == c.published for c in cs])
        n_acc_pub = int((acc & pub).sum())
        rows.append([name, len(cs), _pct(right.mean()), _pct(acc.mean()), _pct(n_acc_right / n_acc if n_acc else None),
                     _pct(wilson_low(n_acc_right, n_acc)), f"{100 * ece(conf, right):.2f}%",
                     f"{1000 * np.mean([c.seconds for c in cs]):.1f} ms", _pct(pub.mean()),
                     f"{_pct(n_acc_pub / n_acc if n_acc else None)} ({_pct(wilson_low(n_acc_pub, n_acc))})"])
        others = np.array([c.other_reasons for c in cs])
        for t in SWEEP:
            a = (conf >= t) & ~others
            k, r = int(a.sum()), int((a & right).sum())
            sweep_rows.append([name, t, _pct(a.mean()), _pct(r / k if k else None), _pct(wilson_low(r, k))])
        if args.png:
            reliability_png(args.png / f"reliability-{name.replace(',', '').replace(' ', '-')}.png", name, conf, right)
    columns = ["set", "items", "exact", "accepted", "right among accepted", "low 95%", "ECE", "per item",
               "exact, labels as published", "right among accepted, as published (low 95%)"]
    print(table(columns, rows))
    print()
    print(table(["set", "review threshold", "accepted", "right among accepted", "low 95%"], sweep_rows))
    print()
    print(f"Review threshold chosen on one half of each set (the lowest whose accepted readings are at least "
          f"{100 * args.target:.1f}% right at the low end of the 95% interval), confirmed on the other half:")
    print(table(["set", "chosen on", "threshold", "confirmed on", "accepted", "right among accepted", "low 95%"],
                [row for name in names for row in _halves(name, cases, args.target)]))
    api = FieldReaderAPI(opts)  # the models' files and identities, for the card and the footer
    if args.write_card:
        record = {"command": "python benchmarks/real_accuracy.py " + " ".join(a for a in sys.argv[1:]
                                                                              if a != "--write-card"),
                  "data": "CVL valid (60 writers, split by id parity), danish-registers birthdate-validation and "
                          "row_id-validation; never trained on",
                  "review_threshold": opts.review_threshold, "machine": machine(), "processes": processes,
                  "truth": "the labels, with the label audit (formocr/data/register-audit.csv) in place of those "
                           "it found wrong; the last two columns against the labels as published",
                  "columns": columns, "rows": rows}
        for loaded in (api.pipeline.classifier.loaded, api.pipeline.strings.loaded if api.pipeline.strings else None):
            if loaded is not None:
                path = card_path(loaded.path)
                card = json.loads(path.read_text("utf-8"))
                card["real_evaluation"] = record
                path.write_text(json.dumps(card, indent=2) + "\n", "utf-8")
    print(f"\n{machine()}; models: digits {api.pipeline.classifier.identity}, strings "
          f"{api.pipeline.strings.identity if api.pipeline.strings else '-'}; {time.perf_counter() - t_all:.0f} s, "
          f"peak RSS {peak_rss_mib():.0f} MiB (the largest process)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
