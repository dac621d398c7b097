"""The annotation-only consensus overturns an item's majority only where held-out annotations say the fitted
annotator weights earned it (relabel.scoring.majority_evidence)."""
import numpy as np

from relabel import consensus
from relabel.scoring.annotations import Annotations
from relabel.scoring.majority_evidence import EARNED, NOT_EARNED, NOTHING_TO_EARN, keep_majorities
from relabel.scoring.override_evidence import regime_sentence

# Two careful annotators and three at 40% on three classes (chance is 33%): every item labelled by all five.
ACCURACY = (0.95, 0.95, 0.4, 0.4, 0.4)


def _crowd(seed: int, n_items: int, k: int = 3):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n_items)
    items, annotators, labels = [], [], []
    for i in range(n_items):
        for j, accuracy in enumerate(ACCURACY):
            items.append(f"item{i}")
            annotators.append(f"a{j}")
            labels.append(truth[i] if rng.random() < accuracy else (truth[i] + rng.integers(1, k)) % k)
    return Annotations.from_records(items, annotators, labels, classes=list(range(k))), truth


def _strict_plurality(a: Annotations):
    votes = a.vote_counts()
    strict = (votes == votes.max(axis=1, keepdims=True)).sum(axis=1) == 1
    return strict, votes.argmax(axis=1)


def test_a_small_project_keeps_its_majorities():
    a, _ = _crowd(seed=0, n_items=15)
    unguarded = consensus(a, allow_overrides="never").consensus_label   # the fitted weights, free to overturn
    result = consensus(a)
    strict, plurality = _strict_plurality(a)
    evidence = result.majority_evidence
    assert (unguarded[strict] != plurality[strict]).sum() == evidence.overturned == 2
    assert evidence.regime == NOT_EARNED and not evidence.allowed
    assert evidence.items == 15 and evidence.p_value > 0.05
    np.testing.assert_array_equal(result.consensus_label[strict], plurality[strict])
    # ties are still broken by the fitted weights, among the tied classes only
    votes = a.vote_counts()
    tied = ~strict
    assert (votes[tied, result.consensus_label[tied]] == votes[tied].max(axis=1)).all()


def test_a_large_project_earns_its_overturns_and_beats_the_majority_vote():
    a, truth = _crowd(seed=0, n_items=300)
    result = consensus(a)
    evidence = result.majority_evidence
    assert evidence.regime == EARNED and evidence.wins > evidence.losses and evidence.p_value < 1e-6
    assert evidence.overturned > 0
    majority = a.vote_counts().argmax(axis=1)
    assert (result.consensus_label == truth).mean() > (majority == truth).mean() + 0.05
    np.testing.assert_array_equal(result.consensus_label, consensus(a, allow_overrides="never").consensus_label)


def test_nothing_to_earn_costs_no_refit(monkeypatch):
    from relabel.scoring import consensus_em

    a = Annotations.from_records(["i1", "i1", "i1", "i2", "i2", "i2"], ["x", "y", "z", "x", "y", "z"],
                                 [0, 0, 1, 1, 1, 1], classes=[0, 1])
    calls = []
    monkeypatch.setattr(consensus_em, "annotation_only_posterior", lambda *a, **k: calls.append(1))
    result = consensus(a)
    assert result.majority_evidence.regime == NOTHING_TO_EARN and calls == []
    assert result.consensus_label.tolist() == [0, 1]


def test_the_verdict_does_not_depend_on_row_order_or_names():
    a, _ = _crowd(seed=4, n_items=15)
    rows = np.random.default_rng(1).permutation(len(a))
    renamed = np.array([f"r{9 - j}" for j in range(a.n_annotators)])[a.annotator]
    b = Annotations.from_records(a.item_ids[a.item][rows], renamed[rows], a.label[rows], classes=a.classes)
    ra, rb = consensus(a), consensus(b)
    assert ra.majority_evidence == rb.majority_evidence
    in_b = np.array([list(b.item_ids).index(i) for i in a.item_ids])
    np.testing.assert_array_equal(ra.consensus_label, rb.consensus_label[in_b])


def test_reviewed_items_keep_the_reviewers_label():
    a, _ = _crowd(seed=0, n_items=15)
    strict, plurality = _strict_plurality(a)
    item = int(np.flatnonzero(strict)[0])
    known = np.full(a.n_items, -1)
    known[item] = (plurality[item] + 1) % 3          # a reviewer overrules the item's majority
    result = consensus(a, known_labels=known)
    assert result.consensus_label[item] == known[item]


def test_keep_majorities_scores():
    votes = np.array([[2, 1, 0], [1, 1, 0], [0, 0, 3]])
    posterior = np.array([[0.1, 0.9, 0.0], [0.2, 0.1, 0.7], [0.5, 0.5, 0.0]])
    scores = keep_majorities(votes, posterior, np.array([True, True, False]))
    assert scores[0].argmax() == 0          # the strict plurality, whatever the posterior
    assert scores[1].argmax() == 0          # a tie: the posterior's best tied class, not its overall best (2)
    np.testing.assert_array_equal(scores[2], posterior[2])    # reviewed: untouched


def test_the_round_sentence_says_why_majorities_were_kept():
    a, _ = _crowd(seed=0, n_items=15)
    stored = {**consensus(a).override_evidence.as_dict(), "majorities": consensus(a).majority_evidence.as_dict()}
    sentence = regime_sentence(stored)
    assert "Majorities: every item keeps its majority (2 would have been overturned" in sentence, sentence
