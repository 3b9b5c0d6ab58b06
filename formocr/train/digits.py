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
from formocr.errors import ModelError
from formocr.normalize import DEFAULT_SPEC, normalize_digit, to_model_input
from formocr.progress import Bar
from formocr.recognize.digits import ARCH, DEFAULT_WIDTHS, DigitNet
from formocr.recognize.modelfile import code_version, load_parent, save_model
from formocr.train.augment import CONTINENTAL_DIGITS, clean_road, continental_at, scan_road
from formocr.train.calibrate import error_at_coverage, expected_calibration_error, fit_temperature, softmax
from formocr.train.nondigits import non_digit
from formocr.train.splits import digit_cnn_split, split_digest

log = logging.getLogger("formocr.train")
REJECT = 10  # the class index of "not a digit" in an eleven-class model


@dataclass(frozen=True)
class TrainConfig:
    data: str | None = None
    epochs: int = 30
    seed: int = 0
    out: str = "runs/model.safetensors"  # never the shipped model unless told
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    val_size: int = 5000
    scan_share: float = 0.75  # share of images sent down the scanned-digit road (the rest: clean MNIST)
    limit: int | None = None  # train on the first N images only (tests)
    threads: int = 2
    workers: int = 1
    widths: tuple[int, ...] = DEFAULT_WIDTHS
    # Hold out the 5000 images that ``formocr-train strings --split-seed N`` holds out, instead of ``val_size``
    # drawn from the training seed (the shipped model's split). Fusion can then be tuned on digits new to both
    # readers: 5000 of them, where the two seeded splits share only 413 (benchmarks/fusion_tune.py --held-out both).
    split_seed: int | None = None
    # Real writers: CVL's training digits (67 writers) join MNIST's, each seen ``cvl_repeat`` times an epoch;
    # ``cvl`` is the CVL folder (default: $FORMOCR_CVL or ../shared/datasets/cvl-digits), ``use_cvl`` False: MNIST only.
    cvl: str | None = None
    use_cvl: bool = True
    cvl_repeat: int = 3
    # Share of training tiles that are not digits (formocr.train.nondigits), learnt as an eleventh class,
    # "reject"; 0: ten classes, as before.
    reject_share: float = 0.12
    # Train on from this single network's weights (a shipped member, to teach it a new kind of "not a digit"
    # without drawing a new network); it must have this run's shape, classes, tile normalization and held-out
    # MNIST images. Give a lower ``lr``: the one-cycle schedule then only adjusts it.
    init: str | None = None
    # Share of MNIST's 7s drawn barred, and half that share of its 0s slashed and its 3s flat-topped
    # (augment.continental): CVL's training writers write them so too seldom for the network to read every
    # continental writer's.
    continental: float = 0.3


class _AugmentedBatches(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Item i of the sampler is a whole batch; ids encode (epoch, index) so each epoch differs but repeats."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, seed: int, scan_share: float,
                 reject_share: float = 0.0, continental: float = 0.0, n_mnist: int = 0) -> None:
        self.images, self.labels, self.seed, self.scan_share = images, labels, seed, scan_share
        self.reject_share = reject_share
        self.continental, self.n_mnist = continental, n_mnist
        self.part_bank = images[labels != 1][:20000]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, ids: Any) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.images)
        tiles = np.empty((len(ids), 28, 28), np.float32)
        labels = np.empty(len(ids), np.int64)
        for j, gid in enumerate(ids):
            epoch, i = divmod(int(gid), n)
            rng = np.random.default_rng([self.seed, epoch, i])
            if self.reject_share > 0 and rng.random() < self.reject_share:
                tiles[j] = non_digit(rng, self.part_bank)
                labels[j] = REJECT
                continue
            image = self.images[i]
            if i < self.n_mnist and self.labels[i] in CONTINENTAL_DIGITS:  # its own stream: other tiles draw as before
                style = np.random.default_rng([self.seed, epoch, i, 31])
                image = continental_at(image, int(self.labels[i]), self.continental, style)
            if rng.random() < self.scan_share:
                tiles[j] = scan_road(image, rng)
            else:
                tiles[j] = clean_road(image, rng)
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


def _scan_tiles(images: np.ndarray, seed: int) -> np.ndarray:
    return np.stack([scan_road(im, np.random.default_rng([seed, 10_000_019, i]))
                     for i, im in enumerate(images)])


def predict_logits(net: nn.Module, tiles: np.ndarray, batch: int = 512) -> np.ndarray:
    net.eval()
    x = torch.from_numpy(to_model_input(tiles))
    with torch.inference_mode():
        parts = [net(x[i : i + batch].contiguous(memory_format=torch.channels_last)) for i in range(0, len(x), batch)]
        return torch.cat(parts).numpy()


def _parent(cfg: TrainConfig, n_classes: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """The weights of ``cfg.init`` and what the card records of it, or None; its shape is checked before any data
    loads, its held-out images once the split is drawn."""
    if not cfg.init:
        return None
    parent, ptrain = load_parent(cfg.init, ARCH, "digit")
    meta = parent.meta
    if tuple(meta.get("widths", ())) != tuple(cfg.widths) or len(meta.get("classes", ())) != n_classes:
        raise ModelError(f"widths {meta.get('widths')} and {len(meta.get('classes', ()))} classes differ from this "
                         f"run's {list(cfg.widths)} and {n_classes}", cfg.init)
    if meta.get("norm") != DEFAULT_SPEC.to_dict():
        raise ModelError("its tile normalization differs from this version's", cfg.init)
    return parent.state, {"path": str(cfg.init), "sha256": parent.sha256, "command": ptrain.get("command"),
                          "seed": ptrain.get("seed"), "epochs": ptrain.get("epochs"),
                          "held_out": ptrain.get("data", {}).get("held_out", {}).get("indices_sha256_16"),
                          "continental": ptrain.get("continental", 0.0),
                          **({"init": ptrain["init"]} if "init" in ptrain else {})}  # the whole chain, to rebuild it


def train_digits(cfg: TrainConfig, command: str | None = None, on_epoch: Callable[[dict[str, Any]], None] | None = None
                 ) -> dict[str, Any]:
    """Train, select on validation, calibrate, measure on test, save weights + card; return the card."""
    t_start = time.perf_counter()
    n_classes = 11 if cfg.reject_share > 0 else 10
    parent = _parent(cfg, n_classes)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)
    torch.set_flush_denormal(True)  # denormal activations made CPU training 6x slower
    train = load_split("train", cfg.data)
    test = load_split("test", cfg.data)
    val_idx, tr_idx = digit_cnn_split(len(train.images), cfg.seed, cfg.val_size, cfg.split_seed)
    held_out = {"split_seed": cfg.split_seed, "images": len(val_idx), "indices_sha256_16": split_digest(val_idx)}
    if parent is not None and parent[1]["held_out"] != held_out["indices_sha256_16"]:
        raise ModelError("its card does not record its held-out MNIST images" if not parent[1]["held_out"] else
                         "it held out other MNIST images than this run (another --seed or --split-seed): its "
                         "training images would include this run's held-out ones", cfg.init)
    if cfg.split_seed is None:
        held_out["drawn_from_seed"] = cfg.seed
    if cfg.limit:
        tr_idx = tr_idx[: cfg.limit]
        val_idx = val_idx[: max(200, cfg.limit // 10)]
    tr_x, tr_y = train.images[tr_idx], train.labels[tr_idx]
    n_mnist = len(tr_x)
    data_card: dict[str, Any] = {"dataset": "MNIST", "sha256": {**train.sha256, **test.sha256}, "held_out": held_out}
    val_real: np.ndarray | None = None
    val_real_y: np.ndarray | None = None
    if cfg.use_cvl:
        from formocr.data.real import CVL_TERMS, load_cvl

        cvl_tr, cvl_va = load_cvl("train", cfg.cvl), load_cvl("valid", cfg.cvl)
        n_cvl = len(cvl_tr.images) if not cfg.limit else max(50, cfg.limit // 8)
        tr_x = np.concatenate([tr_x] + [cvl_tr.images[:n_cvl]] * cfg.cvl_repeat)
        tr_y = np.concatenate([tr_y] + [cvl_tr.labels[:n_cvl]] * cfg.cvl_repeat)
        # choosing the epoch and the temperature: the even-numbered half of CVL's validation writers; the odd
        # half stays untouched to confirm the figures on (benchmarks/real_accuracy.py reports both halves)
        pick = cvl_va.writers % 2 == 0
        val_real, val_real_y = _tiles(cvl_va.images[pick]), cvl_va.labels[pick]
        data_card = {"datasets": ["MNIST", "CVL single digits"], "terms": {"CVL": CVL_TERMS},
                     "sha256": {**train.sha256, **test.sha256, **{"cvl/" + k: v for k, v in
                                                                  {**cvl_tr.sha256, **cvl_va.sha256}.items()}},
                     "held_out": held_out, "cvl_train": {"images": n_cvl, "repeat": cfg.cvl_repeat},
                     "chosen_on": "MNIST held-out images and CVL valid writers with even ids"}
    val_reject = (np.stack([non_digit(np.random.default_rng([cfg.seed, 20_000_003, i]), tr_x[tr_y != 1][:5000])
                            for i in range(1000)]) if cfg.reject_share > 0 else None)
    val_clean = _tiles(train.images[val_idx])
    val_scan = _scan_tiles(train.images[val_idx], cfg.seed)
    val_y = train.labels[val_idx]
    # channels-last: ~4x faster convolutions on x86 CPUs
    net = DigitNet(cfg.widths, classes=n_classes)
    if parent is not None:
        net.load_state_dict(parent[0])
    net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * ((len(tr_x) + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.2)
    ds = _AugmentedBatches(tr_x, tr_y, cfg.seed, cfg.scan_share, cfg.reject_share, cfg.continental, n_mnist)
    best: tuple[float, int, dict[str, torch.Tensor]] = (-1.0, -1, {})
    history = []
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        loader = DataLoader(ds, batch_size=None, sampler=_EpochBatches(len(tr_x), cfg.batch_size, epoch, cfg.seed),
                            num_workers=cfg.workers, persistent_workers=False)
        net.train()
        prog = Bar(len(loader), f"epoch {epoch + 1}/{cfg.epochs}")
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
        if val_real is not None:
            row["val_cvl"] = float((predict_logits(net, val_real).argmax(1) == val_real_y).mean())
        if val_reject is not None:
            row["val_reject"] = float((predict_logits(net, val_reject).argmax(1) == REJECT).mean())
        score = float(np.mean([v for k, v in row.items() if k.startswith("val_")]))
        row["seconds"] = round(time.perf_counter() - t0, 1)
        history.append(row)
        log.info("epoch %d/%d loss %.4f val %.4f scan-val %.4f real-val %s reject-val %s (%.0fs)", epoch + 1,
                 cfg.epochs, row["loss"], acc_clean, acc_scan,
                 f"{row['val_cvl']:.4f}" if "val_cvl" in row else "-",
                 f"{row['val_reject']:.4f}" if "val_reject" in row else "-", row["seconds"])
        if on_epoch:
            on_epoch(row)
        if score > best[0]:
            best = (score, epoch + 1, {k: v.detach().clone() for k, v in net.state_dict().items()})

    net.load_state_dict(best[2])
    val_tiles = np.concatenate([val_clean, val_scan]
                               + ([val_real] if val_real is not None else [])
                               + ([val_reject] if val_reject is not None else []))
    val_labels = np.concatenate([val_y, val_y]
                                + ([val_real_y] if val_real_y is not None else [])
                                + ([np.full(len(val_reject), REJECT)] if val_reject is not None else []))
    val_logits = predict_logits(net, val_tiles)
    temperature = fit_temperature(val_logits, val_labels)
    test_tiles = _tiles(test.images)
    test_logits = predict_logits(net, test_tiles)
    p1, pt = softmax(test_logits, 1.0), softmax(test_logits, temperature)
    err95, cut95 = error_at_coverage(pt, test.labels, 0.95)
    err99, cut99 = error_at_coverage(pt, test.labels, 0.99)
    train_seconds = time.perf_counter() - t_start
    meta = {"arch": ARCH, "widths": list(cfg.widths), "norm": DEFAULT_SPEC.to_dict(),
            "classes": [str(i) for i in range(10)] + (["reject"] if n_classes == 11 else []),
            "temperature": round(temperature, 6)}
    card: dict[str, Any] = {
        "name": Path(cfg.out).name.removesuffix(".safetensors"),
        "task": f"single handwritten digit, MNIST-style 28×28 tile → {n_classes} classes"
                + (" (ten digits and 'not a digit')" if n_classes == 11 else ""),
        "training": {
            "command": command or f"formocr-train digits --epochs {cfg.epochs} --seed {cfg.seed} --out {cfg.out}",
            "seed": cfg.seed, "epochs": cfg.epochs, "selected_epoch": best[1], "batch_size": cfg.batch_size,
            "optimizer": f"AdamW lr={cfg.lr} wd={cfg.weight_decay}, one-cycle", "val_size": cfg.val_size,
            "scan_share": cfg.scan_share, "limit": cfg.limit, **({"init": parent[1]} if parent else {}),
            "data": data_card, "reject_share": cfg.reject_share, "continental": cfg.continental,
            "seconds": round(train_seconds, 1), "threads": cfg.threads, "workers": cfg.workers,
            "code": code_version(), "torch": torch.__version__, "python": platform.python_version(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "history": history,
        },
        "figures": {
            "val_accuracy_clean": history[best[1] - 1]["val_clean"],
            "val_accuracy_scan": history[best[1] - 1]["val_scan"],
            **({"val_accuracy_cvl_even_writers": history[best[1] - 1]["val_cvl"]} if val_real is not None else {}),
            **({"val_reject_recall": history[best[1] - 1]["val_reject"]} if val_reject is not None else {}),
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
