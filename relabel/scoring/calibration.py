"""Calibrating out-of-fold probabilities with one temperature, and measuring calibration (ECE) and log-loss.

Confident learning thresholds and the model-aware consensus read the model's probabilities as probabilities, so
a model that says 0.23 when it is right 90% of the time (a regularised model on a small project) or 0.99 when it
is right 80% of the time must be rescaled. Temperature scaling (Guo et al., ICML 2017) divides the log
probabilities by one number T fitted by maximum likelihood: it keeps every item's ranking of classes (so
accuracy and the argmax are unchanged) and needs no held-out set beyond the out-of-fold rows themselves.

``cross_fitted_temperature`` fits T for each fold's rows on the *other* folds' rows, so the calibrated
out-of-fold probabilities and the ECE reported from them are out-of-sample too.
"""
from __future__ import annotations

import numpy as np

# Probabilities are clipped to at least this before taking logs, so a 0 in a row costs a finite log-loss.
LOG_FLOOR = 1e-12
# Search range of log(T): T from 1/50 (sharpen 50x) to 50 (flatten 50x) covers any linear model we fit.
_LOG_T_BOUNDS = (-np.log(50.0), np.log(50.0))
# Bins of the expected calibration error: 15 equal-width confidence bins, as in Guo et al. 2017.
ECE_BINS = 15


def log_loss(probs: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """Mean negative log probability of each row's label (weighted when sample_weight is given)."""
    p = np.clip(probs[np.arange(labels.size), labels], LOG_FLOOR, None)
    return float(np.average(-np.log(p), weights=sample_weight))


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Share of rows whose most probable class is the label."""
    return float(np.mean(probs.argmax(axis=1) == labels))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE of the top class: sum over confidence bins of (bin share) x |accuracy - mean confidence|."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    bins = np.minimum((confidence * n_bins).astype(np.intp), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    gap = np.abs(np.bincount(bins, correct, minlength=n_bins) - np.bincount(bins, confidence, minlength=n_bins))
    return float(gap.sum() / max(count.sum(), 1))


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Rows of softmax(log(probs) / T): T > 1 flattens, T < 1 sharpens; the argmax never changes."""
    logits = np.log(np.clip(probs, LOG_FLOOR, None)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    out /= out.sum(axis=1, keepdims=True)
    return out


def fit_temperature(probs: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """The T minimising the log-loss of apply_temperature(probs, T) on these rows (a 1-D bounded search)."""
    from scipy.optimize import minimize_scalar
    if labels.size == 0:
        return 1.0
    logits = np.log(np.clip(probs, LOG_FLOOR, None))
    rows = np.arange(labels.size)

    def nll(log_t: float) -> float:
        z = logits / np.exp(log_t)
        z_max = z.max(axis=1)
        log_norm = z_max + np.log(np.exp(z - z_max[:, None]).sum(axis=1))
        return float(np.average(log_norm - z[rows, labels], weights=sample_weight))

    result = minimize_scalar(nll, bounds=_LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-3})
    return float(np.exp(result.x))


def cross_fitted_temperature(probs: np.ndarray, labels: np.ndarray, folds: np.ndarray,
                             sample_weight: np.ndarray | None = None) -> np.ndarray:
    """Calibrated copies of out-of-fold rows: each fold's rows use the T fitted on every other fold's rows."""
    out = np.empty_like(probs)
    for fold in np.unique(folds):
        test = folds == fold
        w = None if sample_weight is None else sample_weight[~test]
        out[test] = apply_temperature(probs[test], fit_temperature(probs[~test], labels[~test], w))
    return out
