"""Unit tests, bad input and Hypothesis properties for relabel.confident (parity with cleanlab is in
test_confident_parity.py)."""
import numpy as np
import pytest

from relabel import confident as cl
from relabel.errors import ConfigError, LabelError, PredProbsError

# A hand-checkable toy set: 3 classes, thresholds t = (0.7, 0.6, 0.5).
TOY_P = np.array([
    [0.8, 0.1, 0.1],   # y=0
    [0.6, 0.3, 0.1],   # y=0
    [0.2, 0.7, 0.1],   # y=1
    [0.5, 0.5, 0.0],   # y=1  (tie with another class)
    [0.1, 0.4, 0.5],   # y=2
])
TOY_Y = np.array([0, 0, 1, 1, 2])


def test_toy_thresholds_are_class_means_of_own_column():
    np.testing.assert_allclose(cl.get_confident_thresholds(TOY_Y, TOY_P), [0.7, 0.6, 0.5])


def test_toy_quality_scores():
    np.testing.assert_allclose(cl.get_label_quality_scores(TOY_Y, TOY_P), [0.8, 0.6, 0.7, 0.5, 0.5])
    # margin: given minus best other, mapped to [0, 1]
    np.testing.assert_allclose(cl.get_label_quality_scores(TOY_Y, TOY_P, "normalized_margin"),
                               [(0.8 - 0.1 + 1) / 2, (0.6 - 0.3 + 1) / 2, (0.7 - 0.2 + 1) / 2, 0.5,
                                (0.5 - 0.4 + 1) / 2])


def test_absent_class_threshold_is_unreachable():
    t = cl.get_confident_thresholds(np.array([0, 0, 2]), TOY_P[:3])
    assert t[1] == cl.UNREACHABLE_THRESHOLD


def test_entropy_with_adjust_is_refused_naming_the_fix():
    with pytest.raises(ConfigError, match="adjust_pred_probs=False"):
        cl.get_label_quality_scores(TOY_Y, TOY_P, "confidence_weighted_entropy", adjust_pred_probs=True)


def test_unknown_method_names_the_choices():
    with pytest.raises(ConfigError, match="self_confidence, normalized_margin, confidence_weighted_entropy"):
        cl.get_label_quality_scores(TOY_Y, TOY_P, "margin")


def test_nan_pred_probs_names_the_row():
    p = TOY_P.copy()
    p[3, 1] = np.nan
    with pytest.raises(PredProbsError, match="rows 3"):
        cl.get_label_quality_scores(TOY_Y, p)


def test_label_outside_classes_names_the_item():
    with pytest.raises(LabelError, match="Items 4 have label 3"):
        cl.get_label_quality_scores(np.array([0, 0, 1, 1, 3]), TOY_P)
