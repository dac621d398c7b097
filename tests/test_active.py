"""relabel.scoring.active: ActiveLab scores by hand, against CROWDLAB's own outputs, and bad input."""
from __future__ import annotations

import numpy as np
import pytest

from relabel.scoring.active import get_active_learning_scores
from relabel.scoring.annotations import Annotations
from relabel.scoring.consensus import crowdlab, temperature_scale
from relabel.errors import AnnotationError, PredProbsError, RelabelError

from multiannotator_cases import random_case

NAN = np.nan


def test_single_label_case_by_hand():
    """One label per item: no temperature, w_M = w_j = 1, so score = (q * 2 + 1/K) / 3 with q = p[label]."""
    labels = np.array([[0, NAN], [NAN, 1], [2, NAN]])
    p = np.array([[0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.1, 0.1, 0.8]])
    p_unlabeled = np.array([[0.2, 0.3, 0.5]])
    scores, scores_unlabeled = get_active_learning_scores(labels, p, p_unlabeled)
    q = np.array([0.6, 0.4, 0.8])
    np.testing.assert_allclose(scores, (q * 2 + 1 / 3) / 3)
    # Unlabelled: (w_M * max p + w_bar / K) / (w_M + w_bar) with both weights 1 and T = 1.
    np.testing.assert_allclose(scores_unlabeled, [(0.5 + 1 / 3) / 2])


def test_unlabeled_only():
    p_unlabeled = np.array([[0.9, 0.1], [0.5, 0.5]])
    scores, scores_unlabeled = get_active_learning_scores(pred_probs_unlabeled=p_unlabeled)
    assert scores.shape == (0,)
    np.testing.assert_allclose(scores_unlabeled, [(0.9 + 0.5) / 2, (0.5 + 0.5) / 2])


@pytest.mark.parametrize("seed", range(5))
def test_labeled_scores_follow_from_calibrated_crowdlab(seed):
    """ALGORITHMS 3 spelled out with crowdlab(calibrate_probs=True)'s own quality and weights."""
    labels, p = random_case(seed, tied_probs=False)
    table = Annotations.from_dense(labels, n_classes=p.shape[1])
    result = crowdlab(table, p, calibrate_probs=True)
    p_unlabeled = np.random.default_rng(seed).dirichlet(np.ones(p.shape[1]), 7)
    scores, scores_unlabeled = get_active_learning_scores(table, p, p_unlabeled)
    k = p.shape[1]
    mean_weight = result.annotator_weight.mean()
    trust = np.bincount(table.item, weights=result.annotator_weight[table.annotator]) + result.model_weight
    expected = (result.consensus_quality_score * trust + mean_weight / k) / (trust + mean_weight)
    np.testing.assert_allclose(scores, expected, rtol=1e-12)
    confidence = temperature_scale(p_unlabeled, result.temperature).max(axis=1)
    expected_unlabeled = (result.model_weight * confidence + mean_weight / k) / (result.model_weight + mean_weight)
    np.testing.assert_allclose(scores_unlabeled, expected_unlabeled, rtol=1e-12)


def test_disputed_items_score_below_agreed_ones():
    """Same model confidence; the item the annotators split on is the one to relabel first."""
    labels = np.array([[0, 0, 0], [0, 1, NAN], [1, 1, 1], [1, 0, NAN], [0, 0, NAN], [1, 1, NAN]])
    p = np.array([[0.7, 0.3]] * 2 + [[0.3, 0.7]] * 2 + [[0.7, 0.3], [0.3, 0.7]])
    scores, _ = get_active_learning_scores(labels, p)
    assert scores[1] < scores[0] and scores[1] < scores[4]
    assert scores[3] < scores[2] and scores[3] < scores[5]


def test_long_and_dense_forms_agree():
    labels, p = random_case(7, tied_probs=False)
    table = Annotations.from_dense(labels, n_classes=p.shape[1])
    shuffled = table.select(np.random.default_rng(0).permutation(len(table)))
    np.testing.assert_allclose(get_active_learning_scores(shuffled, p)[0], get_active_learning_scores(labels, p)[0],
                               rtol=1e-12)


def _raises(error, match, *args, **kwargs):
    with pytest.raises(error, match=match) as info:
        get_active_learning_scores(*args, **kwargs)
    assert isinstance(info.value, RelabelError)


def test_bad_input():
    p = np.array([[0.6, 0.4], [0.3, 0.7]])
    labels = np.array([[0, 1], [1, NAN]])
    _raises(PredProbsError, "both are None")
    _raises(PredProbsError, "without pred_probs", labels, None, p)
    _raises(AnnotationError, "without labels_multiannotator", None, p)
    _raises(PredProbsError, r"pred_probs_unlabeled has 3 columns but there are 2 classes", labels, p,
            np.full((2, 3), 1 / 3))
    _raises(PredProbsError, r"rows 1 do not sum to 1", labels, np.array([[0.6, 0.4], [0.6, 0.6]]))
    _raises(AnnotationError, r"Items 1 have no label", np.array([[0, 1], [NAN, NAN]]), p)
    _raises(AnnotationError, r"Annotators 1 did not label", np.array([[0, NAN], [1, NAN]]), p)
