"""How far from the strokes the grey-box strips paint printed borders out (``strings.BORDER_REACH_MM``): any benchmark
run with another reach (docs/string-reader-log.md "The grey of the whole box").

    python benchmarks/experiments/border_out.py 1000 pipeline_accuracy.py --pages 200   # borders left in
    python benchmarks/experiments/border_out.py 0.5 strings_accuracy.py --split val --n 1500 --seed 3  # shipped

The first argument is the reach in millimetres (one larger than the field paints nothing out), the second names the
benchmark, the rest are its arguments. The figures in docs/string-reader-log.md were measured at stop 24 with an earlier
version of this script that patched the same rule into the code before ``border_out`` existed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from formocr.recognize import strings as S

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import run_benchmark  # noqa: E402


def main() -> None:
    S.BORDER_REACH_MM = float(sys.argv[1])
    raise SystemExit(run_benchmark(sys.argv[2], sys.argv[3:]))


if __name__ == "__main__":
    main()
