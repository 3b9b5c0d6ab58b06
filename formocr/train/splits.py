"""Which MNIST training images a model holds out: the split every string model uses, and its fingerprint.

Its own module because both trainers use it: the string models always, the digit CNN with ``--split-seed``, so
that all of them can hold out the same images and benchmarks can tune fusion on digits new to both readers.
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
