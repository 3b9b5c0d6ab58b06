"""Shared helpers for the benchmark scripts (not part of the package, not run by the tests)."""

from __future__ import annotations

import platform
import resource
import runpy
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from formocr.data.mnist import load_split
from formocr.fusion import FusionRules, Reading, fuse
from formocr.objects import CleanPage
from formocr.synth.handwriting import DigitSource
from formocr.synth.strings import DigitBank, StringGenerator, StringSample, clean_page, writer_digits
from formocr.train.splits import held_out_split


def levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in header]] + [[f"{c:.4f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def machine() -> str:
    import os

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def run_benchmark(script: str, args: Sequence[str]) -> object:
    """Run the benchmark ``script`` (a file beside this one) as its command line would with ``args``, in this
    process, so that an experiment can first replace one function of formocr; returns the code it exits with."""
    sys.argv = [script, *args]
    try:
        runpy.run_path(str(Path(__file__).resolve().parent / script), run_name="__main__")
    except SystemExit as end:
        return end.code
    return None


def peak_rss_mib() -> float:
    """The largest resident set of this process or of any child it waited for (a benchmark's worker processes)."""
    return max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024


def strings_generator(split: str, without: frozenset[str] = frozenset()) -> StringGenerator:
    """The string benchmarks' generator: 3-8 plain digits from MNIST test images, or from the 5000 training
    images held out from string training (``split="val"``); ``without``: paper effects left out."""
    if split == "test":
        s = load_split("test")
        return bank_generator(s.images, s.labels, without)
    s = load_split("train")
    val_idx = held_out_split(len(s.images), 0)[0]  # the string models' held-out training images
    return bank_generator(s.images[val_idx], s.labels[val_idx], without)


def bank_generator(images: np.ndarray, labels: np.ndarray, without: frozenset[str] = frozenset()) -> StringGenerator:
    """The string benchmarks' strings (3-8 plain digits, MNIST crops only) drawn from these digit images."""
    return StringGenerator(DigitBank(images, labels), synth_share=0.0, min_len=3, max_len=8, separators=False,
                           without=without)


def strings_sample(gen: StringGenerator, seed: int, i: int, clean: bool = False) -> StringSample:
    """String ``i`` of a benchmark run: every other one asked to touch, each from its own seeded stream.

    ``clean``: the same digits, placed the same way, on plain paper (no pattern, box, rule, slant, blur, noise or
    JPEG), to measure what the paper costs.
    """
    return gen.sample(np.random.default_rng([seed, 31337, i]), touching=i % 2 == 0, clean=clean)


def strings_page(gen: StringGenerator, seed: int, i: int, clean: bool = False) -> tuple[StringSample, CleanPage]:
    """String ``i`` of a benchmark run (:func:`strings_sample`) and its strip preprocessed as a page
    (:func:`formocr.synth.strings.clean_page`), ready for the field reader."""
    sample = strings_sample(gen, seed, i, clean)
    return sample, clean_page(sample)


HANDS = ("strokes", "mnist", "cvl")
_HAND_SETS: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}


def hands_source(hands: str, seed: int) -> DigitSource | None:
    """Whose digits fill a generated form: the stroke renderer (None), MNIST's test digits (many writers a page),
    or one CVL validation writer a page (real digits of 60 writers none of whom the readers learnt from)."""
    if hands == "strokes":
        return None
    if hands not in _HAND_SETS:
        if hands == "mnist":
            m = load_split("test")
            _HAND_SETS[hands] = (m.images, m.labels, None)
        elif hands == "cvl":
            from formocr.data.real import load_cvl

            c = load_cvl("valid")
            _HAND_SETS[hands] = (c.images, c.labels, c.writers)
        else:
            raise ValueError(f"hands must be one of {', '.join(HANDS)}, not {hands!r}")
    images, labels, writers = _HAND_SETS[hands]
    return writer_digits(images, labels, writers, np.random.default_rng([seed, 31]))


def record_fusion(seen: list[dict[str, Any]]) -> Callable[..., Any]:
    """Put a spy in place of the reader's ``fuse`` that appends to ``seen`` what fusion is given for each field
    (both readings, the alternatives, and each reader's probability of every candidate text), so rule sets can be
    replayed offline; it fuses as before."""
    import formocr.read as read_mod

    def spy(seg: Reading, crnn: Reading, seg_prob: Any, crnn_prob: Any, rules: FusionRules | None = None,
            cells: bool = False, alternatives: Any = ()) -> Any:
        texts = {seg.raw, crnn.raw, *(a.raw for a in alternatives)}
        seen.append({"seg": seg, "crnn": crnn, "alts": tuple(alternatives), "cells": cells,
                     "seg_p": {t: seg_prob(t) for t in texts}, "crnn_p": {t: crnn_prob(t) for t in texts}})
        return fuse(seg, crnn, seg_prob, crnn_prob, rules or FusionRules(), cells, alternatives)

    read_mod.fuse = spy
    return spy
