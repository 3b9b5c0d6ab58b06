"""Handwriting fonts as more writers (stop 39, experiment): does the digit CNN read MNIST's test writers better when
part of its training digits are drawn from handwriting-style fonts, which no MNIST writer made?

    python benchmarks/experiments/font_digits.py render --fonts DIR [DIR ...] --out pool.npz   # the font digits
    python benchmarks/experiments/font_digits.py train --pool pool.npz --share 0.15 --epochs 12 --seed 0 --out M
    python benchmarks/experiments/font_digits.py train --share 0 --epochs 12 --seed 0 --out M      # the baseline
    python benchmarks/experiments/font_digits.py strings --pool pool.npz --share 0.15 -- --init M ...  # train strings

The fonts are not in the repository: stop 39 used 62 Google Fonts handwriting families from npm's @fontsource
packages (`npm pack @fontsource/caveat` ..., the latin `.woff` files) and Debian's fonts-dkg-handwriting, fonts-breip,
fonts-bwht, fonts-femkeklaver, fonts-humor-sans and fonts-rufscript. Each font file draws each digit in `--variants`
ways (turn ±10°, shear ±0.25, width ×0.8-1.2, pen grown or thinned to 8-16% of the digit's height), cut to MNIST's
shape (20×20 box, centre of mass in the middle of 28×28) as uint8 images, so the training roads of
`formocr.train.augment` scan them like MNIST digits. In training, each image of a batch is, with probability
`--share`, replaced by a random font digit (its own label); the number of steps stays the same. `strings` runs
`formocr train strings` with the arguments after `--`, its training strings taking a font digit in place of an MNIST
one with probability `--share` (the stroke renderer's share is untouched; the validation strings stay MNIST only).

The MNIST test set is by other writers than its training set, so its error count (the card's `test_errors`) is the
one measure of new writers here; the validation set (held-out training images) is by the training writers.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from formocr.normalize import normalize_digit, to_model_input
from formocr.synth.strings import DigitBank
from formocr.train import digits as TD
from formocr.train.augment import clean_road, scan_road

FONT_SUFFIXES = (".ttf", ".otf", ".woff")


def font_files(dirs: list[str]) -> list[Path]:
    """Every font file under the folders, latin subsets only where a family splits by script (@fontsource)."""
    out: list[Path] = []
    for d in dirs:
        for p in sorted(Path(d).rglob("*")):
            if p.suffix.lower() not in FONT_SUFFIXES:
                continue
            if "-normal" in p.name and ("-latin-" not in p.name or "-latin-ext-" in p.name):
                continue  # @fontsource: cyrillic, greek, vietnamese ... subsets; the digits are in the latin one
            if "-italic" in p.name:
                continue
            out.append(p)
    return out


def glyph(font: ImageFont.FreeTypeFont, ch: str) -> np.ndarray | None:
    """The character drawn white on black at the font's size, cropped to its ink; None when the font lacks it."""
    size = int(font.size)
    im = Image.new("L", (size * 3, size * 3), 0)
    ImageDraw.Draw(im).text((size // 2, size // 2), ch, fill=255, font=font)
    a = np.asarray(im, np.float32) / 255.0
    ys, xs = np.nonzero(a > 0.3)
    if len(ys) < 20:
        return None
    return a[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def stroke_width(ink: np.ndarray) -> float:
    """Twice the median distance to the background along the ink's ridge: the pen's width in pixels."""
    mask = (ink > 0.5).astype(np.uint8)
    dist = cv2.distanceTransform(np.pad(mask, 2), cv2.DIST_L2, 3)
    ridge = dist[dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8))]
    ridge = ridge[ridge > 0]
    return 2.0 * float(np.median(ridge)) if len(ridge) else 1.0


def variant(g: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One warped, re-penned copy of a glyph, as a 28×28 uint8 MNIST-style image."""
    pad = max(g.shape) // 2 + 4
    a = np.pad(g, pad)
    h, w = a.shape
    ang = np.deg2rad(rng.uniform(-10, 10))
    sh = rng.uniform(-0.25, 0.25)
    sx = rng.uniform(0.8, 1.2)
    m = np.array([[sx * np.cos(ang), -np.sin(ang) + sh, 0.0], [sx * np.sin(ang), np.cos(ang), 0.0]], np.float32)
    c = np.array([w / 2, h / 2], np.float32)
    m[:, 2] = c - m[:, :2] @ c
    a = cv2.warpAffine(a, m, (w, h), flags=cv2.INTER_LINEAR)
    height = float(g.shape[0])
    want = rng.uniform(0.08, 0.16) * height
    have = stroke_width(a)
    r = round((want - have) / 2)
    if r > 0:
        a = cv2.dilate(a, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    elif r < 0 and have + 2 * r >= 0.05 * height:
        a = cv2.erode(a, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (-2 * r + 1, -2 * r + 1)))
    tile = normalize_digit(a)
    return np.round(tile * 255).astype(np.uint8)


def render(args: argparse.Namespace) -> int:
    files = font_files(args.fonts)
    rng = np.random.default_rng(args.seed)
    images, labels, fonts = [], [], []
    used = 0
    for k, path in enumerate(files):
        try:
            font = ImageFont.truetype(str(path), 96)
        except OSError as exc:
            print(f"skip {path}: {exc}", file=sys.stderr)
            continue
        drawn = [glyph(font, str(d)) for d in range(10)]
        gs = [g for g in drawn if g is not None]
        if len(gs) < 10:
            print(f"skip {path}: lacks a digit", file=sys.stderr)
            continue
        if len({g.tobytes() for g in gs}) < 10:
            print(f"skip {path}: two digits drawn alike (a missing glyph's box)", file=sys.stderr)
            continue
        used += 1
        for d, g in enumerate(gs):
            for _ in range(args.variants):
                images.append(variant(g, rng))
                labels.append(d)
                fonts.append(k)
    np.savez_compressed(args.out, images=np.stack(images), labels=np.array(labels, np.int64),
                        fonts=np.array(fonts, np.int32), names=np.array([str(f) for f in files]))
    print(f"{used} font files of {len(files)}, {len(images)} digit images -> {args.out}", file=sys.stderr)
    if args.sheet:
        sheet = np.vstack([np.hstack(images[i * 10 * args.variants : (i + 1) * 10 * args.variants : args.variants])
                           for i in range(min(used, 40))])
        cv2.imwrite(args.sheet, 255 - sheet)
    return 0


class FontBatches(TD._AugmentedBatches):
    """The digit CNN's batches with a share of the images swapped for font digits."""

    pool: np.ndarray = np.zeros((0, 28, 28), np.uint8)
    pool_labels: np.ndarray = np.zeros(0, np.int64)
    share: float = 0.0

    def __getitem__(self, ids: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.share or not len(self.pool):
            return super().__getitem__(ids)
        n = len(self.images)
        tiles = np.empty((len(ids), 28, 28), np.float32)
        labels = np.empty(len(ids), np.int64)
        for j, gid in enumerate(ids):
            epoch, i = divmod(int(gid), n)
            rng = np.random.default_rng([self.seed, epoch, i, 39])
            if rng.random() < self.share:
                k = int(rng.integers(len(self.pool)))
                image, label = self.pool[k], self.pool_labels[k]
            else:
                image, label = self.images[i], self.labels[i]
            tiles[j] = scan_road(image, rng) if rng.random() < self.scan_share else clean_road(image, rng)
            labels[j] = label
        return torch.from_numpy(to_model_input(tiles)), torch.from_numpy(labels)


class FontBank(DigitBank):
    """A bank's MNIST digits, and font digits picked in place of one with probability ``share``."""

    def __init__(self, bank: DigitBank, pool: np.ndarray, pool_labels: np.ndarray, share: float) -> None:
        n = len(bank.images)
        self.images = np.concatenate([bank.images, pool])
        self.mnist = bank.by_label
        self.fonts = [np.flatnonzero(pool_labels == d) + n for d in range(10)]
        self.by_label = [np.concatenate(pair) for pair in zip(self.mnist, self.fonts)]
        self.share = share

    def pick(self, d: int, rng: np.random.Generator) -> int:
        idx = self.fonts[d] if rng.random() < self.share else self.mnist[d]
        return int(idx[int(rng.integers(0, len(idx)))])


def strings(args: argparse.Namespace, rest: list[str]) -> int:
    from formocr import cli
    from formocr.train import strings as TS

    z = np.load(args.pool)
    shipped = TS.StringGenerator

    def generator(bank: DigitBank | None, *a: Any, **kw: Any) -> Any:
        if bank is not None and "distort" in kw:  # the training strings; validation_strings passes no distort
            bank = FontBank(bank, z["images"], z["labels"], args.share)
        return shipped(bank, *a, **kw)

    TS.StringGenerator = generator  # type: ignore[assignment,misc]
    shipped_started = cli._training_started

    def started(kind: str) -> str:  # the card records this command, not a `formocr train strings` without the fonts
        shipped_started(kind)
        return _command()

    cli._training_started = started
    return int(cli.main(["train", "strings", *rest], standalone_mode=False) or 0)


def _command() -> str:
    """This run's command line, as a model card records it."""
    return "python benchmarks/experiments/font_digits.py " + shlex.join(sys.argv[1:])


def train(args: argparse.Namespace) -> int:
    if args.pool:
        z = np.load(args.pool)
        FontBatches.pool, FontBatches.pool_labels = z["images"], z["labels"]
    FontBatches.share = args.share
    TD._AugmentedBatches = FontBatches  # type: ignore[misc]
    cfg = TD.TrainConfig(epochs=args.epochs, seed=args.seed, out=args.out, threads=args.threads, workers=1,
                         split_seed=0)
    card = TD.train_digits(cfg, command=_command())
    f = card["figures"]
    print(f"{args.out}: share {args.share} seed {args.seed}: MNIST test errors {f['test_errors']} "
          f"(accuracy {f['test_accuracy']:.4f}); val clean {f['val_accuracy_clean']:.4f} "
          f"scan {f['val_accuracy_scan']:.4f}")
    return 0


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render")
    r.add_argument("--fonts", nargs="+", required=True)
    r.add_argument("--variants", type=int, default=40)
    r.add_argument("--seed", type=int, default=39)
    r.add_argument("--out", required=True)
    r.add_argument("--sheet", help="PNG of one variant of each digit of the first 40 fonts")
    t = sub.add_parser("train")
    t.add_argument("--pool")
    t.add_argument("--share", type=float, default=0.15)
    t.add_argument("--epochs", type=int, default=12)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--out", required=True)
    s = sub.add_parser("strings")
    s.add_argument("--pool", required=True)
    s.add_argument("--share", type=float, default=0.15)
    argv = sys.argv[1:]
    rest = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = ap.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.cmd == "strings":
        return strings(args, rest)
    return render(args) if args.cmd == "render" else train(args)


if __name__ == "__main__":
    raise SystemExit(main())
