"""relabel.compat.cleanlab.token_classification against cleanlab 2.9.0 on seeded random cases.

Floats within 1e-9, issue lists exactly. As in test_confident_parity, the oracle is cleanlab with numpy's argsort
made stable (relabel orders exactly equal scores by position; cleanlab's default argsort does not promise an
order). cleanlab's own test file is run separately with the imports swapped (see the issue 23 report).
"""
import warnings

import numpy as np
import pytest

pytest.importorskip("cleanlab.token_classification")
import cleanlab.token_classification.filter as cl_filter
import cleanlab.token_classification.rank as cl_rank

from relabel.compat.cleanlab import token_classification as rl
from relabel.errors import ConfigError, InputError

SEEDS = range(12)
FLOAT_TOL = 1e-9
_np_argsort = np.argsort


def _stable_argsort(a, axis=-1, kind=None, order=None, **kwargs):
    return _np_argsort(a, axis=axis, kind=kind or "stable", order=order, **kwargs)


@pytest.fixture
def stable_cleanlab(monkeypatch):
    monkeypatch.setattr(np, "argsort", _stable_argsort)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def make_case(seed: int):
    """Sentences of 1-12 tokens, K classes, a model that is right on most tokens, ~15% flipped labels; every
    class given at least twice (cleanlab's confident joint needs each class present)."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 6))
    n = int(rng.integers(3, 40))
    lengths = rng.integers(1, 13, size=n)
    total = int(lengths.sum())
    truth = rng.integers(0, k, size=total)
    truth[:2 * k] = np.repeat(np.arange(k), 2)
    logits = rng.normal(size=(total, k)) + 3.0 * np.eye(k)[truth] * rng.uniform(0.2, 1.5)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    given = np.where(rng.random(total) < 0.15, rng.integers(0, k, size=total), truth)
    given[:2 * k] = np.repeat(np.arange(k), 2)
    cuts = np.cumsum(lengths)[:-1]
    labels = [list(map(int, part)) for part in np.split(given, cuts)]
    pred_probs = list(np.split(probs, cuts))
    tokens = [[f"t{i}_{j}" for j in range(len(s))] for i, s in enumerate(labels)]
    return labels, pred_probs, tokens


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("token_method", ["self_confidence", "normalized_margin", "confidence_weighted_entropy"])
def test_label_quality_scores_match(seed, token_method, stable_cleanlab):
    labels, pred_probs, tokens = make_case(seed)
    for sentence_method, kwargs in (("min", {}), ("softmin", {}), ("softmin", {"temperature": 0.5}),
                                    ("softmin", {"temperature": 0}), ("softmin", {"temperature": np.inf})):
        want_s, want_t = cl_rank.get_label_quality_scores(labels, pred_probs, tokens=tokens,
                                                          token_score_method=token_method,
                                                          sentence_score_method=sentence_method,
                                                          sentence_score_kwargs=kwargs)
        got_s, got_t = rl.get_label_quality_scores(labels, pred_probs, tokens=tokens,
                                                   token_score_method=token_method,
                                                   sentence_score_method=sentence_method,
                                                   sentence_score_kwargs=kwargs)
        np.testing.assert_allclose(got_s, want_s, rtol=0, atol=FLOAT_TOL)
        assert len(got_t) == len(want_t)
        for g, w in zip(got_t, want_t):
            assert list(g.index) == list(w.index)
            np.testing.assert_allclose(g.to_numpy(), w.to_numpy(), rtol=0, atol=FLOAT_TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_default_sentence_score_is_min_and_index_is_positions(seed, stable_cleanlab):
    labels, pred_probs, _ = make_case(seed)
    got_s, got_t = rl.get_label_quality_scores(labels, pred_probs)
    want_s, want_t = cl_rank.get_label_quality_scores(labels, pred_probs)
    np.testing.assert_allclose(got_s, want_s, rtol=0, atol=FLOAT_TOL)
    np.testing.assert_allclose(got_s, [t.min() for t in got_t], rtol=0, atol=0)
    assert all(list(g.index) == list(w.index) for g, w in zip(got_t, want_t))


@pytest.mark.parametrize("seed", SEEDS)
def test_issues_from_scores_match(seed, stable_cleanlab):
    labels, pred_probs, _ = make_case(seed)
    sentence_scores, token_scores = cl_rank.get_label_quality_scores(labels, pred_probs)
    for threshold in (0.1, 0.3, float(np.quantile(sentence_scores, 0.5))):
        assert rl.issues_from_scores(sentence_scores, token_scores=token_scores, threshold=threshold) == \
            cl_rank.issues_from_scores(sentence_scores, token_scores=token_scores, threshold=threshold)
        if (sentence_scores < threshold).all():
            continue        # cleanlab 2.9 raises IndexError here; relabel returns every sentence
        np.testing.assert_array_equal(rl.issues_from_scores(sentence_scores, threshold=threshold),
                                      cl_rank.issues_from_scores(sentence_scores, threshold=threshold))
    # the default threshold is 0.1
    assert rl.issues_from_scores(sentence_scores, token_scores=token_scores) == \
        cl_rank.issues_from_scores(sentence_scores, token_scores=token_scores, threshold=0.1)


def test_issues_from_scores_all_below_threshold_returns_every_sentence():
    scores = np.array([0.05, 0.01, 0.02])
    np.testing.assert_array_equal(rl.issues_from_scores(scores), [1, 2, 0])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("ranked_by", ["self_confidence", "normalized_margin", "confidence_weighted_entropy"])
def test_find_label_issues_match(seed, ranked_by, stable_cleanlab):
    labels, pred_probs, _ = make_case(seed)
    got = rl.find_label_issues(labels, pred_probs, return_indices_ranked_by=ranked_by)
    want = cl_filter.find_label_issues(labels, pred_probs, return_indices_ranked_by=ranked_by)
    assert got == want
    assert all(isinstance(i, int) and isinstance(j, int) for i, j in got)


@pytest.mark.parametrize("seed", SEEDS[:10])
def test_find_label_issues_passes_filter_options(seed, stable_cleanlab):
    labels, pred_probs, _ = make_case(seed)
    for kwargs in ({"filter_by": "prune_by_class"}, {"filter_by": "both"}, {"frac_noise": 0.5}):
        assert rl.find_label_issues(labels, pred_probs, **kwargs) == \
            cl_filter.find_label_issues(labels, pred_probs, **kwargs)


def test_bad_input_is_one_clear_error():
    labels, pred_probs, _ = make_case(0)
    with pytest.raises(ConfigError, match="sentence_score_method"):
        rl.get_label_quality_scores(labels, pred_probs, sentence_score_method="mean")
    with pytest.raises(InputError, match="one row per token"):
        rl.get_label_quality_scores(labels, [p[:-1] for p in pred_probs])
    with pytest.raises(InputError, match="no tokens"):
        rl.get_label_quality_scores(labels + [[]], pred_probs + [np.zeros((0, pred_probs[0].shape[1]))])
    with pytest.raises(ConfigError, match="low_memory"):
        rl.find_label_issues(labels, pred_probs, low_memory=True)
