"""Unit tests, bad input and Hypothesis properties for relabel.scoring.confident (parity with cleanlab is in
test_confident_parity.py)."""
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from relabel.scoring import confident as cl
from relabel.errors import ConfigError, InputError, LabelError, PredProbsError

# A hand-checkable toy set. Thresholds t = (mean p0 over rows 0,1,5; mean p1 over rows 2,3; p2 of row 4)
# = (0.5, 0.6, 0.5). Row 3 clears only t0 (0.5 >= 0.5 - eps, 0.5 < 0.6) so it is guessed 0 although given 1;
# row 5 clears only t1 so it is guessed 1 although given 0; row 1 clears t0 only; row 4 clears t2.
TOY_P = np.array([
    [0.8, 0.1, 0.1],    # 0: y=0, confident 0
    [0.6, 0.3, 0.1],    # 1: y=0, confident 0
    [0.2, 0.7, 0.1],    # 2: y=1, confident 1
    [0.5, 0.5, 0.0],    # 3: y=1, confident 0 only -> off-diagonal, but a tie with its label: de-flagged
    [0.1, 0.4, 0.5],    # 4: y=2, confident 2
    [0.1, 0.85, 0.05],  # 5: y=0, confident 1 only -> the one real issue
])
TOY_Y = np.array([0, 0, 1, 1, 2, 0])
# class 2 of the toy has a single item, which find_label_issues never searches and warns about
QUIET = pytest.mark.filterwarnings("ignore:Classes .* were not searched")


# ---- hand-checked toy ---------------------------------------------------------------------------------------
def test_toy_thresholds_are_class_means_of_own_column():
    np.testing.assert_allclose(cl.get_confident_thresholds(TOY_Y, TOY_P), [0.5, 0.6, 0.5])


def test_toy_confident_joint_and_off_diagonals():
    joint, off = cl.compute_confident_joint(TOY_Y, TOY_P, calibrate=False, return_indices_of_off_diagonals=True)
    np.testing.assert_array_equal(joint, [[2, 1, 0], [1, 1, 0], [0, 0, 1]])
    assert off.tolist() == [3, 5]
    # rows already sum to the label counts (3, 2, 1) and the total to N = 6, so calibration changes nothing
    np.testing.assert_array_equal(cl.compute_confident_joint(TOY_Y, TOY_P), joint)
    np.testing.assert_allclose(cl.estimate_joint(TOY_Y, TOY_P), joint / 6)


@QUIET
def test_toy_label_issues_every_filter():
    # row 3 is off-diagonal but its label ties the argmax, so de-flagging removes it; row 5 stays.
    assert cl.num_label_issues(TOY_Y, TOY_P) == 1
    for filter_by in ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning",
                      "low_self_confidence", "low_normalized_margin"):
        assert np.flatnonzero(cl.find_label_issues(TOY_Y, TOY_P, filter_by=filter_by)).tolist() == [5], filter_by
    # predicted_neq_given: argmax differs for rows 3 (tie -> first index 0) and 5; row 3 is de-flagged.
    assert np.flatnonzero(cl.find_label_issues(TOY_Y, TOY_P, filter_by="predicted_neq_given")).tolist() == [5]


def test_toy_quality_scores():
    np.testing.assert_allclose(cl.get_label_quality_scores(TOY_Y, TOY_P), [0.8, 0.6, 0.7, 0.5, 0.5, 0.1])
    np.testing.assert_allclose(cl.get_label_quality_scores(TOY_Y, TOY_P, "normalized_margin"),
                               [0.85, 0.65, 0.75, 0.5, 0.55, 0.125])
    # entropy of row 0 is -(0.8 ln 0.8 + 2 * 0.1 ln 0.1) / ln 3; r = H / 0.8; score = ln(1 + r) / r
    h = -(0.8 * np.log(0.8) + 0.2 * np.log(0.1)) / np.log(3)
    r = h / 0.8
    assert cl.get_label_quality_scores(TOY_Y, TOY_P, "confidence_weighted_entropy")[0] == pytest.approx(
        np.log1p(r) / r)


def test_toy_adjusted_scores_subtract_thresholds():
    # p - t + max(t) = p - (0.5, 0.6, 0.5) + 0.6, then rows renormalised (each row sums to 1 - 1.6 + 1.8 = 1.2)
    adjusted = (TOY_P - [0.5, 0.6, 0.5] + 0.6) / 1.2
    np.testing.assert_allclose(cl.get_label_quality_scores(TOY_Y, TOY_P, adjust_pred_probs=True),
                               adjusted[np.arange(6), TOY_Y])


def test_ranking_is_ascending_score_with_ties_in_index_order():
    p = np.array([[0.3, 0.7], [0.3, 0.7], [0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.1, 0.9], [0.8, 0.2]])
    y = np.array([0, 0, 0, 0, 0, 1, 1])
    ranked = cl.find_label_issues(y, p, filter_by="predicted_neq_given", return_indices_ranked_by="self_confidence")
    # self-confidence: rows 3 and 6 score 0.2, rows 0, 1, 4 score 0.3
    assert ranked.tolist() == [3, 6, 0, 1, 4]


def test_absent_class_threshold_is_unreachable():
    t = cl.get_confident_thresholds(np.array([0, 0, 2]), TOY_P[:3])
    assert t[1] == cl.UNREACHABLE_THRESHOLD


def test_float32_stays_float32_where_cleanlab_does():
    p = TOY_P.astype(np.float32)
    assert cl.get_confident_thresholds(TOY_Y, p).dtype == np.float32
    assert cl.get_label_quality_scores(TOY_Y, p).dtype == np.float32


def test_min_examples_per_class_skips_small_classes_with_a_warning():
    with pytest.warns(UserWarning, match="Classes 1, 2 have at most .* = 2 items .*lower min_examples_per_class"):
        mask = cl.find_label_issues(TOY_Y, TOY_P, min_examples_per_class=2)
    assert mask.tolist() == [False] * 5 + [True]
    with pytest.warns(UserWarning, match="Classes 2 .* a class with a single item is never searched"):
        cl.find_label_issues(TOY_Y, TOY_P)


@QUIET
def test_num_to_remove_per_class_sets_how_many_are_flagged():
    # the two lowest p0 in class 0 are rows 5 (0.1) and 1 (0.6); row 1's argmax is its label, so it is
    # un-flagged afterwards. Three from class 0 also takes row 0, which is un-flagged the same way.
    for remove in ([2, 0, 0], [3, 0, 0]):
        mask = cl.find_label_issues(TOY_Y, TOY_P, filter_by="prune_by_class", num_to_remove_per_class=remove)
        assert np.flatnonzero(mask).tolist() == [5]
    mask = cl.find_label_issues(TOY_Y, TOY_P, filter_by="prune_by_class", num_to_remove_per_class=[0, 0, 0])
    assert not mask.any()


def test_noise_matrices_on_the_toy():
    py, nm, inv, joint = cl.estimate_py_and_noise_matrices_from_probabilities(TOY_Y, TOY_P,
                                                                             converge_latent_estimates=False)
    np.testing.assert_array_equal(joint, [[2, 1, 0], [1, 1, 0], [0, 0, 1]])
    # p(given s | true y): columns of the joint normalised
    np.testing.assert_allclose(nm, [[2 / 3, 1 / 2, 0], [1 / 3, 1 / 2, 0], [0, 0, 1]])
    np.testing.assert_allclose(inv, [[2 / 3, 1 / 2, 0], [1 / 3, 1 / 2, 0], [0, 0, 1]])
    # cnt: py_k = inv[k, k] / nm[k, k] * ps_k = ps_k here
    np.testing.assert_allclose(py, [3 / 6, 2 / 6, 1 / 6])


# ---- bad input: one sentence naming the offender and the fix -----------------------------------------------------
@pytest.mark.parametrize("func", [
    lambda y, p: cl.find_label_issues(y, p),
    lambda y, p: cl.get_label_quality_scores(y, p),
    lambda y, p: cl.compute_confident_joint(y, p),
    lambda y, p: cl.num_label_issues(y, p),
    lambda y, p: cl.estimate_py_and_noise_matrices_from_probabilities(y, p),
    lambda y, p: cl.get_confident_thresholds(y, p),
])
def test_every_public_function_validates_pred_probs(func):
    p = TOY_P.copy()
    p[2, 0] = np.nan
    with pytest.raises(PredProbsError, match=r"rows 2;.*fix the model output"):
        func(TOY_Y, p)


def test_negative_pred_probs_name_the_row_and_the_fix():
    p = TOY_P.copy()
    p[4] = [-0.2, 0.7, 0.5]
    with pytest.raises(PredProbsError, match=r"outside \[0, 1\] in rows 4 .*softmax"):
        cl.find_label_issues(TOY_Y, p)


def test_rows_not_summing_to_one_are_named():
    p = TOY_P.copy()
    p[1] = [0.6, 0.6, 0.1]
    with pytest.raises(PredProbsError, match=r"rows 1 do not sum to 1 .*normalise"):
        cl.find_label_issues(TOY_Y, p)


def test_shape_mismatch_is_named():
    with pytest.raises(LabelError, match="labels has 5 entries but pred_probs has 6 rows"):
        cl.find_label_issues(TOY_Y[:5], TOY_P)
    with pytest.raises(PredProbsError, match="2-D"):
        cl.find_label_issues(TOY_Y, TOY_P[:, 0])


def test_label_outside_classes_names_the_item():
    with pytest.raises(LabelError, match="Items 4 have label 3, outside the 3 classes"):
        cl.find_label_issues(np.array([0, 0, 1, 1, 3, 0]), TOY_P)


def test_non_integer_labels_are_named():
    with pytest.raises(LabelError, match="non-integer values 1.5"):
        cl.find_label_issues(np.array([0, 0, 1, 1.5, 2, 0]), TOY_P)


def test_negative_labels_name_the_items():
    with pytest.raises(LabelError, match="items 2 have negative labels"):
        cl.find_label_issues(np.array([0, 0, -1, 1, 2, 0]), TOY_P)


def test_fewer_than_two_classes_is_refused():
    with pytest.raises(LabelError, match="only class 1; .*at least 2 classes"):
        cl.find_label_issues(np.ones(6, dtype=int), TOY_P)
    with pytest.raises(LabelError, match="empty"):
        cl.find_label_issues(np.array([], dtype=int), np.empty((0, 3)))


def test_entropy_with_adjust_is_refused_naming_the_fix():
    with pytest.raises(ConfigError, match="adjust_pred_probs=False"):
        cl.get_label_quality_scores(TOY_Y, TOY_P, "confidence_weighted_entropy", adjust_pred_probs=True)
    with pytest.raises(ConfigError, match="adjust_pred_probs=False"):
        cl.find_label_issues(TOY_Y, TOY_P, return_indices_ranked_by="confidence_weighted_entropy",
                             rank_by_kwargs={"adjust_pred_probs": True})


def test_unknown_names_list_the_valid_choices():
    with pytest.raises(ConfigError, match="self_confidence, normalized_margin, confidence_weighted_entropy"):
        cl.get_label_quality_scores(TOY_Y, TOY_P, "margin")
    with pytest.raises(ConfigError, match="'margin'; choose one of self_confidence"):
        cl.find_label_issues(TOY_Y, TOY_P, return_indices_ranked_by="margin")
    with pytest.raises(ConfigError, match="'prune'; choose one of prune_by_noise_rate, prune_by_class, both"):
        cl.find_label_issues(TOY_Y, TOY_P, filter_by="prune")
    with pytest.raises(ConfigError, match="'count'; choose one of cnt, eqn, marginal, marginal_ps"):
        cl.estimate_py_and_noise_matrices_from_probabilities(TOY_Y, TOY_P, py_method="count")
    with pytest.raises(ConfigError, match="choose one of off_diagonal, off_diagonal_calibrated"):
        cl.num_label_issues(TOY_Y, TOY_P, estimation_method="calibrated")


def test_bad_filter_settings_are_named():
    with pytest.raises(ConfigError, match="frac_noise .* between 0 and 1; got 1.5"):
        cl.find_label_issues(TOY_Y, TOY_P, frac_noise=1.5)
    with pytest.raises(ConfigError, match="min_examples_per_class .* non-negative integer; got -1"):
        cl.find_label_issues(TOY_Y, TOY_P, min_examples_per_class=-1)
    with pytest.raises(ConfigError, match="num_to_remove_per_class works only with filter_by"):
        cl.find_label_issues(TOY_Y, TOY_P, filter_by="confident_learning", num_to_remove_per_class=[1, 0, 0])
    with pytest.raises(ConfigError, match="3 non-negative integers, one per class; got 1, 0"):
        cl.find_label_issues(TOY_Y, TOY_P, num_to_remove_per_class=[1, 0])
    with pytest.raises(ConfigError, match="remove 3 items of class 1 but only 2"):
        cl.find_label_issues(TOY_Y, TOY_P, num_to_remove_per_class=[0, 3, 0])
    with pytest.raises(ConfigError, match="rank_by_kwargs accepts only 'adjust_pred_probs'; got 'method'"):
        cl.find_label_issues(TOY_Y, TOY_P, return_indices_ranked_by="self_confidence",
                             rank_by_kwargs={"method": "x"})


def test_bad_thresholds_and_joint_are_named():
    with pytest.raises(ConfigError, match="thresholds must be 3 finite numbers"):
        cl.compute_confident_joint(TOY_Y, TOY_P, thresholds=[0.5, 0.5])
    with pytest.raises(ConfigError, match="confident_joint must be a 3 x 3 matrix"):
        cl.find_label_issues(TOY_Y, TOY_P, confident_joint=np.ones((2, 2)))
    with pytest.raises(ConfigError, match="needs a confident_joint"):
        cl.num_label_issues(TOY_Y, TOY_P, estimation_method="off_diagonal_custom")


def test_singular_noise_matrix_with_eqn_suggests_cnt():
    y = np.array([0, 0, 0, 2, 2, 2])  # class 1 never given: its row of the noise matrix is zero
    with pytest.raises(InputError, match="singular; use py_method='cnt'"):
        cl.estimate_py_and_noise_matrices_from_probabilities(y, TOY_P, py_method="eqn",
                                                            converge_latent_estimates=False)


# ---- Hypothesis properties ----------------------------------------------------------------------------------------
@st.composite
def labelled_probs(draw, max_items=40, max_classes=6):
    n_classes = draw(st.integers(2, max_classes))
    n = draw(st.integers(4, max_items))
    raw = draw(arrays(np.float64, (n, n_classes), elements=st.floats(0, 1, allow_subnormal=False)))
    raw = raw + draw(st.sampled_from([1e-3, 0.05, 0.5]))  # keeps every row's sum positive
    probs = raw / raw.sum(axis=1, keepdims=True)
    labels = draw(arrays(np.int64, n, elements=st.integers(0, n_classes - 1)))
    labels[:2] = [0, 1]  # at least two classes are given
    return labels, probs


PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@QUIET
@PROPERTY_SETTINGS
@given(labelled_probs())
def test_scores_are_in_unit_interval(case):
    y, p = case
    for method in cl.QUALITY_METHODS:
        for adjust in (False, True):
            if adjust and method == "confidence_weighted_entropy":
                continue
            s = cl.get_label_quality_scores(y, p, method, adjust_pred_probs=adjust)
            assert s.shape == y.shape and np.all((s >= 0) & (s <= 1)), (method, adjust)


@QUIET
@PROPERTY_SETTINGS
@given(labelled_probs(), st.randoms(use_true_random=False))
def test_permuting_items_permutes_scores_and_argmax_issues(case, rnd):
    y, p = case
    perm = np.array(rnd.sample(range(len(y)), len(y)))
    for method in cl.QUALITY_METHODS:
        np.testing.assert_array_equal(cl.get_label_quality_scores(y[perm], p[perm], method),
                                      cl.get_label_quality_scores(y, p, method)[perm])
    np.testing.assert_allclose(cl.get_label_quality_scores(y[perm], p[perm], adjust_pred_probs=True),
                               cl.get_label_quality_scores(y, p, adjust_pred_probs=True)[perm], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(cl.find_label_issues(y[perm], p[perm], filter_by="predicted_neq_given"),
                                  cl.find_label_issues(y, p, filter_by="predicted_neq_given")[perm])


@QUIET
@PROPERTY_SETTINGS
@given(labelled_probs())
def test_calibrated_joint_keeps_label_counts_and_total(case):
    y, p = case
    joint = cl.compute_confident_joint(y, p)
    assert joint.dtype.kind == "i" and np.all(joint >= 0)
    np.testing.assert_array_equal(joint.sum(axis=1), np.bincount(y, minlength=p.shape[1]))
    raw = cl.compute_confident_joint(y, p, calibrate=False)
    assert np.all(np.diagonal(raw) >= 1)


@QUIET
@PROPERTY_SETTINGS
@given(labelled_probs())
def test_flagged_items_are_real_disagreements_and_both_is_an_intersection(case):
    y, p = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        masks = {f: cl.find_label_issues(y, p, filter_by=f) for f in cl.FILTER_BY}
    for filter_by in set(cl.FILTER_BY) - {"low_self_confidence", "low_normalized_margin"}:
        flagged = np.flatnonzero(masks[filter_by])
        nudged = p[flagged].copy()
        nudged[np.arange(flagged.size), y[flagged]] += cl.FUZZY_EPS
        assert np.all(nudged.argmax(axis=1) != y[flagged]), filter_by
    assert not np.any(masks["both"] & ~masks["prune_by_noise_rate"])
    assert not np.any(masks["both"] & ~masks["prune_by_class"])
    n = cl.num_label_issues(y, p)
    assert masks["confident_learning"].sum() == masks["low_self_confidence"].sum() == n


@QUIET
@PROPERTY_SETTINGS
@given(labelled_probs(), st.sampled_from(cl.QUALITY_METHODS))
def test_ranking_returns_the_mask_in_ascending_score_order(case, method):
    y, p = case
    mask = cl.find_label_issues(y, p)
    ranked = cl.find_label_issues(y, p, return_indices_ranked_by=method)
    assert sorted(ranked.tolist()) == np.flatnonzero(mask).tolist()
    scores = cl.get_label_quality_scores(y, p, method)[ranked]
    assert np.all(np.diff(scores) >= 0)
    ties = np.flatnonzero(np.diff(scores) == 0)
    assert np.all(ranked[ties] < ranked[ties + 1])  # stable: equal scores keep index order


@QUIET
@PROPERTY_SETTINGS
@given(labelled_probs(), st.sampled_from(cl.PY_METHODS[:1] + cl.PY_METHODS[2:]), st.booleans())
def test_noise_matrices_are_column_stochastic(case, py_method, converge):
    y, p = case
    py, nm, inv, _ = cl.estimate_py_and_noise_matrices_from_probabilities(
        y, p, py_method=py_method, converge_latent_estimates=converge)
    # a class nobody was given nor guessed has an all-zero column; every other column sums to 1
    for matrix in (nm, inv):
        sums = matrix.sum(axis=0)
        assert np.all(np.isclose(sums, 1, atol=1e-9) | (sums == 0))
    assert py.sum() == pytest.approx(1) and np.all(py > 0)


def test_confident_learning_ignores_a_given_joint_with_a_warning():
    joint = cl.compute_confident_joint(TOY_Y, TOY_P)
    with pytest.warns(UserWarning, match="confident_joint is ignored with filter_by='confident_learning'"):
        mask = cl.find_label_issues(TOY_Y, TOY_P, filter_by="confident_learning", confident_joint=joint)
    assert np.flatnonzero(mask).tolist() == [5]


def test_cleanlab_drop_in_arguments_are_accepted():
    """cleanlab callers pass n_jobs, verbose and a scalar num_to_remove_per_class (issue 10)."""
    import cleanlab.filter

    from relabel.scoring.confident import find_label_issues as ours
    from relabel.scoring.consensus import get_majority_vote_label
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(3), 300)
    y = np.where(rng.random(300) < 0.8, p.argmax(axis=1), rng.integers(0, 3, 300))
    np.testing.assert_array_equal(ours(y, p, n_jobs=2, verbose=True), ours(y, p))
    scalar = ours(y, p, filter_by="prune_by_class", num_to_remove_per_class=4)
    assert np.array_equal(scalar, ours(y, p, filter_by="prune_by_class", num_to_remove_per_class=[4, 4, 4]))
    np.testing.assert_array_equal(
        scalar, cleanlab.filter.find_label_issues(y, p, filter_by="prune_by_class", num_to_remove_per_class=4))
    dense = np.array([[0, 1, np.nan], [2, 2, 1]], dtype=float)
    np.testing.assert_array_equal(get_majority_vote_label(dense, verbose=False), get_majority_vote_label(dense))


def test_pred_probs_tolerances_agree_and_the_error_names_the_value():
    from relabel.errors import PredProbsError
    from relabel.scoring.validation import check_pred_probs
    p = np.array([[1.00001, 0.0], [0.5, 0.5]], dtype=np.float32)     # a float32 softmax's rounding
    check_pred_probs(p)
    with pytest.raises(PredProbsError, match=r"-0\.2 in row 1"):
        check_pred_probs(np.array([[1.0, 0.0], [1.2, -0.2]]))
    with pytest.raises(PredProbsError, match=r"e\.g\. 1\.3 in row 0"):
        check_pred_probs(np.array([[1.3, 0.0], [0.5, 0.5]]))
