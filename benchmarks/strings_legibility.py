"""Are the strings the system misreads legible? Sheets for a blind human reading, and its score.

    python benchmarks/strings_accuracy.py --n 1000 --seed 0 --dump run.jsonl
    python benchmarks/strings_legibility.py sheets run.jsonl --seed 0 --out sheets/
    #   a person reads sheets/sheet_*.png and writes one line "<number> <digits>" per strip ("?" or
    #   nothing when unreadable; "#" starts a comment) into answers.txt, without looking at sheets/key.json
    python benchmarks/strings_legibility.py score sheets/key.json answers.txt
    python benchmarks/strings_legibility.py recheck later-run.jsonl answers.txt   # the same strings, newer models

Synthetic strings of MNIST digits include digits nobody can read (MNIST has ambiguous images, and pasting
digits over each other can hide one). A target above what a careful reader can reach would ask the readers to
guess. ``sheets`` redraws every string the system misread (same generator, seed and index as the benchmark run)
on numbered sheets that show the strip only: no truth, no reading. ``score`` counts how many of them the person
read right, and the accuracy of "the system or the person", an estimate of how far legibility allows the system
to go on that set. The person knows what the benchmark draws (3-8 digits, nothing else), as the readers do.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import strings_generator, strings_sample, table

from formocr.binarize import to_gray

SHEET_W, ROW_H, PER_SHEET = 900, 130, 12


def sheets(dump: Path, seed: int, split: str, out: Path) -> int:
    rows = [json.loads(line) for line in dump.read_text("utf-8").splitlines() if line.strip()]
    wrong = [r for r in rows if r["raw"] != r["truth"]]
    gen = strings_generator(split)
    out.mkdir(parents=True, exist_ok=True)
    canvases = []
    for r in wrong:
        sample = strings_sample(gen, seed, int(r["i"]))
        if sample.text != r["truth"]:
            raise SystemExit(f"{dump}: string {r['i']} is {sample.text!r} here, {r['truth']!r} in the dump; "
                             "give the --seed and --split of the benchmark run")
        im = to_gray(sample.image)
        h, w = im.shape
        scale = min(SHEET_W / w, (ROW_H - 20) / h)
        im = cv2.resize(im, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
        canvas = np.full((ROW_H, SHEET_W), 255, np.uint8)
        canvas[: im.shape[0], : im.shape[1]] = im
        cv2.putText(canvas, str(r["i"]), (5, ROW_H - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0, 1)
        canvases.append(canvas)
    for k in range(0, len(canvases), PER_SHEET):
        cv2.imwrite(str(out / f"sheet_{k // PER_SHEET + 1:02d}.png"), np.vstack(canvases[k : k + PER_SHEET]))
    key = {"dump": str(dump), "seed": seed, "split": split, "n": len(rows),
           "touching": sum(bool(r["touching"]) for r in rows),
           "misread": [{"i": r["i"], "truth": r["truth"], "touching": r["touching"], "fused": r["raw"],
                        "crnn": r["readings"]["crnn"]["raw"], "segmentation": r["readings"]["segmentation"]["raw"]}
                       for r in wrong]}
    (out / "key.json").write_text(json.dumps(key, indent=2) + "\n", "utf-8")
    print(f"{len(wrong)} misread strings of {len(rows)} on {-(-len(wrong) // PER_SHEET)} sheets in {out}",
          file=sys.stderr)
    return 0


def read_answers(path: Path) -> dict[int, str]:
    """A person's answers: string number → digits, "?" where left unread."""
    answers: dict[int, str] = {}
    for line in path.read_text("utf-8").splitlines():
        parts = line.split("#", 1)[0].split()
        if parts:
            answers[int(parts[0])] = parts[1] if len(parts) > 1 else "?"
    return answers


def recheck(dump: Path, answers_path: Path) -> int:
    """An earlier blind reading against a later run on the same strings: newer models misread other strings, and
    those the sheets never showed count as unread (the lower bound) or as legible (the upper)."""
    rows = [json.loads(line) for line in dump.read_text("utf-8").splitlines() if line.strip()]
    answers = read_answers(answers_path)
    out = []
    for label, touching in (("apart", [False]), ("touching", [True]), ("all", [False, True])):
        rs = [r for r in rows if bool(r["touching"]) in touching]
        wrong = [r for r in rs if r["raw"] != r["truth"]]
        right = sum(answers.get(r["i"]) == r["truth"] for r in wrong)
        seen = sum(answers.get(r["i"]) == "?" for r in wrong)
        unshown = sum(r["i"] not in answers for r in wrong)
        n = max(len(rs), 1)
        out.append([label, len(rs), len(wrong), right, len(wrong) - right - seen - unshown, seen, unshown,
                    f"{100.0 * (len(rs) - len(wrong)) / n:.2f}", f"{100.0 * (len(rs) - len(wrong) + right) / n:.2f}",
                    f"{100.0 * (len(rs) - len(wrong) + right + seen + unshown) / n:.2f}"])
    print(f"# {dump}: {len(rows)} strings against the reading in {answers_path}")
    print(table(["strings", "n", "system misread", "person read right", "person read wrong", "unread (seen)",
                 "not on the sheets", "system %", "system or person % (unread wrong)",
                 "(unread right)"], out))
    return 0


def score(key_path: Path, answers_path: Path) -> int:
    key = json.loads(key_path.read_text("utf-8"))
    answers = read_answers(answers_path)
    missing = [m["i"] for m in key["misread"] if m["i"] not in answers]
    if missing:
        raise SystemExit(f"{answers_path}: no answer for strings {missing[:10]}{' ...' if len(missing) > 10 else ''}")
    c: Counter[tuple[bool, str]] = Counter()
    for m in key["misread"]:
        t = bool(m["touching"])
        c[(t, "misread")] += 1
        c[(t, "person")] += answers[m["i"]] == m["truth"]
        c[(t, "same_as_system")] += answers[m["i"]] == m["fused"]
    sizes = {False: key["n"] - key["touching"], True: key["touching"]}
    rows = []
    for label, groups in (("apart", [False]), ("touching", [True]), ("all", [False, True])):
        n = sum(sizes[g] for g in groups)
        wrong = sum(c[(g, "misread")] for g in groups)
        person = sum(c[(g, "person")] for g in groups)
        rows.append([label, n, wrong, person, sum(c[(g, "same_as_system")] for g in groups),
                     f"{100.0 * (n - wrong) / max(n, 1):.2f}", f"{100.0 * (n - wrong + person) / max(n, 1):.2f}"])
    print(f"# {key['n']} strings of MNIST {key['split']} digits, seed {key['seed']}; blind reading of the misread")
    print(table(["strings", "n", "system misread", "person read right", "person read as the system",
                 "system %", "system or person %"], rows))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("sheets", help="numbered sheets of the misread strips, and their key")
    a.add_argument("dump", type=Path, help="a strings_accuracy.py --dump file")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--split", choices=["test", "val"], default="test")
    a.add_argument("--out", type=Path, required=True)
    b = sub.add_parser("score", help="a person's answers against the key")
    b.add_argument("key", type=Path)
    b.add_argument("answers", type=Path)
    c = sub.add_parser("recheck", help="an earlier reading's answers against a later run on the same strings")
    c.add_argument("dump", type=Path, help="a strings_accuracy.py --dump file of the same --n and --seed")
    c.add_argument("answers", type=Path)
    args = ap.parse_args()
    if args.cmd == "recheck":
        return recheck(args.dump, args.answers)
    if args.cmd == "sheets":
        return sheets(args.dump, args.seed, args.split, args.out)
    return score(args.key, args.answers)


if __name__ == "__main__":
    raise SystemExit(main())
