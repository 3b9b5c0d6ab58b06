"""Training the blob reader (:mod:`formocr.recognize.blobs`) on pieces of synthetic strings.

Strings of 2-8 digits from MNIST training images (the 5000 held out by ``--split-seed`` never used; three in
four asked to touch) are cut as the pipeline cuts a field (:func:`formocr.synth.strings.field_cut_of`), split
into connected pieces, and each drawn digit is laid onto a piece by the same rule inference uses, from the drawn
box's centre (jittered, as a CTC alignment's centre wanders). A piece holding two neighbouring digits is labelled
with the pair, one digit with the digit, more with "+"; pieces holding none (a broken stroke's fragment) are
not used. Single digits are plentiful, so only ``single_share`` of them are kept.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from formocr.data.mnist import load_split
from formocr.recognize.blobs import (
    ARCH,
    CLASSES,
    DEFAULT_BLOB_SPEC,
    DEFAULT_HIDDEN,
    DEFAULT_WIDTHS,
    MANY,
    BlobNet,
    BlobSpec,
    assign,
    blob_tile,
    class_of,
    ink_blobs,
    to_input,
)
from formocr.recognize.modelfile import code_version, save_model
from formocr.synth.strings import DigitBank, StringGenerator, StringSample, field_cut_of
from formocr.train.digits import Progress
from formocr.train.splits import held_out_split, split_digest

log = logging.getLogger("formocr.train")


@dataclass(frozen=True)
class BlobTrainConfig:
    data: str | None = None
    strings: int = 160_000  # synthetic strings cut into pieces (about 1.8 pieces kept per string)
    val_strings: int = 4000  # from the held-out images; every piece kept
    epochs: int = 5
    seed: int = 0
    split_seed: int = 0  # the string models' held-out images, so benchmarks on them stay fair to both readers
    out: str = "runs/blobs-cnn.safetensors"  # experimental: not shipped, so not in models/
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    single_share: float = 0.3
    touching_share: float = 0.75
    jitter: float = 0.12  # drawn centres moved by up to this share of the digit height
    limit: int | None = None  # use only N training images (tests)
    threads: int = 1


def piece_tiles(sample: StringSample, rng: np.random.Generator | None, single_share: float = 1.0,
                jitter: float = 0.0, spec: BlobSpec = DEFAULT_BLOB_SPEC) -> tuple[list[np.ndarray], list[int]]:
    """The labelled pieces of one synthetic strip (``rng`` None: no jitter, every single kept)."""
    ink, crop = field_cut_of(sample)
    blobs = ink_blobs(ink, spec)
    drawn = [(ch, b) for ch, b in sample.char_boxes if ch.isdigit()]
    if not blobs.boxes or not drawn:
        return [], []
    centres = [b.x + b.w / 2 - crop.x + (rng.uniform(-jitter, jitter) * b.h if rng is not None else 0.0)
               for _, b in drawn]
    on = assign(centres, blobs, spec)
    text = "".join(ch for ch, _ in drawn)
    tiles, labels = [], []
    for k in sorted(set(on) - {-1}):
        cls = class_of(text, [i for i, v in enumerate(on) if v == k])
        if cls is None:
            continue
        if 100 <= cls < MANY and rng is not None and rng.random() > single_share:
            continue
        tiles.append(blob_tile(blobs.mask(k), spec))
        labels.append(cls)
    return tiles, labels


def harvest(gen: StringGenerator, n: int, seed: int, train: bool, cfg: BlobTrainConfig
            ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` strips cut into uint8 tiles and labels; deterministic for a seed."""
    tiles: list[np.ndarray] = []
    labels: list[int] = []
    prog = Progress(n, "pieces")
    for i in range(n):
        rng = np.random.default_rng([seed, 777, i])
        sample = gen.sample(rng, touching=bool(rng.random() < cfg.touching_share))
        t, y = piece_tiles(sample, rng if train else None, cfg.single_share, cfg.jitter)
        tiles += t
        labels += y
        if i % 500 == 0:
            prog.update(i, f"{len(labels)} pieces")
    prog.close()
    arr = np.stack(tiles) if tiles else np.zeros((0, DEFAULT_BLOB_SPEC.height, DEFAULT_BLOB_SPEC.width), np.float32)
    return (arr * 255).round().astype(np.uint8), np.asarray(labels, np.int64)


def _kinds(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Which labels are pairs, single digits, three or more."""
    return {"pair": labels < 100, "single": (labels >= 100) & (labels < MANY), "many": labels == MANY}


def accuracy_by_kind(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    pred = logits.argmax(1)
    out = {}
    for kind, m in (*_kinds(labels).items(), ("all", np.ones_like(labels, bool))):
        out[kind] = round(float((pred[m] == labels[m]).mean()), 4) if m.any() else float("nan")
    return out


def _logits(net: BlobNet, tiles: np.ndarray) -> np.ndarray:
    net.eval()
    with torch.inference_mode():
        return torch.cat([net(to_input(tiles[i : i + 1024])) for i in range(0, len(tiles), 1024)]).numpy() \
            if len(tiles) else np.zeros((0, len(CLASSES)), np.float32)


def train_blobs(cfg: BlobTrainConfig, command: str | None = None,
                on_epoch: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Harvest, train, keep the epoch best on held-out pieces, save weights + card; return the card."""
    t_start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)
    train = load_split("train", cfg.data)
    val_idx, tr_idx = held_out_split(len(train.images), cfg.split_seed)
    if cfg.limit:
        tr_idx = tr_idx[: cfg.limit]

    def generator(idx: np.ndarray) -> StringGenerator:
        return StringGenerator(DigitBank(train.images[idx], train.labels[idx]), synth_share=0.0, min_len=2,
                               max_len=8, separators=False)

    x, y = harvest(generator(tr_idx), cfg.strings, cfg.seed, True, cfg)
    xv, yv = harvest(generator(val_idx), cfg.val_strings, cfg.seed + 1_000_003, False, cfg)
    t_harvest = time.perf_counter() - t_start
    log.info("%d training pieces, %d validation pieces (%.0f s)", len(y), len(yv), t_harvest)
    net = BlobNet()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = max(1, len(y) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * per_epoch)
    g = np.random.default_rng([cfg.seed, 5150])
    best: tuple[float, int, dict[str, torch.Tensor]] = (-1.0, 0, {})
    history = []
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        net.train()
        order = g.permutation(len(y))
        prog = Progress(per_epoch, f"epoch {epoch}")
        for k in range(per_epoch):
            b = order[k * cfg.batch_size : (k + 1) * cfg.batch_size]
            dy, dx = (int(v) for v in g.integers(-2, 3, size=2))  # the whole batch shifted by up to 2 px
            xb = torch.roll(to_input(x[b]), (dy, dx), (2, 3))
            loss = F.cross_entropy(net(xb), torch.from_numpy(y[b]), label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if k % 50 == 0:
                prog.update(k, f"loss {loss.item():.3f}")
        prog.close()
        acc = accuracy_by_kind(_logits(net, xv), yv)
        row = {"epoch": epoch, "loss": round(float(loss.item()), 4), "val_accuracy": acc,
               "seconds": round(time.perf_counter() - t0, 1)}
        history.append(row)
        log.info("epoch %d/%d val %s (%.0fs)", epoch, cfg.epochs, acc, row["seconds"])
        if on_epoch:
            on_epoch(row)
        if acc["all"] > best[0]:
            best = (acc["all"], epoch, {k: v.detach().clone() for k, v in net.state_dict().items()})
    net.load_state_dict(best[2])
    meta = {"arch": ARCH, "widths": list(DEFAULT_WIDTHS), "hidden": DEFAULT_HIDDEN, "classes": list(CLASSES),
            "spec": DEFAULT_BLOB_SPEC.to_dict()}
    counts = {kind: int(m.sum()) for kind, m in _kinds(y).items()}
    card: dict[str, Any] = {
        "name": Path(cfg.out).name.removesuffix(".safetensors"),
        "task": "one connected piece of a field's ink → a digit, two touching digits, or three or more",
        "training": {
            "command": command or f"formocr train blobs --seed {cfg.seed} --out {cfg.out}",
            "seed": cfg.seed, "split_seed": cfg.split_seed, "epochs": cfg.epochs, "selected_epoch": best[1],
            "strings": cfg.strings, "pieces": counts, "batch_size": cfg.batch_size,
            "optimizer": f"AdamW lr={cfg.lr} wd={cfg.weight_decay}, one-cycle, label smoothing 0.05",
            "data": {"dataset": "MNIST training images (test images never used)", "sha256": train.sha256,
                     "validation": f"every piece of {cfg.val_strings} strings of the held-out training images",
                     "held_out": {"split_seed": cfg.split_seed, "images": len(val_idx),
                                  "indices_sha256_16": split_digest(val_idx)}},
            "generator": "formocr.synth.strings.StringGenerator: 2-8 MNIST digits, no separators, "
                         f"{cfg.touching_share:.0%} asked to touch",
            "limit": cfg.limit, "seconds": round(time.perf_counter() - t_start, 1),
            "harvest_seconds": round(t_harvest, 1), "threads": cfg.threads, "code": code_version(),
            "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "history": history,
        },
        "figures": {"val_accuracy": history[best[1] - 1]["val_accuracy"]},
    }
    save_model(cfg.out, net.state_dict(), meta, card)
    log.info("saved %s (validation accuracy %s)", cfg.out, card["figures"]["val_accuracy"])
    return card
