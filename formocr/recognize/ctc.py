"""CTC decoding that respects what a field allows.

The string reader emits, per column, log-probabilities over blank + characters. Reading the most likely class per
column (best path) ignores the field: a six-digit postal code can come out with five digits. Here:

* :func:`best_path` — the unconstrained reading;
* :class:`~formocr.constraints.Constraint` (its own module) — allowed characters, bounds on the number of
  digits, and a pattern compiled to an automaton, so a beam can tell early that a prefix is hopeless;
* :func:`constrained_beam` — CTC prefix beam search keeping the best prefixes *per length*, so a reading of the
  right length survives even when a shorter one is more probable; only complete readings that satisfy the
  constraint are returned;
* :func:`string_probability` — P(text | image), summed over all alignments (the CTC forward pass), used both as
  the string-level confidence and to let this model judge another reader's text;
* :func:`align` — the most probable alignment of a given text, for per-character probabilities and positions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from formocr.constraints import Constraint  # read and recognize.strings import it from here too

NEG = -1e30


@dataclass(frozen=True)
class Decoded:
    text: str
    char_probs: tuple[float, ...]
    char_frames: tuple[tuple[int, int], ...]  # first and last column emitting each character


def _lse(a: float, b: float) -> float:
    if a < b:
        a, b = b, a
    if b <= NEG:
        return a
    return a + math.log1p(math.exp(b - a))


def best_path(lp: np.ndarray, alphabet: str) -> Decoded:
    """The most probable class per column, repeats merged and blanks dropped."""
    if len(lp) == 0:
        return Decoded("", (), ())
    k = lp.argmax(axis=1)
    text, probs, frames = [], [], []
    prev = 0
    for t, c in enumerate(k):
        c = int(c)
        if c != 0 and c != prev:
            text.append(alphabet[c - 1])
            probs.append(float(np.exp(lp[t, c])))
            frames.append([t, t])
        elif c != 0 and c == prev:
            probs[-1] = max(probs[-1], float(np.exp(lp[t, c])))
            frames[-1][1] = t
        prev = c
    return Decoded("".join(text), tuple(probs), tuple((a, b) for a, b in frames))


def string_probability(lp: np.ndarray, text: str, alphabet: str) -> float:
    """P(text | columns) by the CTC forward algorithm (0.0 when the text cannot fit the columns)."""
    return float(string_probabilities(lp, [text], alphabet)[0])


def string_probabilities(lp: np.ndarray, texts: Sequence[str], alphabet: str) -> np.ndarray:
    """P(text | columns) of each text by the CTC forward algorithm, one pass over the columns for all of them (a
    text with a character outside ``alphabet``, or longer than the columns allow, gets 0.0)."""
    out = np.zeros(len(texts))
    T = len(lp)
    rows: list[tuple[int, list[int]]] = []
    for k, text in enumerate(texts):
        if any(c not in alphabet for c in text):
            continue
        if T == 0:
            out[k] = 1.0 if not text else 0.0
        elif not text:
            out[k] = float(np.exp(lp[:, 0].sum()))
        else:
            rows.append((k, [alphabet.index(c) + 1 for c in text]))
    if not rows:
        return out
    S = 2 * max(len(labels) for _, labels in rows) + 1
    ext = np.zeros((len(rows), S), np.int64)  # padding states are blanks past the text's end: never read back
    for r, (_, labels) in enumerate(rows):
        ext[r, 1 : 2 * len(labels) : 2] = labels
    # a state may skip the blank before it when its label differs from the one two states back
    skip = np.zeros(ext.shape, bool)
    skip[:, 2:] = (ext[:, 2:] != 0) & (ext[:, 2:] != ext[:, :-2])
    alpha = np.full(ext.shape, NEG)
    alpha[:, 0] = lp[0, 0]
    alpha[:, 1] = lp[0, ext[:, 1]]
    neg1 = np.full((len(rows), 1), NEG)
    neg2 = np.full((len(rows), 2), NEG)
    for t in range(1, T):
        a1 = np.concatenate([neg1, alpha[:, :-1]], axis=1)
        a2 = np.where(skip, np.concatenate([neg2, alpha[:, :-2]], axis=1), NEG)
        alpha = np.logaddexp(np.logaddexp(alpha, a1), a2) + lp[t][ext]
    for r, (k, labels) in enumerate(rows):
        end = 2 * len(labels)
        out[k] = float(np.exp(min(0.0, np.logaddexp(alpha[r, end], alpha[r, end - 1]))))
    return out


def align(lp: np.ndarray, text: str, alphabet: str) -> Decoded:
    """The single most probable alignment of ``text`` (Viterbi): per character its peak probability and columns."""
    labels = [alphabet.index(c) + 1 for c in text]
    T = len(lp)
    if not labels or T == 0:
        return Decoded(text, (0.0,) * len(text), ((0, 0),) * len(text))
    ext = [0]
    for c in labels:
        ext += [c, 0]
    S = len(ext)
    ext_a = np.array(ext)
    skip = np.array([s >= 2 and ext[s] != 0 and ext[s] != ext[s - 2] for s in range(S)])
    score = np.full(S, NEG)
    score[0] = lp[0, 0]
    score[1] = lp[0, ext[1]]
    back = np.zeros((T, S), np.int8)
    for t in range(1, T):
        c0 = score
        c1 = np.concatenate([[NEG], score[:-1]])
        c2 = np.where(skip, np.concatenate([[NEG, NEG], score[:-2]]), NEG)
        stack = np.stack([c0, c1, c2])
        back[t] = stack.argmax(axis=0)
        score = stack.max(axis=0) + lp[t, ext_a]
    s = S - 1 if S == 1 or score[-1] >= score[-2] else S - 2
    if score[s] <= NEG / 2:
        return Decoded(text, (0.0,) * len(text), ((0, 0),) * len(text))
    path = [s]
    for t in range(T - 1, 0, -1):
        s -= int(back[t, s])
        path.append(s)
    path.reverse()
    probs = [0.0] * len(labels)
    frames = [[T, -1] for _ in labels]
    for t, s in enumerate(path):
        if s % 2 == 1:
            i = s // 2
            probs[i] = max(probs[i], float(np.exp(lp[t, ext[s]])))
            frames[i][0] = min(frames[i][0], t)
            frames[i][1] = max(frames[i][1], t)
    return Decoded(text, tuple(probs), tuple((a, b) for a, b in frames))


@dataclass
class _Beam:
    pb: float = NEG  # ends in blank
    pnb: float = NEG  # ends in its last character
    state: frozenset[int] | None = None
    digits: int = 0

    @property
    def total(self) -> float:
        return _lse(self.pb, self.pnb)


def constrained_beam(lp: np.ndarray, alphabet: str, constraint: Constraint, beam: int = 8,
                     prune: float = math.log(1e-4), lengths: int = 16) -> Decoded | None:
    """The most probable text satisfying ``constraint`` (CTC prefix beam search), or None if none survives.

    Beams are kept per number of characters so that a reading of the required length is not crowded out by a
    more probable shorter one; only the ``lengths`` most probable lengths live on, so a column costs the same
    however long the strip, and a field's search stays linear in its length. Characters below ``prune``
    log-probability in a column are not tried there.
    """
    pat = constraint.compiled
    allowed = [k + 1 for k, c in enumerate(alphabet) if c in constraint.chars]
    max_d = constraint.max_digits
    beams: dict[str, _Beam] = {"": _Beam(pb=0.0, state=pat.start if pat else None)}
    for t in range(len(lp)):
        row = lp[t]
        cands = [k for k in allowed if row[k] > prune]
        nxt: dict[str, _Beam] = {}
        for prefix, b in beams.items():
            total = b.total
            cur = nxt.get(prefix)
            if cur is None:
                cur = nxt[prefix] = _Beam(state=b.state, digits=b.digits)
            cur.pb = _lse(cur.pb, total + row[0])
            last = alphabet.index(prefix[-1]) + 1 if prefix else -1
            if last > 0:
                cur.pnb = _lse(cur.pnb, b.pnb + row[last])
            for k in cands:
                ch = alphabet[k - 1]
                d = b.digits + ch.isdigit()
                if max_d is not None and d > max_d:
                    continue
                st = None
                if pat is not None:
                    assert b.state is not None
                    st = pat.step(b.state, ch)
                    if not st:
                        continue
                new = prefix + ch
                nb = nxt.get(new)
                if nb is None:
                    nb = nxt[new] = _Beam(state=st, digits=d)
                nb.pnb = _lse(nb.pnb, (b.pb if k == last else total) + row[k])
        by_len: dict[int, list[tuple[float, str]]] = {}
        for p, b in nxt.items():
            by_len.setdefault(len(p), []).append((b.total, p))
        keep: dict[str, _Beam] = {}
        ranked = sorted(by_len.values(), key=lambda items: max(items)[0], reverse=True)
        for items in ranked[:lengths]:
            items.sort(reverse=True)
            for _, p in items[:beam]:
                keep[p] = nxt[p]
        beams = keep
    done = [(b.total, p) for p, b in beams.items()
            if b.digits >= constraint.min_digits and (pat is None or (b.state is not None and pat.accept in b.state))
            and constraint.accepts(p)]
    if not done:
        return None
    _, text = max(done)
    return align(lp, text, alphabet)
