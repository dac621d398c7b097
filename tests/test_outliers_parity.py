"""Parity with cleanlab 2.9.0: OutOfDistribution feature and prediction scores (within 1e-6) and Datalab's
near-duplicate sets (identical), on random cases with exact duplicates, tiny projects and both metrics."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

cleanlab_outlier = pytest.importorskip("cleanlab.outlier")

from relabel.compat.cleanlab.outlier import OutOfDistribution
from relabel.scoring.duplicates import near_duplicate_graph, near_duplicate_sets
from relabel.scoring.neighbours import exact_duplicate_groups, knn_graph

TOL = 1e-6


def random_features(rng, n: int, d: int, dtype, duplicates: str) -> np.ndarray:
    """Clustered points, with exact duplicate groups planted: none, small (fit inside k) or large (> k + 1)."""
    centres = rng.normal(size=(4, d)) * 3
    x = centres[rng.integers(0, 4, n)] + rng.normal(size=(n, d))
    if duplicates == "small" and n > 8:
        x[[1, 5, 7]] = x[0]
        x[3] = x[2]
    if duplicates == "large" and n > 30:
        members = rng.choice(n, size=14, replace=False)      # 14 copies > k + 1 = 11
        x[members] = x[members[0]]
    return x.astype(dtype)


CASES = [(seed, n, d, dtype, dup)
         for seed, (n, d, dtype, dup) in enumerate([
             (3, 2, np.float64, "none"), (12, 3, np.float64, "small"), (60, 2, np.float64, "small"),
             (150, 3, np.float64, "large"), (40, 5, np.float64, "small"), (200, 20, np.float64, "large"),
             (120, 64, np.float32, "small"), (90, 384, np.float32, "none"), (250, 8, np.float64, "none"),
             (101, 2, np.float64, "large"), (99, 3, np.float32, "small"), (300, 16, np.float64, "small")])]


@pytest.mark.parametrize("seed,n,d,dtype,dup", CASES)
def test_feature_scores_match_cleanlab(seed, n, d, dtype, dup):
    rng = np.random.default_rng(seed)
    x = random_features(rng, n, d, dtype, dup)
    queries = np.vstack([x[:3], rng.normal(size=(5, d)).astype(dtype) * 4])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = cleanlab_outlier.OutOfDistribution()
        want_fit = theirs.fit_score(features=x, verbose=False)
        want_new = theirs.score(features=queries)
    ours = OutOfDistribution()
    got_fit = ours.fit_score(features=x)
    np.testing.assert_allclose(got_fit, want_fit, rtol=0, atol=TOL)
    np.testing.assert_allclose(ours.score(features=queries), want_new, rtol=0, atol=TOL)
    assert ours.params["scaling_factor"] == pytest.approx(theirs.params["scaling_factor"], rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("k,t", [(3, 1), (1, 5), (25, 0.5)])
def test_feature_scores_match_cleanlab_with_k_and_t(k, t):
    x = random_features(np.random.default_rng(7), 80, 6, np.float64, "small")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = cleanlab_outlier.OutOfDistribution({"k": k, "t": t}).fit_score(features=x, verbose=False)
    np.testing.assert_allclose(OutOfDistribution({"k": k, "t": t}).fit_score(features=x), want, atol=TOL, rtol=0)


def random_pred_probs(rng, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    logits = rng.normal(size=(n, k)) * rng.uniform(0.5, 4)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    labels = np.where(rng.random(n) < 0.8, p.argmax(axis=1), rng.integers(0, k, n))
    labels[:k] = np.arange(k)             # every class given at least once
    return p, labels


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("method", ["entropy", "least_confidence", "gen"])
@pytest.mark.parametrize("adjust", [True, False])
def test_prediction_scores_match_cleanlab(seed, method, adjust):
    rng = np.random.default_rng(100 + seed)
    p, labels = random_pred_probs(rng, int(rng.integers(20, 400)), int(rng.integers(2, 12)))
    p_new, _ = random_pred_probs(rng, 30, p.shape[1])
    params = {"method": method, "adjust_pred_probs": adjust, "M": 5}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = cleanlab_outlier.OutOfDistribution(dict(params))
        want = theirs.fit_score(pred_probs=p, labels=labels if adjust else None, verbose=False)
        want_new = theirs.score(pred_probs=p_new)
        ours = OutOfDistribution(dict(params))
        got = ours.fit_score(pred_probs=p, labels=labels if adjust else None)
        got_new = ours.score(pred_probs=p_new)
    np.testing.assert_allclose(got, want, atol=TOL, rtol=0)
    np.testing.assert_allclose(got_new, want_new, atol=TOL, rtol=0)


def datalab_sets(x: np.ndarray) -> list[set]:
    datalab = pytest.importorskip("cleanlab.datalab.datalab")
    lab = datalab.Datalab({"y": np.zeros(len(x), dtype=int)}, label_name="y", verbosity=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lab.find_issues(features=x, issue_types={"near_duplicate": {}})
    return [set(map(int, s)) for s in lab.get_info("near_duplicate")["near_duplicate_sets"]]


@pytest.mark.parametrize("seed,n,d,dup", [(0, 40, 2, "small"), (1, 150, 3, "large"), (2, 120, 20, "small"),
                                          (3, 200, 384, "large"), (4, 64, 5, "none")])
def test_near_duplicate_sets_match_datalab(seed, n, d, dup):
    rng = np.random.default_rng(seed)
    x = random_features(rng, n, d, np.float64, dup)
    near = rng.choice(n, size=6, replace=False)
    x[near[3:]] = x[near[:3]] + 1e-4 * rng.normal(size=(3, d))          # lightly edited copies
    ours = [set(map(int, s)) for s in near_duplicate_sets(near_duplicate_graph(x))]
    theirs = datalab_sets(x)
    assert sum(bool(s) for s in ours) >= 6                                # the planted pairs are found
    if dup != "large":
        assert ours == theirs
        return
    # A group of more than k + 1 copies: an item near it has more equidistant neighbours than slots, and which
    # copies fill them is an arbitrary tie-break in cleanlab (scikit-learn's argpartition); relabel takes
    # index order. Identical once each copy stands for its group, and only the tied items differ.
    groups = exact_duplicate_groups(x)
    rep = np.arange(n)
    for g in groups:
        rep[g] = g[0]

    def collapsed(sets):     # each row's set, copies named by their group, rows of one group merged
        out = [set() for _ in range(n)]
        for i, members in enumerate(sets):
            out[rep[i]] |= {int(rep[j]) for j in members} - {int(rep[i])}
        return out

    assert collapsed(ours) == collapsed(theirs)
    differ = [i for i in range(n) if ours[i] != theirs[i]]
    tied = set(np.flatnonzero([len(set(s) & set(groups[0].tolist())) for s in ours]).tolist())
    assert set(differ) <= tied


def test_exact_duplicates_fill_slots_as_cleanlab_does():
    """A group larger than k + 1: the first k + 1 list each other, later members list the first k."""
    x = np.vstack([np.ones((13, 4)), np.random.default_rng(0).normal(size=(20, 4))])
    graph = knn_graph(x, k=10)
    assert (graph.distances[:13] == 0).all()
    assert graph.indices[0].tolist() == list(range(1, 11))
    assert graph.indices[12].tolist() == list(range(10))
