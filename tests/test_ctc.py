"""CTC decoding: best path, string probability, patterns, and beam search constrained by the field type."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import torch

from formocr.constraints import Constraint, Pattern, PatternError
from formocr.fields import constraint_for
from formocr.recognize.ctc import align, best_path, constrained_beam, string_probability

ALPHA = "0123456789.,-/ "


def _lp(rng: np.random.Generator, T: int, sharp: float = 3.0) -> np.ndarray:
    z = rng.normal(0.0, sharp, (T, len(ALPHA) + 1))
    return z - np.logaddexp.reduce(z, axis=1, keepdims=True)


def _frames(path: str, p: float = 0.97) -> np.ndarray:
    """Log-probabilities for a column-by-column path ('_' = blank) with probability p on the path."""
    lp = np.full((len(path), len(ALPHA) + 1), np.log((1 - p) / len(ALPHA)))
    for t, c in enumerate(path):
        lp[t, 0 if c == "_" else ALPHA.index(c) + 1] = np.log(p)
    return lp


def test_best_path_merges_repeats_and_drops_blanks() -> None:
    d = best_path(_frames("_11_1__22_3"), ALPHA)
    assert d.text == "1123"
    assert d.char_frames == ((1, 2), (4, 4), (7, 8), (10, 10))
    assert all(0.96 < p < 0.98 for p in d.char_probs)


def test_string_probability_matches_torch_ctc_loss() -> None:
    rng = np.random.default_rng(0)
    for text in ["", "7", "11", "123", "10.5"]:
        lp = _lp(rng, 12, 1.0)
        ours = string_probability(lp, text, ALPHA)
        targets = torch.tensor([[ALPHA.index(c) + 1 for c in text]] if text else [[1]], dtype=torch.long)
        loss = torch.nn.functional.ctc_loss(
            torch.from_numpy(lp)[:, None, :], targets, torch.tensor([12]), torch.tensor([len(text)]),
            reduction="sum", zero_infinity=False)
        assert ours == pytest.approx(float(torch.exp(-loss)), rel=1e-6)


def test_string_probabilities_sum_to_at_most_one() -> None:
    lp = np.log(np.full((4, 3), 1 / 3))  # blank + two characters "0", "1"
    total = sum(string_probability(lp, "".join(s), "01") for n in range(5) for s in itertools.product("01", repeat=n))
    assert total == pytest.approx(1.0)


def test_align_gives_each_character_its_columns() -> None:
    d = align(_frames("__5_55__0"), "550", ALPHA)
    assert d.text == "550"
    assert d.char_frames == ((2, 2), (4, 5), (8, 8))


@pytest.mark.parametrize("pattern", [
    r"[1-8]\d{5}", r"\d{5}(-?\d{4})?", r"\d{1,2}[./-]\d{1,2}[./-](\d{4}|\d{2})|\d{8}",
    r"\d+([., ]?\d{3})*([.,]\d{2})?(\.?-)?", r"(?:12|3)+4?", r"[^0-4]*",
])
def test_patterns_agree_with_python_re(pattern: str) -> None:
    pat = Pattern(pattern, ALPHA)
    rng = np.random.default_rng(1)
    texts = ["", "100000", "012345", "12345-6789", "03/11/2026", "1,250.00", "22.000.-", "1234", "5678", "12124"]
    texts += ["".join(rng.choice(list("0123456789.-/,"), int(rng.integers(1, 11)))) for _ in range(300)]
    for t in texts:
        assert pat.matches(t) == bool(re.fullmatch(pattern, t)), (pattern, t)


@pytest.mark.parametrize("bad", [r"\w+", r"(12", r"[12", r"1{3,1}", r"*1", "1{x}"])
def test_unsupported_patterns_are_refused(bad: str) -> None:
    with pytest.raises(PatternError):
        Pattern(bad, ALPHA)


def test_postal_code_never_decodes_to_five_or_seven_digits() -> None:
    cn = constraint_for("postal_code", {"country": "CN"})
    rng = np.random.default_rng(2)
    # the unconstrained reading has five digits; the field wants six
    lp = _frames("_5__1__8__0__7__")
    assert best_path(lp, ALPHA).text == "51807"
    got = constrained_beam(lp, ALPHA, cn)
    assert got is not None and len(got.text) == 6 and re.fullmatch(r"[0-8]\d{5}", got.text)
    for _ in range(200):
        T = int(rng.integers(4, 40))
        d = constrained_beam(_lp(rng, T), ALPHA, cn)
        assert d is None or re.fullmatch(r"[0-8]\d{5}", d.text), d
        if T >= 11:
            assert d is not None  # six digits fit in T columns (with blanks for repeats)


def test_us_zip_is_five_or_nine_digits() -> None:
    us = constraint_for("postal_code", {"country": "US"})
    rng = np.random.default_rng(3)
    for _ in range(100):
        d = constrained_beam(_lp(rng, int(rng.integers(12, 40))), ALPHA, us)
        assert d is not None
        assert len(d.text.replace("-", "")) in (5, 9)


def test_beam_finds_the_most_probable_allowed_text() -> None:
    """Against brute force over every text of at most 4 characters from a 3-symbol alphabet."""
    rng = np.random.default_rng(4)
    alphabet = "12-"
    cons = Constraint(chars="12-", min_digits=2, max_digits=3, pattern=r"\d+(-\d)?", universe=alphabet)
    for _ in range(30):
        z = rng.normal(0.0, 2.0, (7, 4))
        lp = z - np.logaddexp.reduce(z, axis=1, keepdims=True)
        texts = ["".join(s) for n in range(1, 5) for s in itertools.product(alphabet, repeat=n)]
        allowed = [t for t in texts if cons.accepts(t)]
        want = max(allowed, key=lambda t: string_probability(lp, t, alphabet))
        got = constrained_beam(lp, alphabet, cons, beam=32)
        assert got is not None
        assert string_probability(lp, got.text, alphabet) == pytest.approx(string_probability(lp, want, alphabet))


def test_constraints_of_field_types() -> None:
    amount = constraint_for("amount", {"decimals": 2})
    assert all(amount.accepts(t) for t in ["1250.00", "1,250.00", "10.000", "22.000.-", "7"])
    assert not any(amount.accepts(t) for t in ["12.5", "1.2.3", "-5", "1/2"])
    date = constraint_for("date", {"order": "DMY"})
    assert all(date.accepts(t) for t in ["03/11/2026", "3.11.26", "03112026"])
    assert not date.accepts("0311")
    assert constraint_for("date", {}, comb=True).accepts("03112026")
    assert not constraint_for("date", {}, comb=True).accepts("03/11/2026")
    digits = constraint_for("digits", {"min_length": 4, "max_length": 6})
    assert digits.accepts("1234") and not digits.accepts("123") and not digits.accepts("1234567")
    assert not digits.accepts("12.34")
