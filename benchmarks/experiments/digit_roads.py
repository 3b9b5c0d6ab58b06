"""Digit models on the 5000 held-out training images (``--split-seed 0``) sent down the scanned-digit road, as the bare
binarized mask and as the mask shaded by the scan's grey (docs/string-reader-log.md "A digit CNN trained on grey-shaded
tiles").

    python benchmarks/experiments/digit_roads.py models/digits-cnn.safetensors runs/dig/g.safetensors

Every model reads the same tiles (road seed 5), so the rows differ only by the model.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from formocr.data.mnist import load_split
from formocr.recognize.digits import DigitClassifier
from formocr.train.augment import scan_road
from formocr.train.splits import digit_cnn_split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--data", default=None, help="MNIST folder (default: the project's)")
    ap.add_argument("--road-seed", type=int, default=5)
    a = ap.parse_args()
    train = load_split("train", a.data)
    held, _ = digit_cnn_split(len(train.images), 0, 5000, 0)
    x, y = train.images[held], train.labels[held]
    t0 = time.perf_counter()
    roads = {grey: np.stack([scan_road(im, np.random.default_rng([a.road_seed, 10_000_019, i]), grey=grey)
                             for i, im in enumerate(x)]) for grey in (False, True)}
    print(f"# {len(y)} held-out images (--split-seed 0), road seed {a.road_seed}; tiles made in "
          f"{time.perf_counter() - t0:.0f} s")
    print("| model | bare mask % (errors) | grey-shaded % (errors) |")
    print("|---|---|---|")
    for path in a.models:
        m = DigitClassifier.load(path)
        cells = []
        for grey in (False, True):
            wrong = int((m.probabilities(roads[grey]).argmax(1) != y).sum())
            cells.append(f"{100 * (1 - wrong / len(y)):.2f} ({wrong})")
        print(f"| {m.identity} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
