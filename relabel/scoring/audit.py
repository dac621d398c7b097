"""How many wrong labels are left, from a random audit: a model-assisted survey estimate with a 90% interval.

The posterior's own count (relabel.scoring.error_estimate) cannot see the errors where the crowd agrees on a wrong
label: on crowd sets it is 0.4-0.5x the truth. Reviewers' answers can, but the ranked batch only asks about the
items the posterior already doubts. So every batch also carries a small *random* sample of the other unreviewed
items, drawn with known inclusion probabilities, and the count of wrong labels is estimated from it the way survey
statisticians estimate a total (Sarndal, Swensson & Wretman 1992, "Model Assisted Survey Sampling"):

- **The draw** (:func:`draw_audit`): stratified random sampling. The frame (unreviewed items outside the ranked
  part of the batch) is cut into equal-size strata by the posterior's P(wrong); each stratum gets a share of the
  audit by Neyman allocation, N_h * sqrt(t_h (1 - t_h)), with t_h half the stratum's mean P(wrong) and half the
  frame's: half the allocation trusts the posterior's ranking, half is spread as if it knew nothing, so a
  posterior that is wrong about where the errors are costs precision, never validity. Every stratum gets at least
  one item, so every item can be drawn; an item's inclusion probability is n_h / N_h.
- **The estimate** (:func:`estimate_wrong_labels`): a post-stratified difference estimator. The outcome of an
  audited item is y = 1 when the reviewer's answer differs from the consensus they were shown; its residual is
  y - p, p = its P(wrong) when it was audited. Audits of every round are pooled and cut into strata by p (at least
  ``MIN_AUDITS_PER_STRATUM`` each); the target items (those still unreviewed, or a next batch) fall into the same
  strata by their current P(wrong). In stratum h the count is sum(p) + N_h * e_h, e_h the Horvitz-Thompson
  (Hajek) weighted mean residual of its audits. The model is only the auxiliary variable: a posterior that is
  0.4x the truth leaves residuals of +0.6x that the audits measure, so it widens the interval, it does not bias
  the estimate.
- **The interval**: a Jeffreys (Beta) interval on the overall error rate with the design's effective sample size
  (Korn & Graubard 1998: n* = rate (1 - rate) / variance of the stratified estimator), times the number of target
  items, so that a rare error rate gets the right-skewed interval a normal one would miss ("0 to 0" on 5 audits).
  The variance has three parts (:func:`_stratum_variance`, :func:`_between_rounds_variance`):
  - the sampling variance of each stratum's mean residual, N_h^2 S_h^2 / n_h (Kish's effective n under unequal
    weights). n* is not capped at the number audited, as Korn & Graubard do to be safe: the cap refused the
    interval any credit for what the posterior explains and made it cover 92.5-99% on CIFAR-10N;
  - the items' own yes/no variance, N_h S_h^2: the target is the items *not* audited, whose count is a sum of
    coin flips no audit can pin down (the finite-population form N^2 (1 - f) S^2 / n, split into its two parts).
    It matters when few items are left (adult_content2's 5th round: 33 items left, 50 audited);
  - when the rounds' audits disagree beyond their sampling error, the pooled estimate's share of the
    between-round variance (a random-effects meta-analysis, DerSimonian & Laird 1986): pooling old audits assumes
    the posterior misses as much at a given P(wrong) now as when they were drawn, and the refitted consensus and
    the ranked batches, which take the doubtful items away, can break that (labelme's 5th round: the pooled
    estimate 17% high, coverage 84.5% without this part).
  A stratum whose audits all agree (no error found) has no sample spread; its S^2 is then taken from its error
  rate with the posterior counted as one more audit (a unit-information prior centred on the model), which is as
  small as the posterior is sure. (A Jeffreys prior per stratum instead adds half an error to every stratum: on
  CIFAR-10N's cleanest fifth (10,000 items, resnet18) that is a 5% error rate where the truth is 0.02%.)
  Quantiles from DRAWS Beta draws (numpy only).

Audits accumulate across rounds. An audited item is reviewed: its final label is the reviewer's, so it leaves the
target population (it is not a wrong label left) but its outcome stays in the sample. Pooling rounds within a
stratum assumes that the posterior misses about as much at a given P(wrong) in later rounds as when the audit was
drawn; items fixed since (the ranked reviews) leave the target, and the strata follow P(wrong), so the pool
describes the items left, not the ones removed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Strata of the draw and of the estimate: a few strata capture most of what a score can do for a total (Cochran
# 1977, 5.12: gains beyond ~5-6 strata are small), and each estimation stratum needs enough audits for its rate.
MAX_STRATA = 5
# Audits per estimation stratum: fewer and the stratum's rate rests on a handful of yes/no answers.
MIN_AUDITS_PER_STRATUM = 10
# Draw strata are planned for this many audits each, so a small audit is one stratum (simple random sampling).
DRAW_AUDITS_PER_STRATUM = 5
# The Jeffreys prior on a rate: half a count to each outcome.
JEFFREYS = 0.5
# Quantiles of the two-sided 90% interval.
INTERVAL = (0.05, 0.95)
# The fewest audit items a batch carries when audits are on: below ~10 yes/no answers a round adds little.
MIN_AUDIT_ITEMS = 10
# Beta draws for the interval's quantiles: their Monte Carlo error is < 1% of the interval's width.
DRAWS = 20000


@dataclass(frozen=True)
class AuditEstimate:
    """Wrong labels among ``items`` target items, estimated from ``audited`` audit outcomes (``found`` wrong)."""

    items: int
    expected: float
    low: int
    high: int
    audited: int
    found: int
    model_expected: float          # what the posterior alone expects: the sum of P(wrong) over the items
    upper: float | None = None     # the interval's upper end before rounding up (the stop signal compares it)

    @property
    def rate(self) -> float:
        return self.expected / self.items if self.items else 0.0

    @property
    def rate_interval(self) -> tuple[float, float]:
        return (self.low / self.items, self.high / self.items) if self.items else (0.0, 0.0)

    def __str__(self) -> str:
        return format_audited(self.expected, self.low, self.high, self.audited)

    def as_dict(self) -> dict:
        return {"items": self.items, "expected": self.expected, "low": self.low, "high": self.high,
                "audited": self.audited, "found": self.found, "model_expected": self.model_expected,
                "upper": self.upper, "source": "audit", "text": str(self)}


def format_audited(expected: float, low, high, audited: int) -> str:
    """'≈ 41 wrong labels left (90% interval 22–68), from 57 audited items'"""
    return (f"≈ {expected:.0f} wrong labels left (90% interval {int(low)}–{int(high)}), from {int(audited)} audited "
            f"item{'s' if audited != 1 else ''}")


def audit_size(budget: int, setting: float) -> int:
    """Audit items a batch carries: ``setting`` < 1 is a share of ``budget`` (at least MIN_AUDIT_ITEMS), a
    whole number >= 1 is the count, 0 is none ([review] audit, validated in relabel.config)."""
    if setting <= 0:
        return 0
    if setting >= 1:
        return int(setting)
    return max(MIN_AUDIT_ITEMS, int(round(setting * budget)))


def _equal_size_strata(p: np.ndarray, n_strata: int) -> np.ndarray:
    """Stratum 0..n_strata-1 of each item: equal-size groups by rank of p (ties split by position)."""
    order = np.argsort(p, kind="stable")
    stratum = np.empty(p.size, np.intp)
    stratum[order] = np.arange(p.size) * n_strata // max(p.size, 1)
    return stratum


def _allocate(weights: np.ndarray, sizes: np.ndarray, total: int) -> np.ndarray:
    """Integer allocation of ``total`` draws in proportion to ``weights``: at least 1 and at most the stratum's
    size each, remainders to the largest fractions."""
    n = np.minimum(np.ones_like(sizes), sizes)
    left = total - int(n.sum())
    while left > 0:
        room = sizes - n
        w = np.where(room > 0, weights, 0.0)
        if w.sum() <= 0:
            w = (room > 0).astype(float)
        share = w / w.sum() * left
        add = np.minimum(np.floor(share).astype(np.intp), room)
        if add.sum() == 0:                         # hand out the remainder one by one, largest fraction first
            add = np.zeros_like(n)
            add[np.argmax(np.where(room > 0, share - np.floor(share) + 1e-12 * w, -1.0))] = 1
        n += add
        left = total - int(n.sum())
    return n


def draw_audit(p_wrong, size: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Positions (into ``p_wrong``, the frame's P(wrong)) of a stratified random audit of ``size`` items, and each
    drawn item's inclusion probability (module docstring). The whole frame when it holds no more than ``size``."""
    p = np.clip(np.nan_to_num(np.asarray(p_wrong, dtype=float), nan=1.0), 0.0, 1.0)
    n_frame = p.size
    size = int(size)
    if size < 0:
        raise ValueError(f"audit size must be >= 0, got {size}")
    if size == 0 or n_frame == 0:
        return np.zeros(0, np.intp), np.zeros(0)
    if size >= n_frame:
        return np.arange(n_frame), np.ones(n_frame)
    n_strata = int(np.clip(size // DRAW_AUDITS_PER_STRATUM, 1, MAX_STRATA))
    stratum = _equal_size_strata(p, n_strata)
    sizes = np.bincount(stratum, minlength=n_strata)
    mean_p = np.bincount(stratum, weights=p, minlength=n_strata) / np.maximum(sizes, 1)
    t = 0.5 * mean_p + 0.5 * p.mean()
    counts = _allocate(sizes * np.sqrt(t * (1 - t)) + 1e-12, sizes, size)
    chosen, inclusion = [], []
    for h in range(n_strata):
        members = np.flatnonzero(stratum == h)
        chosen.append(rng.choice(members, size=counts[h], replace=False))
        inclusion.append(np.full(counts[h], counts[h] / members.size))
    chosen, inclusion = np.concatenate(chosen), np.concatenate(inclusion)
    order = np.argsort(chosen)
    return chosen[order], inclusion[order]


def _cut_points(audit_p: np.ndarray) -> np.ndarray:
    """Interior boundaries of the estimation strata: equal-count groups of the audits by P(wrong)."""
    n_strata = int(np.clip(audit_p.size // MIN_AUDITS_PER_STRATUM, 1, MAX_STRATA))
    if n_strata == 1:
        return np.zeros(0)
    cuts = np.quantile(audit_p, np.arange(1, n_strata) / n_strata, method="higher")
    cuts = np.unique(cuts)
    # A cut at the smallest audit P(wrong) would leave a stratum with no audit below it.
    return cuts[cuts > audit_p.min()]


def _stratum_variance(w: np.ndarray, e: np.ndarray, y: np.ndarray, model_p: float, n_target: int) -> float:
    """Variance of the error in one stratum's predicted count of wrong labels among ``n_target`` items, from its
    audits' weights ``w``, residuals ``e`` and outcomes ``y``; ``model_p`` is their (weighted) mean P(wrong).

    Two parts (the finite-population form N^2 (1 - f) S^2 / n = N_t^2 S^2 / n + N_t S^2, N_t the items not
    audited): the Hajek mean residual's sampling variance, times N_t^2, and the items' own yes/no variance, N_t S^2:
    the count left is a sum of N_t coin flips that no audit of other items can pin down.

    When the stratum's audits all came out the same (typically: no error found), their spread says nothing about
    the spread of errors and S^2 would be the spread of p alone, claiming the count is known. S^2 is then at least
    r (1 - r), r the stratum's error rate with the posterior counted as one more audit, (errors + mean p) /
    (audits + 1): a unit-information prior centred on the model, as small as the posterior is sure."""
    n_a = e.size
    mean = float(np.sum(w * e) / np.sum(w))
    kish = float(np.sum(w ** 2) / np.sum(w) ** 2)             # 1 / the effective number of audits (Kish)
    s2 = float(np.sum(w * (e - mean) ** 2) / np.sum(w)) * n_a / max(n_a - 1, 1)
    if np.all(y == y[0]):
        rate = (float(np.sum(w * y) / np.sum(w)) * n_a + model_p) / (n_a + 1)
        s2 = max(s2, rate * (1 - rate))
    return s2 * (n_target ** 2 * kish + n_target)


def _between_rounds_variance(n_target: np.ndarray, resid: np.ndarray, s2: np.ndarray, audit_h: np.ndarray,
                             w: np.ndarray, e: np.ndarray, audit_round: np.ndarray) -> float:
    """How much more the rounds' audits disagree than their sampling explains: the between-round variance of the
    count (DerSimonian & Laird 1986), 0 with one round.

    Pooling rounds assumes the posterior misses as much at a given P(wrong) now as when each audit was drawn; the
    refitted consensus and the ranked batches (which take the doubtful items away) can break that. Each round's
    audits give their own count, the pooled residual standing in for a stratum the round did not reach; when those
    counts scatter beyond their sampling variances, the excess is a real spread, and the pooled estimate inherits
    its share of it."""
    rounds = np.unique(audit_round)
    if rounds.size < 2:
        return 0.0
    counts, variances = [], []
    for r in rounds:
        mine = audit_round == r
        count, var = 0.0, 0.0
        for h in range(n_target.size):
            a = mine & (audit_h == h)
            if n_target[h] == 0:
                continue
            if not a.any():
                count += n_target[h] * resid[h]
                continue
            count += n_target[h] * float(np.sum(w[a] * e[a]) / np.sum(w[a]))
            var += n_target[h] ** 2 * s2[h] * float(np.sum(w[a] ** 2) / np.sum(w[a]) ** 2)
        if var > 0:
            counts.append(count)
            variances.append(var)
    if len(counts) < 2:
        return 0.0
    counts, inv = np.array(counts), 1.0 / np.array(variances)
    mean = float(np.sum(inv * counts) / inv.sum())
    q = float(np.sum(inv * (counts - mean) ** 2))
    tau2 = max(0.0, (q - (counts.size - 1)) / (inv.sum() - float(np.sum(inv ** 2)) / inv.sum()))
    # The pooled estimate averages the rounds' offsets, each round in proportion to its audits: it inherits
    # tau^2 * sum(share_r^2), the random-effects variance of that average, not a whole tau^2.
    share = np.array([np.sum(audit_round == r) for r in rounds], float) / audit_round.size
    return tau2 * float(np.sum(share ** 2))


def estimate_wrong_labels(p_wrong, audit_p_wrong, audit_inclusion, audit_wrong, *, seed: int = 0,
                          audit_round=None) -> AuditEstimate:
    """Wrong labels among the target items, from the audits (module docstring).

    ``p_wrong``: the target items' current P(wrong) (1 - the posterior of their consensus): the items still
    unreviewed, or the items of a next batch. ``audit_p_wrong``, ``audit_inclusion``, ``audit_wrong``: per audited
    item of every round so far, its P(wrong) when drawn, its inclusion probability and whether the reviewer's
    answer differed from the consensus shown; ``audit_round`` (optional), the round it was drawn in, lets the
    interval widen when the rounds' audits disagree beyond chance. With no audit the estimate is the posterior's
    sum of P(wrong) and the interval is 0..items (nothing measured yet); callers show the model's estimate instead.
    """
    p = np.clip(np.nan_to_num(np.asarray(p_wrong, dtype=float), nan=1.0), 0.0, 1.0)
    ap = np.clip(np.asarray(audit_p_wrong, dtype=float), 0.0, 1.0)
    pi = np.asarray(audit_inclusion, dtype=float)
    y = np.asarray(audit_wrong, dtype=float)
    if not (ap.shape == pi.shape == y.shape) or ap.ndim != 1:
        raise ValueError("audit_p_wrong, audit_inclusion and audit_wrong must be 1-D and of one length, got shapes "
                         f"{ap.shape}, {pi.shape}, {y.shape}")
    if pi.size and (not np.all(np.isfinite(pi)) or pi.min() <= 0 or pi.max() > 1):
        raise ValueError("audit inclusion probabilities must be in (0, 1]; an item drawn with probability 0 cannot "
                         "stand for the others")
    if not np.all(np.isfinite(ap)):
        raise ValueError("audit_p_wrong must be finite: record each audited item's P(wrong) when it was drawn")
    n_items = p.size
    model = float(p.sum())
    found = int(y.sum())
    if ap.size == 0 or n_items == 0:
        return AuditEstimate(n_items, model if ap.size == 0 else 0.0, 0, n_items, int(ap.size), found, model,
                             float(n_items))
    cuts = _cut_points(ap)
    target_h = np.searchsorted(cuts, p, side="right")
    audit_h = np.searchsorted(cuts, ap, side="right")
    point, variance = 0.0, 0.0
    n_strata = cuts.size + 1
    n_target, resid, s2 = np.zeros(n_strata), np.zeros(n_strata), np.zeros(n_strata)
    for h in range(n_strata):
        members = target_h == h
        n_h = int(members.sum())
        if n_h == 0:
            continue
        a = audit_h == h
        w, e = 1.0 / pi[a], y[a] - ap[a]
        mean_resid = float(np.sum(w * e) / np.sum(w))
        point += n_h * float(np.clip(p[members].mean() + mean_resid, 0.0, 1.0))
        v = _stratum_variance(w, e, y[a], float(np.sum(w * ap[a]) / np.sum(w)), n_h)
        variance += v
        n_target[h], resid[h] = n_h, mean_resid
        s2[h] = v / (n_h ** 2 * float(np.sum(w ** 2) / np.sum(w) ** 2) + n_h)
    if audit_round is not None:
        rounds = np.asarray(audit_round)
        if rounds.shape != ap.shape:
            raise ValueError(f"audit_round must have one entry per audited item, got shape {rounds.shape}")
        variance += _between_rounds_variance(n_target, resid, s2, audit_h, 1.0 / pi, y - ap, rounds)
    rate = point / n_items
    n_audits = int(ap.size)
    if variance <= 0 or rate in (0.0, 1.0):
        n_eff = float(n_audits)
    else:
        n_eff = max(rate * (1 - rate) / (variance / n_items ** 2), 1.0)
    draws = np.random.default_rng(seed).beta(n_eff * rate + JEFFREYS, n_eff * (1 - rate) + JEFFREYS, size=DRAWS)
    low, upper = n_items * np.quantile(draws, INTERVAL)
    low = int(np.clip(min(np.floor(low), np.floor(point)), 0, n_items))
    high = int(np.clip(max(np.ceil(upper), np.ceil(point)), 0, n_items))
    return AuditEstimate(n_items, point, low, high, int(ap.size), found, model, float(max(upper, point)))
