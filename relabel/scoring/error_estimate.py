"""How many consensus labels are wrong: an estimate with a 90% interval, and recalibration from reviewers.

Each item's consensus is wrong with probability 1 - q_i (q = the posterior of the consensus). If those events
are independent the count of wrong labels is Poisson-binomial: mean sum(1 - q), variance sum q (1 - q). The
interval is the normal approximation of that distribution (with a continuity correction), clipped to 0..n.

The posterior is only as calibrated as the model behind it. Once reviewers have answered, their decisions say
how often a consensus with posterior q really was right: :func:`fit_recalibration` fits
P(right) = sigmoid(a * logit(q) + b) on the reviewed items and :func:`recalibrate` maps every posterior through
it. How much it fits depends on how much evidence there is:

- From ``MIN_DECISIONS`` decisions of both kinds on: both parameters (Platt scaling, a logistic regression on one
  feature), by maximum likelihood.
- From the first decision on (or when the decisions are all of one kind): the shift b alone, with a = 1, i.e. the
  odds of being right multiplied by exp(b) for every item. It is the maximum a posteriori b under a Gaussian prior
  centred on 0 (the posterior taken at its word) whose precision is the Fisher information of one decision at
  b = 0, mean q(1 - q) (a unit-information prior, Kass & Wasserman 1995): the prior counts as one decision, so a
  few answers already move the estimate and many answers decide it, and all-confirmed or all-corrected answers
  give a finite shift instead of an infinite one. The shift, unlike the slope, extrapolates safely from the
  low-posterior items reviewers see to the near-certain ones: a 0.999 posterior stays far above a 0.6 one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# z of a two-sided 90% normal interval.
Z_90 = 1.6448536269514722
# Reviewers' decisions needed before the slope of the logistic map is fitted too: below this two parameters are
# not estimated better than one (rule of thumb of ~10 events per parameter); the shift alone is fitted before.
MIN_DECISIONS = 20
# The shift-only fit searches b in +-this (odds x e^30: beyond any posterior the logit clip lets through).
SHIFT_BOUND = 30.0
# Posteriors are clipped this far from 0 and 1 before the logit, so a saturated posterior stays finite.
LOGIT_CLIP = 1e-6


@dataclass(frozen=True)
class ExpectedErrors:
    """Expected number of wrong labels and its 90% interval."""

    expected: float
    low: int
    high: int

    def __str__(self) -> str:
        return format_expected(self.expected, self.low, self.high)

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
    """(a, b) of P(right) = sigmoid(a logit(q) + b), fitted on reviewed items (see the module docstring).

    ``posterior_of_consensus``: each reviewed item's posterior of its consensus when it was sent to review;
    ``was_right``: whether the reviewer kept that label. No decision gives (1, 0), the identity; fewer than
    MIN_DECISIONS, or decisions all of one kind, give (1, b), the shift alone under a unit-information prior.
    """
    q = np.asarray(posterior_of_consensus, dtype=float)
    y = np.asarray(was_right, dtype=float)
    ok = np.isfinite(q)
    q, y = q[ok], y[ok]
    if q.size == 0:
        return 1.0, 0.0
    from scipy.optimize import minimize, minimize_scalar

    x = _logit(q)

    def nll(a, b):
        z = a * x + b
        # -log likelihood of a logistic model, written with logaddexp for stability
        return float(np.sum(np.logaddexp(0, z) - y * z))

    if q.size >= MIN_DECISIONS and y.min() != y.max():
        fit = minimize(lambda p: nll(p[0], p[1]), x0=np.array([1.0, 0.0]), method="L-BFGS-B",
                       bounds=[(0.0, 10.0), (-20.0, 20.0)])
        return float(fit.x[0]), float(fit.x[1])
    q_c = np.clip(q, LOGIT_CLIP, 1 - LOGIT_CLIP)
    precision = float(np.mean(q_c * (1 - q_c)))            # Fisher information of one decision at b = 0
    fit = minimize_scalar(lambda b: nll(1.0, b) + 0.5 * precision * b * b, bounds=(-SHIFT_BOUND, SHIFT_BOUND),
                          method="bounded", options={"xatol": 1e-6})
    return 1.0, float(fit.x)


def recalibrate(posterior_of_consensus, params: tuple[float, float]) -> np.ndarray:
    """Map posteriors through the fitted logistic map (the identity leaves them unchanged)."""
    q = np.asarray(posterior_of_consensus, dtype=float)
    a, b = params
    if a == 1.0 and b == 0.0:
        return q.copy()
    return 1.0 / (1.0 + np.exp(-(a * _logit(q) + b)))
