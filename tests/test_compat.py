"""relabel.compat.cleanlab: the same public names as cleanlab 2.9's modules, and the same results."""
from __future__ import annotations

import importlib
import inspect
import warnings

import numpy as np
import pytest

cleanlab = pytest.importorskip("cleanlab")

from relabel.compat import cleanlab as compat  # noqa: E402
from relabel.errors import ConfigError, PredProbsError  # noqa: E402
from relabel.scoring.consensus import _compute_best_temperature, _prepare  # noqa: E402

MODULES = ("multiannotator", "filter", "count", "rank")


def public_functions(module) -> set[str]:
    """Functions a module defines itself (not the helpers it imports), without a leading underscore."""
    return {name for name, obj in vars(module).items()
            if not name.startswith("_") and inspect.isfunction(obj) and obj.__module__ == module.__name__}


@pytest.mark.parametrize("name", MODULES)
def test_same_public_names_as_cleanlab_minus_the_documented_ones(name):
    theirs = public_functions(importlib.import_module(f"cleanlab.{name}"))
    ours = importlib.import_module(f"relabel.compat.cleanlab.{name}")
    missing = theirs - set(ours.__all__)
    assert missing == set(compat.UNSUPPORTED[name])
    assert set(ours.__all__) <= theirs, "compat exposes only cleanlab's names"
    assert all(callable(getattr(ours, n)) for n in ours.__all__)
    assert ours.__doc__ and "differ" in ours.__doc__


def noisy_case(seed: int, n: int = 120, k: int = 3):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[truth]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.where(rng.random(n) < 0.2, rng.integers(0, k, n), truth)
    return labels, p


@pytest.mark.parametrize("seed", [0, 1])
def test_filter_count_rank_give_cleanlabs_results(seed):
    import cleanlab.count as c_count
    import cleanlab.filter as c_filter
    import cleanlab.rank as c_rank

    labels, p = noisy_case(seed)
    np.testing.assert_array_equal(compat.filter.find_label_issues(labels, p), c_filter.find_label_issues(labels, p))
    np.testing.assert_array_equal(compat.filter.find_predicted_neq_given(labels, p),
                                  c_filter.find_predicted_neq_given(labels, p))
    np.testing.assert_array_equal(compat.filter.find_label_issues_using_argmax_confusion_matrix(labels, p),
                                  c_filter.find_label_issues_using_argmax_confusion_matrix(labels, p))
    np.testing.assert_array_equal(compat.count.compute_confident_joint(labels, p),
                                  c_count.compute_confident_joint(labels, p))
    assert compat.count.num_label_issues(labels, p) == c_count.num_label_issues(labels, p)
    for ours, theirs in [(compat.rank.get_self_confidence_for_each_label, c_rank.get_self_confidence_for_each_label),
                         (compat.rank.get_normalized_margin_for_each_label,
                          c_rank.get_normalized_margin_for_each_label),
                         (compat.rank.get_confidence_weighted_entropy_for_each_label,
                          c_rank.get_confidence_weighted_entropy_for_each_label)]:
        np.testing.assert_allclose(ours(labels, p), theirs(labels, p), rtol=0, atol=1e-12)
    mask = compat.filter.find_label_issues(labels, p)
    np.testing.assert_array_equal(
        compat.rank.order_label_issues(mask, labels, p, rank_by="normalized_margin"),
        c_rank.order_label_issues(mask, labels, p, rank_by="normalized_margin"))
    scores = compat.rank.get_label_quality_scores(labels, p)
    np.testing.assert_array_equal(compat.rank.find_top_issues(scores, top=7), c_rank.find_top_issues(scores, top=7))


def test_cross_validated_count_functions_return_cleanlabs_shapes():
    labels, _ = noisy_case(2, n=90)
    X = np.random.default_rng(2).normal(size=(90, 4)) + labels[:, None]
    py, noise, inverse, joint, p = compat.count.estimate_py_noise_matrices_and_cv_pred_proba(X, labels, cv_n_folds=3)
    assert p.shape == (90, 3) and np.allclose(p.sum(axis=1), 1)
    np.testing.assert_allclose(noise.sum(axis=0), 1)
    np.testing.assert_array_equal(joint, compat.count.compute_confident_joint(labels, p))
    # cleanlab's defaults differ here: no convergence after cross-validation, convergence from probabilities.
    py2, noise2, inverse2, _ = compat.count.estimate_py_and_noise_matrices_from_probabilities(
        labels, p, converge_latent_estimates=False)
    np.testing.assert_array_equal(py, py2)
    np.testing.assert_array_equal(noise, noise2)


def ensemble_case(seed: int):
    """Random sizes, 1-9 models of varied sharpness, some with exact zeros (the log-loss floor matters)."""
    rng = np.random.default_rng(seed)
    n, k, m = int(rng.integers(20, 150)), int(rng.integers(2, 6)), int(rng.integers(1, 10))
    truth = rng.integers(0, k, n)
    labels = np.where(rng.random(n) < 0.3, rng.integers(0, k, n), truth)
    labels[:k] = np.arange(k)  # every class given: sklearn's log-loss inside cleanlab needs them all
    members = []
    for j in range(m):
        p = np.exp(rng.normal(size=(n, k)) * rng.uniform(0.5, 3) + rng.uniform(0, 3) * np.eye(k)[truth])
        if j % 3 == 0:
            p[rng.random((n, k)) < 0.1] = 0
            p[p.sum(axis=1) == 0, 0] = 1
        members.append(p / p.sum(axis=1, keepdims=True))
    return labels, members, rng.random(m)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("weighting", ["uniform", "accuracy", "log_loss_search", "custom"])
def test_label_quality_ensemble_scores_give_cleanlabs_results(seed, weighting):
    import cleanlab.rank as c_rank

    labels, members, custom = ensemble_case(seed)
    for method, adjust in [("self_confidence", False), ("self_confidence", True), ("normalized_margin", True),
                           ("confidence_weighted_entropy", False)]:
        kwargs = {"method": method, "adjust_pred_probs": adjust, "weight_ensemble_members_by": weighting,
                  "custom_weights": custom if weighting == "custom" else None, "verbose": False}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = c_rank.get_label_quality_ensemble_scores(labels, [p.copy() for p in members], **kwargs)
        ours = compat.rank.get_label_quality_ensemble_scores(labels, members, **kwargs)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


def test_label_quality_ensemble_scores_refuse_bad_arguments_clearly():
    labels, members, _ = ensemble_case(0)
    score = compat.rank.get_label_quality_ensemble_scores
    with pytest.raises(PredProbsError, match="must be a list"):
        score(labels, np.stack(members))
    with pytest.raises(PredProbsError, match="is empty"):
        score(labels, [])
    with pytest.raises(ConfigError, match="needs custom_weights"):
        score(labels, members, weight_ensemble_members_by="custom")
    with pytest.raises(ConfigError, match="one finite weight per model"):
        score(labels, members, weight_ensemble_members_by="custom", custom_weights=np.ones(len(members) + 1))
    with pytest.raises(ConfigError, match="set it to 'custom'"):
        score(labels, members, custom_weights=np.ones(len(members)))
    with pytest.raises(ConfigError, match="Unknown weight_ensemble_members_by"):
        score(labels, members, weight_ensemble_members_by="median")


def test_label_quality_ensemble_scores_verbose_prints_the_weights(capsys):
    labels, members, _ = ensemble_case(1)
    compat.rank.get_label_quality_ensemble_scores(labels, members[:2] * 2, weight_ensemble_members_by="uniform")
    assert capsys.readouterr().out.strip() == "Ensemble of 4 models weighted by uniform: equal"


@pytest.mark.parametrize("frac_noise", [0.0, 0.35, 1.0])
def test_private_pruning_helpers_give_cleanlabs_results(frac_noise):
    import cleanlab.filter as c_filter

    rng = np.random.default_rng(int(frac_noise * 100))
    for _ in range(20):
        k = int(rng.integers(2, 6))
        joint = rng.integers(0, 40, (k, k)) + np.diag(rng.integers(0, 300, k))
        joint[rng.random((k, k)) < 0.2] = 0
        np.testing.assert_array_equal(compat.filter._reduce_prune_counts(joint, frac_noise),
                                      c_filter._reduce_prune_counts(joint, frac_noise))
        for n in (0, 1, 5, int(joint.max())):
            np.testing.assert_array_equal(
                compat.filter._keep_at_least_n_per_class(joint.T, n, frac_noise=frac_noise),
                c_filter._keep_at_least_n_per_class(joint.T, n, frac_noise=frac_noise))


def annotations_case(seed: int, n: int = 60, m: int = 5, k: int = 3, models: int = 2):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    labels = np.where(rng.random((n, m)) < 0.75, truth[:, None], rng.integers(0, k, (n, m))).astype(float)
    labels[rng.random((n, m)) < 0.5] = np.nan
    empty = np.isnan(labels).all(axis=1)
    labels[empty, 0] = truth[empty]
    raw = rng.random((models, n, k)) + 1.5 * np.eye(k)[truth][None]
    unlabeled = rng.random((models, 15, k)) + 1.5 * np.eye(k)[rng.integers(0, k, 15)][None]
    return labels, raw / raw.sum(axis=2, keepdims=True), unlabeled / unlabeled.sum(axis=2, keepdims=True)


def relabel_temperature(labels, pred_probs):
    """relabel's temperature search (votes counted in their own class: deliberate difference 1)."""
    table, p, _ = _prepare(labels, pred_probs)
    return _compute_best_temperature(table, p)


def test_ensemble_functions_give_cleanlabs_results(monkeypatch):
    import cleanlab.multiannotator as c_multi

    labels, pp, pu = annotations_case(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = c_multi.get_label_quality_multiannotator_ensemble(labels, pp.copy(), return_weights=True)
    ours = compat.multiannotator.get_label_quality_multiannotator_ensemble(labels, pp, return_weights=True)
    for key in ("label_quality", "detailed_label_quality", "annotator_stats"):
        np.testing.assert_allclose(ours[key].to_numpy(float), theirs[key].to_numpy(float), atol=1e-9)
    np.testing.assert_allclose(ours["model_weight"], theirs["model_weight"], atol=1e-12)
    # cleanlab's temperature search miscounts votes; with relabel's search the ActiveLab scores agree.
    monkeypatch.setattr(c_multi, "find_best_temp_scaler", relabel_temperature)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = c_multi.get_active_learning_scores_ensemble(labels, pp.copy(), pu.copy())
    ours = compat.multiannotator.get_active_learning_scores_ensemble(labels, pp, pu)
    np.testing.assert_allclose(ours[0], theirs[0], atol=1e-12)
    np.testing.assert_allclose(ours[1], theirs[1], atol=1e-12)


def test_ensemble_single_label_per_item_gives_cleanlabs_results():
    import cleanlab.multiannotator as c_multi

    labels, pp, pu = annotations_case(4, m=3)
    single = np.full(labels.shape, np.nan)
    rows = np.arange(labels.shape[0])
    single[rows, rows % 3] = np.nan_to_num(labels[:, 0])
    theirs = c_multi.get_active_learning_scores_ensemble(single, pp.copy(), pu.copy())
    ours = compat.multiannotator.get_active_learning_scores_ensemble(single, pp, pu)
    np.testing.assert_allclose(ours[0], theirs[0], atol=1e-12)
    np.testing.assert_allclose(ours[1], theirs[1], atol=1e-12)


def test_majority_vote_accepts_unnormalised_tie_break_probabilities():
    """cleanlab's ensemble passes a mean of unnormalised outputs (rows summing to 1.57); only the order counts."""
    import cleanlab.multiannotator as c_multi

    labels = np.array([[0, 1, np.nan], [1, 1, 0], [2, 0, np.nan], [np.nan, 2, 2]])
    tie_break = np.array([[0.2, 0.9, 0.47], [0.5, 0.3, 0.2], [0.6, 0.1, 0.87], [0.1, 0.2, 0.3]])
    assert tie_break.sum(axis=1).max() == pytest.approx(1.57)
    np.testing.assert_array_equal(compat.multiannotator.get_majority_vote_label(labels, tie_break),
                                  c_multi.get_majority_vote_label(labels, tie_break, verbose=False))
    # Where the same pred_probs feed a score, relabel keeps refusing them.
    with pytest.raises(PredProbsError, match="do not sum to 1"):
        compat.multiannotator.get_label_quality_multiannotator(labels, tie_break)


def test_convert_long_to_wide_dataset_matches_cleanlab():
    pd = pytest.importorskip("pandas")
    import cleanlab.multiannotator as c_multi

    long = pd.DataFrame({"task": [0, 0, 1, 2, 2], "annotator": ["a", "b", "a", "b", "c"], "label": [1, 0, 1, 2, 2]})
    pd.testing.assert_frame_equal(compat.multiannotator.convert_long_to_wide_dataset(long),
                                  c_multi.convert_long_to_wide_dataset(long))


def test_multi_label_runs_the_one_vs_rest_reduction():
    """multi_label=True goes to relabel.scoring.multilabel_confident (parity: tests/test_multilabel_parity.py)."""
    import cleanlab.count as c_count
    import cleanlab.filter as c_filter
    labels = [[0], [0, 1], [0, 1], [2], [0, 2, 3], [1], [3]]
    p = np.array([[0.9, 0.1, 0.0, 0.4], [0.7, 0.8, 0.2, 0.3], [0.9, 0.8, 0.4, 0.2], [0.1, 0.1, 0.8, 0.3],
                  [0.4, 0.5, 0.1, 0.1], [0.2, 0.6, 0.1, 0.2], [0.3, 0.2, 0.1, 0.7]])
    np.testing.assert_array_equal(compat.filter.find_predicted_neq_given(labels, p, multi_label=True),
                                  c_filter.find_predicted_neq_given(labels, p, multi_label=True))
    np.testing.assert_array_equal(compat.count.compute_confident_joint(labels, p, multi_label=True),
                                  c_count.compute_confident_joint(labels, p, multi_label=True))
    with pytest.warns(DeprecationWarning):
        ours = compat.filter.find_label_issues(labels, p, multi_label=True)
    np.testing.assert_array_equal(ours, c_filter.find_label_issues(labels, p, multi_label=True, n_jobs=1))
