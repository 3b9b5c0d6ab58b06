r"""Real digit strings handed to ``read_field`` as a caller's crops, scanned and as a phone or a poor scan gives them.

    python benchmarks/photo_conditions.py                 # 150 strings (about 2 minutes)
    python benchmarks/photo_conditions.py --n 300 --half B

Strings of 7-8 digits composed of CVL's validation digits (one half's writers; ``A`` the even ids, ``B`` the odd
ones), apart from one another, on the generator's paper, each cut from its page with a third of its height of paper
round it and read by :func:`formocr.read_field` as a ``digits`` field of free length, in these conditions:

- ``as scanned``: the crop as drawn;
- ``lamp shadow``: the light falling from full to 55% across the crop and to 85% down it;
- ``blur, JPEG 40``: a Gaussian blur of 1.2 px, then JPEG at quality 40;
- ``low contrast``: ink and paper pressed into 85-200 grey levels (a pencil, a faded copy);
- ``3× larger``: the crop enlarged three times (a high-resolution photo);
- ``tinted colour``: the crop as a colour image on yellowish paper.

One row per condition: read right, accepted without review, wrong among the accepted, milliseconds a field.

What these figures cannot show: real photographs (perspective, curled paper, motion blur, real lamps); the strings
are composed of CVL's 28×28 digits scaled up, on generated paper.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator

import cv2
import numpy as np
from common import machine, peak_rss_mib, table

from formocr.api import FieldReaderAPI
from formocr.data.real import load_cvl
from formocr.synth.strings import DigitBank, StringGenerator, clean_page


def _shadow(g: np.ndarray) -> np.ndarray:
    h, w = g.shape
    light = np.linspace(1.0, 0.55, w)[None, :] * np.linspace(1.0, 0.85, h)[:, None]
    return np.clip(g.astype(np.float32) * light, 0, 255).astype(np.uint8)


def _blur_jpeg(g: np.ndarray) -> np.ndarray:
    blurred = cv2.GaussianBlur(g, (0, 0), 1.2)
    _, enc = cv2.imencode(".jpg", blurred, [cv2.IMWRITE_JPEG_QUALITY, 40])
    decoded = cv2.imdecode(enc, cv2.IMREAD_GRAYSCALE)
    assert decoded is not None  # OpenCV's own JPEG, just encoded
    return np.asarray(decoded, np.uint8)


def _low_contrast(g: np.ndarray) -> np.ndarray:
    return np.clip(200.0 - (255.0 - g.astype(np.float32)) * 0.45, 0, 255).astype(np.uint8)


def _larger(g: np.ndarray) -> np.ndarray:
    return cv2.resize(g, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)


def _tinted(g: np.ndarray) -> np.ndarray:
    colour = cv2.cvtColor(g, cv2.COLOR_GRAY2BGR).astype(np.float32) * np.array([0.8, 0.93, 1.0], np.float32)
    return np.clip(colour, 0, 255).astype(np.uint8)


CONDITIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "as scanned": lambda g: g, "lamp shadow": _shadow, "blur, JPEG 40": _blur_jpeg, "low contrast": _low_contrast,
    "3× larger": _larger, "tinted colour": _tinted,
}


def crops(n: int, half: str, seed: int = 11) -> Iterator[tuple[np.ndarray, str]]:
    """``n`` crops of composed CVL strings (7-8 digits, apart) with a third of their height of paper round them."""
    s = load_cvl("valid")
    keep = s.writers % 2 == (0 if half == "A" else 1)
    gen = StringGenerator(DigitBank(s.images[keep], s.labels[keep]), synth_share=0.0, min_len=7, max_len=8,
                          separators=False)
    for i in range(n):
        sample = gen.sample(np.random.default_rng([seed, i]), touching=False)
        g, b = clean_page(sample).gray, sample.region.box
        m = b.h // 3
        yield g[max(0, b.y - m) : b.y2 + m, max(0, b.x - m) : b.x2 + m], sample.text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=150, help="strings (default 150)")
    ap.add_argument("--half", choices=("A", "B"), default="A", help="CVL writers: A even ids, B odd ids")
    args = ap.parse_args()
    api = FieldReaderAPI()
    t_all = time.perf_counter()
    counts = {name: [0, 0, 0, 0.0] for name in CONDITIONS}  # right, accepted, accepted wrong, seconds
    for crop, text in crops(args.n, args.half):
        for name, change in CONDITIONS.items():
            image = change(crop)
            t0 = time.perf_counter()
            f = api.read_field(image, "digits")
            c = counts[name]
            c[3] += time.perf_counter() - t0
            right, accepted = f.value == text, not f.needs_review
            c[0] += right
            c[1] += accepted
            c[2] += accepted and not right
    rows = [[name, args.n, f"{100 * r / args.n:.1f}%", f"{100 * a / args.n:.1f}%", w, f"{1000 * sec / args.n:.1f} ms"]
            for name, (r, a, w, sec) in counts.items()]
    print(table(["condition", "strings", "read right", "accepted", "wrong among accepted", "per field"], rows))
    print(f"\n{machine()}; CVL validation writers, half {args.half}; {time.perf_counter() - t_all:.0f} s, "
          f"peak RSS {peak_rss_mib():.0f} MiB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
