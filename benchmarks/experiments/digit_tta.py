"""The digit CNN read at several shifts of each tile, probabilities averaged (stop 36, experiment): test-time
augmentation for the segmenting reader, whose per-digit errors the string benchmark's apart strings are made of.

    python benchmarks/experiments/digit_tta.py mnist                                   # MNIST test, with and without
    python benchmarks/experiments/digit_tta.py strings --split val --n 1500 --seed 1   # strings_accuracy.py with it

Each tile is also read moved one pixel left, right, up and down (its ink lies in the middle 20×20 of the 28×28
tile, so nothing leaves it); the five readings' calibrated probabilities are averaged, everywhere the pipeline asks
the digit CNN (reading cut digits, re-cutting merged ones, settling doubtful cuts).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from formocr.data.mnist import load_split
from formocr.recognize import digits as D

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import run_benchmark  # noqa: E402

SHIFTS = ((0, 0), (0, 1), (0, -1), (1, 0), (-1, 0))
shipped_logits = D.DigitClassifier.logits


def tta_logits(self: D.DigitClassifier, tiles: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """``logits`` whose calibrated probabilities are the mean over the shifted tiles."""
    if len(tiles) == 0:
        return shipped_logits(self, tiles, batch_size)
    shifted = np.concatenate([np.roll(tiles, s, axis=(1, 2)) for s in SHIFTS])
    z = shipped_logits(self, shifted, batch_size) / self.temperature
    p = np.mean(np.split(D._softmax(z), len(SHIFTS)), axis=0)
    return (self.temperature * np.log(np.maximum(p, 1e-30))).astype(np.float32)


def mnist() -> int:
    test = load_split("test")
    tiles = test.images.astype(np.float32) / 255  # MNIST's own tiles, as the card's test accuracy reads them
    clf = D.DigitClassifier.load()
    for name, fn in (("shipped", shipped_logits), ("five shifts", tta_logits)):
        D.DigitClassifier.logits = fn  # type: ignore[method-assign]
        pred = clf.probabilities(tiles).argmax(axis=1)
        errors = int((pred != test.labels).sum())
        print(f"{name}: MNIST test {100 * (1 - errors / len(pred)):.2f}% ({errors} errors)")
    return 0


def main() -> None:
    if sys.argv[1] == "mnist":
        raise SystemExit(mnist())
    D.DigitClassifier.logits = tta_logits  # type: ignore[method-assign]
    raise SystemExit(run_benchmark("strings_accuracy.py", sys.argv[2:]))


if __name__ == "__main__":
    main()
