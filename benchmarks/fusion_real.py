"""Replay the fusion rules on real development fields: how many more (or fewer) fields each rule set reads right.

    python benchmarks/fusion_real.py --cases runs/fusion-real.pkl     # records once (about 5 minutes), then replays
    python benchmarks/fusion_real.py --cases runs/fusion-real.pkl --no-opinion 0.1,0.15,0.2,0.3 --fewer-digits 0.1,0.3

Reads the real development fields the field calibration is fitted on (``formocr.train.fieldcal``: register years and
days of birth-register cells of the documented layout, row numbers, CVL digits as one-digit fields, CVL strings with
and without their length, CVL cheque amounts), records what fusion sees for each (both readings, the alternatives
and each reader's probability of every candidate text), then replays fusion for a grid of
:class:`formocr.fusion.FusionRules` and prints, per set and half, the fields read right against the shipped rules.
Choose on half ``A`` (register pages with an even checksum, CVL's even writers); half ``B`` confirms. A field
neither reader read (no fusion) keeps its recorded reading. Accepted shares are not replayed: a rule change moves
the readings the field calibration was fitted on, so refit it (``formocr-train calibrate-fields``) and rerun
``real_accuracy.py`` for them.
"""

from __future__ import annotations

import argparse
import itertools
import pickle
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, record_fusion, table

from formocr.api import FieldReaderAPI
from formocr.fields import interpret
from formocr.fusion import FusionRules, fuse
from formocr.options import Options
from formocr.train import fieldcal


@dataclass
class Case:
    set: str
    half: str
    truth: str
    value: str  # as read with the rules it was recorded with
    amount: bool
    seen: dict[str, Any] | None  # what fusion was given (None: fusion was not asked)


def _record(limit: int | None, n_strings: int, n_digits: int, n_amounts: int, digits_model: str | None = None,
            strings_model: str | None = None) -> list[Case]:
    api = FieldReaderAPI(Options(digits_model=digits_model, strings_model=strings_model, calibration="none"))
    seen: list[dict[str, Any]] = []

    record_fusion(seen)
    sources = [fieldcal.register_fields(api, limit, whole_cells=False), fieldcal.row_fields(api, limit),
               fieldcal.cvl_digit_fields(api, n_digits), fieldcal.cvl_string_fields(api, n_strings),
               fieldcal.cvl_string_fields(api, n_strings, length_given=True),
               fieldcal.cvl_amount_fields(api, n_amounts)]
    cases = []
    for source in sources:
        while True:
            seen.clear()
            f = next(source, None)
            if f is None:
                break
            if f.standard:
                cases.append(Case(f.set, f.half, f.truth, f.value, f.set == "cvl amounts",
                                  seen[0] if len(seen) == 1 else None))
    return cases


def _value(c: Case, raw: str) -> str:
    """The field's value as the development sets compare it (:attr:`fieldcal.DevField.value`)."""
    if c.amount:
        return str(interpret("amount", raw, {"decimals": 2 if "." in c.truth else 0}).value or "")
    digits = "".join(ch for ch in raw if ch.isdigit())
    return str(int(digits)) if c.set == "days" and digits else digits


def _right(cases: list[Case], rules: FusionRules) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for c in cases:
        if c.seen is None:
            ok = fieldcal.is_right(c.value, c.truth)
        else:
            s = c.seen
            f = fuse(s["seg"], s["crnn"], s["seg_p"].__getitem__, s["crnn_p"].__getitem__, rules, s["cells"],
                     s["alts"])
            ok = fieldcal.is_right(_value(c, f.reading.raw), c.truth)
        out[(c.set, c.half)] = out.get((c.set, c.half), 0) + ok
    return out


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=Path, default=None,
                    help="a pickle of the recorded cases: read when it exists, else written")
    ap.add_argument("--limit", type=int, default=None, help="at most N register cells of each part")
    ap.add_argument("--strings", type=int, default=500, help="CVL strings composed for each half")
    ap.add_argument("--digits", type=int, default=1000, help="CVL digits read as fields, for each half")
    ap.add_argument("--amounts", type=int, default=250, help="CVL cheque amounts composed for each half")
    ap.add_argument("--digits-model", default=None, help="digit model (default: the shipped one)")
    ap.add_argument("--strings-model", default=None, help="string model (default: the shipped one)")
    ap.add_argument("--no-opinion", default="0.1,0.15,0.2,0.3", help="values of FusionRules.no_opinion")
    ap.add_argument("--fewer-digits", default="0.1,0.3", help="values of FusionRules.fewer_digits")
    ap.add_argument("--resplit", default="0.3", help="values of FusionRules.resplit")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.cases is not None and args.cases.exists():
        cases = pickle.loads(args.cases.read_bytes())
    else:
        cases = _record(args.limit, args.strings, args.digits, args.amounts, args.digits_model, args.strings_model)
        if args.cases is not None:
            args.cases.write_bytes(pickle.dumps(cases))
    shipped = FusionRules()
    base = _right(cases, shipped)
    sets = list(dict.fromkeys(c.set for c in cases))
    n = {(s, h): sum(c.set == s and c.half == h for c in cases) for s in sets for h in "AB"}
    rows = [["right with the shipped rules", "", "",
             *(f"{base.get((s, 'A'), 0)}/{n[(s, 'A')]} / {base.get((s, 'B'), 0)}/{n[(s, 'B')]}" for s in sets), "", ""]]
    grid = itertools.product(_floats(args.no_opinion), _floats(args.fewer_digits), _floats(args.resplit))
    for no_op, fewer, resplit in grid:
        rules = replace(shipped, no_opinion=no_op, fewer_digits=fewer, resplit=resplit)
        got = _right(cases, rules)
        d = {k: got.get(k, 0) - base.get(k, 0) for k in n}
        mark = " (shipped)" if rules == shipped else ""
        rows.append([f"{no_op:g}{mark}", f"{fewer:g}", f"{resplit:g}",
                     *(f"{d[(s, 'A')]:+d} / {d[(s, 'B')]:+d}" for s in sets),
                     f"{sum(v for (_, h), v in d.items() if h == 'A'):+d}",
                     f"{sum(v for (_, h), v in d.items() if h == 'B'):+d}"])
    print(f"# fusion rules replayed on {len(cases)} real development fields; fields read right, half A / half B, "
          f"against the shipped rules; {machine()}")
    print(table(["no_opinion", "fewer_digits", "resplit", *sets, "all A", "all B"], rows))
    print(f"# {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
