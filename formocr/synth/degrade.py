"""How the scan spoils a synthetic page: stamps and scribbles on the paper, then lighting, blur, noise, dust, JPEG.

:class:`Degrade` holds the ranges, sampled per page from the ``rng`` given to
:func:`~formocr.synth.forms.render_form`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from formocr.objects import Box
from formocr.synth.handwriting import Writer, render_scribble
from formocr.synth.printer import cap_height

__all__ = ["Degrade", "occlude", "pick", "scan"]


@dataclass
class Degrade:
    """How the scan spoils the page. Ranges are sampled per page from the ``rng`` given to render_form.

    ``lighting`` is the darkest factor of a smooth brightness gradient/shadow over the page (1.0 = even);
    ``speckle`` is the fraction of pixels hit by salt-and-pepper dust; ``paper`` the paper's grey range.
    ``skew_deg`` fixes the rotation exactly (else uniform in ±``max_skew``).

    Registration geometry (all off by default, so older seeds render the very same pages): ``scale`` is the
    range of the print/scan scale; ``perspective`` moves each corner of the form by up to that share of the
    form's width in x and of its height in y (0.01: a keystone of at most 2 %); ``margin_mm`` is the range of
    the scanner bed's margin around the form on each side (the page image grows, paper-coloured); ``stamps``
    ink stamps (round or rectangular, red, blue or black) and ``scribbles`` extra handwritten scribbles land on
    the paper; ``occluders_avoid_fields`` keeps them off the field boxes
    (reading them is not the point), otherwise they may cover anything.
    """

    max_skew: float = 5.0
    skew_deg: float | None = None
    max_offset_mm: float = 0.0
    blur_sigma: tuple[float, float] = (0.0, 0.0)
    noise_std: tuple[float, float] = (0.0, 0.0)
    speckle: float = 0.0
    lighting: tuple[float, float] = (1.0, 1.0)
    jpeg_quality: tuple[int, int] | None = None
    paper: tuple[int, int] = (255, 255)
    scale: tuple[float, float] = (1.0, 1.0)
    perspective: float = 0.0
    margin_mm: tuple[float, float] = (0.0, 0.0)
    stamps: int = 0
    scribbles: int = 0
    occluders_avoid_fields: bool = True

    @classmethod
    def none(cls) -> Degrade:
        """A perfect scan: no rotation, no noise, white paper."""
        return cls(max_skew=0.0)

    @classmethod
    def random(cls, rng: np.random.Generator, max_skew: float = 5.0) -> Degrade:
        """A moderate random degradation, like an office scanner or a phone scan on a good day."""
        top_blur = float(rng.uniform(0.0, 1.0))
        return cls(
            max_skew=max_skew,
            max_offset_mm=float(rng.uniform(0.0, 3.0)),
            blur_sigma=(0.0, top_blur),
            noise_std=(0.0, float(rng.uniform(0.0, 6.0))),
            speckle=float(rng.uniform(0.0, 3e-4)),
            lighting=(float(rng.uniform(0.65, 1.0)), 1.0),
            jpeg_quality=(60, 95) if rng.random() < 0.5 else None,
            paper=(int(rng.integers(225, 256)), 255),
        )

    @classmethod
    def registration(cls, rng: np.random.Generator, max_skew: float = 5.0) -> Degrade:
        """:meth:`random`'s scanner plus the hard geometry registration must undo.

        Scale 0.9-1.1, offsets up to ±40 mm on a bed with 45-60 mm of margin (so the form stays on the bed),
        corners moved by up to 1 % of the form's size, one stamp and one or two scribbles off the fields.
        """
        d = cls.random(rng, max_skew=max_skew)
        d.max_offset_mm = 40.0
        d.scale = (0.9, 1.1)
        d.perspective = 0.01
        d.margin_mm = (45.0, 60.0)
        d.stamps = 1
        d.scribbles = int(rng.integers(1, 3))
        return d


def pick(rng: np.random.Generator, options: Sequence[tuple[int, int, int]]) -> tuple[int, int, int]:
    return options[int(rng.integers(0, len(options)))]


_STAMP_COLOURS = [(40, 40, 200), (170, 70, 30), (45, 40, 40)]  # BGR: red, blue, black
_STAMP_WORDS = ["PAID", "RECEIVED", "APPROVED", "COPY", "POSTED", "VERIFIED"]


def _place(
    rng: np.random.Generator, w: int, h: int, W: int, H: int, boxes: dict[str, Box], pad: int, avoid: bool
) -> tuple[int, int] | None:
    """Top-left corner for a ``w``×``h`` occluder on a ``W``×``H`` form: off the field boxes when asked.

    When asked to avoid the fields and 40 random tries all touch one (a crowded form), there is no occluder:
    a stamp over the digits tests reading through stamps, not registration.
    """
    best, best_cost = (0, 0), math.inf
    for _ in range(40 if avoid else 1):
        x = int(rng.integers(-w // 4, max(1, W - 3 * w // 4)))
        y = int(rng.integers(-h // 4, max(1, H - 3 * h // 4)))
        cost = 0.0
        if avoid:
            for b in boxes.values():
                ox = min(x + w, b.x2 + pad) - max(x, b.x - pad)
                oy = min(y + h, b.y2 + pad) - max(y, b.y - pad)
                cost += max(0, ox) * max(0, oy)
        if cost < best_cost:
            best, best_cost = (x, y), cost
            if cost == 0:
                break
    return None if avoid and best_cost > 0 else best


def _stamp(rng: np.random.Generator, k: float) -> np.ndarray:
    """An ink stamp as float32 alpha: a round (double ring) or rectangular (double frame) stamp with a word."""
    word = _STAMP_WORDS[int(rng.integers(0, len(_STAMP_WORDS)))]
    t = max(2, round(rng.uniform(0.5, 0.9) * k))
    if rng.random() < 0.5:
        d = round(rng.uniform(25, 40) * k)
        layer = np.zeros((d + 4, d + 4), np.uint8)
        c = (d // 2 + 2, d // 2 + 2)
        cv2.circle(layer, c, d // 2, 255, t, cv2.LINE_AA)
        cv2.circle(layer, c, round(d * 0.36), 255, max(1, t // 2), cv2.LINE_AA)
        for a in np.linspace(0, 2 * math.pi, 16, endpoint=False):  # dots between the rings
            r = d * 0.43
            cv2.circle(layer, (round(c[0] + r * math.cos(a)), round(c[1] + r * math.sin(a))), t, 255, -1)
        width = d * 0.6
    else:
        w, h = round(rng.uniform(40, 60) * k), round(rng.uniform(16, 26) * k)
        layer = np.zeros((h + 4, w + 4), np.uint8)
        cv2.rectangle(layer, (2, 2), (w + 1, h + 1), 255, t)
        g = 2 * t + 2
        cv2.rectangle(layer, (2 + g, 2 + g), (w + 1 - g, h + 1 - g), 255, max(1, t // 2))
        width = w * 0.75
    (tw, th), _ = cv2.getTextSize(word, cv2.FONT_HERSHEY_DUPLEX, 1.0, 2)
    fs = width / tw
    org = (round((layer.shape[1] - tw * fs) / 2), round((layer.shape[0] + th * fs) / 2))
    # Rubber stamps print heavy type, stems about 0.3 of the cap height. OpenCV 5 draws any thickness from 2 up as
    # its bold face (stems 0.32 caps; these pixels do not depend on the figure), while OpenCV 4's Hershey fonts are
    # strokes of a pen ``thickness`` pixels wide: the pen is sized so, not left at the frame's line width.
    heavy = max(t, round(0.3 * fs * cap_height(cv2.FONT_HERSHEY_DUPLEX)))
    cv2.putText(layer, word, org, cv2.FONT_HERSHEY_DUPLEX, fs, 255, heavy, cv2.LINE_AA)
    angle = float(rng.uniform(-30, 30))
    hh, ww = layer.shape
    R = cv2.getRotationMatrix2D((ww / 2, hh / 2), angle, 1.0)
    side = round(math.hypot(ww, hh))
    R[:, 2] += np.array([(side - ww) / 2, (side - hh) / 2])
    alpha = cv2.warpAffine(layer, R, (side, side), flags=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    # Uneven inking: some parts of a rubber stamp print faintly.
    grain = cv2.resize(rng.uniform(0.35, 1.0, (8, 8)).astype(np.float32), (side, side), interpolation=cv2.INTER_CUBIC)
    return np.clip(alpha * grain * float(rng.uniform(0.6, 0.95)), 0, 1)


def occlude(
    img: np.ndarray,
    deg: Degrade,
    rng: np.random.Generator,
    writer: Writer,
    boxes: dict[str, Box],
    k: float,
    color: bool,
) -> np.ndarray:
    """Stamps and scribbles on the paper (multiplied into ``img``, grey or BGR): what registration must ignore."""
    H, W = img.shape[:2]
    pad = round(2 * k)
    marks: list[tuple[np.ndarray, np.ndarray]] = []
    for _ in range(deg.stamps):
        alpha = _stamp(rng, k)
        marks.append((alpha, np.array(pick(rng, _STAMP_COLOURS), np.float32)))
    for _ in range(deg.scribbles):
        alpha = render_scribble(writer, rng, round(rng.uniform(30, 80) * k), round(rng.uniform(3, 5) * k))
        marks.append((alpha, np.full(3, float(writer.ink), np.float32)))
    for alpha, bgr in marks:
        h, w = alpha.shape
        spot = _place(rng, w, h, W, H, boxes, pad, deg.occluders_avoid_fields)
        if spot is None:
            continue
        x, y = spot
        x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
        if x1 <= x0 or y1 <= y0:
            continue
        a = alpha[y0 - y : y1 - y, x0 - x : x1 - x]
        if color:
            img[y0:y1, x0:x1] *= 1 - a[..., None] * (1 - bgr / 255.0)
        else:
            grey = float(bgr[0] * 0.114 + bgr[1] * 0.587 + bgr[2] * 0.299)
            img[y0:y1, x0:x1] *= 1 - a * (1 - grey / 255.0)
    return img


def scan(img: np.ndarray, deg: Degrade, rng: np.random.Generator) -> np.ndarray:
    """Lighting, blur, noise, dust and JPEG, in the order a scanner adds them."""
    H, W = img.shape[:2]
    lo = rng.uniform(*deg.lighting)
    if lo < 1.0:
        gh, gw = max(2, H // 32), max(2, W // 32)
        yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
        a = rng.uniform(0, 2 * math.pi)
        ramp = (np.cos(a) * xx / gw + np.sin(a) * yy / gh).astype(np.float32)
        cy, cx = rng.uniform(0, gh), rng.uniform(0, gw)
        blob = np.exp(-(((yy - cy) / (gh * 0.6)) ** 2 + ((xx - cx) / (gw * 0.6)) ** 2)).astype(np.float32)
        field_ = ramp - ramp.min()
        field_ = field_ / max(float(field_.max()), 1e-6) * 0.6 + blob * 0.4
        gain = 1.0 - (1.0 - lo) * field_ / max(float(field_.max()), 1e-6)
        gain = cv2.resize(gain, (W, H), interpolation=cv2.INTER_LINEAR)
        img = img * (gain[..., None] if img.ndim == 3 else gain)
    sigma = rng.uniform(*deg.blur_sigma)
    if sigma > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    std = rng.uniform(*deg.noise_std)
    if std > 0:
        img = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(std)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if deg.speckle > 0:
        n = int(deg.speckle * H * W)
        ys, xs = rng.integers(0, H, n), rng.integers(0, W, n)
        dark = rng.random(n) < 0.7  # dust shows as dark specks more often than as holes in the ink
        specks = rng.integers(0, 90, int(dark.sum())).astype(np.uint8)
        out[ys[dark], xs[dark]] = specks[:, None] if out.ndim == 3 else specks
        out[ys[~dark], xs[~dark]] = 255
    if deg.jpeg_quality is not None:
        q = int(rng.integers(deg.jpeg_quality[0], deg.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return out
