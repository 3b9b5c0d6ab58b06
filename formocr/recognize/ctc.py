"""CTC decoding that respects what a field allows.

The string reader emits, per column, log-probabilities over blank + characters. Reading the most likely class per
column (best path) ignores the field: a six-digit postal code can come out with five digits. Here:

* :func:`best_path` — the unconstrained reading;
* :class:`Constraint` — allowed characters, bounds on the number of digits, and a pattern (a regular expression
  of a small, documented subset, compiled to an automaton so a beam can tell early that a prefix is hopeless);
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
from dataclasses import dataclass, field

import numpy as np

NEG = -1e30
DIGITS = "0123456789"


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
    try:
        labels = [alphabet.index(c) + 1 for c in text]
    except ValueError:
        return 0.0
    T = len(lp)
    ext = [0]
    for c in labels:
        ext += [c, 0]
    S = len(ext)
    if T == 0:
        return 1.0 if not labels else 0.0
    if not labels:
        return float(np.exp(lp[:, 0].sum()))
    ext_a = np.array(ext)
    # a state may skip the blank before it when its label differs from the one two states back
    skip = np.zeros(S, bool)
    for s in range(2, S):
        skip[s] = ext[s] != 0 and ext[s] != ext[s - 2]
    alpha = np.full(S, NEG)
    alpha[0] = lp[0, 0]
    if S > 1:
        alpha[1] = lp[0, ext[1]]
    for t in range(1, T):
        a1 = np.concatenate([[NEG], alpha[:-1]])
        a2 = np.where(skip, np.concatenate([[NEG, NEG], alpha[:-2]]), NEG)
        alpha = np.logaddexp(np.logaddexp(alpha, a1), a2) + lp[t, ext_a]
    total = np.logaddexp(alpha[-1], alpha[-2])
    return float(np.exp(min(0.0, total)))


def string_probabilities(lp: np.ndarray, texts: Sequence[str], alphabet: str) -> np.ndarray:
    """:func:`string_probability` of many texts at once: one forward pass over the columns for all of them (a text
    with a character outside ``alphabet`` gets 0.0)."""
    out = np.zeros(len(texts))
    T = len(lp)
    rows: list[tuple[int, list[int]]] = []
    for k, text in enumerate(texts):
        if any(c not in alphabet for c in text):
            continue
        if not text or T == 0:
            out[k] = string_probability(lp, text, alphabet)
            continue
        rows.append((k, [alphabet.index(c) + 1 for c in text]))
    if not rows:
        return out
    S = 2 * max(len(labels) for _, labels in rows) + 1
    ext = np.zeros((len(rows), S), np.int64)  # padding states are blanks past the text's end: never read back
    for r, (_, labels) in enumerate(rows):
        ext[r, 1 : 2 * len(labels) : 2] = labels
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


# --- constraints ---------------------------------------------------------------------------------------------


class PatternError(ValueError):
    """A pattern outside the supported subset."""


@dataclass
class _NFA:
    eps: list[list[int]] = field(default_factory=list)
    edges: list[list[tuple[frozenset[str], int]]] = field(default_factory=list)

    def state(self) -> int:
        self.eps.append([])
        self.edges.append([])
        return len(self.eps) - 1


class _Parser:
    """Regular expressions over single characters: literals, ``\\d``, ``\\.``-style escapes, ``[...]`` classes
    (ranges, ``\\d``, leading ``^``), ``(...)`` and ``(?:...)`` groups, ``|``, and ``? * + {m} {m,} {m,n}``."""

    def __init__(self, pattern: str, universe: str) -> None:
        self.p, self.i, self.universe = pattern, 0, universe

    def error(self, msg: str) -> PatternError:
        return PatternError(f"pattern {self.p!r}: {msg} at position {self.i}")

    def peek(self) -> str | None:
        return self.p[self.i] if self.i < len(self.p) else None

    def parse(self) -> tuple:
        node = self.alt()
        if self.i != len(self.p):
            raise self.error("unexpected character")
        return node

    def alt(self) -> tuple:
        branches = [self.concat()]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.concat())
        return ("alt", branches) if len(branches) > 1 else branches[0]

    def concat(self) -> tuple:
        items = []
        while self.peek() not in (None, "|", ")"):
            items.append(self.repeat())
        return ("cat", items)

    def repeat(self) -> tuple:
        node = self.atom()
        while self.peek() in ("?", "*", "+", "{"):
            c = self.p[self.i]
            self.i += 1
            if c == "?":
                node = ("rep", node, 0, 1)
            elif c == "*":
                node = ("rep", node, 0, None)
            elif c == "+":
                node = ("rep", node, 1, None)
            else:
                end = self.p.find("}", self.i)
                if end < 0:
                    raise self.error("unclosed {")
                body = self.p[self.i : end]
                self.i = end + 1
                try:
                    if "," in body:
                        lo_s, hi_s = body.split(",", 1)
                        lo, hi = int(lo_s), (int(hi_s) if hi_s.strip() else None)
                    else:
                        lo = hi = int(body)
                except ValueError:
                    raise self.error(f"bad repeat {{{body}}}") from None
                if hi is not None and hi < lo:
                    raise self.error(f"bad repeat {{{body}}}")
                node = ("rep", node, lo, hi)
        return node

    def atom(self) -> tuple:
        c = self.peek()
        if c is None:
            raise self.error("unexpected end")
        self.i += 1
        if c == "(":
            if self.p.startswith("?:", self.i):
                self.i += 2
            node = self.alt()
            if self.peek() != ")":
                raise self.error("unclosed (")
            self.i += 1
            return node
        if c == "[":
            return ("set", frozenset(self.klass()))
        if c == "\\":
            return ("set", frozenset(self.escape()))
        if c == ".":
            return ("set", frozenset(self.universe))
        if c in "*+?{)":
            raise self.error(f"nothing to repeat or stray {c!r}")
        return ("set", frozenset(c))

    def escape(self) -> str:
        c = self.peek()
        if c is None:
            raise self.error("trailing backslash")
        self.i += 1
        if c == "d":
            return DIGITS
        if c == "s":
            return " "
        if c.isalnum():
            raise self.error(f"unsupported escape \\{c}")
        return c

    def klass(self) -> set[str]:
        negate = self.peek() == "^"
        if negate:
            self.i += 1
        out: set[str] = set()
        first = True
        while True:
            c = self.peek()
            if c is None:
                raise self.error("unclosed [")
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            self.i += 1
            if c == "\\":
                chars = self.escape()
                out.update(chars)
                continue
            if self.peek() == "-" and self.i + 1 < len(self.p) and self.p[self.i + 1] != "]":
                hi = self.p[self.i + 1]
                self.i += 2
                out.update(chr(k) for k in range(ord(c), ord(hi) + 1))
            else:
                out.add(c)
        return set(self.universe) - out if negate else out


def _build(nfa: _NFA, node: tuple) -> tuple[int, int]:
    kind = node[0]
    if kind == "set":
        s, e = nfa.state(), nfa.state()
        nfa.edges[s].append((node[1], e))
        return s, e
    if kind == "cat":
        s = e = nfa.state()
        for item in node[1]:
            a, b = _build(nfa, item)
            nfa.eps[e].append(a)
            e = b
        return s, e
    if kind == "alt":
        s, e = nfa.state(), nfa.state()
        for br in node[1]:
            a, b = _build(nfa, br)
            nfa.eps[s].append(a)
            nfa.eps[b].append(e)
        return s, e
    _, sub, lo, hi = node
    s = e = nfa.state()
    for _ in range(lo):
        a, b = _build(nfa, sub)
        nfa.eps[e].append(a)
        e = b
    if hi is None:
        a, b = _build(nfa, sub)
        nfa.eps[e].append(a)
        nfa.eps[b].append(a)
        out = nfa.state()
        nfa.eps[e].append(out)
        nfa.eps[b].append(out)
        return s, out
    end = nfa.state()
    nfa.eps[e].append(end)
    for _ in range(hi - lo):
        a, b = _build(nfa, sub)
        nfa.eps[e].append(a)
        nfa.eps[b].append(end)
        e = b
    return s, end


class Pattern:
    """A compiled pattern: a set of automaton states per prefix, so 'can this prefix still match?' is cheap."""

    def __init__(self, pattern: str, universe: str) -> None:
        self.source = pattern
        self.nfa = _NFA()
        self.start_state, self.accept = _build(self.nfa, _Parser(pattern, universe).parse())
        self.start = self._closure({self.start_state})
        self._cache: dict[tuple[frozenset[int], str], frozenset[int]] = {}

    def _closure(self, states: set[int]) -> frozenset[int]:
        stack, seen = list(states), set(states)
        while stack:
            s = stack.pop()
            for t in self.nfa.eps[s]:
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
        return frozenset(seen)

    def step(self, states: frozenset[int], ch: str) -> frozenset[int]:
        key = (states, ch)
        got = self._cache.get(key)
        if got is None:
            nxt = {t for s in states for cs, t in self.nfa.edges[s] if ch in cs}
            got = self._closure(nxt) if nxt else frozenset()
            self._cache[key] = got
        return got

    def matches(self, text: str) -> bool:
        st = self.start
        for ch in text:
            st = self.step(st, ch)
            if not st:
                return False
        return self.accept in st


@dataclass(frozen=True)
class Constraint:
    """What a field allows: characters, how many digits, and optionally a pattern the whole text must match."""

    chars: str = DIGITS
    min_digits: int = 0
    max_digits: int | None = None
    pattern: str | None = None
    universe: str = DIGITS + ".,-/ "

    def __post_init__(self) -> None:
        if self.max_digits is not None and self.max_digits < self.min_digits:
            raise ValueError(f"max_digits {self.max_digits} < min_digits {self.min_digits}")

    @property
    def compiled(self) -> Pattern | None:
        if self.pattern is None:
            return None
        cache = _PATTERNS.get((self.pattern, self.universe))
        if cache is None:
            cache = _PATTERNS[(self.pattern, self.universe)] = Pattern(self.pattern, self.universe)
        return cache

    def accepts(self, text: str) -> bool:
        if any(c not in self.chars for c in text):
            return False
        n = sum(c.isdigit() for c in text)
        if n < self.min_digits or (self.max_digits is not None and n > self.max_digits):
            return False
        pat = self.compiled
        return pat.matches(text) if pat is not None else True


_PATTERNS: dict[tuple[str, str], Pattern] = {}


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
                     prune: float = math.log(1e-4)) -> Decoded | None:
    """The most probable text satisfying ``constraint`` (CTC prefix beam search), or None if none survives.

    Beams are kept per number of characters so that a reading of the required length is not crowded out by a
    more probable shorter one. Characters below ``prune`` log-probability in a column are not tried there.
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
        for items in by_len.values():
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
