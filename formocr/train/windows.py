"""Training the window judge (:mod:`formocr.recognize.windows`) on windows of synthetic strings.

Strings drawn as the string reader is trained on them (MNIST training images, the 5000 held out by
``--split-seed`` never used; 30% stroke-rendered digits; lengths 1-12 with separators; half asked to touch) go
down the pipeline's field road (:func:`formocr.segment.field_cut`) to the grey-box strip the pipeline shows the
string reader (:func:`formocr.recognize.strings.field_strip`, borders painted out). A window is cut around every
drawn digit's centre, moved by up to ``jitter`` strip columns either way, as a CTC centre wanders, and labelled with
that digit. Validation: every digit of strings of the held-out images, windows on the drawn centres.
"""

from __future__ import annotations

import logging
import multiprocessing
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
from formocr.recognize.modelfile import code_version, save_model
from formocr.recognize.strings import field_strip
from formocr.recognize.windows import (
    ARCH,
    DEFAULT_HIDDEN,
    DEFAULT_WIDTHS,
    DEFAULT_WINDOW_SPEC,
    WindowNet,
    WindowSpec,
    cut_windows,
    to_input,
)
from formocr.synth.strings import DigitBank, StringGenerator, StringSample, field_grey_of
from formocr.train.digits import Progress
from formocr.train.splits import held_out_split, split_digest

log = logging.getLogger("formocr.train")


@dataclass(frozen=True)
class WindowTrainConfig:
    data: str | None = None
    strings: int = 80_000  # synthetic strings (about 6 digit windows each)
    val_strings: int = 3000  # from the held-out images
    epochs: int = 3
    seed: int = 0
    split_seed: int = 0  # the string models' held-out images, so benchmarks on them stay fair to every reader
    out: str = "runs/windows-cnn.safetensors"  # experimental: not shipped, so not in models/
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    jitter: float = 5.0  # strip columns either way
    limit: int | None = None  # use only N training images (tests)
    threads: int = 1
    workers: int = 1  # processes drawing the strings


def digit_windows(sample: StringSample, rng: np.random.Generator | None, jitter: float = 0.0,
                  spec: WindowSpec = DEFAULT_WINDOW_SPEC) -> tuple[np.ndarray, list[int]]:
    """The windows of one synthetic strip around its drawn digits, and their digits (``rng`` None: no jitter)."""
    ink, gray, lines, crop = field_grey_of(sample, with_box=True)
    strip, geom = field_strip(ink, sample.region.box.h, sample.dpi, gray=gray, whole_box=True, lines=lines)
    if geom.blank:
        return np.zeros((0, spec.height, spec.width), np.float32), []
    centres, labels = [], []
    for ch, b in sample.char_boxes:
        if ch.isdigit():
            c = geom.pad + (b.x + b.w / 2 - crop.x - geom.x0) * geom.sx
            centres.append(c + (rng.uniform(-jitter, jitter) if rng is not None else 0.0))
            labels.append(int(ch))
    return cut_windows(strip, centres, spec), labels


_GEN: StringGenerator | None = None


def _init_worker(images: np.ndarray, labels: np.ndarray) -> None:
    global _GEN
    torch.set_num_threads(1)
    _GEN = StringGenerator(DigitBank(images, labels), synth_share=0.3)


def _harvest_one(job: tuple[int, int, bool, float]) -> tuple[np.ndarray, list[int]]:
    seed, i, train, jitter = job
    assert _GEN is not None
    rng = np.random.default_rng([seed, 4242, i])
    w, y = digit_windows(_GEN.sample(rng), rng if train else None, jitter)
    return (np.clip(w, 0.0, 1.0) * 255).round().astype(np.uint8), y


def harvest(images: np.ndarray, labels: np.ndarray, n: int, seed: int, train: bool, cfg: WindowTrainConfig
            ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` strips cut into uint8 windows and labels; deterministic for a seed whatever ``cfg.workers``."""
    jobs = [(seed, i, train, cfg.jitter) for i in range(n)]
    prog = Progress(n, "windows")
    if cfg.workers > 1:
        ctx = multiprocessing.get_context("forkserver")
        with ctx.Pool(cfg.workers, _init_worker, (images, labels)) as pool:
            parts = []
            for k, part in enumerate(pool.imap(_harvest_one, jobs, chunksize=100)):
                parts.append(part)
                if k % 1000 == 0:
                    prog.update(k)
    else:
        _init_worker(images, labels)
        parts = []
        for k, job in enumerate(jobs):
            parts.append(_harvest_one(job))
            if k % 1000 == 0:
                prog.update(k)
    prog.close()
    spec = DEFAULT_WINDOW_SPEC
    x = np.concatenate([w for w, _ in parts]) if parts else np.zeros((0, spec.height, spec.width), np.uint8)
    return x, np.asarray([v for _, y in parts for v in y], np.int64)


def _logits(net: WindowNet, x: np.ndarray) -> torch.Tensor:
    net.eval()
    with torch.inference_mode():
        outs = [net(to_input(x[i : i + 2048]).contiguous(memory_format=torch.channels_last))
                for i in range(0, len(x), 2048)]
    return torch.cat(outs) if outs else torch.zeros((0, 10))


def temperature(logits: torch.Tensor, labels: np.ndarray) -> float:
    """The temperature that makes held-out windows' probabilities honest (least negative log-likelihood)."""
    y = torch.from_numpy(labels)
    grid = np.round(np.arange(0.5, 3.0, 0.05), 2)
    nll = [float(F.cross_entropy(logits / float(t), y)) for t in grid]
    return float(grid[int(np.argmin(nll))])


def train_windows(cfg: WindowTrainConfig, command: str | None = None,
                  on_epoch: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Harvest, train, keep the best epoch on held-out windows, calibrate, save weights + card; return the card."""
    t_start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)
    torch.set_flush_denormal(True)
    train = load_split("train", cfg.data)
    val_idx, tr_idx = held_out_split(len(train.images), cfg.split_seed)
    if cfg.limit:
        tr_idx = tr_idx[: cfg.limit]
    x, y = harvest(train.images[tr_idx], train.labels[tr_idx], cfg.strings, cfg.seed, True, cfg)
    xv, yv = harvest(train.images[val_idx], train.labels[val_idx], cfg.val_strings, cfg.seed + 1_000_003, False, cfg)
    t_harvest = time.perf_counter() - t_start
    log.info("%d training windows, %d validation windows (%.0f s)", len(y), len(yv), t_harvest)
    net = WindowNet().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = max(1, len(y) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * per_epoch)
    g = np.random.default_rng([cfg.seed, 5151])
    best: tuple[float, int, dict[str, torch.Tensor]] = (-1.0, 0, {})
    history = []
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        net.train()
        order = g.permutation(len(y))
        prog = Progress(per_epoch, f"epoch {epoch}")
        for k in range(per_epoch):
            b = order[k * cfg.batch_size : (k + 1) * cfg.batch_size]
            xb = to_input(x[b]).contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16):  # the convolutions; the classifier stays float32
                f = net.features(xb)
            loss = F.cross_entropy(net.head(f.float()), torch.from_numpy(y[b]), label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if k % 100 == 0:
                prog.update(k, f"loss {loss.item():.3f}")
        prog.close()
        acc = float((_logits(net, xv).argmax(1).numpy() == yv).mean()) if len(yv) else float("nan")
        row = {"epoch": epoch, "loss": round(float(loss.item()), 4), "val_accuracy": round(acc, 5),
               "seconds": round(time.perf_counter() - t0, 1)}
        history.append(row)
        log.info("epoch %d/%d val %.4f (%.0fs)", epoch, cfg.epochs, acc, row["seconds"])
        if on_epoch:
            on_epoch(row)
        if acc > best[0] or not best[2]:
            best = (acc, epoch, {k: v.detach().clone() for k, v in net.state_dict().items()})
    net.load_state_dict(best[2])
    temp = temperature(_logits(net, xv), yv) if len(yv) else 1.0
    meta = {"arch": ARCH, "widths": list(DEFAULT_WIDTHS), "hidden": DEFAULT_HIDDEN,
            "spec": DEFAULT_WINDOW_SPEC.to_dict(), "temperature": temp}
    card: dict[str, Any] = {
        "name": Path(cfg.out).name.removesuffix(".safetensors"),
        "task": "a window of the string reader's grey-box strip → the digit in its middle (judges string readings)",
        "training": {
            "command": command or f"formocr train windows --seed {cfg.seed} --out {cfg.out}",
            "seed": cfg.seed, "split_seed": cfg.split_seed, "epochs": cfg.epochs, "selected_epoch": best[1],
            "strings": cfg.strings, "windows": len(y), "batch_size": cfg.batch_size, "jitter": cfg.jitter,
            "optimizer": f"AdamW lr={cfg.lr} wd={cfg.weight_decay}, one-cycle, label smoothing 0.05, "
                         "bfloat16 convolutions",
            "data": {"dataset": "MNIST training images (test images never used)", "sha256": train.sha256,
                     "validation": f"every digit of {cfg.val_strings} strings of the held-out training images "
                                   f"({len(yv)} windows on the drawn centres)",
                     "held_out": {"split_seed": cfg.split_seed, "images": len(val_idx),
                                  "indices_sha256_16": split_digest(val_idx)}},
            "generator": "formocr.synth.strings.StringGenerator: lengths 1-12, separators by format, half touching, "
                         "30% stroke-rendered digits (the string reader's)",
            "limit": cfg.limit, "seconds": round(time.perf_counter() - t_start, 1),
            "harvest_seconds": round(t_harvest, 1), "threads": cfg.threads, "workers": cfg.workers,
            "code": code_version(), "torch": torch.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "cpu_count": os.cpu_count(), "history": history,
        },
        "figures": {"val_accuracy": history[best[1] - 1]["val_accuracy"], "temperature": temp},
    }
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_model(cfg.out, state, meta, card)
    log.info("saved %s (validation accuracy %s)", cfg.out, card["figures"]["val_accuracy"])
    return card
