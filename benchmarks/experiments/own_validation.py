"""String models on a training run's own validation strings (docs/string-reader-log.md "Hard strips replayed"): the 1000
strings ``formocr train strings --seed S`` selects its checkpoints on, so a child can be set beside its parent on the
very strings it was chosen by. Figures here are biased upward for the child; the fair set is ``strings_accuracy.py
--split val``.

    python benchmarks/experiments/own_validation.py --seed 140 runs/kd.safetensors runs/xd.safetensors

Each model must be one network (not an ensemble); the strip kind (``--input``, ``--borders-out``) must be the run's.
"""

from __future__ import annotations

import argparse

import torch

from formocr.data.mnist import load_split
from formocr.recognize.strings import StringReader
from formocr.train.splits import held_out_split
from formocr.train.strings import StringTrainConfig, string_accuracy, validation_strings


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--seed", type=int, required=True, help="the training run's --seed")
    ap.add_argument("--data", default=None)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--val-size", type=int, default=StringTrainConfig.val_size)
    ap.add_argument("--input", default="grey-box")
    ap.add_argument("--borders-out", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    train = load_split("train", args.data)
    val_idx = held_out_split(len(train.images), args.split_seed)[0]
    run = StringTrainConfig(seed=args.seed, split_seed=args.split_seed, val_size=args.val_size, input=args.input,
                            borders_out=args.borders_out)
    strips, texts = validation_strings(train.images[val_idx], train.labels[val_idx], run)
    print(f"| model | own validation strings of --seed {args.seed} ({len(texts)}) |")
    print("|---|---|")
    for path in args.models:
        reader = StringReader.load(path)
        if len(reader.nets) != 1:
            raise SystemExit(f"{path}: an ensemble of {len(reader.nets)}; give its members one by one")
        print(f"| {path} | {string_accuracy(reader.nets[0], strips, texts):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
