"""How many consensus labels are wrong: an estimate with a 90% interval, and recalibration from reviewers.

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
