"""Synthetic handwritten digit strings with exact labels, for training and measuring the string reader.

Real people do not write in neat separate boxes: digits touch, overlap, break, and run into separators. Each
sample here is a strip of paper with one field on it, drawn from

* digit images: MNIST crops (training strings from training images only, evaluation strings from test images
  only) or the project's own stroke renderer (:mod:`formocr.synth.handwriting`);
* separators ``. , - /`` and spaces, drawn by the stroke renderer where the text format allows them, and a
  ``$`` where the text asks for one;
* a spacing per neighbour pair from clear gaps to heavy overlap, a per-string size, slant and pen width,
  baseline wobble, broken strokes;
* a background: paper tone and lighting, guilloche or hatched security patterns like cheques carry, a printed
  box border the digits may run into or a ruled line under them, blur, noise and JPEG.

``touching`` is measured on the drawn ink (two neighbouring characters whose strokes meet), not assumed from
the spacing drawn. :func:`field_ink_of` sends a sample down the same binarize → border-removal road the
pipeline uses for every field, so the string reader trains on what it will see.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, overload

import cv2
import numpy as np

from formocr.objects import Box, CleanPage, FieldRegion, Page
from formocr.synth.handwriting import Writer, render_char, render_digit
from formocr.synth.warp import affine_warp, elastic_warp

MM_PER_INCH = 25.4
DIGIT_MM = 6.0  # the height a digit is taken to have on paper, which fixes each strip's dpi


@dataclass(frozen=True)
class StringSample:
    """One strip: grey image (dark ink on light paper), the text drawn, and where the field lies."""

    image: np.ndarray
    text: str
    region: FieldRegion
    dpi: float
    touching: bool
    char_boxes: tuple[tuple[str, Box], ...]
    # per entry of char_boxes, the index of its image in the DigitBank, or -1 (drawn by the stroke renderer, or a
    # separator): which source images a string holds, so a benchmark can set apart strings of unreadable images
    sources: tuple[int, ...] = ()


class DigitBank:
    """Digit images by label, cropped to their ink; ``images`` are MNIST-like uint8 (white digit on black)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        if len(images) != len(labels):
            raise ValueError("images and labels differ in length")
        self.images = images
        self.by_label = [np.flatnonzero(labels == d) for d in range(10)]

    def draw(self, d: int, rng: np.random.Generator) -> np.ndarray:
        """A random image of digit ``d`` as float ink in [0, 1], cropped to its strokes."""
        return self.ink(self.pick(d, rng))

    def pick(self, d: int, rng: np.random.Generator) -> int:
        """The index (into ``images``) of a random image of digit ``d``."""
        idx = self.by_label[d]
        return int(idx[int(rng.integers(0, len(idx)))])

    def ink(self, k: int) -> np.ndarray:
        """Image ``k`` as float ink in [0, 1], cropped to its strokes."""
        a = self.images[k].astype(np.float32) / 255.0
        ys, xs = np.nonzero(a > 0.1)
        return a[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] if len(ys) else a


def writer_digits(images: np.ndarray, labels: np.ndarray, writers: np.ndarray | None,
                  rng: np.random.Generator) -> Callable[[int, np.random.Generator], np.ndarray]:
    """The digits of one real writer drawn at random from a labelled set (CVL: ``writers`` names each image's
    writer), as a :func:`formocr.synth.render_form` ``digits`` source: a form is filled in by one person. Where
    that person wrote no sample of a digit, or the set has no writer ids (MNIST), any writer's digit stands in."""
    everyone = DigitBank(images, labels)
    if writers is None:
        return everyone.draw
    who = rng.choice(np.unique(writers))
    own = DigitBank(images[writers == who], labels[writers == who])

    def draw(d: int, r: np.random.Generator) -> np.ndarray:
        return own.draw(d, r) if len(own.by_label[d]) else everyone.draw(d, r)

    return draw


# --- texts ---------------------------------------------------------------------------------------------------


def _digits(rng: np.random.Generator, n: int) -> str:
    return "".join(str(int(d)) for d in rng.integers(0, 10, n))


def random_text(rng: np.random.Generator, min_len: int = 1, max_len: int = 12, separators: bool = True) -> str:
    """A digit string of ``min_len``..``max_len`` digits, formatted as a field would be when ``separators``.

    Formats: plain digits, amounts (``1,250.00``, ``10.000``, ``22.000.-``), dates (``03/11/2026``,
    ``3.11.26``, ``03-11-2026``), ZIP+4 (``12345-6789``) and space-grouped numbers (``100 000``).
    """
    n = int(rng.integers(min_len, max_len + 1))
    kind = int(rng.integers(0, 6)) if separators else 0
    if kind == 1 and n >= 3:  # amount with decimals
        whole = _digits(rng, max(1, n - 2))
        if whole[0] == "0" and len(whole) > 1:
            whole = str(int(rng.integers(1, 10))) + whole[1:]
        sep_t = "," if rng.random() < 0.5 else "." if rng.random() < 0.5 else ""
        dec = "." if sep_t != "." else ","
        groups: list[str] = []
        while len(whole) > 3:
            groups.insert(0, whole[-3:])
            whole = whole[:-3]
        groups.insert(0, whole)
        return sep_t.join(groups) + dec + _digits(rng, 2)
    if kind == 2 and n >= 4:  # whole amount with thousands dots, maybe a dash
        whole = str(int(rng.integers(1, 10))) + _digits(rng, n - 1)
        groups = []
        while len(whole) > 3:
            groups.insert(0, whole[-3:])
            whole = whole[:-3]
        groups.insert(0, whole)
        return ".".join(groups) + (".-" if rng.random() < 0.3 else "-" if rng.random() < 0.2 else "")
    if kind == 3 and n >= 4:  # date
        sep = "/.-"[int(rng.integers(0, 3))]
        d, m = int(rng.integers(1, 29)), int(rng.integers(1, 13))
        y = str(int(rng.integers(1950, 2040)))
        ds = f"{d:02d}" if rng.random() < 0.7 else str(d)
        ms = f"{m:02d}" if rng.random() < 0.7 else str(m)
        return sep.join([ds, ms, y if n >= 7 else y[2:]])
    if kind == 4 and n >= 9:  # ZIP+4
        return _digits(rng, 5) + "-" + _digits(rng, 4)
    if kind == 5 and n >= 4:  # space-grouped
        cut = int(rng.integers(1, n))
        return _digits(rng, cut) + " " + _digits(rng, n - cut)
    return _digits(rng, n)


# --- drawing ---------------------------------------------------------------------------------------------------


# What a strip's paper and pen add to the digits, each of which StringGenerator(without=...) can leave out.
PAPER_EFFECTS = ("gradient", "pattern", "frame", "tone", "blur", "noise", "jpeg", "slant")


@dataclass
class _Glyph:
    char: str
    ink: np.ndarray  # float [0, 1]
    x: int
    y: int
    source: int = -1  # the DigitBank image it was made from, or -1


def _pen(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    r = rng.random()
    if r < 0.2:
        return cv2.dilate(a, np.ones((2, 2), np.uint8))
    if r < 0.3:
        return cv2.dilate(a, np.ones((3, 3), np.uint8))
    if r < 0.42 and min(a.shape) > 12:
        return cv2.erode(a, np.ones((2, 2), np.uint8))
    return a


def _break(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dry-pen gaps: erase one or two small discs on the stroke."""
    ys, xs = np.nonzero(a > 0.5)
    if len(ys) < 20:
        return a
    out = a.copy()
    for _ in range(int(rng.integers(1, 3))):
        k = int(rng.integers(0, len(ys)))
        r = max(1, round(min(a.shape) * rng.uniform(0.05, 0.1)))
        cv2.circle(out, (int(xs[k]), int(ys[k])), r, 0.0, -1)
    return out


class StringGenerator:
    """Draws :class:`StringSample` objects; ``bank`` supplies digit images (None: the stroke renderer only)."""

    def __init__(self, bank: DigitBank | None, synth_share: float = 0.3, min_len: int = 1, max_len: int = 12,
                 separators: bool = True, distort: float = 0.0, without: frozenset[str] = frozenset()) -> None:
        self.bank = bank
        self.synth_share = synth_share if bank is not None else 1.0
        self.min_len, self.max_len, self.separators = min_len, max_len, separators
        # > 0: each MNIST digit is also turned, sheared, scaled and elastically bent (strength 1: up to 6°, shear
        # 0.15, ±7.5% and a smooth warp of up to 2 px), as another writer might form it. Training only: MNIST's test
        # digits are by other writers than its training digits. 0 draws nothing more from the random stream, so
        # benchmark strings are unchanged.
        self.distort = distort
        # Effects of the strip left out, every random draw still made (so the strings are otherwise the same): a
        # benchmark measures what each one costs the readers. Names in PAPER_EFFECTS.
        unknown = set(without) - set(PAPER_EFFECTS)
        if unknown:
            raise ValueError(f"unknown effects {sorted(unknown)}; known: {', '.join(PAPER_EFFECTS)}")
        self.without = frozenset(without)

    def sample(self, rng: np.random.Generator, text: str | None = None, touching: bool | None = None,
               clean: bool = False) -> StringSample:
        """One strip. ``touching`` True/False asks for (and checks) neighbours that do/do not touch.

        ``clean`` draws plain paper without patterns, borders, blur or noise (for tests of the labels).
        """
        text = text if text is not None else random_text(rng, self.min_len, self.max_len, self.separators)
        want = touching if touching is not None else bool(rng.random() < 0.5)
        for _attempt in range(12):
            glyphs, h = self._glyphs(text, rng, want)
            if _touches(glyphs) == want or touching is None or len(glyphs) < 2:
                break
        return self._finish(text, glyphs, h, rng, clean)

    def _digit(self, d: int, rng: np.random.Generator, h: float, writer: Writer) -> tuple[np.ndarray, int]:
        """Digit ``d`` as ink of about height ``h``, and its bank image's index (-1: drawn by the renderer)."""
        hi = max(8, round(h * rng.uniform(0.88, 1.08)))
        if self.bank is None or rng.random() < self.synth_share:
            return render_digit(d, writer, rng, hi), -1
        k = self.bank.pick(d, rng)
        a = self.bank.ink(k)
        if self.distort > 0:
            a = _distorted(a, rng, self.distort)
        ah, aw = a.shape
        wi = max(2, round(aw / ah * hi * rng.uniform(0.85, 1.2)))
        a = cv2.resize(a, (wi, hi), interpolation=cv2.INTER_LINEAR)
        return np.clip(a * 1.15, 0.0, 1.0), k

    def _glyphs(self, text: str, rng: np.random.Generator, touching: bool) -> tuple[list[_Glyph], float]:
        h = float(rng.uniform(26, 46))  # digit height in pixels
        writer = Writer.random(rng)
        chars = [c for c in text if c != " "]
        n_pairs = max(0, len(chars) - 1)
        touch_pairs = set()
        if touching and n_pairs:
            touch_pairs = {i for i in range(n_pairs) if rng.random() < 0.55} or {int(rng.integers(0, n_pairs))}
        glyphs: list[_Glyph] = []
        cursor = 0.0
        pending_space = 0.0
        pair = -1
        for ch in text:
            if ch == " ":
                pending_space += h * rng.uniform(0.55, 0.9)
                continue
            pair += 1
            source = -1
            if ch.isdigit():
                a, source = self._digit(int(ch), rng, h, writer)
                a = _pen(a, rng)
                if rng.random() < 0.15:
                    a = _break(a, rng)
                y = rng.normal(0.0, 0.035) * h + (h - a.shape[0])  # bottoms on a wobbly baseline
            else:
                a = render_char(ch, writer, rng, max(8, round(h)))
                y = {".": h - a.shape[0] * 0.9, ",": h - a.shape[0] * 0.5, "-": h * 0.52 - a.shape[0] / 2}.get(
                    ch, (h - a.shape[0]) / 2)
                y += rng.normal(0.0, 0.03) * h
            if glyphs:
                # digits touch their neighbours, and a currency sign may run into the first digit
                if pair - 1 in touch_pairs and ch.isdigit() and glyphs[-1].char in "0123456789$":
                    gap = rng.uniform(-0.28, -0.02) * min(a.shape[1], glyphs[-1].ink.shape[1], h)
                else:
                    gap = rng.uniform(0.06, 0.45) * h * (0.5 if not ch.isdigit() or not glyphs[-1].char.isdigit()
                                                         else 1.0)
                x = cursor + gap + pending_space
            else:
                x = 0.0
            glyphs.append(_Glyph(ch, a, round(x), round(y), source))
            cursor = x + a.shape[1]
            pending_space = 0.0
        return glyphs, h

    def _finish(self, text: str, glyphs: list[_Glyph], h: float, rng: np.random.Generator, clean: bool
                ) -> StringSample:
        x0 = min(g.x for g in glyphs)
        y0 = min(g.y for g in glyphs)
        x1 = max(g.x + g.ink.shape[1] for g in glyphs)
        y1 = max(g.y + g.ink.shape[0] for g in glyphs)
        mx = round(h * rng.uniform(0.3, 1.0))
        my_top, my_bot = round(h * rng.uniform(0.25, 0.6)), round(h * rng.uniform(0.25, 0.6))
        W, H = x1 - x0 + 2 * mx, y1 - y0 + my_top + my_bot
        ink = np.zeros((H, W), np.float32)
        boxes = []
        for g in glyphs:
            gx, gy = g.x - x0 + mx, g.y - y0 + my_top
            gh, gw = g.ink.shape
            np.maximum(ink[gy : gy + gh, gx : gx + gw], g.ink, out=ink[gy : gy + gh, gx : gx + gw])
            ys, xs = np.nonzero(g.ink > 0.3)
            boxes.append((g.char, Box(gx + int(xs.min()), gy + int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1)
                          if len(xs) else Box(gx, gy, 1, 1)))
        touching = _touches(glyphs)
        slant = 0.0 if clean else float(np.clip(rng.normal(0.0, 0.12), -0.3, 0.3))
        slant = 0.0 if "slant" in self.without else slant
        if slant:
            m = np.array([[1.0, math.tan(slant), -math.tan(slant) * H / 2], [0.0, 1.0, 0.0]], np.float32)
            ink = cv2.warpAffine(ink, m, (W, H), flags=cv2.INTER_LINEAR)
            boxes = [(c, _sheared(b, slant, H, W)) for c, b in boxes]
        dpi = h / (DIGIT_MM / MM_PER_INCH)
        gray, region = _paper(ink, h, dpi, rng, clean, self.without)
        return StringSample(gray, text, region, dpi, touching, tuple(boxes), tuple(g.source for g in glyphs))


def _distorted(a: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    big = np.pad(a, 4)
    big = affine_warp(big, rng, 0.5 * strength)
    if rng.random() < 0.7:
        big = elastic_warp(big, rng, rng.uniform(0.5, 2.0) * strength)
    ys, xs = np.nonzero(big > 0.1)
    return big[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] if len(ys) else a


def _sheared(b: Box, slant: float, H: int, W: int) -> Box:
    t = math.tan(slant)
    xs = [b.x + t * (y - H / 2) for y in (b.y, b.y2)]
    x0, x1 = min(xs), max(xs) + b.w
    return Box(int(x0), b.y, math.ceil(x1 - x0), b.h).clip(W, H)


def _touches(glyphs: list[_Glyph]) -> bool:
    """Do any two neighbouring characters' strokes meet (8-connected, at the stroke threshold)?"""
    for a, b in zip(glyphs, glyphs[1:]):
        ax1 = a.x + a.ink.shape[1]
        bx0 = b.x
        if bx0 > ax1:
            continue
        x0, x1 = min(a.x, b.x), max(ax1, b.x + b.ink.shape[1])
        y0 = min(a.y, b.y)
        y1 = max(a.y + a.ink.shape[0], b.y + b.ink.shape[0])
        ma = np.zeros((y1 - y0 + 2, x1 - x0 + 2), np.uint8)
        mb = np.zeros_like(ma)
        ma[a.y - y0 : a.y - y0 + a.ink.shape[0], a.x - x0 : a.x - x0 + a.ink.shape[1]] = a.ink > 0.4
        mb[b.y - y0 : b.y - y0 + b.ink.shape[0], b.x - x0 : b.x - x0 + b.ink.shape[1]] = b.ink > 0.4
        if (cv2.dilate(ma, np.ones((3, 3), np.uint8)) & mb).any():
            return True
    return False


def _paper(ink: np.ndarray, h: float, dpi: float, rng: np.random.Generator, clean: bool,
           without: frozenset[str] = frozenset()) -> tuple[np.ndarray, FieldRegion]:
    """Put the ink on paper; returns the grey strip and the field region (the printed box, or the ink's area).

    An effect named in ``without`` still makes its random draws (and printing is done on a scratch copy), so
    the rest of the strip is exactly as it would have been.
    """
    H, W = ink.shape
    paper = float(rng.uniform(215, 250)) if not clean else 245.0
    g: np.ndarray = np.full((H, W), paper, np.float32)
    if not clean:
        ramp = np.linspace(0, rng.uniform(-20, 20), W, dtype=np.float32)[None, :]
        if "gradient" not in without:
            g += ramp
        pat = g if "pattern" not in without else g.copy()
        r = rng.random()
        if r < 0.2:  # guilloche: interlaced sine curves
            tone = paper - float(rng.uniform(15, 50))  # security printing is light
            cols = np.arange(W, dtype=np.float32)
            for _ in range(int(rng.integers(3, 8))):
                period = rng.uniform(0.5, 2.0) * h
                amp, y_c, ph = rng.uniform(0.1, 0.5) * H, rng.uniform(0.2, 0.8) * H, rng.uniform(0, 6.3)
                pts = np.stack([cols, y_c + amp * np.sin(cols / period * 2 * np.pi + ph)], 1).astype(np.int32)
                cv2.polylines(pat, [pts], False, tone, 1, cv2.LINE_AA)
        elif r < 0.35:  # fine hatching
            tone = paper - float(rng.uniform(10, 40))
            step = int(rng.integers(3, 7))
            for k in range(-H, W, step):
                cv2.line(pat, (k, H), (k + H, 0), tone, 1, cv2.LINE_AA)
        elif r < 0.45:  # dotted screen
            tone = paper - float(rng.uniform(15, 50))
            step = int(rng.integers(3, 6))
            pat[::step, ::step] = np.minimum(pat[::step, ::step], tone)
    ys, xs = np.nonzero(ink > 0.3)
    ink_box = Box(int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1)
    pad = max(2, round(0.15 * h))
    box = Box(ink_box.x - pad, ink_box.y - pad, ink_box.w + 2 * pad, ink_box.h + 2 * pad).clip(W, H)
    r = rng.random() if not clean else 1.0
    printed = g if "frame" not in without else g.copy()
    if r < 0.45:  # a printed box; a small inset makes strokes run into and across it
        inset = rng.uniform(-0.05, 0.35) * h
        bx = Box(round(ink_box.x - inset), round(ink_box.y - inset * rng.uniform(0.5, 1.2)),
                 round(ink_box.w + 2 * inset), round(ink_box.h + 2 * inset)).clip(W, H)
        t = max(1, round(dpi / MM_PER_INCH * rng.uniform(0.1, 0.3)))  # 0.1-0.3 mm, as forms print them
        tone = float(rng.uniform(0, 120))
        cv2.rectangle(printed, (bx.x, bx.y), (bx.x2 - 1, bx.y2 - 1), tone, t)
        box = bx
    elif r < 0.6:  # a ruled line under (or through the bottom of) the digits
        y = min(H - 2, round(ink_box.y2 + rng.uniform(-0.1, 0.12) * h))
        t = max(1, round(dpi / MM_PER_INCH * rng.uniform(0.1, 0.3)))
        cv2.line(printed, (0, y), (W - 1, y), float(rng.uniform(0, 140)), t)
    ink_tone = float(rng.uniform(0, 110)) if not clean else 20.0
    if "tone" in without:
        ink_tone = 20.0
    g = g * (1.0 - ink) + ink_tone * ink
    if not clean:
        if rng.random() < 0.5:
            sigma = rng.uniform(0.3, 1.0)
            if "blur" not in without:
                g = cv2.GaussianBlur(g, (0, 0), sigma)
        grain = rng.normal(0.0, rng.uniform(0, 10), g.shape).astype(np.float32)
        if "noise" not in without:
            g += grain
    out: np.ndarray = np.clip(g, 0, 255).astype(np.uint8)
    if not clean and rng.random() < 0.2:
        quality = int(rng.integers(40, 90))
        if "jpeg" not in without:
            _, enc = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
            out = np.asarray(cv2.imdecode(enc, cv2.IMREAD_GRAYSCALE), np.uint8)
    return out, FieldRegion("string", "digits", box, "box")


def field_ink_of(sample: StringSample) -> np.ndarray:
    """The sample's field ink exactly as the pipeline would cut it (binarize, remove borders, keep the field)."""
    return field_cut_of(sample)[0]


def field_cut_of(sample: StringSample) -> tuple[np.ndarray, Box]:
    """As :func:`field_ink_of`, with the crop's box in strip pixels (where the drawn characters' boxes are)."""
    from formocr.segment import field_ink

    return field_ink(clean_page(sample), sample.region)


@overload
def field_grey_of(sample: StringSample) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
@overload
def field_grey_of(sample: StringSample, with_box: Literal[True]) -> tuple[np.ndarray, np.ndarray, np.ndarray, Box]: ...
def field_grey_of(sample: StringSample, with_box: bool = False) -> Any:
    """The field's ink as :func:`field_ink_of` cuts it, the preprocessed grey of the same crop, and the printed
    lines border removal took out of it (:func:`formocr.segment.field_cut`), which the pipeline paints out of a
    grey-box strip; ``with_box``: also the crop's box (where the drawn characters' boxes are)."""
    from formocr.segment import field_cut

    clean = clean_page(sample)
    ink, box, lines = field_cut(clean, sample.region)
    grey = clean.gray[box.y : box.y2, box.x : box.x2]
    return (ink, grey, lines, box) if with_box else (ink, grey, lines)


def clean_page(sample: StringSample) -> CleanPage:
    """The strip preprocessed as the pipeline preprocesses a page (no deskew: it is level; specks are left to the
    segmenter), so training and the string benchmarks read the fields of the same pixels."""
    from formocr.preprocess import PreprocessOptions, preprocess

    return preprocess(Page(0, sample.image, sample.dpi, "<strip>"), PreprocessOptions(deskew=False, speckle_mm=0.0))
