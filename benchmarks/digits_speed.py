"""Batched digit-classifier throughput, single-digit latency and peak memory on this machine.

    python benchmarks/digits_speed.py --runs 7

Tiles are 20,000 MNIST test digits passed through formocr.normalize (two copies of the 10,000). Batched
inference goes through DigitClassifier.probabilities (batch-norm folded, channels-last, batches of 128).
Median of --runs runs after a warm-up; latency is the median of 500 single-digit calls.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_mib, table

from formocr.data.mnist import load_split
from formocr.normalize import normalize_digit
from formocr.recognize.digits import DigitClassifier


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clf = DigitClassifier.load(args.model)
    test = load_split("test")
    tiles = np.stack([normalize_digit(im) for im in test.images])
    tiles = np.concatenate([tiles, tiles])
    rss_before = peak_rss_mib()
    clf.probabilities(tiles[:1024])
    rows = []
    for bs in (64, 128, 256, 1024):
        rates = []
        for _ in range(args.runs):
            t = time.perf_counter()
            clf.probabilities(tiles, batch_size=bs)
            rates.append(len(tiles) / (time.perf_counter() - t))
        rows.append([f"batched, batch {bs}", f"{statistics.median(rates):,.0f}", f"{min(rates):,.0f}"])
    lat = []
    for i in range(500):
        t = time.perf_counter()
        clf.probabilities(tiles[i : i + 1])
        lat.append(time.perf_counter() - t)
    print(f"# digit CNN {clf.identity}; {machine()}; torch threads {args.threads}; {len(tiles)} tiles, "
          f"median of {args.runs} runs")
    print(table(["mode", "digits/s (median)", "digits/s (worst)"], rows))
    print(f"single-digit latency: median {statistics.median(lat) * 1000:.2f} ms, "
          f"p95 {np.percentile(lat, 95) * 1000:.2f} ms")
    print(f"peak RSS {peak_rss_mib():.0f} MiB (after loading data and model: {rss_before:.0f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
