"""Training of the digit CNN on MNIST, deterministic for a seed, on the CPU.

Every training image is generated afresh each epoch by :mod:`formocr.train.augment` from a random stream keyed
by (seed, epoch, image index), so the result does not depend on worker scheduling. 5,000 training images are held
out (by a seeded permutation) for model selection and temperature fitting; the test set is touched once, at the
end, for the figure written into the card.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from formocr.data.mnist import load_split
from formocr.normalize import DEFAULT_SPEC, normalize_digit, to_model_input
from formocr.recognize.digits import ARCH, DEFAULT_WIDTHS, DigitNet
from formocr.recognize.modelfile import code_version, save_model
from formocr.train.augment import clean_road, jitter_tile, scan_road
from formocr.train.calibrate import error_at_coverage, expected_calibration_error, fit_temperature, softmax
from formocr.train.crops import CropPool, harvest
from formocr.train.splits import digit_cnn_split, split_digest

log = logging.getLogger("formocr.train")


@dataclass(frozen=True)
class TrainConfig:
    data: str | None = None
    epochs: int = 30
    seed: int = 0
    out: str = "models/digits-cnn.safetensors"
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    val_size: int = 5000
    scan_share: float = 0.75  # share of images sent down the scanned-digit road (the rest: clean MNIST)
    limit: int | None = None  # train on the first N images only (tests)
    threads: int = 2
    workers: int = 1
    widths: tuple[int, ...] = DEFAULT_WIDTHS
    # Hold out the 5000 images that ``formocr train strings --split-seed N`` holds out, instead of ``val_size``
    # drawn from the training seed (the shipped model's split). Fusion can then be tuned on digits new to both
    # readers: 5000 of them, where the two seeded splits share only 413 (benchmarks/fusion_tune.py --held-out both).
    split_seed: int | None = None
    # Strings whose segmentation cuts become training tiles (formocr.train.crops), and the share of each batch
    # drawn from those tiles. 0: MNIST tiles only (the roads of formocr.train.augment), as before.
    string_crops: int = 0
    crop_share: float = 0.4
    # The classifier segmentation consults while cutting those strings (default: the shipped digit model).
    crop_model: str | None = None
    crop_recut: bool = True  # also the pieces split_to_count cuts merged (touching) digits into
    # Share of scan-road tiles shaded by the scan's grey (augment.scan_road(grey=True)), as the pipeline's default
    # digit_tiles="grey" shows a cut; 0 (the shipped recipe): the bare mask only, the same draws as before.
    grey_share: float = 0.0


class _AugmentedBatches(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Item i of the sampler is a whole batch; ids encode (epoch, index) so each epoch differs but repeats."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, seed: int, scan_share: float,
                 crops: CropPool | None = None, crop_share: float = 0.0, grey_share: float = 0.0) -> None:
        self.images, self.labels, self.seed, self.scan_share = images, labels, seed, scan_share
        self.crops, self.crop_share, self.grey_share = crops, crop_share, grey_share

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, ids: Any) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.images)
        tiles = np.empty((len(ids), 28, 28), np.float32)
        labels = np.empty(len(ids), np.int64)
        for j, gid in enumerate(ids):
            epoch, i = divmod(int(gid), n)
            rng = np.random.default_rng([self.seed, epoch, i])
            if self.crops is not None and len(self.crops) and rng.random() < self.crop_share:
                k = int(rng.integers(len(self.crops)))
                tiles[j] = jitter_tile(self.crops.tiles[k], rng)
                labels[j] = self.crops.labels[k]
                continue
            if rng.random() < self.scan_share:
                grey = self.grey_share > 0 and rng.random() < self.grey_share
                tiles[j] = scan_road(self.images[i], rng, grey=grey)
            else:
                tiles[j] = clean_road(self.images[i], rng)
            labels[j] = self.labels[i]
        return torch.from_numpy(to_model_input(tiles)), torch.from_numpy(labels)


class _EpochBatches(Sampler[list[int]]):
    def __init__(self, n: int, batch_size: int, epoch: int, seed: int) -> None:
        self.n, self.bs, self.epoch, self.seed = n, batch_size, epoch, seed

    def __iter__(self) -> Iterator[list[int]]:
        order = np.random.default_rng([self.seed, self.epoch, 7]).permutation(self.n)
        for k in range(0, self.n, self.bs):
            yield [int(self.epoch * self.n + i) for i in order[k : k + self.bs]]

    def __len__(self) -> int:
        return (self.n + self.bs - 1) // self.bs


def _tiles(images: np.ndarray) -> np.ndarray:
    return np.stack([normalize_digit(im) for im in images]) if len(images) else np.zeros((0, 28, 28), np.float32)


def _scan_tiles(images: np.ndarray, seed: int, grey: bool = False) -> np.ndarray:
    return np.stack([scan_road(im, np.random.default_rng([seed, 10_000_019, i]), grey=grey)
                     for i, im in enumerate(images)])


def predict_logits(net: nn.Module, tiles: np.ndarray, batch: int = 512) -> np.ndarray:
    net.eval()
    x = torch.from_numpy(to_model_input(tiles))
    with torch.inference_mode():
        parts = [net(x[i : i + batch].contiguous(memory_format=torch.channels_last)) for i in range(0, len(x), batch)]
        return torch.cat(parts).numpy()


class Progress:
    """A one-line progress display on stderr that only shows when stderr is a terminal."""

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label, self.tty = total, label, sys.stderr.isatty()
        self.t0 = time.perf_counter()

    def update(self, done: int, extra: str = "") -> None:
        if not self.tty:
            return
        el = time.perf_counter() - self.t0
        eta = el / max(done, 1) * (self.total - done)
        sys.stderr.write(f"\r{self.label} {done}/{self.total} {extra} eta {eta:4.0f}s ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\r" + " " * 79 + "\r")


def train_digits(cfg: TrainConfig, command: str | None = None, on_epoch: Callable[[dict[str, Any]], None] | None = None
                 ) -> dict[str, Any]:
    """Train, select on validation, calibrate, measure on test, save weights + card; return the card."""
    t_start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)
    torch.set_flush_denormal(True)  # denormal activations made CPU training 6x slower
    train = load_split("train", cfg.data)
    test = load_split("test", cfg.data)
    val_idx, tr_idx = digit_cnn_split(len(train.images), cfg.seed, cfg.val_size, cfg.split_seed)
    held_out = {"split_seed": cfg.split_seed, "images": len(val_idx), "indices_sha256_16": split_digest(val_idx)}
    if cfg.split_seed is None:
        held_out["drawn_from_seed"] = cfg.seed
    if cfg.limit:
        tr_idx = tr_idx[: cfg.limit]
        val_idx = val_idx[: max(200, cfg.limit // 10)]
    tr_x, tr_y = train.images[tr_idx], train.labels[tr_idx]
    val_clean = _tiles(train.images[val_idx])
    val_scan = _scan_tiles(train.images[val_idx], cfg.seed)
    val_grey = _scan_tiles(train.images[val_idx], cfg.seed, grey=True) if cfg.grey_share > 0 else None
    val_y = train.labels[val_idx]
    crops: CropPool | None = None
    val_crops: CropPool | None = None
    crop_info: dict[str, Any] | None = None
    if cfg.string_crops:
        from formocr.recognize.digits import DigitClassifier
        from formocr.synth.strings import DigitBank, StringGenerator

        cutter = DigitClassifier.load(cfg.crop_model)
        t_h = time.perf_counter()
        # the string reader's training generator (lengths 1-12, separators, 30% stroke-rendered digits)
        crops = harvest(StringGenerator(DigitBank(tr_x, tr_y)), cfg.string_crops, cfg.seed,
                        cutter.top_probability, cfg.crop_recut)
        val_crops = harvest(StringGenerator(DigitBank(train.images[val_idx], val_y)),
                            max(200, cfg.string_crops // 20), cfg.seed + 1_000_003, cutter.top_probability,
                            cfg.crop_recut)
        crop_info = {"strings": cfg.string_crops, "tiles": len(crops), "recut_tiles": int(crops.recut.sum()),
                     "stats": crops.stats, "val_strings": val_crops.stats["strings"], "val_tiles": len(val_crops),
                     "share": cfg.crop_share, "recut": cfg.crop_recut, "cut_with": cutter.identity,
                     "generator": "formocr.synth.strings.StringGenerator defaults, training images only",
                     "seconds": round(time.perf_counter() - t_h, 1)}
        log.info("cut %d training tiles from %d strings (%d re-cut), %d validation tiles (%.0fs)", len(crops),
                 cfg.string_crops, crop_info["recut_tiles"], len(val_crops), crop_info["seconds"])

    # channels-last: ~4x faster convolutions on x86 CPUs
    net = DigitNet(cfg.widths).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * ((len(tr_x) + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.2)
    ds = _AugmentedBatches(tr_x, tr_y, cfg.seed, cfg.scan_share, crops, cfg.crop_share, cfg.grey_share)
    best: tuple[float, int, dict[str, torch.Tensor]] = (-1.0, -1, {})
    history = []
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        loader = DataLoader(ds, batch_size=None, sampler=_EpochBatches(len(tr_x), cfg.batch_size, epoch, cfg.seed),
                            num_workers=cfg.workers, persistent_workers=False)
        net.train()
        prog = Progress(len(loader), f"epoch {epoch + 1}/{cfg.epochs}")
        total_loss, seen = 0.0, 0
        for k, (xb, yb) in enumerate(loader):
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(net(xb.contiguous(memory_format=torch.channels_last)), yb)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item() * len(yb)
            seen += len(yb)
            if k % 20 == 0:
                prog.update(k + 1, f"loss {total_loss / seen:.4f}")
        prog.close()
        acc_clean = float((predict_logits(net, val_clean).argmax(1) == val_y).mean())
        acc_scan = float((predict_logits(net, val_scan).argmax(1) == val_y).mean())
        row = {"epoch": epoch + 1, "loss": total_loss / max(seen, 1), "val_clean": acc_clean, "val_scan": acc_scan}
        if val_grey is not None:
            row["val_scan_grey"] = float((predict_logits(net, val_grey).argmax(1) == val_y).mean())
        if val_crops is not None:
            row["val_crops"] = float((predict_logits(net, val_crops.tiles).argmax(1) == val_crops.labels).mean())
        score = float(np.mean([v for k, v in row.items() if k.startswith("val_")]))
        row["seconds"] = round(time.perf_counter() - t0, 1)
        history.append(row)
        log.info("epoch %d/%d loss %.4f val %.4f scan-val %.4f grey-val %s crops-val %s (%.0fs)", epoch + 1,
                 cfg.epochs, row["loss"], acc_clean, acc_scan,
                 f"{row['val_scan_grey']:.4f}" if "val_scan_grey" in row else "-",
                 f"{row['val_crops']:.4f}" if "val_crops" in row else "-", row["seconds"])
        if on_epoch:
            on_epoch(row)
        if score > best[0]:
            best = (score, epoch + 1, {k: v.detach().clone() for k, v in net.state_dict().items()})

    net.load_state_dict(best[2])
    val_tiles = np.concatenate([val_clean, val_scan] + ([val_grey] if val_grey is not None else [])
                               + ([val_crops.tiles] if val_crops is not None else []))
    val_labels = np.concatenate([val_y, val_y] + ([val_y] if val_grey is not None else [])
                                + ([val_crops.labels] if val_crops is not None else []))
    val_logits = predict_logits(net, val_tiles)
    temperature = fit_temperature(val_logits, val_labels)
    test_tiles = _tiles(test.images)
    test_logits = predict_logits(net, test_tiles)
    p1, pt = softmax(test_logits, 1.0), softmax(test_logits, temperature)
    err95, cut95 = error_at_coverage(pt, test.labels, 0.95)
    err99, cut99 = error_at_coverage(pt, test.labels, 0.99)
    train_seconds = time.perf_counter() - t_start
    meta = {"arch": ARCH, "widths": list(cfg.widths), "norm": DEFAULT_SPEC.to_dict(),
            "classes": [str(i) for i in range(10)], "temperature": round(temperature, 6)}
    card: dict[str, Any] = {
        "name": Path(cfg.out).name.removesuffix(".safetensors"),
        "task": "single handwritten digit, MNIST-style 28×28 tile → 10 classes",
        "training": {
            "command": command or f"formocr train digits --epochs {cfg.epochs} --seed {cfg.seed} --out {cfg.out}",
            "seed": cfg.seed, "epochs": cfg.epochs, "selected_epoch": best[1], "batch_size": cfg.batch_size,
            "optimizer": f"AdamW lr={cfg.lr} wd={cfg.weight_decay}, one-cycle", "val_size": cfg.val_size,
            "scan_share": cfg.scan_share, "grey_share": cfg.grey_share, "limit": cfg.limit, "string_crops": crop_info,
            "data": {"dataset": "MNIST", "sha256": {**train.sha256, **test.sha256}, "held_out": held_out},
            "seconds": round(train_seconds, 1), "threads": cfg.threads, "workers": cfg.workers,
            "code": code_version(), "torch": torch.__version__, "python": platform.python_version(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "history": history,
        },
        "figures": {
            "val_accuracy_clean": history[best[1] - 1]["val_clean"],
            "val_accuracy_scan": history[best[1] - 1]["val_scan"],
            **({"val_accuracy_scan_grey": history[best[1] - 1]["val_scan_grey"]} if val_grey is not None else {}),
            **({"val_accuracy_crops": history[best[1] - 1]["val_crops"]} if val_crops is not None else {}),
            "test_accuracy": float((pt.argmax(1) == test.labels).mean()),
            "test_errors": int((pt.argmax(1) != test.labels).sum()),
            "test_ece_before_temperature": expected_calibration_error(p1, test.labels),
            "test_ece": expected_calibration_error(pt, test.labels),
            "test_error_at_95_coverage": err95, "confidence_cutoff_95": cut95,
            "test_error_at_99_coverage": err99, "confidence_cutoff_99": cut99,
        },
    }
    save_model(cfg.out, net.state_dict(), meta, card)
    log.info("saved %s (test accuracy %.4f, T=%.3f)", cfg.out, card["figures"]["test_accuracy"], temperature)
    return card
