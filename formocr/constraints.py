"""What a field allows: :class:`Constraint` (characters, digit count, a pattern) and the pattern automaton.

Patterns are regular expressions of a small, documented subset (:class:`PatternParser`), compiled to an automaton
(:class:`Pattern`) whose states per prefix tell cheaply whether a prefix can still match: the string reader's
constrained beam (:func:`formocr.recognize.ctc.constrained_beam`) drops hopeless prefixes early, and templates are
checked against the same parser when they load.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from formocr.errors import ConfigError

__all__ = ["DIGITS", "Constraint", "ConstraintError", "Pattern", "PatternError", "PatternParser"]


DIGITS = "0123456789"


class ConstraintError(ConfigError, ValueError):
    """A constraint that cannot hold (digit bounds the wrong way round, a pattern outside the supported subset).

    A configuration error (exit code 7), and still a ValueError, as it was before it had a class of its own.
    """


class PatternError(ConstraintError):
    """A pattern outside the supported subset."""


@dataclass
class _NFA:
    eps: list[list[int]] = field(default_factory=list)
    edges: list[list[tuple[frozenset[str], int]]] = field(default_factory=list)

    def state(self) -> int:
        self.eps.append([])
        self.edges.append([])
        return len(self.eps) - 1


class PatternParser:
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
        self.start_state, self.accept = _build(self.nfa, PatternParser(pattern, universe).parse())
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
            raise ConstraintError(f"max_digits {self.max_digits} < min_digits {self.min_digits}")

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
