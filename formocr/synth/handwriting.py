"""Synthetic pen handwriting for digits and the separators of amounts and dates.

Why it exists: samples, tests and benchmarks need handwriting we are free to commit, so nothing here comes
from a dataset. Each character is a set of pen strokes drawn through control points in a unit box (x right,
y down, y = 0 the top of a digit, y = 1 its baseline; :mod:`formocr.synth.glyphs`). Between "corner" points a stroke
is a centripetal
Catmull-Rom spline (a chain of cubic Bezier curves through the points), so curves stay round and corners stay
sharp.

Realism comes from three layers of variation, the way real handwriting varies:

* the *allograph* (which shape a person uses for a 1, 4, 7, 9, 2 ...) and a fixed per-writer distortion of the
  control points, both chosen once per :class:`Writer`;
* the writer's slant, proportions, pen width and spacing;
* per-instance jitter of the control points, a small rotation, a smooth wobble and pen-pressure changes.

Strokes are drawn at 4x with anti-aliased round-capped lines and reduced with ``cv2.INTER_AREA``, which gives
the soft, thick-ish pen strokes a digit classifier trained on MNIST expects.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np

from formocr.objects import Box
from formocr.synth.glyphs import CHARS, CURSIVE, GLYPHS, Glyph, Stroke

__all__ = ["CHARS", "GLYPHS", "Writer", "render_char", "render_digit", "render_scribble", "render_string"]


_DIGITS = "0123456789"


@dataclass(frozen=True)
class Writer:
    """One person's handwriting: the choices that stay the same across everything they write.

    ``slant`` is a shear angle in radians in image coordinates (y down): x' = x + tan(slant)·(y - 0.5), so a
    negative slant leans the tops of the digits to the right, as most right-handed writers do. ``pen`` is the
    stroke width as a fraction of the digit height. ``spacing`` is the gap between characters as a fraction of
    the height. ``allographs`` holds, per digit 0-9, the index of the shape this writer uses. ``ink`` is the
    grey level (0 = black) of the pen when the writing is put on paper.
    """

    slant: float = -0.1
    height_scale: float = 1.0
    width_scale: float = 1.0
    pen: float = 0.1
    jitter: float = 0.02
    spacing: float = 0.2
    baseline_wobble: float = 0.02
    size_wobble: float = 0.04
    allographs: tuple[int, ...] = (0,) * 10
    ink: int = 30
    style_seed: int = 0

    @classmethod
    def random(cls, rng: np.random.Generator) -> Writer:
        """A plausible random writer; shapes are chosen with the allograph weights of :data:`GLYPHS`."""
        allographs = []
        for d in _DIGITS:
            weights = np.array([w for w, _ in GLYPHS[d]], dtype=float)
            allographs.append(int(rng.choice(len(weights), p=weights / weights.sum())))
        return cls(
            slant=float(np.clip(rng.normal(-0.1, 0.12), -0.35, 0.25)),
            height_scale=float(rng.uniform(0.9, 1.08)),
            width_scale=float(np.clip(rng.normal(1.0, 0.1), 0.8, 1.25)),
            pen=float(rng.uniform(0.07, 0.15)),
            jitter=float(rng.uniform(0.01, 0.03)),
            spacing=float(rng.uniform(0.15, 0.4)),
            baseline_wobble=float(rng.uniform(0.0, 0.05)),
            size_wobble=float(rng.uniform(0.01, 0.06)),
            allographs=tuple(allographs),
            ink=int(rng.integers(10, 81)),
            style_seed=int(rng.integers(0, 2**31 - 1)),
        )

    def with_(self, **changes: object) -> Writer:
        """A copy with some fields changed (e.g. a clearer pen for committed samples)."""
        return replace(self, **changes)  # type: ignore[arg-type]


# --- geometry -----------------------------------------------------------------------------------------------

def _catmull_rom(pts: np.ndarray, per_seg: int) -> np.ndarray:
    """Centripetal Catmull-Rom spline through ``pts`` (n×2); it neither overshoots nor forms cusps."""
    n = len(pts)
    if n < 2:
        return pts.copy()
    if n == 2:
        t = np.linspace(0.0, 1.0, per_seg + 1)[:, None]
        return pts[0] * (1 - t) + pts[1] * t
    ext = np.vstack([2 * pts[0] - pts[1], pts, 2 * pts[-1] - pts[-2]])
    out = [pts[:1]]
    for i in range(n - 1):
        p0, p1, p2, p3 = ext[i], ext[i + 1], ext[i + 2], ext[i + 3]
        t0 = 0.0
        t1 = t0 + max(float(np.linalg.norm(p1 - p0)) ** 0.5, 1e-4)
        t2 = t1 + max(float(np.linalg.norm(p2 - p1)) ** 0.5, 1e-4)
        t3 = t2 + max(float(np.linalg.norm(p3 - p2)) ** 0.5, 1e-4)
        t = np.linspace(t1, t2, per_seg + 1)[1:, None]
        a1 = (t1 - t) / (t1 - t0) * p0 + (t - t0) / (t1 - t0) * p1
        a2 = (t2 - t) / (t2 - t1) * p1 + (t - t1) / (t2 - t1) * p2
        a3 = (t3 - t) / (t3 - t2) * p2 + (t - t2) / (t3 - t2) * p3
        b1 = (t2 - t) / (t2 - t0) * a1 + (t - t0) / (t2 - t0) * a2
        b2 = (t3 - t) / (t3 - t1) * a2 + (t - t1) / (t3 - t1) * a3
        out.append((t2 - t) / (t2 - t1) * b1 + (t - t1) / (t2 - t1) * b2)
    return np.vstack(out)


def _stroke_path(stroke: Stroke, offsets: np.ndarray) -> np.ndarray:
    """Dense points along one stroke; corner points split it into separately smoothed pieces."""
    pts = np.array([p[:2] for p in stroke], dtype=np.float64) + offsets
    corners = [i for i, p in enumerate(stroke) if len(p) > 2 and p[2]]
    cuts = [0, *[c for c in corners if 0 < c < len(pts) - 1], len(pts) - 1]
    pieces: list[np.ndarray] = []
    for a, b in itertools.pairwise(cuts):
        piece = _catmull_rom(pts[a : b + 1], 12)
        pieces.append(piece if not pieces else piece[1:])
    return np.vstack(pieces)


@dataclass
class _Inked:
    """A character's strokes in target pixels (before rasterising) with the pen width of each point."""

    char: str
    paths: list[np.ndarray]
    widths: list[np.ndarray]

    def bounds(self) -> tuple[float, float, float, float]:
        allp = np.vstack(self.paths)
        r = max(float(w.max()) for w in self.widths) / 2
        return (
            float(allp[:, 0].min()) - r,
            float(allp[:, 1].min()) - r,
            float(allp[:, 0].max()) + r,
            float(allp[:, 1].max()) + r,
        )

    def moved(self, dx: float, dy: float) -> _Inked:
        d = np.array([dx, dy])
        return _Inked(self.char, [p + d for p in self.paths], self.widths)


@dataclass
class _Scanned:
    """A real person's digit (float ink, already at its size) placed with its top-left corner at (x, y)."""

    char: str
    image: np.ndarray
    x: float = 0.0
    y: float = 0.0

    def bounds(self) -> tuple[float, float, float, float]:
        return self.x, self.y, self.x + self.image.shape[1], self.y + self.image.shape[0]

    def moved(self, dx: float, dy: float) -> _Scanned:
        return _Scanned(self.char, self.image, self.x + dx, self.y + dy)


DigitSource = Callable[[int, np.random.Generator], np.ndarray]  # digit → float ink cropped to its strokes


def _real_digit(ch: str, digits: DigitSource, rng: np.random.Generator, height_px: float) -> _Scanned:
    """Digit ``ch`` as one real writer drew it (``digits``), scaled so its ink is ``height_px`` tall."""
    ink = digits(int(ch), rng)
    scale = height_px / max(1, ink.shape[0])
    w = max(1, round(ink.shape[1] * scale))
    img = cv2.resize(ink, (w, max(1, round(height_px))), interpolation=cv2.INTER_LINEAR)
    # On the baseline (y = 0) as the stroke renderer's digits stand, so a '.' or ',' falls where a writer puts it;
    # darker: a pen, not a 28×28 scan's grey.
    return _Scanned(ch, np.clip(1.5 * img, 0.0, 1.0).astype(np.float32), 0.0, 0.03 * height_px - img.shape[0])


def _glyph_strokes(ch: str, writer: Writer) -> Glyph:
    variants = GLYPHS[ch]
    # a digit's shape is the writer's choice; another character's follows the writer's style too
    idx = writer.allographs[int(ch)] if ch in _DIGITS and len(writer.allographs) == 10 else writer.style_seed
    return variants[idx % len(variants)][1]


def _shape(ch: str, writer: Writer, rng: np.random.Generator, height_px: float) -> _Inked:
    """Place one character's strokes in pixels, with the writer's style and this instance's variation.

    The unit box's baseline (y = 1) lands on y = 0 of the result and its left edge near x = 0.
    """
    if ch not in GLYPHS:
        raise ValueError(f"no handwriting for {ch!r} (known: {CHARS!r} and space)")
    strokes = _glyph_strokes(ch, writer)
    style = np.random.default_rng([writer.style_seed, ord(ch)])  # fixed per writer and character
    is_digit = ch in _DIGITS
    size = height_px * writer.height_scale * (1.0 + rng.normal(0.0, writer.size_wobble))
    rot = rng.normal(0.0, 0.045) if is_digit else rng.normal(0.0, 0.02)
    shear = math.tan(writer.slant + rng.normal(0.0, 0.03))
    xscale = writer.width_scale * (1.0 + rng.normal(0.0, 0.04))
    wob_amp, wob_ph = rng.normal(0.0, 0.012), rng.uniform(0, 2 * math.pi)
    jit = writer.jitter if is_digit else writer.jitter * 0.4
    paths, widths = [], []
    for si, stroke in enumerate(strokes):
        n = len(stroke)
        offsets = style.normal(0.0, 0.018, (n, 2)) + rng.normal(0.0, jit, (n, 2))
        if is_digit:
            offsets = _keep_corners_shared(stroke, offsets)
        if ch == "5" and si == 1 and rng.random() < 0.35:
            # the separate top bar of a 5 often floats a little off the stem
            offsets = offsets + np.array([rng.uniform(0.02, 0.07), rng.uniform(-0.06, -0.01)])
        p = _stroke_path(stroke, offsets)
        # smooth wobble: a slow sideways drift along the height, like an unsteady hand
        p[:, 0] += wob_amp * np.sin(2 * math.pi * p[:, 1] + wob_ph)
        x = (p[:, 0] - 0.38) * xscale
        y = p[:, 1] - 0.5
        x = x + shear * y
        c, s = math.cos(rot), math.sin(rot)
        xr, yr = c * x - s * y, s * x + c * y
        pix = np.stack([xr * size, (yr - 0.5) * size], axis=1)
        paths.append(pix)
        # pen pressure: a slow variation along the stroke, lighter where the pen lands and lifts
        m = len(pix)
        tpos = np.linspace(0.0, 1.0, m)
        press = 1.0 + 0.12 * np.sin(2 * math.pi * (tpos * rng.uniform(0.5, 1.5)) + rng.uniform(0, 6.3))
        taper = np.minimum(1.0, 0.8 + 2.0 * np.minimum(tpos, 1 - tpos))
        base = writer.pen * height_px * rng.uniform(0.88, 1.12)
        widths.append(np.maximum(1.0, base * press * taper))
    inked = _Inked(ch, paths, widths)
    x0 = inked.bounds()[0]
    return inked.moved(-x0, 0.0)


def _keep_corners_shared(stroke: Stroke, offsets: np.ndarray) -> np.ndarray:
    """Make a stroke that ends where it began (an 8, a closed 0) keep meeting after the jitter, mostly."""
    first, last = stroke[0][:2], stroke[-1][:2]
    if len(stroke) > 3 and math.dist(first, last) < 1e-6:
        offsets = offsets.copy()
        offsets[-1] = offsets[0] + (offsets[-1] - offsets[0]) * 0.3
    return offsets


def _raster(items: list[_Inked], ox: float, oy: float, w: int, h: int, scale: int = 4) -> np.ndarray:
    """Draw strokes (pixel coordinates minus ``ox, oy``) into a float ink image of w×h, anti-aliased."""
    canvas = np.zeros((h * scale, w * scale), np.uint8)
    shift = 4  # cv2 sub-pixel bits
    f = scale * (1 << shift)
    for it in items:
        for path, width in zip(it.paths, it.widths, strict=True):
            q = np.round((path - np.array([ox, oy])) * f).astype(np.int64)
            th = np.maximum(1, np.round(width * scale)).astype(int)
            if len(q) == 1:
                q = np.vstack([q, q])
                th = np.concatenate([th, th])
            for i in range(len(q) - 1):
                cv2.line(
                    canvas,
                    (int(q[i, 0]), int(q[i, 1])),
                    (int(q[i + 1, 0]), int(q[i + 1, 1])),
                    255,
                    int(th[i]),
                    cv2.LINE_AA,
                    shift,
                )
    small = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


def _tight(img: np.ndarray, margin: int = 1) -> np.ndarray:
    ys, xs = np.nonzero(img > 0.02)
    if len(xs) == 0:
        return img
    y0, y1 = max(0, ys.min() - margin), min(img.shape[0], ys.max() + 1 + margin)
    x0, x1 = max(0, xs.min() - margin), min(img.shape[1], xs.max() + 1 + margin)
    return img[y0:y1, x0:x1]


# --- public -------------------------------------------------------------------------------------------------

def render_char(ch: str, writer: Writer, rng: np.random.Generator, height_px: int) -> np.ndarray:
    """One handwritten character (a digit or one of ``. , - / $``) as float32 ink in [0, 1], tightly cropped.

    ``height_px`` is the height of a digit; separators keep their size relative to it, so a '.' is a small
    dot, not a blob filling the image.
    """
    inked = _shape(ch, writer, rng, float(height_px))
    x0, y0, x1, y1 = inked.bounds()
    ox, oy = math.floor(x0) - 2, math.floor(y0) - 2
    img = _raster([inked], ox, oy, math.ceil(x1) + 2 - ox, math.ceil(y1) + 2 - oy)
    return _tight(img)


def render_digit(d: int, writer: Writer, rng: np.random.Generator, height_px: int) -> np.ndarray:
    """One handwritten digit 0-9 as float32 ink in [0, 1] (1 = ink), tightly cropped with a 1 px margin."""
    if not 0 <= int(d) <= 9:
        raise ValueError(f"not a digit: {d!r}")
    return render_char(str(int(d)), writer, rng, height_px)


def render_string(
    text: str,
    writer: Writer,
    rng: np.random.Generator,
    height_px: int,
    spacing: float | None = None,
    digits: DigitSource | None = None,
) -> tuple[np.ndarray, list[tuple[str, Box]]]:
    """A line of handwriting and, per character (spaces excluded), the box of its ink in the image.

    ``spacing`` is the gap between characters as a fraction of ``height_px`` (the writer's own when None); a
    space adds about half a digit's width. Characters sit on a common baseline with the writer's wobble. With
    ``digits`` (e.g. :meth:`formocr.synth.strings.DigitBank.draw` over one real writer's digits) the digits are
    that person's scanned digits; separators are still drawn by the stroke renderer.
    """
    gap = writer.spacing if spacing is None else spacing
    placed: list[_Inked | _Scanned] = []
    cursor = 0.0
    pending_space = 0.0
    for ch in text:
        if ch == " ":
            pending_space += 0.45 * height_px
            continue
        inked: _Inked | _Scanned = (_real_digit(ch, digits, rng, 0.9 * height_px) if digits and ch.isdigit()
                                    else _shape(ch, writer, rng, float(height_px)))
        dy = rng.normal(0.0, writer.baseline_wobble) * height_px
        g = 0.0 if not placed else max(0.0, gap + rng.normal(0.0, 0.04)) * height_px
        if ch in ".,":
            g *= 0.5  # separators are written close to the digits
        placed.append(inked.moved(cursor + g + pending_space, dy))
        pending_space = 0.0
        cursor = placed[-1].bounds()[2]
    if not placed:
        return np.zeros((max(1, height_px), max(1, round(pending_space))), np.float32), []
    bounds = np.array([p.bounds() for p in placed])
    ox, oy = math.floor(bounds[:, 0].min()) - 1, math.floor(bounds[:, 1].min()) - 1
    w = math.ceil(bounds[:, 2].max()) + 1 - ox
    h = math.ceil(bounds[:, 3].max()) + 1 - oy
    image = np.zeros((h, w), np.float32)
    boxes: list[tuple[str, Box]] = []
    for it in placed:
        x0, y0, x1, y1 = it.bounds()
        lx, ly = math.floor(x0) - 1, math.floor(y0) - 1
        lw, lh = math.ceil(x1) + 1 - lx, math.ceil(y1) + 1 - ly
        if isinstance(it, _Scanned):
            layer = np.zeros((lh, lw), np.float32)
            sx, sy = round(it.x) - lx, round(it.y) - ly
            part = layer[sy : sy + it.image.shape[0], sx : sx + it.image.shape[1]]
            part[...] = it.image[: part.shape[0], : part.shape[1]]
        else:
            layer = _raster([it], lx, ly, lw, lh)
        px, py = lx - ox, ly - oy
        region = image[py : py + lh, px : px + lw]
        np.maximum(region, layer[: region.shape[0], : region.shape[1]], out=region)
        ys, xs = np.nonzero(layer > 0.1)
        if len(xs):
            box = Box(
                int(px + xs.min()),
                int(py + ys.min()),
                int(xs.max() - xs.min() + 1),
                int(ys.max() - ys.min() + 1),
            )
        else:
            box = Box(px, py, 1, 1)
        boxes.append((it.char, box.clip(w, h)))
    return image, boxes


def render_scribble(writer: Writer, rng: np.random.Generator, width_px: int, height_px: int) -> np.ndarray:
    """Cursive-looking pen writing (a name, a signature, words) as float32 ink, about ``width_px`` wide.

    It is not text: it stands in for the handwritten words a real form also carries (payee, address,
    signature), which a digit reader must leave alone. ``height_px`` is the x-height of the writing.
    """
    xh = float(height_px) * 0.5
    shear = math.tan(writer.slant)
    paths: list[np.ndarray] = []
    widths: list[np.ndarray] = []
    x = 0.0
    while x < width_px - 2 * xh:
        word = [(x, 0.0)]
        for _ in range(int(rng.integers(2, 8))):
            adv, shape = CURSIVE[int(rng.integers(0, len(CURSIVE)))]
            sx = rng.uniform(1.4, 2.0)
            for px_, py_ in shape:
                word.append((x + px_ * sx * xh, py_ * xh + rng.normal(0, 0.04 * xh)))
            x += adv * sx * xh
            if x > width_px:
                break
        path = _catmull_rom(np.array(word), 6)
        path[:, 0] += shear * path[:, 1]
        paths.append(path)
        widths.append(np.full(len(path), max(1.0, writer.pen * xh * 0.9)))
        x += xh * rng.uniform(0.6, 1.2)  # a word gap
    if not paths:
        return np.zeros((max(1, height_px), max(1, width_px)), np.float32)
    inked = _Inked("~", paths, widths)
    x0, y0, x1, y1 = inked.bounds()
    ox, oy = math.floor(x0) - 2, math.floor(y0) - 2
    return _tight(_raster([inked], ox, oy, math.ceil(x1) + 2 - ox, math.ceil(y1) + 2 - oy))
