"""Which MNIST training images a model holds out, and the fingerprint its card records.

Both trainers and the benchmarks that tune on held-out digits use these, so the rule for which images a model
never learnt from lives in one place: every string model holds out ``held_out_split(--split-seed)``; the digit CNN
holds out the same images with ``--split-seed``, else 5000 drawn from its training seed (the shipped model).
"""

from __future__ import annotations

import hashlib

import numpy as np


def held_out_split(n: int, split_seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(held-out, training) indices of ``n`` MNIST training images: 5000 kept for validation and fusion tuning.

    Drawn from ``split_seed`` alone, never from the training seed, so models trained with different seeds for one
    ensemble hold out the same digits, and those digits stay new to every member (benchmarks tune on them).
    """
    perm = np.random.default_rng([split_seed, 2]).permutation(n)
    return perm[:5000], perm[5000:]


def split_digest(idx: np.ndarray) -> str:
    """A short fingerprint of a set of image indices, recorded in the card to compare members' held-out sets."""
    return hashlib.sha256(np.sort(np.asarray(idx, np.int64)).astype("<i8").tobytes()).hexdigest()[:16]


def digit_cnn_split(n: int, seed: int, size: int = 5000, split_seed: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(held-out, training) indices of the digit CNN trained with ``seed`` (and ``split_seed``, if given).

    With ``split_seed``: the string models' 5000 (``size`` does not apply). Without: ``size`` images drawn from the
    training seed, which share only 413 images with the string models' split for seeds 0 and 0.
    """
    if split_seed is not None:
        return held_out_split(n, split_seed)
    perm = np.random.default_rng([seed, 1]).permutation(n)
    return perm[:size], perm[size:]
