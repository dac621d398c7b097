"""Earned overrides (issue 20): the model changes a final label only when the run's own evidence says it beats
the annotators; otherwise the labels are the annotation-only consensus and the model only moves the queue."""
import numpy as np
import pytest

from relabel import consensus
from relabel.scoring.annotations import Annotations
from relabel.scoring.override_evidence import (EARNED, MIN_EVIDENCE_ITEMS, NOT_EARNED, TOO_LITTLE,
                                               override_evidence, wilson_interval)


def _project(seed, n_items=400, k=4, accuracies=(0.9, 0.7, 0.6), model_accuracy=0.97, per_item=3):
    """Simulated annotators of the given accuracies and an out-of-fold model of ``model_accuracy``."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n_items)
    items, annotators, labels = [], [], []
    for i in range(n_items):
        for j in rng.choice(len(accuracies), size=per_item, replace=False):
            items.append(i); annotators.append(f"a{j}")
            labels.append(truth[i] if rng.random() < accuracies[j] else (truth[i] + rng.integers(1, k)) % k)
    top = np.where(rng.random(n_items) < model_accuracy, truth, (truth + rng.integers(1, k, n_items)) % k)
    p = rng.dirichlet(np.ones(k), n_items) * 0.2
    p[np.arange(n_items), top] += 0.8
    return Annotations.from_records(items, annotators, labels, classes=list(range(k))), p, truth


def test_a_model_better_than_the_annotators_earns_overrides_and_they_pay():
    a, p, truth = _project(0)
    r = consensus(a, p)
    assert r.override_evidence.regime == EARNED, r.override_evidence.reason
    assert r.override_evidence.model_agreement > r.override_evidence.annotator_agreement
    np.testing.assert_array_equal(r.consensus_label, consensus(a, p, allow_overrides="model").consensus_label)
    vote = consensus(a)
    assert (r.consensus_label == truth).mean() >= (vote.consensus_label == truth).mean()


@pytest.mark.parametrize("seed", range(3))
def test_a_model_at_chance_leaves_the_annotation_only_consensus_unchanged(seed):
    a, p, _ = _project(seed)
    shuffled = p[np.random.default_rng(seed).permutation(a.n_items)]     # the texts shuffled: a model at chance
    r = consensus(a, shuffled)
    assert r.override_evidence.regime == NOT_EARNED and "agrees" in r.override_evidence.reason
    np.testing.assert_array_equal(r.consensus_label, consensus(a).consensus_label)
    assert not r.override.any()


@pytest.mark.parametrize("seed", range(3))
def test_earned_overrides_are_kept_until_the_model_is_shown_worse(seed):
    a, p, _ = _project(seed)
    rng = np.random.default_rng(seed)
    # A model that is right on some items and at chance on the rest: its gap to the annotators moves with the
    # share it knows. Wherever the interval straddles 0, an earlier round's grant is kept; a model shown worse
    # (the interval's upper end below 0) loses it whatever came before.
    for share in np.linspace(0.0, 1.0, 11):
        mixed = np.where(rng.random(a.n_items)[:, None] < share, p, p[rng.permutation(a.n_items)])
        fresh, kept = override_evidence(a, mixed), override_evidence(a, mixed, earned_before=True)
        gap = fresh.model_agreement - fresh.annotator_agreement
        upper = 2 * gap - fresh.difference_low
        if fresh.regime == EARNED:
            assert kept.regime == EARNED
        elif upper >= 0:
            assert fresh.regime == NOT_EARNED and kept.regime == EARNED and "earlier round" in kept.reason
        else:
            assert kept.regime == NOT_EARNED
    chance = override_evidence(a, p[rng.permutation(a.n_items)], earned_before=True)
    assert chance.regime == NOT_EARNED and 2 * (chance.model_agreement - chance.annotator_agreement) - chance.difference_low < 0


def test_one_annotator_on_six_items_keeps_the_annotators_labels_against_a_confident_wrong_model():
    labels = [0, 1, 2, 0, 1, 2]
    a = Annotations.from_records(list(range(6)), ["solo"] * 6, labels, classes=[0, 1, 2])
    p = np.full((6, 3), 0.01)
    p[np.arange(6), (np.array(labels) + 1) % 3] = 0.98                     # sure, and wrong every time
    r = consensus(a, p)
    assert r.override_evidence.regime == TOO_LITTLE and "0 items with two or more" in r.override_evidence.reason
    np.testing.assert_array_equal(r.consensus_label, labels)
    assert not r.override.any()
    assert (r.consensus_quality_score < 0.5).all()       # ... but the model's doubt still moves the review queue


def test_too_few_items_per_class_is_too_little_evidence():
    a, p, _ = _project(1, n_items=MIN_EVIDENCE_ITEMS + 5, k=10)
    ev = override_evidence(a, p)
    assert ev.regime == TOO_LITTLE and ev.items == MIN_EVIDENCE_ITEMS + 5 and "50 needed" in ev.reason


def test_reviewers_verdict_grants_overrides_but_does_not_take_them_away():
    a, p, truth = _project(2, per_item=1, n_items=300)                       # one label per item: no agreement test
    assert override_evidence(a, p).regime == TOO_LITTLE
    majority = a.vote_counts().argmax(axis=1)
    disagree = np.flatnonzero(p.argmax(axis=1) != majority)[:40]
    known = np.full(a.n_items, -1)
    known[disagree] = truth[disagree]                                         # a truthful reviewer: the model wins
    ev = override_evidence(a, p, known)
    assert ev.regime == EARNED and ev.reviewed_disagreements >= 10 and "sided with the model" in ev.reason
    known[disagree] = majority[disagree]                                      # reviewers side with the annotators
    ev = override_evidence(a, p, known)
    # the queue's hardest items alone do not take overrides away: here the agreement test cannot run (one label
    # per item), so there is too little evidence and no override
    assert ev.regime == TOO_LITTLE and ev.reviewers_sided_with_model == 0 and not ev.allowed


def test_wilson_interval_brackets_the_proportion():
    low, high = wilson_interval(8, 10)
    assert 0.5 < low < 0.8 < high < 1
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(0, 20)[0] == 0.0
