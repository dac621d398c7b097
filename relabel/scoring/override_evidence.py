"""Has the model earned the right to override the annotators? The run's own evidence, with an interval.

An override is a consensus label that no annotator of the item gave, or a model that flips the item's majority.
On CIFAR-10N (image models trained on 50,000 items) overrides are right most of the time; a text model trained
on a few hundred items, or a model at chance, has not earned them. So the model-aware consensus changes a final
label only when this project's data say the model beats its annotators; otherwise the model may reorder the
review queue (its posterior still sets the quality score) but the labels are the annotation-only consensus.

Two kinds of evidence, both measured on this run:

* **Agreement with a held-out annotator** (items with two or more annotations). For each such item, the share of
  its annotations that equal the model's out-of-fold top class (m_i) against the share of pairs of its
  annotations that agree with each other (a_i). Under the usual noise model an annotation agrees with a rater of
  accuracy x with probability x*acc + (1 - x)(1 - acc)/(K - 1), increasing in x whenever annotators beat chance,
  so "the model agrees with an annotator more often than another annotator does" means "the model is more
  accurate than the item's annotators", measured on the same items and with no ground truth. Correlated
  annotator mistakes raise a_i (the test errs on the side of the annotators). The test is paired: the lower end
  of a one-sided 95% normal interval of mean(m_i - a_i) must be above 0 (items are the independent units, not
  annotations; a Wilson interval per rate would ignore that m_i and a_i move together item by item).
* **Reviewers' decisions** on the items where the model's top class and the majority vote differ — exactly the
  items an override would change. Among those reviewed, the share where the reviewer sided with the model has a
  Wilson 90% interval: above one half, the model has earned overrides whatever the agreement test says. Below one
  half it does not lose them by that alone: those items are the queue's hardest, chosen for the model's doubt,
  so the agreement test (every item) decides then.

Too little evidence — fewer than ``MIN_EVIDENCE_ITEMS`` items with two annotations, or fewer than
``MIN_EVIDENCE_PER_CLASS`` per class, and no reviewer verdict — means no overrides.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from relabel.scoring.annotations import Annotations
from relabel.scoring.majority_evidence import strict_plurality

# Items with two or more annotations needed before the agreement test may grant overrides: below ~30 paired
# differences the normal interval of their mean is not trustworthy (the usual rule of thumb for the CLT).
MIN_EVIDENCE_ITEMS = 30
# ... and on average this many per class: a model that has seen two examples of a class has not earned anything.
MIN_EVIDENCE_PER_CLASS = 5
# Reviewed disagreements (model top class != majority vote) needed before reviewers' verdict counts at all.
MIN_REVIEWED_DISAGREEMENTS = 10
# One-sided 95% normal quantile (the agreement test) and two-sided 90% (the reviewers' Wilson interval): the same
# number, 5% in each tail.
Z_ONE_SIDED_95 = 1.6448536269514722

EARNED = "earned"
NOT_EARNED = "not earned"
TOO_LITTLE = "too little evidence"
NO_MODEL = "no model"


@dataclass(frozen=True)
class OverrideEvidence:
    """Whether the model may change final labels, and why (``reason``: one sentence for `status` and the report).

    ``regime`` is one of "earned", "not earned", "too little evidence", "no model"; ``allowed`` is True only for
    "earned". The figures are None when their kind of evidence is absent.
    """

    regime: str
    reason: str
    items: int = 0                           # items with two or more annotations (the agreement test's units)
    model_agreement: float | None = None     # mean m_i
    annotator_agreement: float | None = None  # mean a_i
    difference_low: float | None = None      # lower end of the one-sided 95% interval of mean(m_i - a_i)
    reviewed_disagreements: int = 0          # reviewed items where model and majority differ
    reviewers_sided_with_model: int = 0

    @property
    def allowed(self) -> bool:
        return self.regime == EARNED

    def as_dict(self) -> dict:
        return {**asdict(self), "allowed": self.allowed}


def wilson_interval(successes: int, n: int, z: float = Z_ONE_SIDED_95) -> tuple[float, float]:
    """Wilson score interval of a proportion (two-sided, 90% at the default z)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def override_evidence(annotations: Annotations, pred_probs: np.ndarray | None,
                      known_labels: np.ndarray | None = None, earned_before: bool = False) -> OverrideEvidence:
    """The module docstring's verdict for one run. ``pred_probs``: out-of-fold, items x classes (or None);
    ``known_labels``: reviewers' decisions, one class index per item, -1 = not reviewed."""
    if pred_probs is None:
        return OverrideEvidence(NO_MODEL, "no model: the annotations alone decide (a label no annotator gave "
                                          "is never the consensus)")
    a = annotations
    votes = a.vote_counts().astype(np.float64)
    counts = votes.sum(axis=1)
    model_top = np.asarray(pred_probs).argmax(axis=1)
    rows = np.arange(a.n_items)

    reviewed_verdict = _reviewers(votes, model_top, known_labels)
    multi = counts >= 2
    n = int(multi.sum())
    m = votes[rows, model_top][multi] / counts[multi]
    pairs = counts[multi] * (counts[multi] - 1)
    agree = (votes[multi] * (votes[multi] - 1)).sum(axis=1) / pairs
    figures = {"items": n}
    if n:
        diff = m - agree
        spread = float(diff.std(ddof=1)) if n > 1 else float("inf")
        figures.update(model_agreement=float(m.mean()), annotator_agreement=float(agree.mean()),
                       difference_low=float(diff.mean() - Z_ONE_SIDED_95 * spread / np.sqrt(n)))
    figures.update(reviewed_disagreements=reviewed_verdict[0], reviewers_sided_with_model=reviewed_verdict[1])

    verdict_text = (f"reviewers sided with the model on {reviewed_verdict[1]} of {reviewed_verdict[0]} items "
                    "where it and the majority vote differ")
    # The reviewed disagreements are the items the queue ranked worst, where the model is least sure: reviewers
    # siding with the model there shows it has earned overrides, but their siding against it says little about the
    # many items it was sure of (the demo lost 7 labels when this veto turned overrides off after one round). So a
    # verdict only grants; taking overrides away is the agreement test's job, which looks at every item.
    if reviewed_verdict[2]:
        return OverrideEvidence(EARNED, verdict_text + " (90% interval above one half)", **figures)
    needed = max(MIN_EVIDENCE_ITEMS, MIN_EVIDENCE_PER_CLASS * a.n_classes)
    if n < needed:
        return OverrideEvidence(TOO_LITTLE, f"{_items(n)} with two or more annotations, {needed} needed to compare "
                                            "the model with the annotators", **figures)
    rates = (f"the model agrees with an item's annotators {figures['model_agreement']:.0%} of the time, the "
             f"annotators with each other {figures['annotator_agreement']:.0%}, on {n:,} items")
    if figures["difference_low"] > 0:
        return OverrideEvidence(EARNED, rates + " (95% lower bound of the gap above 0)", **figures)
    # Earned in an earlier round of this project: kept until the model is shown worse (the upper end of the same
    # interval below 0). Without this a gap near the bound flips the regime from round to round, and every flip
    # swaps the labels between the model-aware and the annotation-only consensus (the demo went 7 -> 14 wrong
    # labels after a review round when a reused model's agreement dipped by 2 points).
    gap = figures["model_agreement"] - figures["annotator_agreement"]
    if earned_before and 2 * gap - figures["difference_low"] >= 0:        # the interval's upper end: mean + z se
        return OverrideEvidence(EARNED, rates + " (earned in an earlier round; not shown worse at 95%)", **figures)
    return OverrideEvidence(NOT_EARNED, rates + " (not shown to be better at 95%)", **figures)


def _reviewers(votes: np.ndarray, model_top: np.ndarray, known_labels) -> tuple[int, int, bool | None]:
    """(reviewed disagreements, of them won by the model, verdict: True earned / False lost / None undecided)."""
    if known_labels is None:
        return 0, 0, None
    known = np.asarray(known_labels)
    majority = votes.argmax(axis=1)
    strict = strict_plurality(votes)   # a tie has no majority to flip
    look = (known >= 0) & strict & (model_top != majority)
    model_right = int((known[look] == model_top[look]).sum())
    majority_right = int((known[look] == majority[look]).sum())
    decided = model_right + majority_right                   # a reviewer who chose a third class sides with neither
    if decided < MIN_REVIEWED_DISAGREEMENTS:
        return decided, model_right, None
    low, high = wilson_interval(model_right, decided)
    return decided, model_right, (True if low > 0.5 else False if high < 0.5 else None)


def _items(n: int) -> str:
    return f"{n:,} item" + ("" if n == 1 else "s")


def regime_sentence(evidence: dict | None) -> str:
    """One sentence for `relabel round`, `relabel status` and the report: which regime, and why (``evidence``:
    an OverrideEvidence.as_dict(), as stored with the round; None for rounds scored before it was stored)."""
    if not evidence:
        return "Overrides: not recorded for this round."
    regime, reason = evidence.get("regime"), evidence.get("reason", "")
    majorities = evidence.get("majorities")
    # the annotation-only consensus's own verdict (relabel/scoring/majority_evidence.py), when it had one to make
    after = f" Majorities: {majorities['reason']}." if majorities and majorities.get("overturned") else ""
    if regime == EARNED:
        return f"Overrides earned: the model may change final labels; {reason}.{after}"
    if regime == NO_MODEL:
        return f"Overrides off: {reason}.{after}"
    return (f"Overrides off ({regime}): the model reorders the review queue but changes no final label; "
            f"{reason}.{after}")
