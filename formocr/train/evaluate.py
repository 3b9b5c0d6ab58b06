"""Evaluation of the digit model: MNIST test accuracy, calibration, throughput, and the scanned-crop road.

The scanned-crop figure answers "how does a real digit fare?": each MNIST test digit is enlarged to the size a
digit has on a 300-dpi scan, its pen width changed, blurred and noised, printed inside a form box on a small
page of paper, and then read by the pipeline's own stages (binarization, line removal, segmentation,
normalization, classifier) exactly as a field of a scanned form is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from formocr.binarize import binarize
from formocr.data.mnist import load_split
from formocr.normalize import grey_ink, grey_tile, normalize_digit
from formocr.objects import Box, CleanPage, FieldRegion, Page
from formocr.recognize.digits import DigitClassifier
from formocr.segment import segment_field
from formocr.train.calibrate import error_at_coverage, expected_calibration_error


@dataclass(frozen=True)
class CropSpec:
    dpi: int = 300
    box_px: int = 140  # a 12 mm box at 300 dpi
    border_px: int = 4


def render_scanned_crop(digit: np.ndarray, rng: np.random.Generator, spec: CropSpec = CropSpec()) -> np.ndarray:
    """A greyscale page (uint8, dark ink on paper) with the digit handwritten inside a printed box."""
    size = spec.box_px + 40
    page: np.ndarray = np.full((size, size), 255.0, np.float32)
    o = 20
    cv2.rectangle(page, (o, o), (o + spec.box_px, o + spec.box_px), 20.0, spec.border_px)
    height = int(rng.integers(70, 110))  # 6-9 mm digits
    big = cv2.resize(digit.astype(np.float32) / 255.0, (height, height), interpolation=cv2.INTER_CUBIC)
    r = rng.random()
    k = max(2, height // 30)
    if r < 0.3:
        big = cv2.dilate(big, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    elif r < 0.5:
        big = cv2.erode(big, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    big = np.clip(big, 0, 1)
    inner = spec.box_px - spec.border_px * 2 - height
    x = o + spec.border_px + int(rng.integers(0, max(1, inner)))
    y = o + spec.border_px + int(rng.integers(0, max(1, inner)))
    ink_level = rng.uniform(10, 90)
    region = page[y : y + height, x : x + height]
    page[y : y + height, x : x + height] = region * (1 - big) + ink_level * big
    page = cv2.GaussianBlur(page, (0, 0), rng.uniform(0.5, 1.5))
    page += rng.normal(0, rng.uniform(2, 12), page.shape).astype(np.float32)
    page = page * rng.uniform(0.8, 1.0)  # paper tone / exposure
    return np.clip(page, 0, 255).astype(np.uint8)


def read_scanned_crop(gray: np.ndarray, spec: CropSpec = CropSpec(), tiles: str = "grey") -> np.ndarray:
    """The pipeline's road for one box: binarize, find components inside the box, normalize the digit (shaded
    by the grey, or the mask alone with ``tiles="ink"``, as the pipeline's ``digit_tiles`` option)."""
    ink, method = binarize(gray, spec.dpi)
    page = Page(0, gray, float(spec.dpi), "<crop>")
    clean = CleanPage(page, gray, ink, 0.0, method)
    region = FieldRegion("d", "digits", Box(20, 20, spec.box_px, spec.box_px), "comb", 1)
    comps = [c for c in segment_field(clean, region) if c.kind == "digit"]
    if not comps:
        return np.zeros((28, 28), np.float32)
    best = max(comps, key=lambda c: int(c.mask.sum()))
    if tiles == "ink":
        return grey_tile(best.mask, None)
    b = best.box
    return grey_tile(best.mask, grey_ink(gray, ink)[b.y : b.y2, b.x : b.x2])


def throughput(clf: DigitClassifier, tiles: np.ndarray, runs: int = 5) -> dict[str, float]:
    """Digits per second for batched inference (median of runs) and single-digit latency (median)."""
    clf.probabilities(tiles[:512])  # warm-up
    rates = []
    for _ in range(runs):
        t = time.perf_counter()
        clf.probabilities(tiles)
        rates.append(len(tiles) / (time.perf_counter() - t))
    lat = []
    for i in range(200):
        t = time.perf_counter()
        clf.probabilities(tiles[i : i + 1])
        lat.append(time.perf_counter() - t)
    return {"digits_per_second": float(np.median(rates)), "single_latency_ms": float(np.median(lat) * 1000),
            "runs": runs, "batch": len(tiles)}


def evaluate_digits(clf: DigitClassifier, data: str | None = None, crops: int = 10000, seed: int = 1234,
                    speed: bool = True) -> dict[str, Any]:
    test = load_split("test", data)
    tiles = np.stack([normalize_digit(im) for im in test.images])
    probs = clf.probabilities(tiles)
    pred = probs.argmax(1)
    y = test.labels
    conf = np.zeros((10, probs.shape[1]), np.int64)  # an eleventh column: read as "not a digit"
    np.add.at(conf, (y, pred), 1)
    e95, c95 = error_at_coverage(probs, y, 0.95)
    e99, c99 = error_at_coverage(probs, y, 0.99)
    report: dict[str, Any] = {
        "model": clf.identity,
        "mnist_test": {
            "n": len(y), "accuracy": float((pred == y).mean()), "errors": int((pred != y).sum()),
            "ece": expected_calibration_error(probs, y), "error_at_95_coverage": e95, "cutoff_95": c95,
            "error_at_99_coverage": e99, "cutoff_99": c99, "confusion": conf.tolist(),
        },
    }
    if crops:
        n = min(crops, len(y))
        t = time.perf_counter()
        ct = np.stack([read_scanned_crop(render_scanned_crop(test.images[i], np.random.default_rng([seed, i])))
                       for i in range(n)])
        cp = clf.probabilities(ct)
        cpred = cp.argmax(1)
        cy = y[:n]
        ce95, _ = error_at_coverage(cp, cy, 0.95)
        report["scanned_crops"] = {
            "n": n, "accuracy": float((cpred == cy).mean()), "errors": int((cpred != cy).sum()),
            "ece": expected_calibration_error(cp, cy), "error_at_95_coverage": ce95,
            "seconds": round(time.perf_counter() - t, 1), "seed": seed,
        }
    if speed:
        report["speed"] = throughput(clf, np.concatenate([tiles] * 2))
    return report


def format_report(r: dict[str, Any]) -> str:
    """A human-readable table for stderr or a terminal."""
    m = r["mnist_test"]
    lines = [f"model {r['model']}",
             f"MNIST test: accuracy {m['accuracy'] * 100:.2f}% ({m['errors']} errors of {m['n']})",
             f"  ECE {m['ece'] * 100:.2f}%  error at 95% coverage {m['error_at_95_coverage'] * 100:.3f}% "
             f"(p ≥ {m['cutoff_95']:.4f})  at 99% {m['error_at_99_coverage'] * 100:.3f}%",
             "  confusion (rows = true, cols = predicted):",
             "       " + " ".join(f"{c:>5}" for c in range(10)) + (" not a digit" if len(m["confusion"][0]) > 10
                                                               else "")]
    for i, row in enumerate(m["confusion"]):
        lines.append(f"    {i}: " + " ".join(f"{v:>5}" for v in row))
    if "scanned_crops" in r:
        s = r["scanned_crops"]
        lines.append(f"scanned crops: accuracy {s['accuracy'] * 100:.2f}% ({s['errors']} errors of {s['n']}), "
                     f"ECE {s['ece'] * 100:.2f}%, error at 95% coverage {s['error_at_95_coverage'] * 100:.3f}%")
    if "speed" in r:
        s = r["speed"]
        lines.append(f"speed: {s['digits_per_second']:.0f} digits/s batched (median of {s['runs']}), "
                     f"single digit {s['single_latency_ms']:.2f} ms")
    return "\n".join(lines)
