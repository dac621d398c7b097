"""Have the annotators' fitted reliabilities earned the right to overturn an item's majority? Held-out evidence.

Dawid-Skene weighs each annotator by a confusion matrix estimated from the run, so it can label an item against
its strict plurality of votes (3 votes against 2, or 2 against 1) when it believes the minority more reliable.
On a large project that pays (all of trec_rf10: +4.2 points of accuracy over a majority vote, labelme +2.5,
benchmarks/quality.py). On a small one the matrices are estimated from a handful of labels each, and overturning
majorities on that evidence made labels *worse* than a majority vote: random 20- and 50-item subsets of trec_rf10 lost 2.8 and 2.6 points, of Snow's wsd
2.3 and 0.7 (benchmarks/majority_guard.py). relabel promises final labels never less accurate than a majority
vote, so the annotation-only consensus overturns majorities only when the run's own data say it is better at it.

**The test.** For every unreviewed item with three or more annotations, one of its annotations (chosen at random,
seeded) is held out; the EM is refitted on the rest (its pooling strength fixed at the run's) and both labellings
of the rest, the EM's and the majority vote (a tie counts each tied class by its share), are compared with the
held-out annotation. An annotation agrees more often with a more accurate labelling whenever annotators beat
chance, so the labelling that agrees more often with annotations it did not see is the more accurate one; the
held-out annotator is one of the item's own, so no ground truth is needed. ``SPLITS`` such splits are made; per
item the differences (EM right minus majority right) are summed, and the items where the sum is not zero are the
units of a one-sided sign test: the EM has earned its overturns when it wins significantly more of them
(p <= ``SIGNIFICANCE``). Otherwise every unreviewed item with a strict plurality keeps it, and the EM only
breaks ties (among the tied classes) and orders the queue through its quality score.

A run where the EM overturns no strict plurality has nothing to earn and is not tested (no extra fit).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from relabel.scoring.annotations import Annotations
from relabel.scoring.canonical_order import canonical

# Held-out splits: each holds out one annotation of every item with three or more. One split leaves the verdict
# to the luck of which annotation was held out; three cost three EM fits at a fixed pooling strength (the run's
# own fit searches about ten) and let an item's sum reach +-3, so one unlucky draw does not decide its sign.
SPLITS = 3
# One-sided level of the sign test, the same 5% as the model's override test (relabel.scoring.override_evidence).
SIGNIFICANCE = 0.05
# Items need this many annotations to hold one out and still have a majority of two or more to compare with.
MIN_ANNOTATIONS = 3

EARNED = "earned"
NOT_EARNED = "not earned"
NOTHING_TO_EARN = "nothing to earn"


@dataclass(frozen=True)
class MajorityEvidence:
    """Whether the annotation-only consensus may overturn strict pluralities, and why (``reason``: one clause)."""

    regime: str
    reason: str
    items: int = 0              # items with MIN_ANNOTATIONS or more unreviewed annotations (the test's pool)
    wins: int = 0               # items where the EM's labels agreed more often with the held-out annotations
    losses: int = 0             # ... where the majority vote did
    p_value: float | None = None
    overturned: int = 0         # strict pluralities the EM's labels overturn in the whole run

    @property
    def allowed(self) -> bool:
        return self.regime != NOT_EARNED

    def as_dict(self) -> dict:
        return {**asdict(self), "allowed": self.allowed}


def strict_plurality(votes: np.ndarray) -> np.ndarray:
    """Per item, whether one class has more votes than every other."""
    return (votes == votes.max(axis=1, keepdims=True)).sum(axis=1) == 1


def majority_evidence(annotations: Annotations, labels: np.ndarray, known_labels: np.ndarray | None,
                      refit: Callable[[Annotations, np.ndarray | None], np.ndarray], *, splits: int = SPLITS,
                      seed: int = 0) -> MajorityEvidence:
    """The module docstring's verdict. ``labels``: the EM's final labels on the whole run; ``refit(rest, known)``:
    the EM's labels for every item when fitted on the annotations ``rest`` (the same items, fewer annotations)
    with reviewers' decisions ``known``. Run on the canonical table (relabel.scoring.canonical_order), so the
    held-out draws, and the verdict, do not depend on row order or annotator names."""
    from scipy.stats import binomtest

    a = annotations
    found = canonical(a)
    if found is not None:
        a, item_order, _ = found
        labels = np.asarray(labels)[item_order]
        known_labels = None if known_labels is None else np.asarray(known_labels)[item_order]
    votes = a.vote_counts()
    unreviewed = np.ones(a.n_items, bool) if known_labels is None else np.asarray(known_labels) < 0
    overturned = int((unreviewed & strict_plurality(votes) & (labels != votes.argmax(axis=1))).sum())
    if overturned == 0:
        return MajorityEvidence(NOTHING_TO_EARN, "the annotators' consensus keeps every item's majority")
    counts = a.num_annotations()
    pool = np.flatnonzero(unreviewed & (counts >= MIN_ANNOTATIONS))
    if pool.size:
        order = np.argsort(a.item, kind="stable")            # annotations grouped by item
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        rng = np.random.default_rng(seed)
        total = np.zeros(pool.size)
        for _ in range(splits):
            held = order[starts[pool] + (rng.random(pool.size) * counts[pool]).astype(np.intp)]
            keep = np.ones(len(a), bool)
            keep[held] = False
            rest = a.select(keep)
            truth_proxy = a.label[held]                     # held[i] belongs to item pool[i] (order is by item)
            em_right = refit(rest, known_labels)[pool] == truth_proxy
            rest_votes = rest.vote_counts()[pool]
            tied = rest_votes == rest_votes.max(axis=1, keepdims=True)
            majority_right = tied[np.arange(pool.size), truth_proxy] / tied.sum(axis=1)
            total += em_right - majority_right
        wins, losses = int((total > 1e-9).sum()), int((total < -1e-9).sum())
    else:
        wins = losses = 0
    p = float(binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue) if wins + losses else 1.0
    figures = dict(items=int(pool.size), wins=wins, losses=losses, p_value=p, overturned=overturned)
    said = (f"on {pool.size:,} items with {MIN_ANNOTATIONS}+ annotations, held-out annotations sided with the "
            f"fitted annotator weights on {wins} and with the majority vote on {losses} (sign test p = {p:.2g})")
    if p <= SIGNIFICANCE:
        return MajorityEvidence(EARNED, f"the annotators' consensus may overturn majorities: {said}", **figures)
    return MajorityEvidence(NOT_EARNED, f"every item keeps its majority ({overturned:,} would have been overturned "
                                        f"by fitted annotator weights not shown better: {said})", **figures)


def keep_majorities(votes: np.ndarray, posterior: np.ndarray, unreviewed: np.ndarray) -> np.ndarray:
    """Label scores (items x classes; only their argmax is read) whose argmax is each unreviewed item's strict
    plurality, or on a tie the posterior's most probable tied class; reviewed items keep ``posterior``."""
    scores = np.where(votes == votes.max(axis=1, keepdims=True), 1.0 + posterior, 0.0)   # tied classes first
    strict = np.flatnonzero(strict_plurality(votes))
    scores[strict] = 0.0
    scores[strict, votes[strict].argmax(axis=1)] = 1.0
    return np.where(unreviewed[:, None], scores, posterior)
