"""Calibration, two kinds (one module since branches issue-10 and issue-11 each added it; merged in issue-15).

Part 1, the model (issue 11): Calibrating out-of-fold probabilities with one temperature, and measuring calibration (ECE) and log-loss.

Confident learning thresholds and the model-aware consensus read the model's probabilities as probabilities, so
a model that says 0.23 when it is right 90% of the time (a regularised model on a small project) or 0.99 when it
is right 80% of the time must be rescaled. Temperature scaling (Guo et al., ICML 2017) divides the log
probabilities by one number T fitted by maximum likelihood: it keeps every item's ranking of classes (so
accuracy and the argmax are unchanged) and needs no held-out set beyond the out-of-fold rows themselves.

``cross_fitted_temperature`` fits T for each fold's rows on the *other* folds' rows, so the calibrated
out-of-fold probabilities and the ECE reported from them are out-of-sample too.

Part 2, the consensus (issue 10): How many consensus labels are wrong: an estimate with a 90% interval, and recalibration from reviewers.

Each item's consensus is wrong with probability 1 - q_i (q = the posterior of the consensus). If those events
are independent the count of wrong labels is Poisson-binomial: mean sum(1 - q), variance sum q (1 - q). The
interval is the normal approximation of that distribution (with a continuity correction), clipped to 0..n.

The posterior is only as calibrated as the model behind it. Once reviewers have answered, their decisions say
how often a consensus with posterior q really was right: :func:`fit_recalibration` fits
P(right) = sigmoid(a * logit(q) + b) on the reviewed items (a logistic regression on one feature, Platt scaling)
and :func:`recalibrate` maps every posterior through it. With fewer than ``MIN_DECISIONS`` decisions, or when
the decisions are all of one kind, the map is the identity: a fit on a handful of answers would be noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ---- Part 1: temperature scaling, ECE and log-loss of the model's out-of-fold probabilities ----------------

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


# ---- Part 2: expected wrong consensus labels and recalibration from reviewers' decisions --------------------
# z of a two-sided 90% normal interval.
Z_90 = 1.6448536269514722
# Reviewers' decisions needed before the posterior is recalibrated from them: below this the two parameters of
# the logistic map are not estimated better than the identity (rule of thumb of ~10 events per parameter).
MIN_DECISIONS = 20
# Posteriors are clipped this far from 0 and 1 before the logit, so a saturated posterior stays finite.
LOGIT_CLIP = 1e-6


@dataclass(frozen=True)
class ExpectedErrors:
    """Expected number of wrong labels and its 90% interval."""

    expected: float
    low: int
    high: int

    def __str__(self) -> str:
        return f"≈ {self.expected:.1f} (90% interval {self.low}–{self.high})"

    def as_dict(self) -> dict:
        return {"expected": self.expected, "low": self.low, "high": self.high}


def expected_errors(quality) -> ExpectedErrors:
    """Expected wrong labels among items whose consensus is right with probability ``quality`` (1-D)."""
    q = np.asarray(quality, dtype=float)
    q = q[np.isfinite(q)]
    mean = float(np.sum(1.0 - q))
    sd = float(np.sqrt(np.sum(q * (1.0 - q))))
    low = int(np.clip(np.floor(mean - Z_90 * sd - 0.5) + 1, 0, q.size))   # continuity-corrected quantiles
    high = int(np.clip(np.ceil(mean + Z_90 * sd + 0.5) - 1, 0, q.size))
    return ExpectedErrors(mean, min(low, int(np.floor(mean))), max(high, int(np.ceil(mean))))


def format_expected(expected: float | None, low, high) -> str:
    """ "≈ N (90% interval a–b)" for stored figures; the bare number when the interval was not stored."""
    if expected is None:
        return "-"
    if low is None or high is None:
        return f"≈ {expected:.1f}"
    return f"≈ {expected:.1f} (90% interval {int(low)}–{int(high)})"


def _logit(q: np.ndarray) -> np.ndarray:
    q = np.clip(q, LOGIT_CLIP, 1 - LOGIT_CLIP)
    return np.log(q) - np.log1p(-q)


def fit_recalibration(posterior_of_consensus, was_right) -> tuple[float, float]:
    """(a, b) of P(right) = sigmoid(a logit(q) + b), fitted by maximum likelihood on reviewed items.

    ``posterior_of_consensus``: each reviewed item's posterior of its consensus when it was sent to review;
    ``was_right``: whether the reviewer kept that label. Returns (1, 0), the identity, when there are fewer
    than MIN_DECISIONS decisions or they are all right or all wrong.
    """
    q = np.asarray(posterior_of_consensus, dtype=float)
    y = np.asarray(was_right, dtype=float)
    ok = np.isfinite(q)
    q, y = q[ok], y[ok]
    if q.size < MIN_DECISIONS or y.min() == y.max():
        return 1.0, 0.0
    from scipy.optimize import minimize

    x = _logit(q)

    def loss(params):
        z = params[0] * x + params[1]
        # -log likelihood of a logistic model, written with logaddexp for stability
        return float(np.sum(np.logaddexp(0, z) - y * z))

    fit = minimize(loss, x0=np.array([1.0, 0.0]), method="L-BFGS-B", bounds=[(0.0, 10.0), (-20.0, 20.0)])
    return float(fit.x[0]), float(fit.x[1])


def recalibrate(posterior_of_consensus, params: tuple[float, float]) -> np.ndarray:
    """Map posteriors through the fitted logistic map (the identity leaves them unchanged)."""
    q = np.asarray(posterior_of_consensus, dtype=float)
    a, b = params
    if a == 1.0 and b == 0.0:
        return q.copy()
    return 1.0 / (1.0 + np.exp(-(a * _logit(q) + b)))
