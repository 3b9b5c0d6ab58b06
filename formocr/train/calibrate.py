"""Calibration: temperature scaling and the figures that say whether a probability can be trusted."""

from __future__ import annotations

import numpy as np
import torch


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T minimising the negative log-likelihood of softmax(logits / T) on held-out data."""
    z = torch.from_numpy(np.asarray(logits, np.float64))
    y = torch.from_numpy(np.asarray(labels, np.int64))
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.exp().item())


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE of a classifier's top class with equal-width confidence bins (the usual 15-bin definition)."""
    return ece(probs.max(axis=1), probs.argmax(axis=1) == labels, bins)


def ece(conf: np.ndarray, right: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error, as a fraction: the mean gap between confidence and the share right over
    equal-width bins (a confidence of 0 falls in the first)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        if m.any():
            total += m.mean() * abs(right[m].mean() - conf[m].mean())
    return float(total)


def error_at_coverage(probs: np.ndarray, labels: np.ndarray, coverage: float) -> tuple[float, float]:
    """Error rate among the ``coverage`` share of digits accepted most-confident first, and the cut-off."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    order = np.argsort(-conf, kind="stable")
    k = max(1, round(coverage * len(order)))
    kept = order[:k]
    return float(1.0 - correct[kept].mean()), float(conf[order[k - 1]])
