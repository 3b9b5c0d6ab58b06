"""Digit tiles cut by the pipeline's own segmentation from synthetic strings, for training the digit CNN.

The digit CNN is trained on MNIST tiles, but in a field it reads what segmentation cuts out of a binarized
strip: a digit drawn at another size and slant, with the string's pen, broken strokes and background, sometimes
with a fragment of a touching neighbour or of a box border. On cuts from 2000 strings of held-out training digits
the MNIST-trained model misread 1.77% of whole digits and 6.78% of the pieces
:func:`formocr.segment.split_to_count` cuts touching digits into. ``formocr train digits --string-crops N`` adds
tiles from this road: strings from :class:`formocr.synth.strings.StringGenerator` (training images only), cut by
:func:`formocr.synth.strings.field_cut_of` (binarization, :func:`formocr.segment.field_ink`), then
:func:`formocr.segment.segment_ink` and :func:`formocr.segment.arbitrate`, and, where segmentation found fewer
digits than were drawn, the re-cut the pipeline makes for the fusion's "resplit" candidate. A cut is labelled only
when the counts match and each piece's centre lies inside the drawn box of the digit it is paired with, so no tile
carries a guessed label.

It is an option, not the shipped recipe: it halves those errors but makes the digit CNN fail where the string reader
fails, and fused strings got no better (docs/string-reader-log.md, "A digit CNN trained on segmentation's own cuts").
Segmentation asks a digit classifier where to keep or move cuts, so the tiles depend on the classifier given (the card
records it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from formocr.normalize import normalize_digit
from formocr.segment import arbitrate, segment_ink, split_to_count
from formocr.synth.strings import StringGenerator, StringSample, field_cut_of

Confidence = Callable[[list[np.ndarray]], np.ndarray]  # e.g. DigitClassifier.top_probability


@dataclass
class CropPool:
    """Labelled tiles; ``recut`` marks pieces of a re-cut (touching digits cut to the drawn count)."""

    tiles: np.ndarray  # N×28×28 float32, normalized as the pipeline normalizes a component
    labels: np.ndarray  # N int64
    recut: np.ndarray  # N bool
    stats: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)


def cut_sample(sample: StringSample, confidence: Confidence, recut: bool = True
               ) -> tuple[list[np.ndarray], list[int], bool] | None:
    """The pipeline's digit cuts of one strip paired with the drawn digits, or None when they do not pair.

    ``recut`` False: no re-cut of merged digits (such strips do not pair)."""
    ink, crop_box = field_cut_of(sample)
    seps = "".join(c for c in ".,-" if c in sample.text)
    comps = arbitrate(segment_ink(ink, crop_box, sample.region, sample.dpi, separators=seps), confidence)
    digits = [c for c in comps if c.kind == "digit"]
    drawn = [(ch, b) for ch, b in sample.char_boxes if ch.isdigit()]
    was_recut = False
    if recut and 0 < len(digits) < len(drawn):
        again = split_to_count(comps, len(drawn), confidence)
        if again is None:
            return None
        digits, was_recut = [c for c in again if c.kind == "digit"], True
    if not drawn or len(digits) != len(drawn):
        return None
    for c, (_, b) in zip(digits, drawn):
        if not b.x - 2 <= c.box.x + c.box.w / 2 <= b.x2 + 2:
            return None
    return [c.mask for c in digits], [int(ch) for ch, _ in drawn], was_recut


def harvest(gen: StringGenerator, n_strings: int, seed: int, confidence: Confidence, recut: bool = True
            ) -> CropPool:
    """Cut ``n_strings`` generated strips (half asked to touch) into labelled tiles; deterministic for a seed."""
    tiles: list[np.ndarray] = []
    labels: list[int] = []
    pieces: list[bool] = []
    stats = {"strings": n_strings, "paired": 0, "paired_recut": 0, "unpaired": 0}
    for i in range(n_strings):
        sample = gen.sample(np.random.default_rng([seed, 4242, i]), touching=i % 2 == 0)
        got = cut_sample(sample, confidence, recut)
        if got is None:
            stats["unpaired"] += 1
            continue
        masks, digits, was_recut = got
        stats["paired_recut" if was_recut else "paired"] += 1
        tiles.extend(normalize_digit(m) for m in masks)
        labels.extend(digits)
        pieces.extend([was_recut] * len(masks))
    return CropPool(np.stack(tiles) if tiles else np.zeros((0, 28, 28), np.float32),
                    np.asarray(labels, np.int64), np.asarray(pieces, bool), stats)
