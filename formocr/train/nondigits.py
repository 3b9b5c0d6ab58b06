"""What a field's crop holds besides digits, drawn as the segmenter would cut it: the digit CNN's reject class.

A reader that has only ever seen digits names the nearest digit for anything: a printed rule becomes a "1", a
box corner a "7", a blot an "8". Each function here draws one kind of non-digit ink on a 56×56 canvas; the
tile goes through the pipeline's own :func:`formocr.normalize.normalize_digit`, so it is scaled as a cut is.
A straight vertical stroke is deliberately absent: alone in a tile it *is* a "1", and only its size against
the field (a rule the field's height, a margin touching the crop's edge) tells the two apart, which is the
segmenter's job, not the tile classifier's.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from formocr.normalize import normalize_digit
from formocr.synth.handwriting import Writer, render_char

REJECT_KINDS = ("rule", "corner", "margin", "blot", "specks", "part", "letter", "word", "stamp", "currency")
# letters unlike any digit when handwritten or printed (no O/o/D, I/l/i/j, S/s, Z/z, B, g/q, G, b, T/t, A?)
_LETTERS = "ACEFHKLMNPRUVWXYacehkmnrpuvwxy"
_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX,
          cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_COMPLEX, cv2.FONT_HERSHEY_PLAIN)
S = 56


def _canvas() -> np.ndarray:
    return np.zeros((S, S), np.uint8)


def _pen(rng: np.random.Generator) -> int:
    return int(rng.integers(1, 6))


def _rule(rng: np.random.Generator, bank: np.ndarray) -> np.ndarray:
    """A printed or ruled line, within 30° of horizontal, sometimes dashed or with a stroke end across it."""
    c = _canvas()
    ang = np.deg2rad(rng.uniform(-30, 30))
    cx, cy = S / 2, rng.uniform(20, 36)
    half = rng.uniform(18, 27)
    p1 = (int(cx - half * np.cos(ang)), int(cy - half * np.sin(ang)))
    p2 = (int(cx + half * np.cos(ang)), int(cy + half * np.sin(ang)))
    cv2.line(c, p1, p2, 1, _pen(rng))
    if rng.random() < 0.3:  # dashed
        for x in range(0, S, int(rng.integers(6, 12))):
            c[:, x : x + int(rng.integers(2, 4))] = 0
    return c


def _corner(rng: np.random.Generator, bank: np.ndarray) -> np.ndarray:
    """A box's corner, side and top together, a T or a cross where printed lines meet."""
    c = _canvas()
    t = _pen(rng)
    x, y = int(rng.integers(8, 48)), int(rng.integers(8, 48))
    kind = int(rng.integers(3))
    if kind == 0:  # L corner, any of four orientations
        sx, sy = (S - 1) if rng.random() < 0.5 else 0, (S - 1) if rng.random() < 0.5 else 0
        cv2.line(c, (x, y), (sx, y), 1, t)
        cv2.line(c, (x, y), (x, sy), 1, t)
    elif kind == 1:  # T
        cv2.line(c, (0, y), (S - 1, y), 1, t)
        cv2.line(c, (x, y), (x, S - 1 if rng.random() < 0.5 else 0), 1, t)
    else:  # cross
        cv2.line(c, (0, y), (S - 1, y), 1, t)
        cv2.line(c, (x, 0), (x, S - 1), 1, t)
    return c


def _margin(rng: np.random.Generator, bank: np.ndarray) -> np.ndarray:
    """A scanner's black margin or a dark band: a large filled region with a ragged edge."""
    c = _canvas()
    edge = rng.uniform(28, 50) + np.cumsum(rng.normal(0, 0.8, S))  # wide: a narrow band alone is a '1'
    xs = np.arange(S)[None, :]
    c[:] = (xs < edge[:, None]).astype(np.uint8)
    if rng.random() < 0.5:
        c = c.T.copy()
    if rng.random() < 0.5:
        c = c[:, ::-1].copy()
    return c


def _blot(rng: np.random.Generator, bank: np.ndarray) -> np.ndarray:
    """An ink blot or smudge: a filled irregular shape."""
    c = _canvas()
    n = int(rng.integers(5, 10))
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = rng.uniform(8, 24, n)
    pts = np.stack([S / 2 + r * np.cos(ang), S / 2 + r * np.sin(ang)], 1).astype(np.int32)
    cv2.fillPoly(c, [pts], 1)
    return c


def _specks(rng: np.random.Generator, bank: np.ndarray) -> np.ndarray:
    """Scattered dust and specks of a dirty scan."""
    c = _canvas()
    for _ in range(int(rng.integers(3, 12))):
        cv2.circle(c, (int(rng.integers(4, 52)), int(rng.integers(4, 52))), int(rng.integers(1, 4)), 1, -1)
    return c


def _part(rng: np.random.Generator, bank: np.ndarray) -> np.ndarray:
    """A third of a digit cut off by a bad segmentation (not a 1, whose parts are still a 1)."""
    d = bank[int(rng.integers(len(bank)))]
    big = cv2.resize(d, (S, S), interpolation=cv2.INTER_LINEAR) > 100
    ys = np.nonzero(big)[0]
    if len(ys) == 0:
        return _blot(rng, bank)
    y0, y1 = ys.min(), ys.max() + 1
    f = rng.uniform(0.22, 0.38)
    keep = np.zeros_like(big)  # top or bottom slices only: a left or right slice of a 0 or 8 is a 1
    if rng.random() < 0.5:
        keep[y0 : y0 + int(f * (y1 - y0)) + 1] = True
    else:
        keep[y1 - int(f * (y1 - y0)) - 1 : y1] = True
    return (big & keep).astype(np.uint8)


def _text(rng: np.random.Generator, text: str) -> np.ndarray:
    font = _FONTS[int(rng.integers(len(_FONTS)))]
    scale = 1.0
    t = int(rng.integers(1, 4))
    (w, h), base = cv2.getTextSize(text, font, scale, t)
    c: np.ndarray = np.zeros((h + base + 8, w + 8), np.uint8)
    cv2.putText(c, text, (4, h + 4), font, scale, 1, t, cv2.LINE_AA)
    if rng.random() < 0.5:  # slant, as a hand writes
        sh = rng.uniform(-0.35, 0.35)
        m = np.array([[1, sh, -sh * c.shape[0] / 2], [0, 1, 0]], np.float32)
        c = cv2.warpAffine(c, m, (c.shape[1], c.shape[0]))
    return (c > 0).astype(np.uint8)


def _letter(rng: np.random.Generator, bank: np.ndarray) -> np.ndarray:
    return _text(rng, _LETTERS[int(rng.integers(len(_LETTERS)))])


def _word(rng: np.random.Generator, bank: np.ndarray) -> np.ndarray:
    n = int(rng.integers(2, 6))
    return _text(rng, "".join(_LETTERS[int(k)] for k in rng.integers(len(_LETTERS), size=n)))


def _stamp(rng: np.random.Generator, bank: np.ndarray) -> np.ndarray:
    """A rubber stamp: a ring or frame with a word inside."""
    c = _canvas()
    if rng.random() < 0.5:
        cv2.circle(c, (28, 28), int(rng.integers(18, 27)), 1, int(rng.integers(1, 4)))
    else:
        cv2.rectangle(c, (int(rng.integers(1, 8)), int(rng.integers(8, 18))),
                      (int(rng.integers(48, 55)), int(rng.integers(38, 48))), 1, int(rng.integers(1, 4)))
    w = _word(rng, bank)
    w = cv2.resize(w, (30, max(4, int(30 * w.shape[0] / max(w.shape[1], 1)))), interpolation=cv2.INTER_NEAREST)
    h = min(w.shape[0], 20)
    c[28 - h // 2 : 28 - h // 2 + h, 13:43] |= w[:h]
    return c


def _currency(rng: np.random.Generator, bank: np.ndarray) -> np.ndarray:
    """The "$" written or printed before an amount: an S crossed by a bar, a 5 or an 8 to a reader that has
    never seen one (it read "$48.440" as 548440)."""
    if rng.random() < 0.35:
        return _text(rng, "$")
    ink = render_char("$", Writer.random(rng), rng, int(rng.integers(24, 48)))
    return (ink > 0.35).astype(np.uint8)


_DRAW: dict[str, Callable[[np.random.Generator, np.ndarray], np.ndarray]] = {
    "rule": _rule, "corner": _corner, "margin": _margin, "blot": _blot, "specks": _specks, "part": _part,
    "letter": _letter, "word": _word, "stamp": _stamp, "currency": _currency,
}


def non_digit(rng: np.random.Generator, bank: np.ndarray) -> np.ndarray:
    """One normalized 28×28 tile of something that is not a digit. ``bank``: MNIST-polarity digits (no 1s) whose
    parts are cut."""
    kind = REJECT_KINDS[int(rng.integers(len(REJECT_KINDS)))]
    ink = _DRAW[kind](rng, bank)
    if not ink.any():
        ink = _blot(rng, bank)
    return normalize_digit(ink.astype(bool))
