"""How much of the readers' string errors is new handwriting (stop 35, experiment): ``strings_accuracy.py --split
val`` with the 5000 held-out training digits swapped for 5000 training digits that both readers learnt from (the
first 5000 of the training indices of ``--split-seed 0``, which every shipped model holds out the same way):

    python benchmarks/experiments/learnt_digits.py --n 1500 --seed 1
    python benchmarks/experiments/learnt_digits.py --n 1500 --seed 1 --clean-paper

Every other argument goes to ``strings_accuracy.py`` as given. What these strings still get wrong is not new
handwriting: it is the paper (gone with ``--clean-paper``) and how the digits are drawn together.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import common  # noqa: E402

LEARNT = 5000


def learnt_generator(split: str, without: frozenset[str] = frozenset()) -> common.StringGenerator:
    """Strings of training digits both readers learnt from, whatever ``split`` asks for."""
    s = common.load_split("train")
    idx = common.held_out_split(len(s.images), 0)[1][:LEARNT]
    return common.bank_generator(s.images[idx], s.labels[idx], without)


def main() -> None:
    common.strings_generator = learnt_generator
    raise SystemExit(common.run_benchmark("strings_accuracy.py", ["--split", "val", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
