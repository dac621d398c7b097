"""Reuse across rounds (relabel.models.model_cache): cached n-gram counts, the chosen pipeline kept while the
labels change little, and the search's CPU budget."""
from __future__ import annotations

import numpy as np
import pytest

from relabel.models.fit import ModelSettings, fit_predict_probs
from relabel.models.model_cache import ModelCache, tfidf_from_counts
from relabel.models.pipelines import FeatureBlocks, char_features, word_features

TOPICS = {
    0: "goal match team coach league season striker keeper referee penalty stadium fans cup".split(),
    1: "market stock shares profit bank investor trading prices bond earnings quarter fund rate".split(),
}
FILLER = "the a of and to in on for with was is it this that day week new old".split()


def noisy_project(n=120, flip=0.1, seed=0):
    """Two topics in short texts with shared filler words, and ``flip`` of the labels flipped."""
    rng = np.random.default_rng(seed)
    truth = np.arange(n) % 2
    texts = []
    for i, c in enumerate(truth):
        words = list(rng.choice(TOPICS[c], size=4)) + list(rng.choice(TOPICS[1 - c], size=2)) + \
            list(rng.choice(FILLER, size=6))
        rng.shuffle(words)
        texts.append(" ".join(words) + f" item{i}")
    labels = np.where(rng.random(n) < flip, 1 - truth, truth)
    return [f"t{i}" for i in range(n)], texts, labels


def gram(X):
    X = X.toarray() if hasattr(X, "toarray") else X
    return X @ X.T


@pytest.mark.parametrize("block, plain", [("word", word_features), ("char", char_features)])
def test_tfidf_from_cached_counts_is_the_vectorizers_and_counts_only_new_texts(tmp_path, block, plain):
    ids, texts, _ = noisy_project(60)
    settings = ModelSettings(featurizer="tfidf")
    first = FeatureBlocks(texts, ids, settings, reuse=ModelCache(tmp_path)).matrix(block)
    # The same rows as TfidfVectorizer's (columns may be in another order: compare the rows' inner products).
    np.testing.assert_allclose(gram(first), gram(plain(texts, ids)), atol=1e-5)
    edited = list(texts)
    edited[3] = "a wholly new text about penalty shootouts"
    edited = edited[:50]                                       # ten items gone
    again = ModelCache(tmp_path)                               # a new process: only the folder is shared
    second = FeatureBlocks(edited, ids[:50], settings, reuse=again).matrix(block)
    assert again.texts_counted == 1 and again.texts_reused == 49
    np.testing.assert_allclose(gram(second), gram(plain(edited, ids[:50])), atol=1e-5)


def test_tfidf_from_counts_keeps_the_most_frequent_terms_and_falls_back_to_min_df_1():
    import scipy.sparse
    counts = scipy.sparse.csr_matrix(np.array([[3, 1, 0], [1, 0, 1]]))
    X = tfidf_from_counts(counts, ["b", "a", "c"], min_df=2, max_features=None)
    assert X.shape == (2, 1)                                   # only "b" is in two texts
    single = tfidf_from_counts(counts[:1], ["b", "a", "c"], min_df=2, max_features=1)
    assert single.shape == (1, 1)                              # one text: min_df 1, the top term kept


def test_round_two_of_an_unchanged_project_refits_the_winner_without_a_search(tmp_path, monkeypatch):
    from relabel.models import search
    # A refit budget that pays for every assignment the search averaged: then round 2 must be round 1's rows.
    monkeypatch.setattr(search, "REFIT_MULTIPLE", 1e9)
    ids, texts, labels = noisy_project()
    settings = ModelSettings(featurizer="tfidf", n_folds=3)
    first = fit_predict_probs(ids, texts, labels, 2, settings, reuse=ModelCache(tmp_path))
    assert first.report.candidates                              # round 1 searched
    cache = ModelCache(tmp_path)
    second = fit_predict_probs(ids, texts, labels, 2, settings, reuse=cache)
    assert second.report.candidates == [] and second.report.searched.startswith("reused the pipeline")
    assert second.report.pipeline == first.report.pipeline
    assert cache.texts_counted == 0 and cache.texts_reused >= len(ids)   # features from the cached counts
    np.testing.assert_allclose(second.probs, first.probs, atol=1e-6)       # same inputs, same rows


def test_a_refit_is_the_same_however_busy_the_machine_is(tmp_path, monkeypatch):
    """Round 2 decides its fold assignments from the stored choice, never from its own clock: two refits from the
    same folder give identical rows even when one of them sees every CPU second cost a hundred times more."""
    import shutil
    import time

    from relabel.models import search
    ids, texts, labels = noisy_project()
    settings = ModelSettings(featurizer="tfidf", n_folds=3)
    fit_predict_probs(ids, texts, labels, 2, settings, reuse=ModelCache(tmp_path / "a"))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    calm = fit_predict_probs(ids, texts, labels, 2, settings, reuse=ModelCache(tmp_path / "a"))
    real = time.process_time
    monkeypatch.setattr(search.time, "process_time", lambda: 100 * real())
    busy = fit_predict_probs(ids, texts, labels, 2, settings, reuse=ModelCache(tmp_path / "b"))
    assert calm.report.searched.startswith("reused") and busy.report.searched.startswith("reused")
    np.testing.assert_array_equal(busy.probs, calm.probs)


@pytest.mark.parametrize("repeats, reference, assignment, expected", [
    (4, 3.0, 1.0, 4),     # the refit budget (1.5 x 3 s) pays for all 4 one-second assignments
    (4, 3.0, 2.0, 2),     # 4.5 s pays for two 2-second assignments
    (4, 1.0, 2.0, 1),     # one assignment always
    (1, 9.0, 1.0, 1),     # the search averaged only one
    (4, 3.0, 0.0, 1),     # a choice saved before its cost was recorded: the cheapest refit
])
def test_refit_repeats_follow_the_searchs_measured_costs(repeats, reference, assignment, expected):
    from relabel.models.model_cache import Choice
    from relabel.models.search import refit_repeats
    choice = Choice("word", 1.0, None, 0.1, "k", repeats, "", np.array(["1"]), np.array([0]), np.array([b"x"]),
                    reference=reference, assignment=assignment)
    assert refit_repeats(choice) == expected


def test_a_big_label_change_triggers_a_new_search(tmp_path):
    ids, texts, labels = noisy_project()
    settings = ModelSettings(featurizer="tfidf", n_folds=3)
    fit_predict_probs(ids, texts, labels, 2, settings, reuse=ModelCache(tmp_path))
    changed = labels.copy()
    changed[:48] = 1 - changed[:48]                             # 40% of the labels
    again = fit_predict_probs(ids, texts, changed, 2, settings, reuse=ModelCache(tmp_path)).report
    assert again.candidates and any("searched again" in note for note in again.notes)


def test_a_changed_setting_triggers_a_new_search(tmp_path):
    ids, texts, labels = noisy_project()
    fit_predict_probs(ids, texts, labels, 2, ModelSettings(featurizer="tfidf", n_folds=3), reuse=ModelCache(tmp_path))
    again = fit_predict_probs(ids, texts, labels, 2, ModelSettings(featurizer="tfidf", n_folds=4),
                              reuse=ModelCache(tmp_path)).report
    assert again.candidates


def test_the_changed_share_counts_new_changed_gone_and_edited_items(tmp_path):
    from relabel.models.model_cache import Choice, text_digests
    texts = ["a", "b", "c", "d"]
    choice = Choice("word", 10.0, None, 0.1, "k", 1, "", np.array(["1", "2", "3", "4"]), np.array([0, 1, 0, -1]),
                    text_digests(texts))
    assert choice.changed_share(["1", "2", "3", "4"], np.array([0, 1, 0, -1]), text_digests(texts)) == 0
    # item 2 relabelled, item 4 newly labelled, item 3 edited: 3 of the 3 labelled at the search
    now = choice.changed_share(["1", "2", "3", "4"], np.array([0, 0, 0, 1]), text_digests(["a", "b", "C", "d"]))
    assert now == pytest.approx(3 / 3)
    assert choice.changed_share(["1", "2"], np.array([0, 1]), text_digests(["a", "b"])) == pytest.approx(1 / 3)


def test_reuse_tolerance_grows_with_the_winners_lead_and_shrinks_with_the_swing():
    from relabel.models.search import reuse_tolerance
    rng = np.random.default_rng(0)
    winner = rng.random(1000)
    doubted = np.zeros(1000, dtype=bool)
    doubted[:100] = True
    close, _ = reuse_tolerance(winner, winner + rng.normal(0, 0.05, 1000), doubted)
    ahead, why = reuse_tolerance(winner, winner + 0.05 + rng.normal(0, 0.05, 1000), doubted)
    assert 0 < close < ahead <= 1 and "runner-up" in why
    assert reuse_tolerance(winner, None, doubted)[0] == 0.0      # one candidate: no evidence, search again


def test_the_cpu_budget_skips_candidates_it_cannot_afford_and_says_so(monkeypatch):
    import relabel.models.search as selection
    monkeypatch.setattr(selection, "COST_MULTIPLE", 1e-9)
    ids, texts, labels = noisy_project()
    report = fit_predict_probs(ids, texts, labels, 2, ModelSettings(featurizer="tfidf", n_folds=3)).report
    assert [c.pipeline for c in report.candidates] == ["word, C=10"]
    assert "not tried: projected CPU beyond" in report.searched


def test_a_model_fitted_ahead_is_taken_when_few_labels_changed_and_only_then(tmp_path):
    from relabel.models.fit import prefit_probs
    ids, texts, labels = noisy_project()
    settings = ModelSettings(featurizer="tfidf", n_folds=3)
    cache = ModelCache(tmp_path)
    fit_predict_probs(ids, texts, labels, 2, settings, reuse=cache)           # round 1: the search
    ahead = prefit_probs(ids, texts, labels, 2, settings, reuse=cache)         # while reviewers answer
    answered = labels.copy()
    answered[0] = 1 - answered[0]                                              # the last answer
    taken = fit_predict_probs(ids, texts, answered, 2, settings, reuse=cache)
    assert taken is ahead and any("fitted ahead" in n for n in taken.report.notes)
    # handed out once; and a prefit on labels that then changed a lot is not taken
    prefit_probs(ids, texts, labels, 2, settings, reuse=cache)
    flipped = labels.copy()
    flipped[:60] = 1 - flipped[:60]
    fresh = fit_predict_probs(ids, texts, flipped, 2, settings, reuse=cache)
    assert not any("fitted ahead" in n for n in fresh.report.notes)



def test_a_round_keeps_its_model_beside_the_store_and_the_next_one_reuses_it(tmp_path):
    from test_rounds import FakeLabelStudio, make_loop
    loop = make_loop(tmp_path, FakeLabelStudio())
    loop.pull()
    first = loop.score()
    assert (tmp_path / "relabel.db.model-cache" / "choice.npz").is_file()
    again = make_loop(tmp_path, FakeLabelStudio())        # a new command: only the folder is shared
    second = again.score()                                # re-scores the open round, nothing changed
    stored = again.store.model_report(second.round)
    assert stored["searched"].startswith("reused the pipeline") and stored["candidates"] == []
    assert stored["pipeline"] == loop.store.model_report(first.round)["pipeline"]


def test_serve_fits_the_next_model_ahead_and_the_round_takes_it(tmp_path):
    from test_rounds import FakeLabelStudio, make_loop
    loop = make_loop(tmp_path, FakeLabelStudio())
    loop.pull()
    loop.score()
    assert loop.prefit() is True            # nothing held yet: fitted now
    assert loop.prefit() is False           # the held model would still be taken: not fitted again
    summary = loop.score()
    assert "fitted ahead while reviewers answered" in " ".join(loop.store.model_report(summary.round)["notes"])


def test_a_candidate_clearly_worse_on_the_first_folds_is_dropped_there(monkeypatch):
    import relabel.models.search as selection
    monkeypatch.setattr(selection, "COST_MULTIPLE", float("inf"))
    calls = []
    real = selection._oof

    def spy(*args, only=None, **kwargs):
        calls.append(None if only is None else list(only))
        return real(*args, only=only, **kwargs)
    monkeypatch.setattr(selection, "_oof", spy)
    monkeypatch.setattr(selection, "C_GRID", (0.001, 10.0))     # a planted loser: C = 0.001 barely fits at all
    ids, texts, labels = noisy_project(240, flip=0.0)
    report = fit_predict_probs(ids, texts, labels, 2, ModelSettings(featurizer="tfidf", n_folds=5,
                                                                    selection_seconds=1e9)).report
    dropped = [c.pipeline for c in report.candidates if "dropped after 2 of 5 folds" in c.pipeline]
    finished = [c for c in report.candidates if "dropped" not in c.pipeline]
    assert any(p.startswith("word, C=0.001") or p.startswith("char, C=0.001") or p.startswith("word+char, C=0.001")
               for p in dropped)
    # every candidate after the first started on 2 folds; the dropped ones never ran the other 3
    assert calls[0] is None
    assert calls.count([0, 1]) == len(report.candidates) - 1
    assert calls.count([2, 3, 4]) == len(finished) - 1
    assert report.pipeline in [c.pipeline for c in finished]


def test_the_tfidf_cap_is_the_hashed_blocks_bound():
    """The vocabulary cap below HASHING_ABOVE texts equals the hashed block's width above it (fit.py says why)."""
    from relabel.models.pipelines import HASHING_FEATURES
    assert ModelSettings().tfidf_max_features == HASHING_FEATURES
