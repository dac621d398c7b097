"""Hypothesis properties of CROWDLAB and ActiveLab on the long annotation table."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from relabel.scoring.active import get_active_learning_scores
from relabel.scoring.annotations import Annotations
from relabel.scoring.consensus import crowdlab

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CLOSE = dict(rtol=1e-10, atol=1e-12)


@st.composite
def datasets(draw):
    """(item, annotator, label arrays, n_items, n_annotators, pred_probs) with some item labelled twice."""
    k = draw(st.integers(2, 5))
    n_items = draw(st.integers(2, 10))
    n_annotators = draw(st.integers(2, 5))
    rows = []
    for i in range(n_items):
        who = draw(st.lists(st.integers(0, n_annotators - 1), min_size=1, max_size=n_annotators, unique=True))
        rows += [(i, a, draw(st.integers(0, k - 1))) for a in who]
    item, annotator, label = (np.array(c, dtype=np.intp) for c in zip(*rows))
    assume(np.bincount(item).max() >= 2)
    weights = draw(st.lists(st.lists(st.floats(0.01, 1.0), min_size=k, max_size=k), min_size=n_items,
                            max_size=n_items))
    p = np.array(weights)
    p /= p.sum(axis=1, keepdims=True)
    return item, annotator, label, n_items, n_annotators, p


def _table(item, annotator, label, n_items, n_annotators, p, annotator_ids=None):
    ids = np.arange(n_annotators) if annotator_ids is None else annotator_ids
    return Annotations(item, annotator, label, np.arange(n_items), ids, tuple(range(p.shape[1])))


def _no_near_ties(result) -> bool:
    """No two top posterior classes within float noise: a permutation may then reorder sums and flip a tie."""
    top2 = np.sort(result.posterior, axis=1)[:, -2:]
    gap = top2[:, 1] - top2[:, 0]
    return bool(((gap == 0) | (gap > 1e-9)).all())


def _same_per_item(a, b):
    np.testing.assert_array_equal(a.consensus_label, b.consensus_label)
    np.testing.assert_allclose(a.posterior, b.posterior, **CLOSE)
    np.testing.assert_allclose(a.consensus_quality_score, b.consensus_quality_score, **CLOSE)
    np.testing.assert_allclose(a.annotator_agreement, b.annotator_agreement, **CLOSE)
    assert a.model_weight == np.float64(b.model_weight) or abs(a.model_weight - b.model_weight) < 1e-12


@SETTINGS
@given(datasets(), st.randoms(use_true_random=False))
def test_renaming_and_permuting_annotators_changes_nothing(data, random):
    item, annotator, label, n_items, n_annotators, p = data
    base = crowdlab(_table(*data), p)
    assume(_no_near_ties(base))
    permutation = np.array(random.sample(range(n_annotators), n_annotators))
    names = np.array([f"worker-{random.randrange(10**6)}-{j}" for j in range(n_annotators)])
    rows = np.array(random.sample(range(item.size), item.size))  # row order of the table too
    renamed = _table(item[rows], permutation[annotator[rows]], label[rows], n_items, n_annotators, p,
                     annotator_ids=names)
    other = crowdlab(renamed, p)
    _same_per_item(base, other)
    # Per-annotator outputs move with the annotators; per-annotation outputs with the rows.
    for field in ("annotator_quality", "agreement_with_consensus", "annotator_weight"):
        np.testing.assert_allclose(getattr(other, field)[permutation], getattr(base, field), **CLOSE)
    for field in ("worst_class", "num_examples_labeled"):
        np.testing.assert_array_equal(getattr(other, field)[permutation], getattr(base, field))
    np.testing.assert_allclose(other.annotation_quality, base.annotation_quality[rows], **CLOSE)


@SETTINGS
@given(datasets(), st.randoms(use_true_random=False))
def test_permuting_items_permutes_outputs(data, random):
    item, annotator, label, n_items, n_annotators, p = data
    base = crowdlab(_table(*data), p)
    assume(_no_near_ties(base))
    order = np.array(random.sample(range(n_items), n_items))  # new item j is old item order[j]
    new_index = np.empty_like(order)
    new_index[order] = np.arange(n_items)
    moved = crowdlab(_table(new_index[item], annotator, label, n_items, n_annotators, p[order]), p[order])
    np.testing.assert_array_equal(moved.consensus_label, base.consensus_label[order])
    np.testing.assert_allclose(moved.posterior, base.posterior[order], **CLOSE)
    np.testing.assert_allclose(moved.consensus_quality_score, base.consensus_quality_score[order], **CLOSE)
    np.testing.assert_allclose(moved.annotation_quality, base.annotation_quality, **CLOSE)
    np.testing.assert_allclose(moved.annotator_quality, base.annotator_quality, **CLOSE)


@SETTINGS
@given(datasets())
def test_unanimous_items_keep_their_label(data):
    item, annotator, label, n_items, n_annotators, p = data
    votes = _table(*data).vote_counts()
    n = votes.sum(axis=1)
    unanimous = np.flatnonzero(votes.max(axis=1) == n)
    their_label = votes.argmax(axis=1)
    # Majority vote: always.
    majority = crowdlab(_table(*data), p, consensus_method="majority_vote")
    np.testing.assert_array_equal(majority.consensus_label[unanimous], their_label[unanimous])
    # CROWDLAB: whenever the model's top class is the annotators' label and annotators agree with the
    # consensus more often than chance (so a vote adds evidence for its class rather than against it).
    best = crowdlab(_table(*data), p)
    multi = n >= 2
    if majority.annotator_agreement[multi].mean() > 1 / p.shape[1]:  # P_agree of the first posterior
        backed = unanimous[p[unanimous].argmax(axis=1) == their_label[unanimous]]
        np.testing.assert_array_equal(best.consensus_label[backed], their_label[backed])


@SETTINGS
@given(datasets(), st.sampled_from(["crowdlab", "agreement"]), st.booleans(),
       st.sampled_from([{}, {"method": "normalized_margin"}, {"method": "confidence_weighted_entropy"},
                        {"adjust_pred_probs": True}]))
def test_posteriors_are_distributions_and_scores_lie_in_0_1(data, quality_method, calibrate, kwargs):
    p = data[-1]
    result = crowdlab(_table(*data), p, quality_method=quality_method, calibrate_probs=calibrate,
                      label_quality_score_kwargs=kwargs)
    np.testing.assert_allclose(result.posterior.sum(axis=1), 1.0, atol=1e-12)
    assert (result.posterior >= 0).all() and (result.posterior <= 1 + 1e-12).all()
    labelled = result.num_examples_labeled > 0  # annotator ids without labels get NaN statistics
    assert np.isnan(result.agreement_with_consensus[~labelled]).all()
    for scores in (result.consensus_quality_score, result.annotation_quality, result.annotator_agreement,
                   result.agreement_with_consensus[labelled]):
        assert ((scores >= -1e-12) & (scores <= 1 + 1e-12)).all()
    quality = result.annotator_quality[~np.isnan(result.annotator_quality)]
    assert ((quality >= -1e-12) & (quality <= 1 + 1e-12)).all()
    if quality_method == "crowdlab":
        assert result.model_weight > 0 and (result.annotator_weight[labelled] > 0).all()


@SETTINGS
@given(datasets(), st.integers(0, 6))
def test_active_learning_scores_lie_in_0_1(data, n_unlabeled):
    p = data[-1]
    unlabeled = np.full((n_unlabeled, p.shape[1]), 1.0 / p.shape[1]) if n_unlabeled else None
    scores, scores_unlabeled = get_active_learning_scores(_table(*data), p, unlabeled)
    assert scores.shape == (data[3],) and ((scores >= 0) & (scores <= 1)).all()
    assert scores_unlabeled.shape == (n_unlabeled,) and ((scores_unlabeled >= 0) & (scores_unlabeled <= 1)).all()


@SETTINGS
@given(datasets(), st.randoms(use_true_random=False))
def test_dense_and_long_format_inputs_are_identical(data, random):
    item, annotator, label, n_items, n_annotators, p = data
    dense = np.full((n_items, n_annotators), np.nan)
    dense[item, annotator] = label
    # Long format as a labeling tool would export it: string ids, any row order, class names; items and
    # annotators then come in first-appearance order, mapped back to the dense order below.
    rows = np.array(random.sample(range(item.size), item.size))
    classes = [f"class{c}" for c in range(p.shape[1])]
    long = Annotations.from_records([f"item{i}" for i in item[rows]], [f"ann{a}" for a in annotator[rows]],
                                    [f"class{c}" for c in label[rows]], classes=classes)
    item_order = np.array([int(s[4:]) for s in long.item_ids])
    annotator_order = np.array([int(s[3:]) for s in long.annotator_ids])
    assume(len(annotator_order) == n_annotators)
    from_long = crowdlab(long, p[item_order])
    from_dense = crowdlab(dense, p)
    from_table = crowdlab(Annotations.from_dense(dense, n_classes=p.shape[1]), p)
    np.testing.assert_array_equal(from_dense.consensus_label, from_table.consensus_label)
    np.testing.assert_array_equal(from_dense.posterior, from_table.posterior)
    np.testing.assert_array_equal(from_long.consensus_label, from_dense.consensus_label[item_order])
    np.testing.assert_allclose(from_long.posterior, from_dense.posterior[item_order], **CLOSE)
    np.testing.assert_allclose(from_long.consensus_quality_score, from_dense.consensus_quality_score[item_order],
                               **CLOSE)
    np.testing.assert_allclose(from_long.annotator_quality, from_dense.annotator_quality[annotator_order], **CLOSE)
    np.testing.assert_array_equal(from_long.worst_class, from_dense.worst_class[annotator_order])
