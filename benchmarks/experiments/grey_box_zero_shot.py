"""Members trained on the ink's grey, reading the grey of the ink's whole box untrained: the check made at stop
24 before training members on it (docs/string-reader-log.md "The grey of the whole box").

    python benchmarks/experiments/grey_box_zero_shot.py --split val --n 1500 --seed 3

The arguments go to ``strings_accuracy.py``, which then runs with every "grey" member given the whole box's grey
(``grey_ink(..., whole_box=True)``) for that run only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from formocr.normalize import grey_ink
from formocr.recognize import strings as S

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import run_benchmark  # noqa: E402


def whole_box(gray: np.ndarray, mask: np.ndarray, whole_box: bool = False) -> np.ndarray:
    return grey_ink(gray, mask, True)


def main() -> None:
    S.grey_ink = whole_box
    raise SystemExit(run_benchmark("strings_accuracy.py", sys.argv[1:]))


if __name__ == "__main__":
    main()
