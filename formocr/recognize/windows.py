"""The window judge: one digit read from a window of the string reader's own strip, centred where the string
reader's alignment puts it.

Why: where the string reader misreads, it nearly always has the count right and one digit's shape wrong, and the
truth is mostly its own next choice one digit away (``benchmarks/strings_nbest.py``). Segmentation cannot judge
between such texts on touching digits, since it does not know where to cut, and more string members err where
the first ones err. This reader does not cut either: a small CNN reads a fixed window of the grey-box strip
(neighbours' ink included, as it is drawn) around each character's CTC centre and says which digit lies in the
middle. A candidate text with as many characters as the reading is scored by the string reader's log P(text)
plus ``weight`` × the windows' log-probabilities of the digits it gives them (:func:`judge`). Trained on windows
of synthetic strings of MNIST training digits, centred on the drawn digits with the jitter a CTC centre has
(``formocr train windows``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from formocr.errors import ModelError
from formocr.recognize.digits import conv_block, fold_batchnorm
from formocr.recognize.modelfile import LoadedModel, load_model
from formocr.recognize.strings import INPUTS

ARCH = "windownet-v1"
DEFAULT_WIDTHS = (24, 48, 64, 96)
DEFAULT_HIDDEN = 192


@dataclass(frozen=True)
class WindowSpec:
    """How a window is cut from a strip and fed to the model; travels in the model file."""

    height: int = 32  # the strip's height (:class:`formocr.normalize.LineSpec`)
    width: int = 40  # strip columns, centred on the character's centre
    mean: float = 0.15
    std: float = 0.33
    input: str = "grey-box"  # which strip of :class:`formocr.recognize.strings.FieldStrips` it reads
    # added to a CTC centre before the window is cut: the string reader's alignment puts a digit's peak right of
    # its drawn centre (shipped members on 1828 digits of held-out training strings: +2.7 px median, IQR 1.0-4.2)
    shift: float = -2.7

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_WINDOW_SPEC = WindowSpec()


def cut_windows(strip: np.ndarray, centres: Sequence[float], spec: WindowSpec = DEFAULT_WINDOW_SPEC) -> np.ndarray:
    """N×height×width windows of ``strip`` (float, 0 = paper) around strip columns ``centres``; off the strip
    is paper."""
    w = spec.width
    pad = np.zeros((spec.height, strip.shape[1] + 2 * w), np.float32)
    pad[:, w : w + strip.shape[1]] = strip
    out = np.zeros((len(centres), spec.height, w), np.float32)
    for k, c in enumerate(centres):
        x0 = round(float(c)) - w // 2 + w
        x0 = min(max(x0, 0), pad.shape[1] - w)
        out[k] = pad[:, x0 : x0 + w]
    return out


class WindowNet(nn.Module):
    """height×width window → 10 logits (the digit in its middle)."""

    def __init__(self, widths: Sequence[int] = DEFAULT_WIDTHS, hidden: int = DEFAULT_HIDDEN,
                 spec: WindowSpec = DEFAULT_WINDOW_SPEC) -> None:
        super().__init__()
        c1, c2, c3, c4 = widths
        self.features = nn.Sequential(
            *conv_block(1, c1), nn.MaxPool2d(2),
            *conv_block(c1, c2), *conv_block(c2, c3), nn.MaxPool2d(2),
            *conv_block(c3, c4), nn.MaxPool2d(2),
        )  # fmt: skip
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.25), nn.Linear(c4 * (spec.height // 8) * (spec.width // 8), hidden),
            nn.ReLU(inplace=True), nn.Dropout(0.25), nn.Linear(hidden, 10),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def to_input(windows: np.ndarray, spec: WindowSpec = DEFAULT_WINDOW_SPEC) -> torch.Tensor:
    """N×H×W windows in [0, 1] (float, or uint8 in 0-255) → the model's N×1×H×W input."""
    t = torch.from_numpy(np.ascontiguousarray(windows)).float()
    if windows.dtype == np.uint8:
        t = t / 255.0
    return ((t - spec.mean) / spec.std).unsqueeze(1)


class WindowReader:
    """A loaded, verified window model; :func:`judge` uses it to re-rank the string reader's candidates."""

    def __init__(self, loaded: LoadedModel) -> None:
        meta = loaded.meta
        loaded.require_arch(ARCH)
        try:
            self.spec = WindowSpec(**meta["spec"])
            if self.spec.input not in INPUTS:
                raise ModelError(f"it reads {self.spec.input!r} strips; this version makes {', '.join(INPUTS)}",
                                 loaded.path)
            net = WindowNet(tuple(meta["widths"]), int(meta["hidden"]), self.spec)
            net.load_state_dict(loaded.state)
            self.temperature = float(meta.get("temperature", 1.0))
        except (KeyError, RuntimeError, TypeError, ValueError) as e:
            raise loaded.mismatch(e) from None
        net.eval()
        net.features = fold_batchnorm(net.features)
        self.net = net
        self.identity = loaded.identity

    @classmethod
    def load(cls, path: str | Path) -> WindowReader:
        return cls(load_model(path))

    def log_probs(self, strip: np.ndarray, centres: Sequence[float]) -> np.ndarray:
        """Per centre (strip columns), calibrated log-probabilities of the 10 digits."""
        if not len(centres):
            return np.zeros((0, 10), np.float32)
        x = to_input(cut_windows(strip, [c + self.spec.shift for c in centres], self.spec), self.spec)
        with torch.inference_mode():
            return torch.log_softmax(self.net(x) / self.temperature, 1).numpy()


def judge(candidates: Sequence[tuple[str, float]], lp: np.ndarray, weight: float) -> str:
    """The text of ``candidates`` (text, P_crnn; all as long as the rows of ``lp``) with the best log P_crnn +
    ``weight`` × :func:`window_evidence`."""
    scores = [np.log(max(p, 1e-30)) + weight * window_evidence(t, lp) for t, p in candidates]
    return candidates[int(np.argmax(scores))][0]


def window_evidence(text: str, lp: np.ndarray) -> float:
    """Sum over the digits of ``text`` of log P(its window reads as that digit); ``lp`` row i is the window of
    character i."""
    return float(sum(lp[i, int(ch)] for i, ch in enumerate(text) if ch.isdigit()))
