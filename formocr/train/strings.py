"""Training of the string reader (CRNN + CTC) on synthetic digit strings, deterministic for a seed, on the CPU.

Every training strip is drawn afresh from a random stream keyed by (seed, step, index in batch), so the result
does not depend on worker scheduling: digits from MNIST training images (minus a held-out part for
validation) and from the project's stroke renderer, composed by :mod:`formocr.synth.strings` and sent down the
pipeline's own field road (binarize, border removal, strip normalization). MNIST test digits are never used
here; they are for :mod:`benchmarks.strings_accuracy` and the figures in the card.
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
from torch import nn
from torch.utils.data import DataLoader, Dataset

from formocr.data.mnist import load_split
from formocr.errors import ConfigError, ModelError
from formocr.normalize import DEFAULT_LINE_SPEC
from formocr.progress import Bar
from formocr.recognize.ctc import best_path
from formocr.recognize.modelfile import code_version, load_parent, save_model
from formocr.recognize.strings import (
    ALPHABET,
    ARCH,
    CRNN,
    DEFAULT_HIDDEN,
    DEFAULT_WIDTHS,
    INPUTS,
    field_strip,
    log_probs,
    pad_batch,
)
from formocr.synth.strings import (
    DigitBank,
    StringGenerator,
    StringSample,
    field_cut_of,
    field_grey_of,
    random_text,
)
from formocr.train.splits import held_out_split, split_digest

log = logging.getLogger("formocr.train")


@dataclass(frozen=True)
class StringTrainConfig:
    data: str | None = None
    steps: int = 6000
    seed: int = 0
    # Which 5000 training images are held out (validation, and fusion tuning downstream). Fixed apart from the
    # seed, so every member of an ensemble holds out the same digits and they stay new to all of them.
    split_seed: int = 0
    out: str = "runs/model.safetensors"  # never the shipped model unless told
    batch_size: int = 48
    lr: float = 2e-3
    weight_decay: float = 1e-4
    val_size: int = 1000  # validation strings, from held-out training digits
    val_every: int = 500
    synth_share: float = 0.3  # share of digits drawn by the stroke renderer instead of taken from MNIST
    distort: float = 0.0  # training strings only: MNIST digits warped as another writer might form them (0: off)
    # Training strings only: this share of them asked to touch, the rest not, each checked on the drawn ink as the
    # string benchmark draws its strings (None: the generator's own draw, a tendency that ~40% of strings follow).
    touching: float | None = None
    limit: int | None = None  # use only N training images (tests)
    threads: int = 1
    workers: int = 1
    widths: tuple[int, ...] = DEFAULT_WIDTHS
    hidden: int = DEFAULT_HIDDEN
    banded: bool = False  # batches of similar lengths, CTC over each strip's own width (see _Batches)
    # Start from this trained string model instead of random weights: a second learning-rate cycle on fresh strings
    # (another --seed) without repeating the first run. Every member of the shipped ensemble was made so (README);
    # on 3000 held-out strings the ensemble's CRNN went from 91.93% (no member trained on) to 92.97% (second
    # cycles) to 93.33% (third cycles): strings_accuracy.py --split val --seed 2 --n 3000.
    init: str | None = None
    # How the convolutions are computed; the maths is the same, the speed is not (CPU, see _forward). Off: the
    # shipped members' recipe, so their commands still rebuild them bit for bit.
    channels_last: bool = False
    bf16: bool = False
    # What the network reads: "ink", the binarized field ink; "grey", how dark that ink is in the preprocessed
    # grey (formocr.normalize.grey_ink), which keeps the loops blur closes; "grey-box", how dark every pixel of
    # the ink's box is, which also keeps the strokes binarization or border removal lost.
    input: str = "ink"
    # "grey-box" only: the removed printed borders painted out of the strips beyond BORDER_REACH_MM of the strokes,
    # as the pipeline shows them (off: the borders stay in the strip).
    borders_out: bool = False
    # Where the network trains: "cpu" (the shipped members' recipe, deterministic for a seed and thread count) or
    # "cuda" (an NVIDIA GPU: strips are still drawn on the CPU by --workers, so give it many; CTC's backward pass
    # has no deterministic CUDA kernel, so a CUDA run is close to, not bit for bit, repeatable).
    device: str = "cpu"



def _schedule(opt: torch.optim.Optimizer, cfg: StringTrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.15)


def _parent(cfg: StringTrainConfig) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """The weights of ``cfg.init`` and what the card records of it (file, hash, its own training), or None.

    The parent must be one network of this shape, with the same alphabet, strip geometry and held-out digits:
    anything else would silently change what the new model reads or leak validation digits into training.
    Checked before the data is loaded, so a wrong parent fails at once.
    """
    if not cfg.init:
        return None
    parent, ptrain = load_parent(cfg.init, ARCH, "string")
    meta = parent.meta
    if (tuple(meta.get("widths", ())), int(meta.get("hidden", -1))) != (tuple(cfg.widths), cfg.hidden):
        raise ModelError(f"widths {meta.get('widths')} hidden {meta.get('hidden')} differ from "
                         f"--widths {','.join(map(str, cfg.widths))} --hidden {cfg.hidden}", cfg.init)
    if meta.get("alphabet") != ALPHABET or meta.get("line") != DEFAULT_LINE_SPEC.to_dict():
        raise ModelError("alphabet or strip geometry differ from this version's", cfg.init)
    if ptrain.get("split_seed", 0) != cfg.split_seed:
        raise ModelError(f"trained with --split-seed {ptrain.get('split_seed', 0)}, not {cfg.split_seed}: its "
                         "training digits would include this run's held-out ones", cfg.init)
    return parent.state, {"path": str(cfg.init), "sha256": parent.sha256, "command": ptrain.get("command"),
                          "seed": ptrain.get("seed"), "steps": ptrain.get("steps"),
                          "input": meta.get("input", "ink"),
                          "val_string_accuracy": parent.card.get("figures", {}).get("val_string_accuracy")}


def sample_strip(gen: StringGenerator, rng: np.random.Generator, input: str = "ink", borders_out: bool = False,
                 **kw: Any) -> tuple[np.ndarray, StringSample]:
    """One generated field and its reader input (binarized ink, its grey, or its box's grey: ``input``, one of
    :data:`INPUTS`), through the pipeline's field road; ``borders_out``: the box's grey with the removed printed
    borders painted out, as the pipeline shows it (:func:`formocr.recognize.strings.border_out`)."""
    s = gen.sample(rng, **kw)
    if input != "ink":
        ink, gray, lines, _ = field_grey_of(s, with_box=True)
        strip, _ = field_strip(ink, s.region.box.h, s.dpi, gray=gray, whole_box=input == "grey-box",
                               lines=lines if borders_out else None)
    else:
        ink, _ = field_cut_of(s)
        strip, _ = field_strip(ink, s.region.box.h, s.dpi)
    return strip, s


def encode(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    labels = [ALPHABET.index(c) + 1 for t in texts for c in t]
    return torch.tensor(labels, dtype=torch.long), torch.tensor([len(t) for t in texts], dtype=torch.long)


class _Batches(Dataset[tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]]):
    """Item k is the whole batch of step k.

    ``banded``: a step's strings share a band of lengths (n-1..n+1 digits, n drawn per step), so strips in one
    batch have similar widths and little of each batch is padding. Off, the shipped model's recipe.
    """

    def __init__(self, gen: StringGenerator, seed: int, batch_size: int, steps: int, banded: bool = False,
                 input: str = "ink", borders_out: bool = False, touching: float | None = None) -> None:
        self.gen, self.seed, self.bs, self.steps, self.banded, self.input = gen, seed, batch_size, steps, banded, input
        self.borders_out, self.touching = borders_out, touching

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
        strips, texts = [], []
        lo, hi = self.gen.min_len, self.gen.max_len
        band = None
        if self.banded:
            n = int(np.random.default_rng([self.seed, step, 1_000_003]).integers(lo, hi + 1))
            band = (max(lo, n - 1), min(hi, n + 1))
        for i in range(self.bs):
            rng = np.random.default_rng([self.seed, step, i])
            text = random_text(rng, band[0], band[1], self.gen.separators) if band else None
            touching = (None if self.touching is None  # None: the generator draws its own lean
                        else bool(np.random.default_rng([self.seed, step, i, 7]).random() < self.touching))
            strip, s = sample_strip(self.gen, rng, self.input, self.borders_out, text=text, touching=touching)
            strips.append(strip)
            texts.append(s.text)
        x, widths = pad_batch(strips)
        y, ylen = encode(texts)
        return x, y, ylen, widths


def _collate(item: Any) -> Any:
    return item


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX). Without it, torch emulates bfloat16 and
    ``bf16`` convolutions run several times slower than float32 (README, "Models")."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def _forward(net: CRNN, x: torch.Tensor, cfg: StringTrainConfig) -> torch.Tensor:
    """Training logits. Channels-last tensors and bfloat16 convolutions (``cfg``) are for speed on CPUs with
    AVX-512 BF16 (and on GPUs); the recurrent layer, the classifier and the CTC loss stay in float32."""
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(cfg.device, dtype=torch.bfloat16, enabled=cfg.bf16):
        f = net.features(x)
    return net.head(f.float())


def validation_strings(images: np.ndarray, labels: np.ndarray,
                       cfg: StringTrainConfig) -> tuple[list[np.ndarray], list[str]]:
    """The strips and texts a run with ``cfg`` selects its checkpoints on, drawn from the held-out digits given:
    fixed by the seed, so another model can be read on the very strings a run was chosen by."""
    gen = StringGenerator(DigitBank(images, labels), synth_share=cfg.synth_share)
    val = [sample_strip(gen, np.random.default_rng([cfg.seed, 99_991, i]), cfg.input, cfg.borders_out)
           for i in range(cfg.val_size)]
    return [v[0] for v in val], [v[1].text for v in val]


def string_accuracy(net: nn.Module, strips: list[np.ndarray], texts: list[str]) -> float:
    lps = log_probs(net, strips, 64, device=next(net.parameters()).device)
    return float(np.mean([best_path(lp, ALPHABET).text == t for lp, t in zip(lps, texts)]))


def train_strings(cfg: StringTrainConfig, command: str | None = None,
                  on_eval: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train, select on validation strings, save weights + card; return the card."""
    if cfg.input not in INPUTS:
        raise ConfigError(f"input must be one of {', '.join(INPUTS)}, not {cfg.input!r}")
    if cfg.borders_out and cfg.input != "grey-box":
        raise ConfigError(f"borders_out paints borders out of the box's grey: input must be grey-box, "
                          f"not {cfg.input!r}")
    if cfg.device not in ("cpu", "cuda"):
        raise ConfigError(f"device must be cpu or cuda, not {cfg.device!r}")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda: this torch build sees no CUDA GPU (torch.cuda.is_available() is False)")
    if cfg.bf16 and cfg.device == "cpu" and not cpu_has_bf16():
        log.warning("bf16: this CPU has no bfloat16 instructions (AVX-512 BF16 or AMX), so bfloat16 convolutions "
                    "are emulated and slower than float32; leave --bf16 off here")
    t_start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    # CUDA's CTC backward is nondeterministic: allowed there with a warning, never on the CPU
    torch.use_deterministic_algorithms(True, warn_only=cfg.device == "cuda")
    torch.set_flush_denormal(True)
    parent = _parent(cfg)
    train = load_split("train", cfg.data)
    val_idx, tr_idx = held_out_split(len(train.images), cfg.split_seed)
    if cfg.limit:
        tr_idx = tr_idx[: cfg.limit]
    gen = StringGenerator(DigitBank(train.images[tr_idx], train.labels[tr_idx]), synth_share=cfg.synth_share,
                          distort=cfg.distort)
    val_strips, val_texts = validation_strings(train.images[val_idx], train.labels[val_idx], cfg)

    net = CRNN(cfg.widths, cfg.hidden, len(ALPHABET) + 1, DEFAULT_LINE_SPEC.height)
    if parent:
        net.load_state_dict(parent[0])
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # (missing from the stubs)
    dev = torch.device(cfg.device)
    net = net.to(dev)
    params = list(net.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = _schedule(opt, cfg)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    batches = _Batches(gen, cfg.seed, cfg.batch_size, cfg.steps, cfg.banded, cfg.input, cfg.borders_out, cfg.touching)
    loader = DataLoader(batches, batch_size=None, shuffle=False,
                        num_workers=cfg.workers, collate_fn=_collate, prefetch_factor=4 if cfg.workers else None)
    best: tuple[float, int, dict[str, torch.Tensor]] = (-1.0, 0, {})
    history: list[dict[str, Any]] = []
    prog = Bar(cfg.steps, "strings")
    total_loss, seen, t0 = 0.0, 0, time.perf_counter()
    for step, (x, y, ylen, widths) in enumerate(loader, start=1):
        x, y = x.to(dev), y.to(dev)
        net.train()
        logits = _forward(net, x, cfg)
        lp = torch.log_softmax(logits, -1).transpose(0, 1)  # T×N×C
        if cfg.banded:  # each strip's own frames only, as at inference (log_probs trims the padding away)
            xlen = torch.tensor([min(lp.shape[0], max(1, (w + 3) // 4)) for w in widths], dtype=torch.long)
        else:  # the padded width for every strip
            xlen = torch.full((x.shape[0],), lp.shape[0], dtype=torch.long)
        loss = ctc(lp, y, xlen, ylen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        sched.step()
        total_loss += loss.item()
        seen += 1
        if step % 20 == 0:
            prog.update(step, f"loss {total_loss / seen:.3f}")
        if step % cfg.val_every == 0 or step == cfg.steps:
            acc = string_accuracy(net, val_strips, val_texts)
            row = {"step": step, "loss": round(total_loss / max(seen, 1), 4), "val_string_accuracy": acc,
                   "seconds": round(time.perf_counter() - t0, 1)}
            history.append(row)
            log.info("step %d/%d loss %.4f val strings %.4f (%.0fs)", step, cfg.steps, row["loss"], acc,
                     row["seconds"])
            if on_eval:
                on_eval(row)
            total_loss, seen, t0 = 0.0, 0, time.perf_counter()
            if acc > best[0]:
                best = (acc, step, {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()})
    prog.close()
    net = net.to("cpu")
    net.load_state_dict(best[2])
    seconds = time.perf_counter() - t_start
    meta: dict[str, Any] = {"arch": ARCH, "widths": list(cfg.widths), "hidden": cfg.hidden, "alphabet": ALPHABET,
                            "line": DEFAULT_LINE_SPEC.to_dict()}
    if cfg.input != "ink":  # absent means "ink", so the first members' files stay as they were
        meta["input"] = cfg.input
    card: dict[str, Any] = {
        "name": Path(cfg.out).name.removesuffix(".safetensors"),
        "task": "handwritten digit string (digits and . , - / space) in one field → text, CTC",
        "training": {
            "command": command or f"formocr-train strings --steps {cfg.steps} --seed {cfg.seed} --out {cfg.out}",
            "seed": cfg.seed, "split_seed": cfg.split_seed, "steps": cfg.steps, "selected_step": best[1],
            "batch_size": cfg.batch_size,
            "banded": cfg.banded, "channels_last": cfg.channels_last, "bf16": cfg.bf16, "input": cfg.input,
            "borders_out": cfg.borders_out, "device": cfg.device,
            "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
            "optimizer": f"AdamW lr={cfg.lr} wd={cfg.weight_decay}, one-cycle, grad clip 5",
            "samples_seen": cfg.steps * cfg.batch_size, "synth_share": cfg.synth_share, "distort": cfg.distort,
            "touching": cfg.touching,
            "limit": cfg.limit,
            "data": {"dataset": "MNIST training images (test images never used)", "sha256": train.sha256,
                     "validation": f"{cfg.val_size} strings from 5000 held-out training images",
                     "held_out": {"split_seed": cfg.split_seed, "images": len(val_idx),
                                  "indices_sha256_16": split_digest(val_idx)}},
            "generator": "formocr.synth.strings.StringGenerator: lengths 1-12, separators by format, half touching",
            "seconds": round(seconds, 1), "threads": cfg.threads, "workers": cfg.workers,
            "code": code_version(), "torch": torch.__version__, "python": platform.python_version(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "history": history,
        },
        "figures": {"val_string_accuracy": best[0]},
    }
    if parent:
        card["training"]["init"] = parent[1]
    save_model(cfg.out, net.state_dict(), meta, card)
    log.info("saved %s (validation string accuracy %.4f)", cfg.out, best[0])
    return card
