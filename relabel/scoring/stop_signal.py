"""The stop signal: how many wrong labels the items a round would send hold, and whether to send them.

The posterior alone is not enough. On the benchmark sets its expected count of wrong labels is 0.78–1.95x the
measured count with a model and 0.03–0.52x on crowd sets (README "Consensus quality"); on the items the loop
asks about, the 500 it ranks lowest on CIFAR-10N at 3 labels, it expects 289 wrong against 252 (resnet18) and 259
against 204 (swin_base), where the EM's own posterior expected 240 against 259. The loop has better evidence
once reviewers have answered: how often they corrected what they were shown. The estimate for a batch of n
items uses both:

- The posterior: the sum of the items' P(wrong) (1 - the posterior of their consensus, recalibrated on all
  reviewers' decisions so far: relabel.scoring.error_estimate), with its Poisson-binomial 90% interval.
- A floor from the reviewers: the correction rate of the latest round that has decisions, c corrected of d
  decided items, as the mean of its Jeffreys posterior Beta(c + 1/2, d - c + 1/2), times n; its interval is the
  beta-binomial(n, c + 1/2, d - c + 1/2) count. That round's batch ranks closest to this one (each round sends the
  lowest-quality items not yet reviewed, so each batch follows the last one in the ranking) and ranked no
  better, so its rate leans high: the error is on the side of sending one more batch, never on the side of
  stopping while reviewers are still correcting. Earlier rounds ranked worse still and are left out: they would
  hold the loop back for ever. The Jeffreys prior (no constant of ours) gives an unseen outcome half a count, so
  "0 corrected of d" still leaves n / (2d + 2) expected.

The estimate is the larger of the two, with the interval of the one that gave it. The floor applies only while
reviewers are still correcting (c > 0): after a round whose reviewers corrected none of what they decided, the
Jeffreys half count alone put the floor at n / (2d + 2), which is 0.5 — the default threshold — when one of 50
items was skipped, so a batch the posterior expected ≈ 0.0 wrong labels in was pushed, and reviewers corrected 0
of 50 again (issue 20). A clean round leaves the posterior, recalibrated on every decision including that clean
round, to decide. The round stops when the estimate is below ``[review] min_expected_errors`` (default 0.5: a
batch expected to yield fewer than half a correction is not worth the reviewers' time).

**One set of figures.** The floor raises the batch's estimate above the posterior's, so the project's total left
is restated with it (:func:`total_with_batch`): the items outside the batch by the posterior, the batch by its
estimate. A batch, a subset of the items left, then never holds more expected wrong labels than the total.

Two choices make it conservative. Round 1 (no decision yet, as after rounds whose reviewers never answered) never
stops: the posterior is the only evidence and it is known to be overconfident. The decision uses the estimate,
not the upper end of its 90% interval: that upper end is at least 1 whenever one wrong label is plausible, which
after 0 corrections among 20 it still is (up to ~3 among the next 20), so it would never stop on review rounds of
realistic size; the conservatism sits in the floor instead.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from relabel.scoring.error_estimate import Z_90, ExpectedErrors, expected_errors, format_expected

# The Jeffreys prior on a correction rate: half a count to each outcome.
JEFFREYS = 0.5
# Quantiles of the two-sided 90% interval.
INTERVAL = (0.05, 0.95)


@dataclass(frozen=True)
class Evidence:
    """Reviewers' decisions the estimate learns from: ``corrected`` of ``decided`` items in round ``round``."""

    round: int | None = None
    decided: int = 0
    corrected: int = 0

    def __str__(self) -> str:
        if not self.decided:
            return "no reviewer decisions yet, so the posterior alone, and a round without them always pushes"
        return f"reviewers corrected {self.corrected} of {self.decided} items in round {self.round}"


@dataclass(frozen=True)
class BatchEstimate:
    """Wrong labels among the ``items`` a round would send: the estimate, its 90% interval, what it used."""

    items: int
    expected: float
    low: int
    high: int
    posterior_expected: float      # what the (recalibrated) posterior alone expects: the sum of P(wrong)
    evidence: Evidence
    source: str = "posterior"      # which of the two gave the estimate: "posterior" or "reviewers"

    def __str__(self) -> str:
        return format_expected(self.expected, self.low, self.high)

    @property
    def wrong_labels(self) -> str:
        """'≈ 8.9 wrong labels (90% interval 3–15)'"""
        return self.wrong_labels_against(None)

    def wrong_labels_against(self, threshold: float | None) -> str:
        """As ``wrong_labels``, with as many decimals as it takes not to print the threshold itself for a figure
        on the other side of it ('≈ 0.49', not '≈ 0.5 ... below 0.5')."""
        return f"≈ {_decimals(self.expected, threshold)} wrong labels (90% interval {self.low}–{self.high})"

    def describe(self, threshold: float | None = None) -> str:
        """'The 20 items this round would send hold ≈ 5.0 wrong labels (90% interval 1–10): reviewers corrected
        5 of 10 items in round 1; the posterior alone expects 0.3.'"""
        return (f"The {self.items} items this round would send hold {self.wrong_labels_against(threshold)}: "
                f"{self.evidence}; the posterior alone expects {_decimals(self.posterior_expected, threshold)}.")

    def as_dict(self) -> dict:
        return {"items": self.items, "expected": self.expected, "low": self.low, "high": self.high,
                "posterior_expected": self.posterior_expected, "source": self.source,
                "evidence_round": self.evidence.round, "decided": self.evidence.decided,
                "corrected": self.evidence.corrected}


def batch_errors(p_wrong, evidence: Evidence = Evidence()) -> BatchEstimate:
    """Wrong labels among a batch whose items are wrong with probability ``p_wrong`` by the posterior, given
    reviewers' ``evidence``: the larger of the posterior's and the reviewers' estimate (module docstring)."""
    from scipy.stats import betabinom

    p = np.asarray(p_wrong, dtype=float)
    p = p[np.isfinite(p)]
    n = int(p.size)
    if evidence.decided < 0 or not 0 <= evidence.corrected <= evidence.decided:
        raise ValueError(f"evidence must have 0 <= corrected <= decided, got {evidence}")
    posterior = expected_errors(1.0 - p)
    estimate = BatchEstimate(n, posterior.expected, posterior.low, posterior.high, posterior.expected, evidence)
    if n == 0 or not evidence.corrected:          # no decision, or reviewers corrected nothing: the posterior
        return estimate
    alpha = JEFFREYS + evidence.corrected
    beta = JEFFREYS + evidence.decided - evidence.corrected
    floor = n * alpha / (alpha + beta)
    if floor <= posterior.expected:
        return estimate
    count = betabinom(n, alpha, beta)
    low, high = (int(count.ppf(q)) for q in INTERVAL)
    return BatchEstimate(n, floor, low, high, posterior.expected, evidence, source="reviewers")


def total_with_batch(p_wrong_left, in_batch, batch: BatchEstimate) -> ExpectedErrors:
    """Expected wrong labels among all items left (``p_wrong_left``: each unreviewed item's recalibrated P(wrong);
    ``in_batch``: which of them the batch sends), with the batch counted at its estimate: the posterior's
    Poisson-binomial for the rest plus the batch's own mean and variance (beta-binomial when reviewers set it),
    a normal 90% interval on the sum. Never below the batch's own figures."""
    p = np.asarray(p_wrong_left, dtype=float)
    mask = np.asarray(in_batch, dtype=bool)
    ok = np.isfinite(p)
    rest = p[ok & ~mask]
    mean = float(rest.sum())
    var = float((rest * (1 - rest)).sum())
    if batch.source == "reviewers":
        alpha = JEFFREYS + batch.evidence.corrected
        beta = JEFFREYS + batch.evidence.decided - batch.evidence.corrected
        n = batch.items
        var += n * alpha * beta * (alpha + beta + n) / ((alpha + beta) ** 2 * (alpha + beta + 1))
    else:
        q = p[ok & mask]
        var += float((q * (1 - q)).sum())
    mean += batch.expected
    total_items = int(ok.sum())
    sd = float(np.sqrt(var))
    low = int(np.clip(np.floor(mean - Z_90 * sd - 0.5) + 1, 0, total_items))
    high = int(np.clip(np.ceil(mean + Z_90 * sd + 0.5) - 1, 0, total_items))
    return ExpectedErrors(mean, max(min(low, int(np.floor(mean))), batch.low),
                          max(high, int(np.ceil(mean)), batch.high))


def stop_reason(estimate: BatchEstimate, threshold: float) -> str | None:
    """Why the batch is not worth sending (its estimate is below ``threshold``, and reviewers have decided
    something), or None to send it. A threshold of 0 turns the stop signal off; an empty batch has nothing to
    send."""
    if threshold <= 0:
        return None
    if not estimate.items:
        return "No item is left to send to review, so nothing was pushed."
    if not estimate.evidence.decided or estimate.expected >= threshold:
        return None
    return (f"{estimate.describe(threshold)} That is below [review] min_expected_errors = {threshold:g}: nothing worth "
            "reviewing, so nothing was pushed (set [review] min_expected_errors = 0 to push anyway).")


def _decimals(value: float, threshold: float | None, most: int = 4) -> str:
    """``value`` with one decimal, or more while its rounding would land on the wrong side of ``threshold``."""
    digits = 1
    while threshold is not None and digits < most and (round(value, digits) >= threshold) != (value >= threshold):
        digits += 1
    return f"{value:.{digits}f}"


def audited_stop_reason(estimate, threshold: float) -> str | None:
    """The stop signal once reviewers have answered audit items (relabel/scoring/audit.py): the batch is not worth
    sending when the upper end of the audited 90% interval for its wrong labels is below ``threshold``. Unlike
    the posterior's estimate the audited interval holds (benchmarks/audit.py), so its upper end is the safe side:
    the round stops only when even the high reading of the audits leaves less than ``threshold`` to fix."""
    if threshold <= 0:
        return None
    if not estimate.items:
        return "No item is left to send to review, so nothing was pushed."
    upper = estimate.upper if estimate.upper is not None else estimate.high
    if upper >= threshold:
        return None
    return (f"The {estimate.items} items this round would send hold ≈ {estimate.expected:.1f} wrong labels (90% "
            f"interval {estimate.low}–{estimate.high}, upper end {upper:.2f}), from {estimate.audited} audited items. "
            f"That is below [review] min_expected_errors = {threshold:g}: nothing worth reviewing, so nothing was "
            "pushed (set [review] min_expected_errors = 0 to push anyway).")
