"""How the string reader chooses among its views' readings: rules tried at stop 23, none shipped
(docs/string-reader-log.md "A digit ensemble and a fair validation set").

    python benchmarks/experiments/view_choice.py geometric --split val --n 1500 --seed 1
    python benchmarks/experiments/view_choice.py climb --split val --n 1500 --seed 1
    python benchmarks/experiments/view_choice.py nine --split val --n 1500 --seed 1 --dump D.jsonl

The first argument names the rule; the rest go to ``strings_accuracy.py``, which then runs with
``StringReader.decode`` replaced for that run only:

* ``geometric``: choose among the views' decodes by the geometric mean of their probabilities (the confidence stays
  the arithmetic mean);
* ``climb``: from the shipped choice, move to a one-edit neighbour while one has a higher mean probability;
* ``nine``: the shipped choice, and on stderr, for the strings the string reader misread, how often the truth was
  among the member × view decodes and what choosing by vote would have read (needs ``--dump``).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from formocr.recognize import strings as S
from formocr.recognize.ctc import Constraint, string_probabilities

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import run_benchmark  # noqa: E402

shipped = S.StringReader.decode
calls: list[tuple[str, list[str]]] = []  # (chosen text, every view's decode) per decode call, for "nine"
moved = 0


def geometric(self: S.StringReader, ev: Any, constraint: Constraint | None, beam: int = 8) -> S.StringReading:
    lps = S._views(ev)
    if len(lps) == 1:
        return shipped(self, ev, constraint, beam)
    readings = [self._decode_one(lp, constraint, beam) for lp in lps]
    texts = list(dict.fromkeys(r.text for r in readings))
    per_view = np.array([string_probabilities(lp, texts, self.alphabet) for lp in lps])
    agree = np.log(np.maximum(per_view, 1e-300)).mean(axis=0)
    ok = {r.text for r in readings if r.satisfied}
    k = max(range(len(texts)), key=lambda i: (texts[i] in ok, agree[i]))
    return self.reading_of(lps, texts[k], texts[k] in ok, float(per_view[:, k].mean()), readings[0].best_path)


def climb(self: S.StringReader, ev: Any, constraint: Constraint | None, beam: int = 8) -> S.StringReading:
    global moved
    r = shipped(self, ev, constraint, beam)
    lps = S._views(ev)
    text, p = r.text, r.confidence
    for _ in range(2):
        near = self.neighbours(lps, text, constraint, keep=2)
        if len(near) < 2 or near[1][1] <= p:
            break
        text, p = near[1]
    if text == r.text:
        return r
    moved += 1
    return self.reading_of(lps, text, constraint is None or constraint.accepts(text), p, r.best_path)


def nine(self: S.StringReader, ev: Any, constraint: Constraint | None, beam: int = 8) -> S.StringReading:
    r = shipped(self, ev, constraint, beam)
    calls.append((r.text, [self._decode_one(lp, constraint, beam).text for lp in S._views(ev)]))
    return r


def report_nine(dump: str) -> None:
    """Match each dumped string to its first decode call (the field's own reading; later calls are alternatives)."""
    j = right = vote_right = misread = truth_there = 0
    for line in Path(dump).read_text().splitlines():
        row = json.loads(line)
        while calls[j][0] != row["readings"]["crnn"]["raw"]:
            j += 1
        chosen, texts = calls[j]
        j += 1
        key = [t.replace(" ", "") for t in texts]
        votes = Counter(key)
        top = max(votes.values())
        winners = [t for t in votes if votes[t] == top]
        pick = chosen.replace(" ", "") if chosen.replace(" ", "") in winners or len(winners) > 1 else winners[0]
        right += chosen.replace(" ", "") == row["truth"]
        vote_right += pick == row["truth"]
        if chosen.replace(" ", "") != row["truth"]:
            misread += 1
            truth_there += row["truth"] in key
    print(f"# view choice: misread {misread}, truth among the views' decodes for {truth_there} of them; "
          f"shipped choice right {right}, by vote {vote_right}", file=sys.stderr)


def main() -> None:
    rule, args = sys.argv[1], sys.argv[2:]
    S.StringReader.decode = {"geometric": geometric, "climb": climb, "nine": nine}[rule]  # type: ignore[method-assign]
    run_benchmark("strings_accuracy.py", args)
    if rule == "climb":
        print(f"# climb moved {moved} readings", file=sys.stderr)
    if rule == "nine":
        report_nine(args[args.index("--dump") + 1])


if __name__ == "__main__":
    main()
