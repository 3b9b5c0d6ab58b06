"""The blob reader: one connected piece of a field's ink read whole, as a digit, two touching digits, or more.

Why: where the string reader misreads, the truth is mostly one edit from its reading and among its own next
choices (``benchmarks/strings_nbest.py``), but segmentation cannot judge between them on touching digits, since
it does not know where to cut. This reader does not cut: it classifies the whole connected piece into 111
classes ("00"-"99", "0"-"9", "+" for three or more digits). Each candidate text of the string reader is laid
onto the pieces by its own CTC alignment (each character goes to the piece with most ink around its centre),
and the pieces' log-probabilities for the characters the candidate gives them add to the string reader's score
(:func:`judge`). Trained on pieces of synthetic strings of MNIST training digits (``formocr train blobs``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from formocr.objects import Box
from formocr.recognize.digits import conv_block
from formocr.recognize.modelfile import LoadedModel, load_model

ARCH = "blobnet-v1"
CLASSES: tuple[str, ...] = (*(f"{a}{b}" for a in range(10) for b in range(10)), *(str(d) for d in range(10)), "+")
MANY = len(CLASSES) - 1  # "+": three digits or more in one piece
DEFAULT_WIDTHS = (16, 32, 64)
DEFAULT_HIDDEN = 192


@dataclass(frozen=True)
class BlobSpec:
    """How a piece becomes the model's input, and how characters are laid onto pieces; travels in the model."""

    height: int = 32
    width: int = 48
    fit_h: int = 24  # the piece is scaled, aspect kept, to fit fit_h × fit_w, centred
    fit_w: int = 44
    mean: float = 0.15
    std: float = 0.33
    band: float = 0.2  # a character's centre looks ±band × the pieces' median height for the piece it lies on
    speck: float = 0.2  # pieces lower than this share of the tallest, and small, are specks

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_BLOB_SPEC = BlobSpec()


@dataclass(frozen=True)
class Blobs:
    """The pieces of one field's ink: boxes in crop pixels and the label image they index."""

    boxes: tuple[Box, ...]
    ids: tuple[int, ...]  # label of each piece in ``labels``
    labels: np.ndarray  # crop-sized int32 label image (cv2 connected components, 8-connected)

    def mask(self, k: int) -> np.ndarray:
        b = self.boxes[k]
        return np.asarray(self.labels[b.y : b.y2, b.x : b.x2] == self.ids[k])

    @property
    def median_height(self) -> float:
        return float(np.median([b.h for b in self.boxes])) if self.boxes else 0.0


def ink_blobs(ink: np.ndarray, spec: BlobSpec = DEFAULT_BLOB_SPEC) -> Blobs:
    """Connected pieces of a field's binary ink, specks dropped."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats((np.asarray(ink) > 0).astype(np.uint8), connectivity=8)
    if n <= 1:
        return Blobs((), (), labels.astype(np.int32))
    h_max = float(stats[1:, cv2.CC_STAT_HEIGHT].max())
    boxes, ids = [], []
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        if h < spec.speck * h_max and area < spec.speck * 0.1 * h_max * h_max:
            continue
        boxes.append(Box(x, y, w, h))
        ids.append(i)
    return Blobs(tuple(boxes), tuple(ids), labels.astype(np.int32))


def assign(centres: Sequence[float], blobs: Blobs, spec: BlobSpec = DEFAULT_BLOB_SPEC) -> list[int]:
    """For each character centre (crop x), the piece with most ink within the band around it; -1 for none."""
    band = spec.band * max(blobs.median_height, 1.0)
    width = blobs.labels.shape[1]
    out = []
    for cx in centres:
        x0, x1 = int(max(0.0, cx - band)), int(min(width, cx + band + 1))
        best, pick = 0, -1
        if x1 > x0:
            col = blobs.labels[:, x0:x1]
            for k, i in enumerate(blobs.ids):
                c = int(np.count_nonzero(col == i))
                if c > best:
                    best, pick = c, k
        out.append(pick)
    return out


def class_of(text: str, idx: Sequence[int]) -> int | None:
    """The class a piece holding the characters ``idx`` of ``text`` should read as (None: not digits)."""
    chars = [text[i] for i in idx]
    if not all(c.isdigit() for c in chars):
        return None
    if len(chars) == 1:
        return 100 + int(chars[0])
    if len(chars) == 2 and idx[1] == idx[0] + 1:
        return 10 * int(chars[0]) + int(chars[1])
    return MANY


def blob_tile(mask: np.ndarray, spec: BlobSpec = DEFAULT_BLOB_SPEC) -> np.ndarray:
    """A piece's mask → height×width float tile in [0, 1], aspect kept, centred."""
    m = np.asarray(mask, np.float32)
    h, w = m.shape
    out = np.zeros((spec.height, spec.width), np.float32)
    if h == 0 or w == 0:
        return out
    s = min(spec.fit_h / h, spec.fit_w / w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    r = cv2.resize(m, (nw, nh), interpolation=cv2.INTER_AREA)
    y0, x0 = (spec.height - nh) // 2, (spec.width - nw) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = r
    return out


class BlobNet(nn.Module):
    """32×48 tile → 111 logits."""

    def __init__(self, widths: Sequence[int] = DEFAULT_WIDTHS, hidden: int = DEFAULT_HIDDEN,
                 spec: BlobSpec = DEFAULT_BLOB_SPEC) -> None:
        super().__init__()
        c1, c2, c3 = widths
        self.features = nn.Sequential(*conv_block(1, c1), nn.MaxPool2d(2), *conv_block(c1, c2), *conv_block(c2, c2),
                                      nn.MaxPool2d(2), *conv_block(c2, c3), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.25), nn.Linear(c3 * (spec.height // 8) * (spec.width // 8),
                                  hidden), nn.ReLU(inplace=True), nn.Dropout(0.25), nn.Linear(hidden, len(CLASSES)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def to_input(tiles: np.ndarray, spec: BlobSpec = DEFAULT_BLOB_SPEC) -> torch.Tensor:
    """N×H×W tiles in [0, 1] (float, or uint8 in 0-255) → the model's N×1×H×W input."""
    t = torch.from_numpy(np.ascontiguousarray(tiles)).float()
    if tiles.dtype == np.uint8:
        t = t / 255.0
    return ((t - spec.mean) / spec.std).unsqueeze(1)


class BlobReader:
    """A loaded, verified blob model; :func:`judge` uses it to re-rank the string reader's candidates."""

    def __init__(self, loaded: LoadedModel) -> None:
        meta = loaded.meta
        loaded.require_arch(ARCH)
        try:
            self.spec = BlobSpec(**meta["spec"])
            net = BlobNet(tuple(meta["widths"]), int(meta["hidden"]), self.spec)
            net.load_state_dict(loaded.state)
        except (KeyError, RuntimeError, TypeError, ValueError) as e:
            raise loaded.mismatch(e) from None
        net.eval()
        self.net = net
        self.identity = loaded.identity

    @classmethod
    def load(cls, path: str | Path) -> BlobReader:
        return cls(load_model(path))

    def log_probs(self, blobs: Blobs) -> np.ndarray:
        """Per piece, log-probabilities of the 111 classes."""
        if not blobs.boxes:
            return np.zeros((0, len(CLASSES)), np.float32)
        tiles = np.stack([blob_tile(blobs.mask(k), self.spec) for k in range(len(blobs.boxes))])
        with torch.inference_mode():
            return torch.log_softmax(self.net(to_input(tiles, self.spec)), 1).numpy()


def blob_evidence(text: str, centres: Sequence[float], blobs: Blobs, lp: np.ndarray,
                  spec: BlobSpec = DEFAULT_BLOB_SPEC) -> float:
    """Sum over the pieces ``text`` puts characters on of log P(piece reads as those characters)."""
    if not blobs.boxes:
        return 0.0
    on = assign(centres, blobs, spec)
    total = 0.0
    for k in sorted(set(on) - {-1}):
        cls = class_of(text, [i for i, v in enumerate(on) if v == k])
        if cls is not None:
            total += float(lp[k, cls])
    return total


def judge(candidates: Sequence[tuple[str, float, Sequence[float]]], blobs: Blobs, lp: np.ndarray, weight: float,
          spec: BlobSpec = DEFAULT_BLOB_SPEC) -> int:
    """Index of the best candidate: (text, string reader's P(text), character centres in crop x) each, scored
    log P + ``weight`` × :func:`blob_evidence`."""
    best, pick = -np.inf, 0
    for k, (text, p, centres) in enumerate(candidates):
        s = float(np.log(max(p, 1e-30))) + weight * blob_evidence(text, centres, blobs, lp, spec)
        if s > best:
            best, pick = s, k
    return pick
