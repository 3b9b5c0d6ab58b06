"""Doubtful cuts settled by the digit classifier: whether pieces are one digit or several, and where to cut a
component into as many digits as another reader counts.

Geometry (:mod:`formocr.segment`) proposes; the classifier disposes: the reading whose digits are jointly more
probable wins.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from formocr.objects import Box, Component
from formocr.segment import merge_parts, x_overlap


def arbitrate(comps: list[Component], confidence: Callable[[list[np.ndarray]], np.ndarray],
              overlap: float = 0.12) -> list[Component]:
    """Settle doubtful cuts by asking the classifier which reading it is surer of.

    Geometry alone cannot tell a 4 written in two strokes from a 1 and a 7 leaning together, or a wide 5 from
    two touching digits. For each doubtful case both readings are classified and the one whose digits are
    jointly more probable wins: pieces of a split component against the whole, and neighbours whose
    horizontal spans overlap against their union. ``confidence`` maps normalized-ready masks to top-class
    probabilities.
    """
    digits = [c for c in comps if c.kind == "digit"]
    seps = [c for c in comps if c.kind != "digit"]
    # 1. undo splits the classifier does not believe
    out: list[Component] = []
    i = 0
    while i < len(digits):
        c = digits[i]
        if c.group < 0:
            out.append(c)
            i += 1
            continue
        j = i
        while j < len(digits) and digits[j].group == c.group:
            j += 1
        pieces = digits[i:j]
        box, mask = merge_parts([(p.box, p.mask) for p in pieces])
        probs = confidence([p.mask for p in pieces] + [mask])
        if float(np.prod(probs[:-1])) >= float(probs[-1]):
            out.extend(pieces)
        else:
            out.append(Component(box, mask, "digit", None, max(p.parts for p in pieces)))
        i = j
    # 2. merge overlapping neighbours the classifier reads better as one digit
    merged: list[Component] = []
    for c in out:
        if merged and x_overlap(merged[-1].box, c.box) >= overlap:
            prev = merged[-1]
            box, mask = merge_parts([(prev.box, prev.mask), (c.box, c.mask)])
            p = confidence([prev.mask, c.mask, mask])
            if float(p[2]) > float(p[0] * p[1]):
                merged[-1] = Component(box, mask, "digit", None, prev.parts + c.parts)
                continue
        merged.append(c)
    return sorted(merged + seps, key=lambda c: c.box.x + c.box.w / 2)


def split_to_count(comps: list[Component], n: int, confidence: Callable[[list[np.ndarray]], np.ndarray]
                   ) -> list[Component] | None:
    """Cut the digits into exactly ``n`` pieces, when another reader counts more digits than were found.

    Touching digits often stay one component (a pair no wider than the field's widest digit is never split by
    geometry). When the string reader counts ``n`` digits, the extra cuts go where the pieces would otherwise
    be widest; each cut starts at the thinnest column near an even spacing and is then moved to where the
    classifier is jointly surest of the two pieces it separates. None when the count cannot be reached.
    """
    digits = [c for c in comps if c.kind == "digit"]
    seps = [c for c in comps if c.kind != "digit"]
    k = len(digits)
    if k == 0 or n <= k or n > 4 * k:
        return None
    alloc = [1] * k
    for _ in range(n - k):
        i = max(range(k), key=lambda j: digits[j].box.w / alloc[j])
        alloc[i] += 1
    out: list[Component] = []
    group = max((c.group for c in comps), default=-1) + 1
    for c, m in zip(digits, alloc):
        if m == 1:
            out.append(c)
            continue
        pieces = _cut_into(c, m, confidence, group)
        if pieces is None:
            return None
        out.extend(pieces)
        group += 1
    return sorted(out + seps, key=lambda c: c.box.x + c.box.w / 2)


def _cut_into(c: Component, m: int, confidence: Callable[[list[np.ndarray]], np.ndarray], group: int
              ) -> list[Component] | None:
    w = c.box.w
    if w < 2 * m:
        return None
    cols = c.mask.sum(axis=0).astype(np.float32)
    span = max(1, w // (3 * m))
    cuts = []
    for k in range(1, m):
        centre = round(w * k / m)
        lo, hi = max(1, centre - span), min(w - 1, centre + span)
        cuts.append(lo + int(np.argmin(cols[lo:hi])) if hi > lo else centre)

    def piece(x0: int, x1: int) -> tuple[Box, np.ndarray] | None:
        part = c.mask[:, x0:x1]
        ys = np.nonzero(part.any(axis=1))[0]
        if x1 <= x0 or len(ys) == 0:
            return None
        return Box(c.box.x + x0, c.box.y + int(ys[0]), x1 - x0, int(ys[-1] - ys[0] + 1)), part[ys[0] : ys[-1] + 1]

    step = max(1, w // (16 * m))
    for i in range(len(cuts)):  # move each cut to where both of its pieces read best
        left = cuts[i - 1] if i > 0 else 0
        right = cuts[i + 1] if i + 1 < len(cuts) else w
        even = round(w * (i + 1) / m)  # the thinnest column is often a digit's own middle (a 0 is thin there)
        near = {even + d * step for d in range(-5, 6)} | {cuts[i]}
        options = sorted({min(right - 1, max(left + 1, x)) for x in near})
        masks: list[np.ndarray] = []
        valid = []
        for x in options:
            a, b = piece(left, x), piece(x, right)
            if a is not None and b is not None:
                masks += [a[1], b[1]]
                valid.append(x)
        if not valid:
            return None
        p = confidence(masks).reshape(-1, 2)
        cuts[i] = valid[int(np.argmax(p[:, 0] * p[:, 1]))]
    out = []
    for x0, x1 in zip([0, *cuts], [*cuts, w]):
        got = piece(x0, x1)
        if got is None:
            return None
        out.append(Component(got[0], got[1], "digit", None, 1, group))
    return out
