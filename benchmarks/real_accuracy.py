"""Accuracy and trust on real handwriting: CVL digits and Danish parish-register cells.

    python benchmarks/real_accuracy.py                       # every set, the shipped models (about 6 minutes)
    python benchmarks/real_accuracy.py --limit 300 --cases out.jsonl --png plots/

One table, one row per real development set:
- ``cvl even`` / ``cvl odd``: CVL's validation digits (60 writers none of whom the models learnt from), split by
  writer id. The digit CNN's temperature and epoch are chosen on the even writers; the odd ones are touched by
  nothing but this benchmark, so they confirm what the even ones suggest. Read by the digit CNN alone (the tiles
  are already cut); accepted = the shipped field rule for a one-digit field (confidence ≥ the review threshold,
  not "not a digit").
- ``years`` / ``days``: the first and second line of each register birth-date cell, located by
  :func:`formocr.data.real.text_lines` and read by :func:`formocr.read_field` as a 4-digit and a 1-2 digit field.
  Exact match against the label. A cell whose line the locator misses counts as a miss.
- ``row numbers``: whole row-number cells (scanner margin, rules and print of the next column inside) read by
  ``read_field`` as digits; labels with letters are dropped.

For each: accuracy, the share accepted without review, accuracy among the accepted with the lower end of its
95% Wilson interval, the expected calibration error of the confidence (15 bins), and seconds per item. Then, per
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
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_mib, table

from formocr.api import FieldReaderAPI
from formocr.data.real import line_crop, load_cvl, load_register_cells, text_lines
from formocr.normalize import normalize_digit
from formocr.options import Options
from formocr.recognize.digits import DigitClassifier
from formocr.recognize.modelfile import card_path
from formocr.score import wilson_low

SWEEP = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


@dataclass(frozen=True)
class Case:
    set: str
    item: str  # CVL: the image's index; registers: the cell's file name
    truth: str
    value: str
    confidence: float
    needs_review: bool
    other_reasons: bool  # needs review for a reason besides the confidence threshold
    seconds: float


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
        name = "cvl even" if s.writers[i] % 2 == 0 else "cvl odd"
        review = bool(reject or conf < threshold)
        yield Case(name, f"{i}", str(int(s.labels[i])), "" if reject else str(d), conf, review, bool(reject), per)


def _read(api: FieldReaderAPI, crop: np.ndarray, **constraints: int) -> tuple[str, float, bool, bool, float]:
    t0 = time.perf_counter()
    f = api.read_field(crop, "digits", **constraints)  # type: ignore[arg-type]
    others = any(not w.startswith("confidence ") for w in f.why)
    return str(f.value or ""), float(f.confidence), bool(f.needs_review), others, time.perf_counter() - t0


def register_cases(api: FieldReaderAPI, limit: int | None) -> Iterator[Case]:
    cells, _ = load_register_cells("birthdate-validation", limit=limit)
    for c in cells:
        if len(c.label) != 8 or not c.label.isdigit():
            continue
        lines = text_lines(c.gray)
        for name, k, truth, cons in (("years", 0, c.label[:4], {"min_length": 4, "max_length": 4}),
                                     ("days", 1, str(int(c.label[6:8])), {"min_length": 1, "max_length": 2})):
            crop = line_crop(c.gray, lines, k)
            if crop is None:
                yield Case(name, c.name, truth, "", 0.0, True, True, 0.0)
                continue
            value, conf, review, others, sec = _read(api, crop, **cons)
            if name == "days" and value.isdigit():
                value = str(int(value))
            yield Case(name, c.name, truth, value, conf, review, others, sec)


def row_cases(api: FieldReaderAPI, limit: int | None) -> Iterator[Case]:
    cells, _ = load_register_cells("row_id-validation", limit=limit)
    for c in cells:
        if not c.label.isdigit():
            continue
        value, conf, review, others, sec = _read(api, c.gray, min_length=1, max_length=4)
        yield Case("row numbers", c.name, c.label, value, conf, review, others, sec)


def ece(conf: np.ndarray, right: np.ndarray, bins: int = 15) -> float:
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        if m.any():
            total += m.mean() * abs(right[m].mean() - conf[m].mean())
    return float(total)


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


def half(case: Case) -> str:
    """Which half of a register set a case falls in, by scanned page, so that the cells of one page (one clerk's
    hand) stay on one side."""
    page = case.item.rsplit("_", 1)[0]
    return "A" if zlib.crc32(page.encode()) % 2 == 0 else "B"


def choose(cases: list[Case], target: float) -> float | None:
    """The lowest swept threshold whose accepted cases reach ``target`` at the low end of their Wilson interval."""
    for t in SWEEP:
        acc = [c for c in cases if c.confidence >= t and not c.other_reasons]
        if acc and (wilson_low(sum(c.value == c.truth for c in acc), len(acc)) or 0.0) >= target:
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
        pairs = [(f"{name} {a}", [c for c in cs if half(c) == a], f"{name} {b}", [c for c in cs if half(c) == b])
                 for a, b in (("A", "B"), ("B", "A"))]
    rows: list[list[object]] = []
    for tuned_name, tuned, conf_name, conf in pairs:
        t = choose(tuned, target)
        if t is None:
            rows.append([name, tuned_name, "none reaches it", conf_name, "-", "-", "-"])
            continue
        acc = [c for c in conf if c.confidence >= t and not c.other_reasons]
        r = sum(c.value == c.truth for c in acc)
        rows.append([name, tuned_name, t, conf_name, _pct(len(acc) / max(len(conf), 1)),
                     _pct(r / len(acc) if acc else None), _pct(wilson_low(r, len(acc)))])
    return rows


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--digits-model", default=None, help="digit model (default: the shipped one)")
    ap.add_argument("--strings-model", default=None, help="string model (default: the shipped one)")
    ap.add_argument("--limit", type=int, default=None, help="at most N items of each source (default: all)")
    ap.add_argument("--sets", default="cvl,registers,rows", help="comma-separated: cvl, registers, rows")
    ap.add_argument("--cases", type=Path, default=None, help="write every item's reading here (JSON Lines)")
    ap.add_argument("--png", type=Path, default=None, help="write a reliability diagram per set into this folder")
    ap.add_argument("--target", type=float, default=0.995, help="accepted accuracy a chosen threshold must show")
    ap.add_argument("--write-card", action="store_true",
                    help="record the table in both models' cards under 'real_evaluation' (weights untouched)")
    args = ap.parse_args()
    opts = Options(digits_model=args.digits_model, strings_model=args.strings_model)
    api = FieldReaderAPI(opts)
    chosen = set(args.sets.split(","))
    t_all = time.perf_counter()
    cases: list[Case] = []
    if "cvl" in chosen:
        cases += cvl_cases(api.pipeline.classifier, opts.review_threshold, args.limit)
    if "registers" in chosen:
        cases += register_cases(api, args.limit)
    if "rows" in chosen:
        cases += row_cases(api, args.limit)
    if args.cases:
        args.cases.write_text("".join(json.dumps(asdict(c)) + "\n" for c in cases))
    if args.png:
        args.png.mkdir(parents=True, exist_ok=True)
    names = list(dict.fromkeys(c.set for c in cases))
    rows, sweep_rows = [], []
    for name in names:
        cs = [c for c in cases if c.set == name]
        right = np.array([c.value == c.truth for c in cs])
        conf = np.array([c.confidence for c in cs])
        acc = np.array([not c.needs_review for c in cs])
        n_acc, n_acc_right = int(acc.sum()), int((acc & right).sum())
        rows.append([name, len(cs), _pct(right.mean()), _pct(acc.mean()), _pct(n_acc_right / n_acc if n_acc else None),
                     _pct(wilson_low(n_acc_right, n_acc)), f"{100 * ece(conf, right):.2f}%",
                     f"{1000 * np.mean([c.seconds for c in cs]):.1f} ms"])
        others = np.array([c.other_reasons for c in cs])
        for t in SWEEP:
            a = (conf >= t) & ~others
            k, r = int(a.sum()), int((a & right).sum())
            sweep_rows.append([name, t, _pct(a.mean()), _pct(r / k if k else None), _pct(wilson_low(r, k))])
        if args.png:
            reliability_png(args.png / f"reliability-{name.replace(' ', '-')}.png", name, conf, right)
    print(table(["set", "items", "exact", "accepted", "right among accepted", "low 95%", "ECE", "per item"], rows))
    print()
    print(table(["set", "review threshold", "accepted", "right among accepted", "low 95%"], sweep_rows))
    print()
    print(f"Review threshold chosen on one half of each set (the lowest whose accepted readings are at least "
          f"{100 * args.target:.1f}% right at the low end of the 95% interval), confirmed on the other half:")
    print(table(["set", "chosen on", "threshold", "confirmed on", "accepted", "right among accepted", "low 95%"],
                [row for name in names for row in _halves(name, cases, args.target)]))
    if args.write_card:
        record = {"command": "python benchmarks/real_accuracy.py " + " ".join(a for a in sys.argv[1:]
                                                                              if a != "--write-card"),
                  "data": "CVL valid (60 writers, split by id parity), danish-registers birthdate-validation and "
                          "row_id-validation; never trained on",
                  "review_threshold": opts.review_threshold, "machine": machine(),
                  "columns": ["set", "items", "exact", "accepted", "right among accepted", "low 95%", "ECE",
                              "per item"], "rows": rows}
        for loaded in (api.pipeline.classifier.loaded, api.pipeline.strings.loaded if api.pipeline.strings else None):
            if loaded is not None:
                path = card_path(loaded.path)
                card = json.loads(path.read_text("utf-8"))
                card["real_evaluation"] = record
                path.write_text(json.dumps(card, indent=2) + "\n", "utf-8")
    print(f"\n{machine()}; models: digits {api.pipeline.classifier.identity}, strings "
          f"{api.pipeline.strings.identity if api.pipeline.strings else '-'}; {time.perf_counter() - t_all:.0f} s, "
          f"peak RSS {peak_rss_mib():.0f} MiB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
