"""The string reader learns real writers: register years and days as written, and strings of real digits.

Each batch mixes two sources:
- real lines: the year and the day ("d 16'" with its word and tick, labelled "16") of the Danish register
  birth-date cells, on the lines located by :func:`formocr.textlines.text_lines` that hold them (found with the
  label's help: :func:`labelled_lines`), sent down the very road :func:`formocr.read_field` takes
  (:meth:`formocr.api.FieldReaderAPI.prepare_crop`, ``field_cut``, the reader's own strips), cut once before
  training;
- composed strings: the project's string generator on a bank of MNIST and CVL training digits (real writers of
  two continents), the stroke renderer only for a minority of digits, touching, separators and borders as in the
  generator.

The checkpoint is chosen on the register validation cells' years and days (never trained on) together with
composed strings, half of MNIST's held-out images and half of CVL's even-numbered validation writers (the odd ones
stay for confirming); deterministic for a seed and thread count, on the CPU.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from formocr.data.mnist import load_split
from formocr.data.real import CVL_TERMS, REGISTER_TERMS, Cell, load_cvl, load_register_cells
from formocr.recognize.ctc import best_path, string_probabilities
from formocr.recognize.modelfile import code_version, load_parent, save_model
from formocr.recognize.strings import ALPHABET, ARCH, CRNN, log_probs, pad_batch
from formocr.synth.strings import DigitBank, StringGenerator, random_text
from formocr.textlines import line_crop, text_lines
from formocr.train.splits import held_out_split
from formocr.train.strings import encode, sample_strip

log = logging.getLogger("formocr.train")


@dataclass(frozen=True)
class RealStringConfig:
    init: str  # a single trained string model to train on from (`formocr-train extract-member`)
    out: str
    steps: int = 1500
    batch_size: int = 48
    real_share: float = 0.5  # share of each batch from real register lines; the rest composed strings
    synth_share: float = 0.15  # share of composed strings' digits drawn by the stroke renderer
    cvl_repeat: int = 1  # each CVL training digit stands this many times in the bank beside MNIST's 55,000
    currency_share: float = 0.0  # share of composed strings written after a "$" (labelled without it)
    lr: float = 5e-4
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 2
    val_every: int = 250
    val_strings: int = 500  # composed validation strings: half MNIST's held-out images, half CVL's even writers
    limit: int | None = None  # register cells and bank digits used (tiny test runs)
    data: str | None = None  # MNIST folder
    cvl: str | None = None
    registers: str | None = None


MAX_LINES = 6  # a cell's located lines that may hold its year or day
MAX_NATS_PER_CHAR = 2.5  # a line whose likeliest match is worse than this holds no readable copy of the label


def cell_lines(cells: list[Cell]) -> list[tuple[int, np.ndarray]]:
    """(cell index, line crop) for every located line of each cell with a full ``YYYYMMDD`` label."""
    out = []
    for i, c in enumerate(cells):
        if len(c.label) != 8 or not c.label.isdigit():
            continue
        lines = text_lines(c.gray)
        for k in range(min(len(lines), MAX_LINES)):
            crop = line_crop(c.gray, lines, k)
            if crop is not None:
                out.append((i, crop))
    return out


def road_strips(crops: list[np.ndarray], input_kind: str) -> list[np.ndarray | None]:
    """Each crop as the string reader sees it through ``read_field``'s road (view 0 of ``input_kind``); None for
    a crop in which the road finds no writing."""
    from formocr.api import FieldReaderAPI, _load
    from formocr.segment import field_cut

    api = FieldReaderAPI()
    assert api.pipeline.strings is not None
    strips: list[np.ndarray | None] = []
    for crop in crops:
        clean, region, _, _ = api.prepare_crop(_load(crop, api.options))
        ink, box, lines = field_cut(clean, region)
        if not ink.any():
            strips.append(None)
            continue
        gray = clean.gray[box.y : box.y2, box.x : box.x2]
        made, geom = api.pipeline.strings.field_strips(ink, region.box.h, clean.page.dpi, gray, lines=lines)
        strips.append(None if geom.blank else made.of(input_kind)[0].astype(np.float16))
    return strips


def labelled_lines(net: nn.Module, cells: list[Cell], input_kind: str) -> tuple[list[np.ndarray], list[str],
                                                                                 dict[str, int]]:
    """The year and the day of each cell on the lines that hold them, found with the label's help.

    The year is not always on a cell's first line (a death register writes the age first and the year last; a
    faint year is missed by the locator, and the day moves up): each label goes to the located line under which
    ``net`` finds it likeliest, the day to a line other than the year's, and a label whose best line is still
    unlikely (no copy of it the reader can find) is left out rather than taught on the wrong writing."""
    where = cell_lines(cells)
    strips = road_strips([crop for _, crop in where], input_kind)
    by_cell: dict[int, list[np.ndarray]] = {}
    for (i, _), strip in zip(where, strips):
        if strip is not None:
            by_cell.setdefault(i, []).append(strip)
    flat = [s for ss in by_cell.values() for s in ss]
    lps = iter(log_probs(net, [s.astype(np.float32) for s in flat], 64))
    xs: list[np.ndarray] = []
    ys: list[str] = []
    stats = {"cells": len(by_cell), "years": 0, "days": 0, "left_out": 0}
    for i, ss in by_cell.items():
        label = cells[i].label
        texts = (label[:4], str(int(label[6:8])))
        probs = np.array([string_probabilities(next(lps), texts, ALPHABET) for _ in ss])  # lines × (year, day)
        taken: set[int] = set()
        for j, (kind, text) in enumerate(zip(("years", "days"), texts)):
            p = np.where([k in taken for k in range(len(ss))], 0.0, probs[:, j])
            k = int(np.argmax(p))
            if p[k] < np.exp(-MAX_NATS_PER_CHAR * len(text)):
                stats["left_out"] += 1
                continue
            taken.add(k)
            xs.append(ss[k])
            ys.append(text)
            stats[kind] += 1
    return xs, ys, stats


def _accuracy(net: nn.Module, strips: list[np.ndarray], texts: list[str]) -> float:
    net.eval()
    lps = log_probs(net, [s.astype(np.float32) for s in strips], 64)
    return float(np.mean([best_path(lp, ALPHABET).text == t for lp, t in zip(lps, texts)])) if texts else 0.0


def _composed(gen: StringGenerator, cfg: RealStringConfig, step: int, i: int, input_kind: str
              ) -> tuple[np.ndarray, str]:
    """Composed string ``i`` of a step and its label. A share of them are written after a currency sign, as a
    cheque's amount is, the sign sometimes touching the first digit: the label leaves it out, so the reader
    learns to pass over it rather than read it as an 8 or a 5."""
    rng = np.random.default_rng([cfg.seed, step, i])
    if np.random.default_rng([cfg.seed, step, i, 7]).random() >= cfg.currency_share:
        strip, s = sample_strip(gen, rng, input_kind)
        return strip, s.text
    text = random_text(rng, gen.min_len, gen.max_len, gen.separators)
    strip, _ = sample_strip(gen, rng, input_kind, text="$" + (" " if rng.random() < 0.2 else "") + text)
    return strip, text


def train_real_strings(cfg: RealStringConfig, command: str | None = None) -> dict[str, Any]:
    """Train on from ``cfg.init``, choose the checkpoint on real validation lines, save weights + card."""
    t_start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)
    torch.set_flush_denormal(True)
    parent, ptrain = load_parent(cfg.init, ARCH, "string")
    input_kind = str(parent.meta.get("input", "ink"))
    net = CRNN(tuple(parent.meta["widths"]), int(parent.meta["hidden"]), len(ALPHABET) + 1)
    net.load_state_dict(parent.state)

    t0 = time.perf_counter()
    # with no real lines in the batches (--real-share 0) the training cells are not read: the validation lines
    # still choose the checkpoint
    tr_cells, tr_sum = (load_register_cells("birthdate-train", cfg.registers, limit=cfg.limit) if cfg.real_share
                        else ([], None))
    va_cells, va_sum = load_register_cells("birthdate-validation", cfg.registers, limit=cfg.limit)
    real_x, real_y, tr_stats = labelled_lines(net, tr_cells, input_kind) if tr_cells else ([], [], {})
    val_x, val_y, va_stats = labelled_lines(net, va_cells, input_kind)
    del tr_cells, va_cells
    log.info("cut %d real training lines (%s), %d validation lines (%s) (%.0fs)", len(real_x), tr_stats,
             len(val_x), va_stats, time.perf_counter() - t0)

    mnist = load_split("train", cfg.data)
    val_idx, tr_idx = held_out_split(len(mnist.images), 0)
    cvl = load_cvl("train", cfg.cvl)
    n = cfg.limit or len(tr_idx)
    # CVL's file is sorted by digit: a limited run takes every k-th image, so each digit is there
    few = np.linspace(0, len(cvl.labels) - 1, min(n, len(cvl.labels))).astype(int) if cfg.limit else slice(None)
    bank = DigitBank(np.concatenate([mnist.images[tr_idx[:n]], *[cvl.images[few]] * cfg.cvl_repeat]),
                     np.concatenate([mnist.labels[tr_idx[:n]], *[cvl.labels[few]] * cfg.cvl_repeat]))
    gen = StringGenerator(bank, synth_share=cfg.synth_share)
    cvl_val = load_cvl("valid", cfg.cvl)
    even = cvl_val.writers % 2 == 0
    vgens = (StringGenerator(DigitBank(mnist.images[val_idx], mnist.labels[val_idx]), synth_share=0.0),
             StringGenerator(DigitBank(cvl_val.images[even], cvl_val.labels[even]), synth_share=0.0))
    syn_val = [sample_strip(vgens[i % 2], np.random.default_rng([cfg.seed, 99_991, i]), input_kind)
               for i in range(cfg.val_strings)]
    syn_x, syn_y = [s for s, _ in syn_val], [v.text for _, v in syn_val]

    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.15)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    n_real = round(cfg.real_share * cfg.batch_size) if real_x else 0
    history: list[dict[str, Any]] = []
    start_real, start_syn = _accuracy(net, val_x, val_y), _accuracy(net, syn_x, syn_y)
    best = ((start_real + start_syn) / 2, 0, {k: v.clone() for k, v in net.state_dict().items()})
    log.info("start: real lines %.4f, composed strings %.4f", start_real, start_syn)
    total, seen, t0 = 0.0, 0, time.perf_counter()
    for step in range(1, cfg.steps + 1):
        rng = np.random.default_rng([cfg.seed, step])
        picks = rng.integers(len(real_x), size=n_real) if n_real else np.zeros(0, np.int64)
        strips = [real_x[int(i)].astype(np.float32) for i in picks]
        texts = [real_y[int(i)] for i in picks]
        for i in range(cfg.batch_size - n_real):
            strip, text = _composed(gen, cfg, step, i, input_kind)
            strips.append(strip)
            texts.append(text)
        x, widths = pad_batch(strips)
        y, ylen = encode(texts)
        net.train()
        lp = torch.log_softmax(net(x), -1).transpose(0, 1)
        xlen = torch.tensor([min(lp.shape[0], max(1, (w + 3) // 4)) for w in widths], dtype=torch.long)
        loss = ctc(lp, y, xlen, ylen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        sched.step()
        total += loss.item()
        seen += 1
        if step % cfg.val_every == 0 or step == cfg.steps:
            real_acc, syn_acc = _accuracy(net, val_x, val_y), _accuracy(net, syn_x, syn_y)
            row = {"step": step, "loss": round(total / seen, 4), "val_real_lines": real_acc,
                   "val_composed": syn_acc, "seconds": round(time.perf_counter() - t0, 1)}
            history.append(row)
            log.info("step %d/%d loss %.4f real lines %.4f composed %.4f (%.0fs)", step, cfg.steps, row["loss"],
                     real_acc, syn_acc, row["seconds"])
            if (real_acc + syn_acc) / 2 > best[0]:
                best = ((real_acc + syn_acc) / 2, step, {k: v.clone() for k, v in net.state_dict().items()})
            total, seen, t0 = 0.0, 0, time.perf_counter()
    net.load_state_dict(best[2])
    meta = {k: v for k, v in parent.meta.items()}
    card: dict[str, Any] = {
        "name": Path(cfg.out).name.removesuffix(".safetensors"),
        "task": "handwritten digit string (digits and . , - / space) in one field → text, CTC",
        "training": {
            "command": command or f"formocr-train real-strings --init {cfg.init} --out {cfg.out}",
            "init": {"path": cfg.init, "sha256": parent.sha256,
                     "command": ptrain.get("command")},
            "seed": cfg.seed, "steps": cfg.steps, "selected_step": best[1], "batch_size": cfg.batch_size,
            "real_share": cfg.real_share, "synth_share": cfg.synth_share, "cvl_repeat": cfg.cvl_repeat,
            "currency_share": cfg.currency_share,
            "input": input_kind,
            "optimizer": f"AdamW lr={cfg.lr} wd={cfg.weight_decay}, one-cycle, grad clip 5",
            "data": {
                "real_lines": {"source": "danish-registers/birthdate-train.zip: each cell's year and day on "
                                         "the located lines under which the parent network finds them likeliest "
                                         f"(left out above {MAX_NATS_PER_CHAR} nats a character)",
                               "counts": tr_stats, "sha256": tr_sum, "lines": len(real_x),
                               "terms": REGISTER_TERMS} if real_x else None,
                "composed": {"bank": "MNIST training images (less the 5000 held out, split seed 0) and CVL train "
                                     f"(67 writers), each CVL digit {cfg.cvl_repeat} time(s)",
                             "mnist_sha256": mnist.sha256, "cvl_sha256": cvl.sha256,
                             "cvl_terms": CVL_TERMS},
                "chosen_on": {"real": f"danish-registers/birthdate-validation.zip ({va_sum[:16]}…): {len(val_x)} "
                                      "year and day lines", "composed": f"{cfg.val_strings} strings, half of MNIST's "
                                                                        "held-out images, half of CVL valid's even "
                                                                        "writers"},
            },
            "limit": cfg.limit, "seconds": round(time.perf_counter() - t_start, 1), "threads": cfg.threads,
            "code": code_version(), "torch": torch.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "cpu_count": os.cpu_count(), "history": history,
            "start": {"val_real_lines": start_real, "val_composed": start_syn},
        },
        "figures": {"val_real_lines": history[-1]["val_real_lines"] if not best[1] else
                    next(h["val_real_lines"] for h in history if h["step"] == best[1]),
                    "val_string_accuracy": history[-1]["val_composed"] if not best[1] else
                    next(h["val_composed"] for h in history if h["step"] == best[1])},
    }
    save_model(cfg.out, net.state_dict(), meta, card)
    log.info("saved %s (chosen at step %d)", cfg.out, best[1])
    return card
