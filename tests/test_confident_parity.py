"""relabel.scoring.confident against cleanlab 2.9.0 on many seeded inputs.

Floats must agree within 1e-9, integers and masks exactly. The oracle is cleanlab with numpy's argsort made
stable (deliberate difference 3: cleanlab's default argsort orders exactly equal keys differently on different
numpy builds, which changes which of several tied items it flags and how tied residuals are rounded). A second
group compares with the unmodified cleanlab where its sort order cannot matter, and compares rankings as
sets within runs of equal score.
"""
import warnings

import numpy as np
import pytest

cleanlab_count = pytest.importorskip("cleanlab.count")
import cleanlab.filter as cleanlab_filter  # noqa: E402
import cleanlab.rank as cleanlab_rank  # noqa: E402

from relabel.scoring import confident as cl  # noqa: E402
from relabel.scoring.confident.ranking import _compute_label_quality_scores  # noqa: E402
from relabel.errors import InputError  # noqa: E402

SEEDS = range(36)
SCENARIOS = ("realistic", "absent_class", "near_ties", "tiny_classes", "float32", "confident_model")
FLOAT_TOL = 1e-9
# float32 pred_probs are computed in float32 by both libraries; numpy's and scipy's float32 log differ by an ulp
# (~6e-8), which the entropy score shows. Everything else still agrees exactly for float32.
FLOAT32_TOL = 1e-6


@pytest.fixture
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def make_case(seed: int):
    """Labels and out-of-sample-like pred_probs; the scenario cycles with the seed."""
    rng = np.random.default_rng(seed)
    scenario = SCENARIOS[seed % len(SCENARIOS)]
    n_classes = int(rng.integers(2, 21))
    n = int(rng.integers(40, 700))
    true = rng.integers(0, n_classes, n)
    if scenario == "tiny_classes":
        # a few classes hold 1-3 items each
        weights = np.ones(n_classes)
        weights[: max(1, n_classes // 3)] = 0.004
        true = rng.choice(n_classes, n, p=weights / weights.sum())
    labels = true.copy()
    noisy = rng.random(n) < rng.uniform(0.05, 0.35)
    labels[noisy] = rng.integers(0, n_classes, noisy.sum())
    # Dirichlet noise around the true label: how sure the model is varies per item.
    sureness = rng.uniform(0.1, 0.95, (n, 1)) if scenario != "confident_model" else rng.uniform(0.8, 1.0, (n, 1))
    probs = rng.dirichlet(np.full(n_classes, rng.uniform(0.2, 3.0)), n) * (1 - sureness)
    probs[np.arange(n), true] += sureness[:, 0]
    if scenario == "near_ties":
        # coarse probabilities: many exactly equal values in a row and across items
        probs = np.round(probs * 8) + 1.0
        probs /= probs.sum(axis=1, keepdims=True)
    probs /= probs.sum(axis=1, keepdims=True)
    if scenario == "absent_class" and n_classes > 2:
        absent = int(rng.integers(0, n_classes))
        labels[labels == absent] = (absent + 1) % n_classes
    if len(np.unique(labels)) < 2:
        labels[0], labels[1] = 0, 1
    if scenario == "float32":
        probs = probs.astype(np.float32)
        probs /= probs.sum(axis=1, keepdims=True)
    return labels, probs


def assert_close(ours, theirs, tol=FLOAT_TOL):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=tol)


def assert_same_ranking(ours, theirs, scores):
    """Equal as lists of runs of equal score: the same set of items inside each run, runs in the same order."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape
    assert set(ours.tolist()) == set(theirs.tolist())
    np.testing.assert_array_equal(scores[ours], scores[theirs])  # same score sequence
    s = scores[ours]
    run_starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    for start, stop in zip(run_starts, np.r_[run_starts[1:], s.size]):
        assert set(ours[start:stop].tolist()) == set(theirs[start:stop].tolist())


# ---- thresholds, joint, calibration -----------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_thresholds_and_confident_joint(seed, stable_cleanlab):
    y, p = make_case(seed)
    assert_close(cl.get_confident_thresholds(y, p), cleanlab_count.get_confident_thresholds(y, p))
    for calibrate in (True, False):
        ours, ours_idx = cl.compute_confident_joint(y, p, calibrate=calibrate, return_indices_of_off_diagonals=True)
        theirs, theirs_idx = cleanlab_count.compute_confident_joint(y, p, calibrate=calibrate,
                                                                    return_indices_of_off_diagonals=True)
        np.testing.assert_array_equal(ours, theirs)
        np.testing.assert_array_equal(ours_idx, theirs_idx)
    thresholds = np.random.default_rng(seed).uniform(0.05, 0.9, p.shape[1])
    np.testing.assert_array_equal(cl.compute_confident_joint(y, p, thresholds=thresholds),
                                  cleanlab_count.compute_confident_joint(y, p, thresholds=thresholds))
    raw = cleanlab_count.compute_confident_joint(y, p, calibrate=False)
    np.testing.assert_array_equal(cl.calibrate_confident_joint(raw, y),
                                  cleanlab_count.calibrate_confident_joint(raw, y))
    assert_close(cl.estimate_joint(y, p), cleanlab_count.estimate_joint(y, p))
    assert_close(cl.estimate_joint(y, p, confident_joint=raw), cleanlab_count.estimate_joint(y, p, confident_joint=raw))


# ---- noise matrices -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("py_method", cl.PY_METHODS)
def test_noise_matrices(seed, py_method, stable_cleanlab):
    y, p = make_case(seed)
    for converge in (True, False):
        for calibrate in (True, False):
            try:
                theirs = cleanlab_count.estimate_py_and_noise_matrices_from_probabilities(
                    y, p, py_method=py_method, converge_latent_estimates=converge, calibrate=calibrate)
            except np.linalg.LinAlgError:  # 'eqn' with a singular noise matrix (an absent class)
                with pytest.raises(InputError, match="singular"):
                    cl.estimate_py_and_noise_matrices_from_probabilities(
                        y, p, py_method=py_method, converge_latent_estimates=converge, calibrate=calibrate)
                continue
            ours = cl.estimate_py_and_noise_matrices_from_probabilities(
                y, p, py_method=py_method, converge_latent_estimates=converge, calibrate=calibrate)
            for a, b in zip(ours[:3], theirs[:3]):
                assert_close(a, b)
            np.testing.assert_array_equal(ours[3], theirs[3])
            latent_ours = cl.estimate_latent(ours[3], y, py_method=py_method, converge_latent_estimates=converge)
            latent_theirs = cleanlab_count.estimate_latent(theirs[3], y, py_method=py_method,
                                                           converge_latent_estimates=converge)
            for a, b in zip(latent_ours, latent_theirs):
                assert_close(a, b)


# ---- number of issues and quality scores ----------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_num_label_issues(seed, stable_cleanlab):
    y, p = make_case(seed)
    for method in ("off_diagonal", "off_diagonal_calibrated"):
        ours = cl.num_label_issues(y, p, estimation_method=method)
        assert ours == cleanlab_count.num_label_issues(y, p, estimation_method=method)
        assert isinstance(ours, int)
    raw = cleanlab_count.compute_confident_joint(y, p, calibrate=False)
    assert cl.num_label_issues(y, p, confident_joint=raw, estimation_method="off_diagonal_custom") == \
        cleanlab_count.num_label_issues(y, p, confident_joint=raw, estimation_method="off_diagonal_custom")


# adjust_pred_probs with the entropy score is refused by both libraries (tested in test_confident.py)
SCORE_VARIANTS = [(m, a) for m in cl.QUALITY_METHODS for a in (False, True)
                  if not (a and m == "confidence_weighted_entropy")]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("method,adjust", SCORE_VARIANTS)
def test_label_quality_scores(seed, method, adjust, stable_cleanlab):
    y, p = make_case(seed)
    ours = cl.get_label_quality_scores(y, p, method=method, adjust_pred_probs=adjust)
    tol = FLOAT32_TOL if p.dtype == np.float32 and method == "confidence_weighted_entropy" else FLOAT_TOL
    assert_close(ours, cleanlab_rank.get_label_quality_scores(y, p, method=method, adjust_pred_probs=adjust), tol)
    # The private entry point CROWDLAB uses, with thresholds passed in, gives the same.
    t = cl.get_confident_thresholds(y, p)
    assert_close(_compute_label_quality_scores(y, p, method, adjust, t), ours)


# ---- find_label_issues ----------------------------------------------------------------------------------------
VARIANTS = {
    "default": {},
    "frac_noise": {"frac_noise": 0.6},
    "min_examples": {"min_examples_per_class": 4},
    "no_minimum": {"min_examples_per_class": 0},
    "ranked_self_confidence": {"return_indices_ranked_by": "self_confidence"},
    "ranked_margin": {"return_indices_ranked_by": "normalized_margin"},
    "ranked_entropy": {"return_indices_ranked_by": "confidence_weighted_entropy"},
    "ranked_adjusted": {"return_indices_ranked_by": "normalized_margin",
                        "rank_by_kwargs": {"adjust_pred_probs": True}},
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("filter_by", cl.FILTER_BY)
def test_find_label_issues(seed, filter_by, stable_cleanlab):
    y, p = make_case(seed)
    for name, kwargs in VARIANTS.items():
        if name == "frac_noise" and filter_by not in ("prune_by_noise_rate", "prune_by_class", "both"):
            continue
        ours = cl.find_label_issues(y, p, filter_by=filter_by, **kwargs)
        theirs = cleanlab_filter.find_label_issues(y, p, filter_by=filter_by, n_jobs=1, **kwargs)
        assert ours.dtype == theirs.dtype, name
        np.testing.assert_array_equal(ours, theirs, err_msg=name)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("filter_by", ("prune_by_noise_rate", "prune_by_class", "both"))
def test_find_label_issues_num_to_remove_per_class(seed, filter_by, stable_cleanlab):
    y, p = make_case(seed)
    counts = np.bincount(y, minlength=p.shape[1])
    rng = np.random.default_rng(seed + 1000)
    remove = np.minimum(rng.integers(0, 6, p.shape[1]), counts)
    ours = cl.find_label_issues(y, p, filter_by=filter_by, num_to_remove_per_class=remove)
    theirs = cleanlab_filter.find_label_issues(y, p, filter_by=filter_by, num_to_remove_per_class=remove, n_jobs=1)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("seed", SEEDS[:12])
def test_find_label_issues_with_given_confident_joint(seed, stable_cleanlab):
    y, p = make_case(seed)
    raw = cleanlab_count.compute_confident_joint(y, p, calibrate=False)
    for filter_by in ("prune_by_noise_rate", "both", "low_normalized_margin"):
        np.testing.assert_array_equal(
            cl.find_label_issues(y, p, filter_by=filter_by, confident_joint=raw),
            cleanlab_filter.find_label_issues(y, p, filter_by=filter_by, confident_joint=raw, n_jobs=1))


# ---- against the unmodified cleanlab: tie-aware -----------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("rank_by", cl.QUALITY_METHODS)
def test_rankings_match_unmodified_cleanlab_within_ties(seed, rank_by, quiet):
    y, p = make_case(seed)
    scores = cl.get_label_quality_scores(y, p, method=rank_by)
    # These two filters pick items without sorting, so only the ranking's tie order can differ.
    for filter_by in ("confident_learning", "predicted_neq_given"):
        ours = cl.find_label_issues(y, p, filter_by=filter_by, return_indices_ranked_by=rank_by)
        theirs = cleanlab_filter.find_label_issues(y, p, filter_by=filter_by, return_indices_ranked_by=rank_by,
                                                   n_jobs=1)
        assert_same_ranking(ours, theirs, scores)
    assert cl.num_label_issues(y, p) == cleanlab_count.num_label_issues(y, p)


def _real_data(name):
    from data_paths import shared_data_dir

    folder = shared_data_dir() / "label_errors"
    stem = {"mnist": "mnist_test_set", "cifar10": "cifar10_test_set", "20news": "20news_test_set",
            "imdb": "imdb_test_set"}[name]
    y = np.load(folder / "labels" / f"{stem}_original_labels.npy").astype(np.int64)
    # the published IMDB probabilities exceed 1 by 1e-5 in places; both libraries refuse that unclipped
    return y, np.clip(np.load(folder / "pred_probs" / f"{stem}_pyx.npy"), 0, 1)


@pytest.mark.parametrize("name", ["mnist", "cifar10", "20news", "imdb"])
def test_real_data_masks_match_cleanlab(name, stable_cleanlab):
    """Every filter on the published pred_probs, exactly."""
    y, p = _real_data(name)
    for filter_by in cl.FILTER_BY:
        np.testing.assert_array_equal(cl.find_label_issues(y, p, filter_by=filter_by),
                                      cleanlab_filter.find_label_issues(y, p, filter_by=filter_by, n_jobs=1),
                                      err_msg=filter_by)


@pytest.mark.parametrize("name", ["mnist", "cifar10", "20news", "imdb"])
def test_real_data_counts_match_unmodified_cleanlab(name, quiet):
    """Unmodified cleanlab can flag different members of a tie (CIFAR-10: a tied rounding residual moves one
    count in the calibrated joint; 20news: equal probabilities at prune_by_class's cut-off), never a different
    number of items ('both' intersects two such choices, so its size can move and is left out)."""
    y, p = _real_data(name)
    for filter_by in set(cl.FILTER_BY) - {"both"}:
        assert cl.find_label_issues(y, p, filter_by=filter_by).sum() == \
            cleanlab_filter.find_label_issues(y, p, filter_by=filter_by, n_jobs=1).sum(), filter_by


def _softmax_case(n_items, n_classes, seed):
    """A weak model (true logit + 2 over N(0, 1) noise) and 15% random labels, as in bench_core."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n_classes, n_items)
    labels = np.where(rng.random(n_items) < 0.85, truth, rng.integers(0, n_classes, n_items))
    logits = rng.normal(0.0, 1.0, (n_items, n_classes))
    logits[np.arange(n_items), truth] += 2.0
    probs = np.exp(logits)
    return labels, probs / probs.sum(axis=1, keepdims=True)


@pytest.mark.slow
def test_a_million_scale_input_matches_unmodified_cleanlab(quiet):
    """At large N the calibration total is summed in cleanlab's memory order, or its last bit (and then a
    rounded count) differs; no sort override is needed here because no rounding residuals tie."""
    y, p = _softmax_case(300_000, 10, seed=10)
    np.testing.assert_array_equal(cl.compute_confident_joint(y, p), cleanlab_count.compute_confident_joint(y, p))
    np.testing.assert_array_equal(cl.find_label_issues(y, p), cleanlab_filter.find_label_issues(y, p, n_jobs=1))
    assert cl.num_label_issues(y, p, estimation_method="off_diagonal_calibrated") == \
        cleanlab_count.num_label_issues(y, p, estimation_method="off_diagonal_calibrated")


def test_many_classes_match_cleanlab(stable_cleanlab):
    """K = 300 takes the generic row-count path (the uint8 one needs K < 256); rows of a 300-class joint are
    full of equal rounding residuals, hence the stable-sort oracle."""
    y, p = _softmax_case(3_000, 300, seed=300)
    np.testing.assert_array_equal(cl.compute_confident_joint(y, p), cleanlab_count.compute_confident_joint(y, p))
    for filter_by in cl.FILTER_BY:
        np.testing.assert_array_equal(cl.find_label_issues(y, p, filter_by=filter_by),
                                      cleanlab_filter.find_label_issues(y, p, filter_by=filter_by, n_jobs=1))
