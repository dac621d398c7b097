"""Calibration, the pipeline search and its report, the fast embedding path."""
from __future__ import annotations

import numpy as np
import pytest

from relabel.scoring.calibration import (apply_temperature, cross_fitted_temperature, expected_calibration_error,
                                         fit_temperature, log_loss)
from relabel.models.fit import ModelSettings, fit_predict_probs
from relabel.models.pipelines import PipelineSpec
from test_model import toy_project


def synthetic_probs(n=4000, k=4, temperature=3.0, seed=0):
    """Labels drawn from softmax(z); the rows handed out are softmax(z * temperature): over-confident by T."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 1.5
    true = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(k, p=p) for p in true])
    sharp = np.exp(z * temperature)
    return sharp / sharp.sum(axis=1, keepdims=True), labels


def test_temperature_recovers_the_planted_overconfidence_and_fixes_ece():
    probs, labels = synthetic_probs()
    t = fit_temperature(probs, labels)
    assert 2.6 < t < 3.4
    calibrated = apply_temperature(probs, t)
    np.testing.assert_array_equal(calibrated.argmax(axis=1), probs.argmax(axis=1))
    assert expected_calibration_error(probs, labels) > 0.15
    assert expected_calibration_error(calibrated, labels) < 0.03
    assert log_loss(calibrated, labels) < log_loss(probs, labels)
    folds = np.arange(labels.size) % 5
    crossed = cross_fitted_temperature(probs, labels, folds)
    assert expected_calibration_error(crossed, labels) < 0.03


def test_ece_of_a_known_case():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = np.array([0, 1, 0, 0])
    # bin 0.9: accuracy 0.5 vs confidence 0.9 (gap 0.4, half the rows); bin 0.6: 1.0 vs 0.6 (gap 0.4)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4)


def test_search_reports_candidates_and_chooses_the_lowest_log_loss():
    ids, texts, labels = toy_project()
    result = fit_predict_probs(ids, texts, labels, 2, ModelSettings(n_folds=3))
    report = result.report
    assert len(report.candidates) >= 3 and report.searched.startswith("chose among")
    best = min(report.candidates, key=lambda c: c.log_loss)
    assert report.pipeline == best.pipeline
    # the winner's rows are then averaged over several fold assignments, which can only help its log-loss much
    assert report.cv_log_loss <= best.log_loss + 0.05
    assert any("fold assignments" in note for note in report.notes)
    assert 0 <= report.ece <= 1 and report.temperature > 0
    assert "out-of-fold log-loss" in report.summary()


def test_time_budget_stops_the_search_after_every_family_and_says_so():
    """A spent budget never cuts the comparison of the feature families, only the C and class-weight stages."""
    ids, texts, labels = toy_project()
    report = fit_predict_probs(ids, texts, labels, 2, ModelSettings(n_folds=3, selection_seconds=1e-6)).report
    assert [c.pipeline for c in report.candidates] == ["word, C=10", "char, C=10", "word+char, C=10"]
    assert report.searched.startswith("time budget of 1e-06 s reached after 3 of 8")


def test_a_big_project_searches_on_a_sample_and_decides_among_finalists_on_every_item(monkeypatch):
    import relabel.models.search as selection
    monkeypatch.setattr(selection, "SEARCH_ROWS", 30)
    ids, texts, labels = toy_project()
    report = fit_predict_probs(ids, texts, labels, 2, ModelSettings(n_folds=3)).report
    assert len(report.candidates) == 8
    assert "on a stratified sample of 30 items (3-fold), the best on every item" in report.searched
    assert report.labelled == len(ids)


def test_projected_full_cost_scales_with_training_rows():
    from relabel.models.search import _full_cost
    # 5 folds on 1M items train on 4M rows in all; 3 folds on a 3,000 sample train on 6,000: 666.7x the time.
    assert _full_cost(1.0, 1_000_000, 3_000, 5) == pytest.approx(4_000_000 / 6_000)
    assert _full_cost(2.0, 3_000, 3_000, 3) == pytest.approx(2.0)


@pytest.mark.parametrize("projected, expected", [(0.0, 2), (1e9, 1)])
def test_the_runner_up_is_scored_on_every_item_only_when_it_fits_the_budget(monkeypatch, projected, expected):
    import relabel.models.search as selection
    monkeypatch.setattr(selection, "SEARCH_ROWS", 30)
    monkeypatch.setattr(selection, "_full_cost", lambda *args: projected)
    asked = []
    real = selection._finalists

    def spy(*args, finalists):
        asked.append(finalists)
        return real(*args, finalists=finalists)
    monkeypatch.setattr(selection, "_finalists", spy)
    ids, texts, labels = toy_project()
    fit_predict_probs(ids, texts, labels, 2, ModelSettings(n_folds=3))
    assert asked == [expected]


def test_pinned_pipeline_skips_the_search():
    ids, texts, labels = toy_project()
    report = fit_predict_probs(ids, texts, labels, 2, ModelSettings(n_folds=3, pipeline="char", C=3,
                                                                    class_weight="balanced")).report
    assert report.candidates == [] and report.pipeline == "char, C=3, class_weight=balanced"
    assert report.searched == "pinned in [model]"


def test_sample_weights_change_the_fit_and_zero_weights_ignore_items():
    ids, texts, labels = toy_project()
    flipped = labels.copy()
    flipped[:4] = 1 - flipped[:4]
    settings = ModelSettings(n_folds=3, pipeline="word")
    plain = fit_predict_probs(ids, texts, flipped, 2, settings).probs
    weight = np.ones(len(ids))
    weight[:4] = 0.0
    weighted = fit_predict_probs(ids, texts, flipped, 2, settings, sample_weight=weight).probs
    # With the flipped items weighing nothing, the model sides more strongly with their true class.
    assert (weighted[np.arange(4), labels[:4]] > plain[np.arange(4), labels[:4]]).all()


def test_pipeline_spec_describes_itself():
    assert PipelineSpec("word+minilm", 30, "balanced").describe() == "word+minilm, C=30, class_weight=balanced"


def test_a_round_stores_prints_and_reports_its_model(tmp_path):
    from relabel.report.page import render_report
    from test_rounds import FakeLabelStudio, make_loop
    loop = make_loop(tmp_path, FakeLabelStudio())
    loop.pull()
    summary = loop.score()
    stored = loop.store.model_report(summary.round)
    assert stored["pipeline"] and stored["labelled"] == 60 and stored["folds"] == 3  # test_rounds.MODEL: 3 folds
    assert summary.model.startswith(f"model: {stored['pipeline']} (") and "ECE" in summary.model
    page = render_report(loop.store)
    assert 'id="model"' in page and f"log-loss {stored['cv_log_loss']:.3f}" in page


def test_weighting_uncertain_items_runs_through_a_round(tmp_path):
    from relabel.loop.rounds import Loop
    from relabel.loop.store import Store
    from test_rounds import FakeLabelStudio
    loop = Loop(Store(tmp_path / "w.db"), FakeLabelStudio(), model={"featurizer": "tfidf", "weight_uncertain": True})
    loop.pull()
    assert loop.score().model is not None


@pytest.fixture
def onnx_cache(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("RELABEL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_onnx_int8_path_matches_the_float_model_and_caches_its_export(tiny_model, onnx_cache):
    from relabel.models.fit import featurizer
    texts = ["the cat sat on the mat", "stocks fell and the market price rose", "a dog barked", "the bank shares"]
    exact = featurizer("sentence-transformers", model=str(tiny_model)).transform(texts)
    fast = featurizer("sentence-transformers", model=str(tiny_model), backend="onnx-int8")
    vectors = fast.transform(texts)
    assert vectors.shape == exact.shape
    assert (np.sum(vectors * exact, axis=1) >= 0.99).all()
    exported = list((onnx_cache / "onnx").glob("*-int8.onnx"))
    assert len(exported) == 1
    stamp = exported[0].stat().st_mtime_ns
    again = featurizer("sentence-transformers", model=str(tiny_model), backend="onnx-int8")
    np.testing.assert_allclose(again.transform(texts), vectors, atol=1e-6)
    assert exported[0].stat().st_mtime_ns == stamp          # reused, not exported again
    assert fast.model_id.endswith(":onnx-int8") and fast.model_id != featurizer(
        "sentence-transformers", model=str(tiny_model)).model_id   # cached vectors never mix the two paths


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from tiny_sentence_model import build_tiny_model
    return build_tiny_model(tmp_path_factory.mktemp("tiny-st"))


def test_folds_without_copies_give_the_same_fit(monkeypatch):
    """Above HASHING_ABOVE rows a held-out fold weighs 0 instead of being cut out (no copy of X): for an exact
    solver the out-of-fold rows are the same."""
    from sklearn.linear_model import LogisticRegression
    from relabel.models import pipelines
    from test_model import blobs
    X, y = blobs(n_per_class=30, spread=1.5)
    folds = np.arange(y.size) % 3

    def make(n_train):
        return LogisticRegression(C=1.0, tol=1e-10, max_iter=5000)

    cut = pipelines.fit_predict_folds(X, y, folds, 3, make, n_jobs=2)
    monkeypatch.setattr(pipelines, "HASHING_ABOVE", 10)
    weighted = pipelines.fit_predict_folds(X, y, folds, 3, make, n_jobs=2)
    np.testing.assert_allclose(weighted, cut, atol=1e-4)


def test_big_projects_hash_single_words_with_bounded_columns(monkeypatch):
    from relabel.models import pipelines
    monkeypatch.setattr(pipelines, "HASHING_ABOVE", 5)
    texts = ["the cat sat", "the dog ran", "stocks fell", "markets rose", "the cat ran", "one dog sat"]
    X = pipelines.word_features(texts)
    assert X.shape == (6, pipelines.HASHING_FEATURES)
    assert X.nnz == sum(len(set(t.split())) for t in texts)  # single words only, no bigrams
    np.testing.assert_allclose(np.sqrt(X.multiply(X).sum(axis=1)).A1, 1.0, rtol=1e-5)
