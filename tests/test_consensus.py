"""relabel.scoring.consensus: a hand-checked toy set, behaviour of the sparse entry point, and bad input."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from relabel.scoring.active import get_active_learning_scores
from relabel.scoring.annotations import Annotations
from relabel.scoring.consensus import (
    CLIP_FLOOR,
    TEMPERATURE_GRID,
    crowdlab,
    find_best_temperature,
    get_label_quality_multiannotator,
    get_majority_vote_label,
    temperature_scale,
)
from relabel.results import ConsensusResult
from relabel.errors import AnnotationError, ConfigError, LabelError, PredProbsError, RelabelError

NAN = np.nan

# Three annotators A, B, C; six items; three classes (hand-worked in test_toy_set_by_hand).
TOY = np.array([
    [0, 0, 0],
    [1, 1, 1],
    [2, 2, 0],
    [0, 0, 1],
    [1, 1, NAN],
    [NAN, NAN, 2],
])
TOY_P = np.array([
    [0.7, 0.2, 0.1],
    [0.1, 0.8, 0.1],
    [0.2, 0.2, 0.6],
    [0.3, 0.6, 0.1],   # the model disagrees with the 2-1 vote for class 0
    [0.1, 0.5, 0.4],
    [0.2, 0.3, 0.5],
])


def _toy_frame():
    return pd.DataFrame(TOY, columns=["A", "B", "C"], index=[f"t{i}" for i in range(6)])


def test_toy_set_by_hand():
    """Every number below was worked out on paper from ALGORITHMS 2.2."""
    result = crowdlab(Annotations.from_dense(TOY), TOY_P, consensus_method="majority_vote")
    np.testing.assert_array_equal(result.consensus_label, [0, 1, 2, 0, 1, 2])
    np.testing.assert_allclose(result.annotator_agreement, [1, 1, 2 / 3, 2 / 3, 1, 1])
    np.testing.assert_array_equal(result.num_annotations, [3, 3, 3, 3, 2, 1])
    # P_agree = mean agreement over items with >= 2 labels = 13/15; P_other = (1 - 13/15) / 2 = 1/15.
    p_agree, p_other = 13 / 15, 1 / 15
    # Most common consensus class on those items is 0 (tied with 1, smallest wins): baseline error 3/5.
    # alpha_A = alpha_B = (2 + 2 + 1 + 1 + 1) / (2 + 2 + 2 + 2 + 1) = 7/9; alpha_C = (2 + 2 + 0 + 0) / 8 = 1/2.
    # w = 1 - (1 - alpha) / 0.6  ->  17/27, 17/27, 1/6.
    w = np.array([17 / 27, 17 / 27, 1 / 6])
    np.testing.assert_allclose(result.annotator_weight, w)
    # The model is wrong on item 3 only (1 of 5): w_M = (1 - 0.2 / 0.6) * sqrt(15 / 6).
    w_model = (2 / 3) * math.sqrt(2.5)
    assert result.model_weight == pytest.approx(w_model)
    # Posterior of item 3 (A=0, B=0, C=1).
    votes_weight = np.array([w[0] + w[1], w[2], 0.0])
    total = w.sum()
    expected = (w_model * TOY_P[3] + p_other * total + (p_agree - p_other) * votes_weight) / (w_model + total)
    np.testing.assert_allclose(result.posterior[3], expected)
    assert result.consensus_quality_score[3] == pytest.approx(expected[0])
    # Annotator statistics: C agrees with the consensus on 3 of its 5 labels; A and B on all 5.
    np.testing.assert_allclose(result.agreement_with_consensus, [1, 1, 3 / 5])
    np.testing.assert_array_equal(result.num_examples_labeled, [5, 5, 5])
    # C's labels: class 0 twice (once right), class 1 twice (once right), class 2 once (right) -> ties on
    # accuracy 1/2 and on count 2; the higher mean consensus quality of its class-0 vs class-1 items decides.
    q = result.consensus_quality_score
    assert result.worst_class[2] == (0 if (q[0] + q[2]) / 2 > (q[1] + q[3]) / 2 else 1)


def test_toy_set_best_quality_follows_the_posterior():
    result = crowdlab(Annotations.from_dense(TOY), TOY_P)
    majority = crowdlab(Annotations.from_dense(TOY), TOY_P, consensus_method="majority_vote")
    np.testing.assert_array_equal(result.consensus_label, majority.posterior.argmax(axis=1))
    np.testing.assert_allclose(result.posterior.sum(axis=1), 1.0)


def test_result_is_a_frozen_dataclass_of_arrays():
    result = crowdlab(Annotations.from_dense(TOY), TOY_P)
    assert isinstance(result, ConsensusResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.model_weight = 0.0
    assert result.posterior.shape == (6, 3) and result.annotation_quality.shape == (15,)
    assert result.annotator_quality.shape == (3,) and isinstance(result.model_weight, float)


def test_annotation_quality_follows_the_callers_row_order():
    table = Annotations.from_dense(TOY)
    shuffled = table.select(np.random.default_rng(0).permutation(len(table)))
    ours = crowdlab(shuffled, TOY_P)
    sorted_result = crowdlab(table, TOY_P)
    lookup = {(i, a): q for i, a, q in zip(table.item, table.annotator, sorted_result.annotation_quality)}
    assert [lookup[(i, a)] for i, a in zip(shuffled.item, shuffled.annotator)] == list(ours.annotation_quality)


def test_annotator_ids_without_labels_in_long_form_are_ignored():
    """An annotator id with no annotations (e.g. left over after select) changes nothing, gets empty stats."""
    table = Annotations.from_records(["x", "x", "y", "y", "z", "z"], ["ann", "bob", "ann", "bob", "ann", "bob"],
                                     [0, 0, 1, 0, 1, 1], classes=["no", "yes"])
    p = np.array([[0.8, 0.2], [0.4, 0.6], [0.3, 0.7]])
    with_idle = Annotations(table.item, table.annotator, table.label, table.item_ids,
                            np.array(["ann", "bob", "cat"]), table.classes)
    ours = crowdlab(with_idle, p)
    reference = crowdlab(table, p)
    np.testing.assert_array_equal(ours.consensus_label, reference.consensus_label)
    np.testing.assert_allclose(ours.posterior, reference.posterior)
    np.testing.assert_allclose(ours.annotator_quality[:2], reference.annotator_quality)
    np.testing.assert_allclose(ours.annotator_weight[:2], reference.annotator_weight)
    assert np.isnan(ours.annotator_quality[2]) and np.isnan(ours.annotator_weight[2])
    assert ours.worst_class[2] == -1 and ours.num_examples_labeled[2] == 0


def test_majority_vote_tie_breaks_in_order():
    # Item 0: 1-1 tie, the model prefers class 1.  Item 1: 1-1 tie, flat model; class totals decide (class 2
    # has fewer votes overall than class 0).  Item 2: unique majority.
    labels = np.array([[0, 1, NAN], [0, 2, NAN], [0, 0, 1], [0, NAN, 0]])
    p = np.array([[0.4, 0.6, 0.0], [0.5, 0.0, 0.5], [0.3, 0.3, 0.4], [0.5, 0.3, 0.2]])
    np.testing.assert_array_equal(get_majority_vote_label(labels, p), [1, 2, 0, 0])
    # Without a model, item 0 ties on class totals too (0 has 5 votes, 1 has 2): the rarer class 1 wins.
    np.testing.assert_array_equal(get_majority_vote_label(labels)[:2], [1, 2])


def test_majority_vote_last_tie_break_is_the_smallest_class():
    labels = np.array([[0, 1], [1, 0], [0, 0], [1, 1]], dtype=float)  # equal totals, equally credible voters
    np.testing.assert_array_equal(get_majority_vote_label(labels), [0, 0, 0, 1])


def test_agreement_quality_uses_correct_vote_fractions():
    result = crowdlab(Annotations.from_dense(TOY), TOY_P, quality_method="agreement")
    np.testing.assert_allclose(result.posterior[2], [1 / 3, 0, 2 / 3])
    np.testing.assert_allclose(result.consensus_quality_score, result.annotator_agreement)
    assert math.isnan(result.model_weight) and np.isnan(result.annotator_weight).all()


def test_wrapper_keeps_dataframe_ids_and_cleanlab_columns():
    out = get_label_quality_multiannotator(_toy_frame(), TOY_P, return_weights=True)
    assert list(out) == ["label_quality", "detailed_label_quality", "annotator_stats", "model_weight",
                         "annotator_weight"]
    assert list(out["label_quality"].columns) == ["consensus_label", "consensus_quality_score",
                                                  "annotator_agreement", "num_annotations"]
    assert list(out["label_quality"].index) == [f"t{i}" for i in range(6)]
    assert list(out["detailed_label_quality"].columns) == ["quality_annotator_A", "quality_annotator_B",
                                                           "quality_annotator_C"]
    assert out["detailed_label_quality"].isna().to_numpy().sum() == 3
    stats = out["annotator_stats"]
    assert set(stats.index) == {"A", "B", "C"}
    assert stats["annotator_quality"].is_monotonic_increasing
    assert stats.dtypes.to_dict() == {"annotator_quality": np.float64, "agreement_with_consensus": np.float64,
                                      "worst_class": np.int64, "num_examples_labeled": np.int64}


def test_wrapper_consensus_method_list_adds_suffixed_columns():
    out = get_label_quality_multiannotator(TOY, TOY_P, consensus_method=["best_quality", "majority_vote"])
    assert list(out["label_quality"].columns)[4:] == ["consensus_label_majority_vote",
                                                      "consensus_quality_score_majority_vote",
                                                      "annotator_agreement_majority_vote"]


def test_calibration_records_the_temperature_and_changes_pred_probs():
    result = crowdlab(Annotations.from_dense(TOY), TOY_P, calibrate_probs=True)
    temperature = find_best_temperature(TOY, TOY_P)
    assert result.temperature == temperature
    assert min(TEMPERATURE_GRID) <= temperature <= max(TEMPERATURE_GRID)


def test_temperature_scale():
    p = np.array([[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]])
    np.testing.assert_allclose(temperature_scale(p, 1.0), p)
    sharper = temperature_scale(p, 0.5)
    np.testing.assert_allclose(sharper, p ** 2 / (p ** 2).sum(axis=1, keepdims=True))
    assert (temperature_scale(p, 3.0).max(axis=1) < p.max(axis=1)).all()
    with pytest.raises(ConfigError, match="positive"):
        temperature_scale(p, 0)


def test_float32_pred_probs_are_accepted():
    ours = crowdlab(Annotations.from_dense(TOY), TOY_P.astype(np.float32))
    reference = crowdlab(Annotations.from_dense(TOY), TOY_P.astype(np.float32).astype(np.float64))
    np.testing.assert_array_equal(ours.consensus_label, reference.consensus_label)
    np.testing.assert_allclose(ours.posterior, reference.posterior)


def test_weights_are_floored_not_negative():
    # Annotators who never agree: their agreement rate is 0, far below the baseline -> weight at the floor.
    labels = np.array([[0, 1], [1, 0], [0, 1], [1, 0]], dtype=float)
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    result = crowdlab(Annotations.from_dense(labels), p)
    np.testing.assert_allclose(result.annotator_weight, CLIP_FLOOR)


# ---- bad input: every case raises a relabel.errors exception naming the offender ---------------------------
def _raises(error, match, call, *args, **kwargs):
    with pytest.raises(error, match=match) as info:
        call(*args, **kwargs)
    assert isinstance(info.value, RelabelError)
    return str(info.value)


def test_nan_pred_probs():
    p = TOY_P.copy()
    p[4, 1] = np.nan
    _raises(PredProbsError, r"NaN.*rows 4", crowdlab, TOY, p)


def test_negative_pred_probs():
    p = TOY_P.copy()
    p[2] = [-0.2, 0.6, 0.6]
    _raises(PredProbsError, r"outside \[0, 1\] in rows 2", crowdlab, TOY, p)


def test_pred_probs_rows_not_summing_to_one():
    p = TOY_P.copy()
    p[5] = [0.5, 0.5, 0.5]
    _raises(PredProbsError, r"rows 5 do not sum to 1", crowdlab, TOY, p)


def test_pred_probs_with_the_wrong_number_of_rows():
    _raises(PredProbsError, r"5 rows but the annotations cover 6 items", crowdlab, TOY, TOY_P[:5])


def test_labels_outside_the_classes_of_pred_probs():
    labels = TOY.copy()
    labels[3, 2] = 4
    message = _raises(LabelError, r"outside the 3 classes", crowdlab, labels, TOY_P)
    assert "item 3 by annotator 2: 4" in message
    frame = _toy_frame()
    frame.loc["t1", "B"] = 7
    assert "item 't1' by annotator 'B'" in _raises(LabelError, "outside", crowdlab, frame, TOY_P)


def test_labels_not_integers():
    labels = TOY.copy()
    labels[0, 0] = 0.5
    _raises(LabelError, r"item 0, annotator 0: 0.5", crowdlab, labels, TOY_P)
    _raises(LabelError, r"integer class indices", crowdlab, np.array([["a", "b"], ["b", "b"]]), TOY_P[:2])


def test_items_with_no_label_are_named():
    frame = _toy_frame()
    frame.loc["t4"] = NAN
    _raises(AnnotationError, r"Items 't4' have no label", crowdlab, frame, TOY_P)


def test_annotators_with_no_label_in_the_dense_form_are_named():
    frame = _toy_frame()
    frame["D"] = NAN
    _raises(AnnotationError, r"Annotators 'D' did not label any item", crowdlab, frame, TOY_P)


def test_fewer_than_two_annotators():
    _raises(AnnotationError, r"at least two annotators but got 1", crowdlab, TOY[:5, :1], TOY_P[:5])


def test_every_item_labelled_once_is_refused_by_crowdlab_but_not_by_activelab():
    labels = np.array([[0, NAN], [NAN, 1], [2, NAN]])
    _raises(AnnotationError, r"exactly one label", crowdlab, labels, TOY_P[:3])
    _raises(AnnotationError, r"exactly one label", get_label_quality_multiannotator, labels, TOY_P[:3])
    scores, _ = get_active_learning_scores(labels, TOY_P[:3])
    assert scores.shape == (3,)


def test_duplicate_annotations_in_long_form():
    table = Annotations.from_records(["x", "x", "x", "y", "y"], ["ann", "bob", "ann", "ann", "bob"], [0, 1, 1, 0, 0])
    _raises(AnnotationError, r"'ann' on item 'x'", crowdlab, table, TOY_P[:2, :2] / TOY_P[:2, :2].sum(1, keepdims=True))


def test_annotations_with_more_classes_than_pred_probs():
    table = Annotations.from_records(["x", "x", "y", "y"], ["a", "b", "a", "b"], ["cat", "dog", "cow", "cat"],
                                     classes=["cat", "dog", "cow"])
    _raises(LabelError, r"3 classes but pred_probs has 2 columns", crowdlab, table, np.full((2, 2), 0.5))


@pytest.mark.parametrize("kwargs, match", [
    ({"consensus_method": "dawid_skene"}, "Unknown consensus_method 'dawid_skene'"),
    ({"quality_method": "magic"}, "Unknown quality_method 'magic'"),
    ({"label_quality_score_kwargs": {"method": "nope"}}, "Unknown label quality method 'nope'"),
    ({"label_quality_score_kwargs": {"methd": "self_confidence"}}, "unknown keys 'methd'"),
    ({"label_quality_score_kwargs": {"method": "confidence_weighted_entropy", "adjust_pred_probs": True}},
     "not supported with method='confidence_weighted_entropy'"),
])
def test_bad_settings(kwargs, match):
    _raises(ConfigError, match, crowdlab, TOY, TOY_P, **kwargs)


def test_weights_only_with_crowdlab_quality():
    _raises(ConfigError, "only for quality_method='crowdlab'", get_label_quality_multiannotator, TOY, TOY_P,
            quality_method="agreement", return_weights=True)


# ---- real data --------------------------------------------------------------------------------------------
def _benchmark_datasets():
    """benchmarks/shared_data.py, loaded by path (benchmarks/ is not an installed package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "shared_data.py"
    spec = importlib.util.spec_from_file_location("relabel_benchmark_datasets", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_cifar10n_loader_and_crowdlab_beats_majority_vote():
    from data_paths import shared_data_dir

    annotations, clean, pred_probs = _benchmark_datasets().load_cifar10n(shared_data_dir())
    assert (annotations.n_items, annotations.n_annotators, len(annotations)) == (50_000, 747, 150_000)
    assert (annotations.num_annotations() == 3).all() and annotations.classes[0] == "airplane"
    assert set(pred_probs) >= {"resnet18", "swin_base_patch4_window7_224"}
    p = pred_probs["resnet18"]
    majority = get_majority_vote_label(annotations, p)
    consensus = crowdlab(annotations, p)
    # Measured when written: majority vote 0.9425, CROWDLAB 0.9638 against the clean labels.
    majority_accuracy = (majority == clean).mean()
    crowdlab_accuracy = (consensus.consensus_label == clean).mean()
    assert 0.93 < majority_accuracy < 0.95
    assert crowdlab_accuracy > majority_accuracy + 0.015
    # Quality scores rank wrong consensus labels first: AUROC well above chance.
    wrong = consensus.consensus_label != clean
    q = consensus.consensus_quality_score
    ranks = np.argsort(np.argsort(q))
    auroc = 1 - (ranks[wrong].mean() - (wrong.sum() - 1) / 2) / (~wrong).sum()
    assert auroc > 0.85
