"""Out-of-sample pred_probs: folds, cross-validation, predict_probs, settings, user pred_probs, the real Store."""
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from relabel.errors import ConfigError, InputError, LabelError, PredProbsError
from relabel.models.fit import (PROBABILITY_FLOOR, MemoryEmbeddingCache, ModelSettings, ModelWarning, check_in_sample,
                                cross_val_pred_probs, make_classifier, predict_probs, texts_for_items)
from relabel.models.estimators import stratified_folds as _stratified_folds
from tiny_sentence_model import build_tiny_model


class RecordingClassifier(ClassifierMixin, BaseEstimator):
    """Remembers which rows (column 0 of X holds the row number) every fit saw, and predicts class priors."""

    seen: list = []  # shared across clones: sklearn clones the estimator for every fold

    def fit(self, X, y):
        RecordingClassifier.seen.append(set(np.asarray(X)[:, 0].astype(int).tolist()))
        self.classes_ = np.unique(y)
        self.prior_ = np.bincount(np.searchsorted(self.classes_, y)) / len(y)
        self.fitted_rows_ = RecordingClassifier.seen[-1]
        return self

    def predict_proba(self, X):
        rows = np.asarray(X)[:, 0].astype(int)
        # Out-of-sample means: never asked about a row it was fit on.
        assert not (set(rows.tolist()) & self.fitted_rows_), "predicted a row the model was trained on"
        return np.tile(self.prior_, (len(rows), 1))


def blobs(n_per_class=40, k=3, seed=0, spread=0.3):
    rng = np.random.default_rng(seed)
    centres = np.eye(k) * 3
    y = np.repeat(np.arange(k), n_per_class)
    X = centres[y] + rng.normal(scale=spread, size=(y.size, k))
    return X, y


# --- folds -------------------------------------------------------------------------------------------------------

def test_stratified_folds_balance_classes_and_sizes():
    y = np.array([0] * 23 + [1] * 11 + [2] * 3)
    folds = _stratified_folds(y, 5, seed=0)
    sizes = np.bincount(folds, minlength=5)
    assert sizes.max() - sizes.min() <= 1
    for k in range(3):
        per_fold = np.bincount(folds[y == k], minlength=5)
        assert per_fold.max() - per_fold.min() <= 1
    np.testing.assert_array_equal(folds, _stratified_folds(y, 5, seed=0))
    assert not np.array_equal(folds, _stratified_folds(y, 5, seed=1))


# --- cross_val_pred_probs ----------------------------------------------------------------------------------------

def test_every_row_is_predicted_by_a_model_that_never_saw_it():
    RecordingClassifier.seen = []
    y = np.array([0, 1, 2] * 10)
    X = np.column_stack([np.arange(30), np.zeros(30)])
    probs = cross_val_pred_probs(X, y, n_folds=5, classifier=RecordingClassifier())
    assert len(RecordingClassifier.seen) == 5
    held_out = [set(range(30)) - s for s in RecordingClassifier.seen]
    assert sorted(r for h in held_out for r in h) == list(range(30))  # each row held out exactly once
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_out_of_fold_differs_from_in_sample_memorisation():
    # Random labels on random features: a 1-nearest-neighbour model is 100% right in-sample, chance out-of-fold.
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(300, 5)), rng.integers(0, 3, size=300)
    in_sample = KNeighborsClassifier(n_neighbors=1).fit(X, y).predict_proba(X)
    assert (in_sample.argmax(axis=1) == y).mean() == 1.0
    oof = cross_val_pred_probs(X, y, classifier=KNeighborsClassifier(n_neighbors=1))
    assert (oof.argmax(axis=1) == y).mean() < 0.5


def test_separable_data_is_predicted_well_and_rows_sum_to_one():
    X, y = blobs()
    probs = cross_val_pred_probs(X, y, seed=0)
    assert probs.shape == (120, 3)
    assert (probs.argmax(axis=1) == y).mean() > 0.95
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(probs, cross_val_pred_probs(X, y, seed=0))  # seeded: reproducible


def test_planted_label_error_gets_a_low_probability_for_its_given_label():
    X, y = blobs(seed=1)
    noisy = y.copy()
    noisy[5] = 2  # truly class 0
    probs = cross_val_pred_probs(X, noisy)
    assert probs[5, 2] < 0.1 and probs[5, 0] > 0.8


def test_classes_nobody_labelled_get_a_floored_column():
    X, y = blobs(k=3)
    probs = cross_val_pred_probs(X, y, n_classes=5)
    assert probs.shape == (120, 5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)
    assert (probs[:, 3:] > 0).all() and (probs[:, 3:] <= PROBABILITY_FLOOR).all()
    assert probs.min() >= PROBABILITY_FLOOR / (1 + 5 * PROBABILITY_FLOOR)


def test_rare_classes_warn_naming_them_and_do_not_crash():
    X, y = blobs(n_per_class=20, k=3)
    X = np.vstack([X, [[0, 0, 3.1]], [[0, 0.1, 2.9]]])
    y = np.concatenate([np.where(y == 2, 1, y), [2, 3]])  # class 2 has 1 item, class 3 has 1 item
    with pytest.warns(ModelWarning, match=r"Classes 2, 3 have fewer labelled items \(1, 1\) than the 5 folds"):
        probs = cross_val_pred_probs(X, y, n_classes=4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    # The lone item of class 3 was held out from its own training fold: that class was unseen there.
    assert probs[-1, 3] <= PROBABILITY_FLOOR


def test_two_classes_with_a_singleton_leave_a_one_class_training_fold():
    X = np.arange(6, dtype=float).reshape(-1, 1)
    y = np.array([0, 0, 0, 0, 0, 1])
    with pytest.warns(ModelWarning, match="Classes 1 have fewer"):
        probs = cross_val_pred_probs(X, y, n_folds=5)
    # The fold holding item 5 trained on class 0 only, so item 5 gets (almost) all its mass on class 0.
    assert probs[5, 0] > 0.99
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_fewer_rows_than_folds_is_leave_one_out():
    X, y = blobs(n_per_class=2, k=2)
    with pytest.warns(ModelWarning, match="than the 4 folds"):  # 4 rows: 4 folds, one row each
        probs = cross_val_pred_probs(X, y, n_folds=10)
    assert probs.shape == (4, 2)


def test_one_class_among_labels_is_a_label_error():
    with pytest.raises(LabelError, match="only class 1 is present among the 4 labelled items"):
        cross_val_pred_probs(np.ones((4, 2)), np.array([1, 1, 1, 1]), n_classes=3)


def test_bad_cv_inputs():
    X, y = blobs()
    with pytest.raises(ConfigError, match="'n_folds' setting must be an integer of at least 2. Got 1"):
        cross_val_pred_probs(X, y, n_folds=1)
    with pytest.raises(LabelError, match="120 entries but pred_probs has 119"):
        cross_val_pred_probs(X[:-1], y)
    with pytest.raises(LabelError, match="outside the 2 classes"):
        cross_val_pred_probs(X, y, n_classes=2)


def test_classifier_by_dotted_path_class_or_instance():
    X, y = blobs()
    forest = cross_val_pred_probs(X, y, classifier="sklearn.ensemble.RandomForestClassifier")
    assert (forest.argmax(axis=1) == y).mean() > 0.9
    est = make_classifier("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 7}, seed=4)
    assert est.n_estimators == 7 and est.random_state == 4
    assert isinstance(make_classifier(LogisticRegression, {"C": 3.0}), LogisticRegression)
    assert make_classifier().C == 10.0 and make_classifier(None, {"C": 0.5}).C == 0.5
    inst = LogisticRegression(C=2.0)
    assert make_classifier(inst) is not inst and make_classifier(inst).C == 2.0
    with pytest.raises(ConfigError, match="does not exist in scikit-learn"):
        make_classifier("sklearn.nope.Missing")
    with pytest.raises(ConfigError, match="LinearSVC' has no predict_proba"):
        make_classifier("sklearn.svm.LinearSVC")
    with pytest.raises(ConfigError, match="rejected classifier_options"):
        make_classifier("sklearn.linear_model.LogisticRegression", {"colour": 1})
    with pytest.raises(ConfigError, match="LogisticRegression rejected classifier_options"):
        make_classifier(None, {"colour": 1})

    class NotSklearn:
        def fit(self, X, y):
            return self

        def predict_proba(self, X):
            return np.ones((len(X), 2)) / 2

    with pytest.raises(ConfigError, match="NotSklearn cannot be copied for each fold"):
        make_classifier(NotSklearn())


# --- settings ----------------------------------------------------------------------------------------------------

def test_settings_from_dict_rejects_unknown_keys_naming_valid_ones():
    with pytest.raises(ConfigError, match=r"Unknown \[model\] setting 'folds'; the valid settings are .*n_folds"):
        ModelSettings.from_dict({"folds": 3})
    s = ModelSettings.from_dict({"featurizer": "sentence_transformers", "n_folds": 3, "threads": 2})
    assert s.featurizer == "sentence-transformers" and s.n_folds == 3 and s.threads == 2
    assert ModelSettings.from_dict(None) == ModelSettings()


@pytest.mark.parametrize("bad, message", [
    ({"n_folds": 1}, "'n_folds' setting must be an integer of at least 2. Got 1"),
    ({"n_folds": True}, "'n_folds'"),
    ({"batch_size": 0}, "'batch_size'"),
    ({"threads": 0}, "'threads'"),
    ({"featurizer": "word2vec"}, "'featurizer' setting must be one of"),
    ({"featurizer": "precomputed"}, "needs 'precomputed_path'"),
    ({"classifier_options": "C=1"}, "'classifier_options'"),
    ({"pipeline": "words"}, "'pipeline' setting 'words' must be feature blocks"),
    ({"pipeline": "word+word"}, "must be feature blocks"),
    ({"C": -1}, "'C' setting must be a positive number"),
    ({"class_weight": "heavy"}, "'class_weight' setting must be 'auto' or 'balanced'"),
    ({"selection_seconds": 0}, "'selection_seconds' setting must be a positive number"),
    ({"embedding_backend": "gpu"}, "'embedding_backend' setting must be one of"),
    ({"weight_uncertain": "yes"}, "'weight_uncertain' setting must be true or false"),
])
def test_bad_settings(bad, message):
    with pytest.raises(ConfigError, match=message):
        ModelSettings.from_dict(bad)


def test_every_setting_is_documented():
    doc = ModelSettings.__doc__
    for name in ModelSettings.__dataclass_fields__:
        assert f"``{name}``" in doc, name


# --- predict_probs -----------------------------------------------------------------------------------------------

CAT = ["the cat sat on the mat", "a kitten sat on a rug", "cats and kittens purr", "my cat chased a mouse",
       "the kitten slept on the mat", "a cat purrs on the rug", "kittens play with a mouse", "the cat and the kitten"]
STOCK = ["stock prices fell today", "the market rose on bank shares", "shares and stocks in trading",
         "bank stocks fell in trading", "market prices rose", "stock market trading volume", "shares fell at the bank",
         "prices of stocks rose"]


def toy_project():
    texts = CAT * 2 + STOCK * 2
    labels = np.array([0] * 16 + [1] * 16)
    ids = [f"task-{i}" for i in range(len(texts))]
    return ids, texts, labels


def test_predict_probs_finds_a_flipped_label_and_predicts_unlabelled_items():
    ids, texts, labels = toy_project()
    labels = labels.copy()
    labels[3] = 1  # a cat post labelled 'stock'
    labels[20] = -1  # an unlabelled stock post
    probs = predict_probs(ids, texts, labels, 3, {"featurizer": "tfidf", "n_folds": 4})
    assert probs.shape == (32, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert probs[3, 1] < 0.5 < probs[3, 0]
    assert probs[20].argmax() == 1
    assert (probs[:, 2] <= PROBABILITY_FLOOR).all()  # class 2 is in the config but nobody used it
    good = np.delete(np.arange(32), [3, 20])
    assert (probs[good].argmax(axis=1) == labels[good]).mean() > 0.9


def floored(p):
    p = np.maximum(p, PROBABILITY_FLOOR)
    return p / p.sum(axis=1, keepdims=True)


def test_predict_probs_labelled_rows_are_cross_validated_unlabelled_rows_full_fit():
    """A pinned pipeline, recomputed by hand: out-of-fold rows with a cross-fitted temperature for labelled
    items, the full fit with the temperature of all out-of-fold rows for unlabelled ones."""
    from relabel.scoring.calibration import apply_temperature, cross_fitted_temperature, fit_temperature
    from relabel.models.search import stratified_folds
    from relabel.models.pipelines import LBFGS_TOL, word_features
    ids, texts, labels = toy_project()
    labels = labels.copy()
    labels[[0, 17]] = -1
    probs = predict_probs(ids, texts, labels, 2, ModelSettings(featurizer="tfidf", n_folds=3, seed=7,
                                                               pipeline="word", C=10, class_weight=None))
    X = word_features(texts)
    lab = labels >= 0
    X_lab, y_lab = X[lab], labels[lab]
    folds = stratified_folds(y_lab, 3, 7)
    raw = np.empty((y_lab.size, 2))
    for f in range(3):
        model = LogisticRegression(C=10, max_iter=1000, tol=LBFGS_TOL).fit(X_lab[folds != f], y_lab[folds != f])
        raw[folds == f] = floored(model.predict_proba(X_lab[folds == f]))
    np.testing.assert_allclose(probs[lab], floored(cross_fitted_temperature(raw, y_lab, folds)), rtol=1e-5)
    full = floored(LogisticRegression(C=10, max_iter=1000, tol=LBFGS_TOL).fit(X_lab, y_lab).predict_proba(X[~lab]))
    np.testing.assert_allclose(probs[~lab], floored(apply_temperature(full, fit_temperature(raw, y_lab))), rtol=1e-5)


def test_predict_probs_bad_inputs_name_items():
    ids, texts, labels = toy_project()
    bad_texts = list(texts)
    bad_texts[4] = None
    with pytest.raises(InputError, match="Items 'task-4' have no text"):
        predict_probs(ids, bad_texts, labels, 2, {"featurizer": "tfidf"})
    with pytest.raises(LabelError, match="Items 'task-1' have label 5, outside the 2 classes"):
        predict_probs(ids, texts, np.where(np.arange(32) == 1, 5, labels), 2, {"featurizer": "tfidf"})
    with pytest.raises(LabelError, match="only class 0 is present"):
        predict_probs(ids, texts, np.where(labels == 1, -1, labels), 2, {"featurizer": "tfidf"})
    with pytest.raises(LabelError, match="No item has a label yet"):
        predict_probs(ids, texts, np.full(32, -1), 2, {"featurizer": "tfidf"})
    with pytest.raises(InputError, match="'task-0' appear more than once"):
        predict_probs(["task-0"] + ids[1:-1] + ["task-0"], texts, labels, 2, {"featurizer": "tfidf"})
    with pytest.raises(LabelError, match="shape"):
        predict_probs(ids, texts, labels[:-1], 2, {"featurizer": "tfidf"})
    with pytest.raises(ConfigError, match="Unknown"):
        predict_probs(ids, texts, labels, 2, {"featuriser": "tfidf"})


def test_predict_probs_with_precomputed_embeddings(tmp_path):
    X, y = blobs(n_per_class=10, k=2)
    ids = [f"img-{i}" for i in range(20)]
    order = np.random.default_rng(0).permutation(20)  # the file's rows in another order than the items
    np.save(tmp_path / "vectors.npy", X[order])
    (tmp_path / "vectors.ids.txt").write_text("\n".join(ids[i] for i in order))
    probs = predict_probs(ids, None, y, 2, {"featurizer": "precomputed", "precomputed_path": str(tmp_path / "vectors.npy")})
    assert (probs.argmax(axis=1) == y).mean() > 0.95


def write_pred_probs(path, ids, probs):
    pd.DataFrame({"id": ids, "pred_probs": list(probs)}).to_parquet(path)


def test_user_pred_probs_are_aligned_checked_and_not_trained(tmp_path):
    ids = [f"t{i}" for i in range(50)]
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, size=50)
    p = rng.dirichlet(np.ones(3), size=50)
    order = rng.permutation(50)
    write_pred_probs(tmp_path / "p.parquet", [ids[i] for i in order], p[order])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelWarning)
        out = predict_probs(ids, None, y, 3, {"pred_probs_path": str(tmp_path / "p.parquet")})
    np.testing.assert_allclose(out, p)
    with pytest.raises(PredProbsError, match=r"has 3 columns but the labeling config has 4 classes"):
        predict_probs(ids, None, y, 4, {"pred_probs_path": str(tmp_path / "p.parquet")})
    write_pred_probs(tmp_path / "q.parquet", ids, p * 0.5)
    with pytest.raises(PredProbsError, match="do not sum to 1"):
        predict_probs(ids, None, y, 3, {"pred_probs_path": str(tmp_path / "q.parquet")})
    write_pred_probs(tmp_path / "short.parquet", ids[:-2], p[:-2])
    with pytest.raises(InputError, match=r"no row for items 't48', 't49'"):
        predict_probs(ids, None, y, 3, {"pred_probs_path": str(tmp_path / "short.parquet")})


def test_in_sample_pred_probs_get_a_warning_that_says_why(tmp_path):
    ids = [f"t{i}" for i in range(200)]
    y = np.arange(200) % 4
    memorised = np.full((200, 4), 0.001)
    memorised[np.arange(200), y] = 0.997
    write_pred_probs(tmp_path / "m.parquet", ids, memorised)
    with pytest.warns(ModelWarning, match=r"100.0% of 200 labelled items.*in-sample.*cannot say it is wrong"):
        predict_probs(ids, None, y, 4, {"pred_probs_path": str(tmp_path / "m.parquet")})
    # Accurate but honestly unsure probabilities are not flagged.
    unsure = np.full((200, 4), 0.1)
    unsure[np.arange(200), y] = 0.7
    assert check_in_sample(unsure, y) is False
    assert check_in_sample(memorised, np.full(200, -1)) is False


def test_texts_for_items_reads_the_resolved_text_or_a_named_field():
    from connectors.records import Item
    items = [Item("1", {"body": "hello", "title": "t1"}, "hello"), Item("2", {"title": "t2"}, None)]
    assert texts_for_items(items) == ["hello", None]
    assert texts_for_items(items, "title") == ["t1", "t2"]
    assert texts_for_items(items, "body") == ["hello", None]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import torch
    torch.set_num_threads(1)
    return build_tiny_model(tmp_path_factory.mktemp("tiny-st-model"))


def test_predict_probs_with_sentence_transformers_and_the_real_store(tiny_model, tmp_path):
    from relabel.loop.store import Store
    ids, texts, labels = toy_project()
    settings = {"featurizer": "sentence-transformers", "model": str(tiny_model), "n_folds": 3, "threads": 1}
    store = Store(tmp_path / "relabel.db")
    first = predict_probs(ids, texts, labels, 2, settings, cache=store)
    np.testing.assert_allclose(first.sum(axis=1), 1.0)
    # The texts repeat twice, so 16 distinct texts are cached; a second round reuses them all.
    n_cached = store.db.execute("select count(*) from embeddings").fetchone()[0]
    assert n_cached == 16
    again = Store(tmp_path / "relabel.db")
    second = predict_probs(ids, texts, labels, 2, settings, cache=again)
    np.testing.assert_allclose(second, first, rtol=1e-6)
    assert again.db.execute("select count(*) from embeddings").fetchone()[0] == 16
    memory = MemoryEmbeddingCache()
    np.testing.assert_allclose(predict_probs(ids, texts, labels, 2, settings, cache=memory), first, rtol=1e-5)
    assert len(memory) == 16


def test_cv_accepts_lists_and_sparse_and_rejects_1d():
    import scipy.sparse as sp
    X, y = blobs(n_per_class=10, k=2)
    dense = cross_val_pred_probs(X.tolist(), y)
    np.testing.assert_allclose(cross_val_pred_probs(sp.csr_matrix(X), y), dense, atol=1e-6)
    with pytest.raises(InputError, match="2-D feature matrix"):
        cross_val_pred_probs(np.ones(20), y)


from hypothesis import given, settings as hyp_settings, strategies as st  # noqa: E402


@hyp_settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=2, max_size=80), st.integers(2, 10), st.integers(0, 2**31))
def test_folds_property_every_row_once_balanced_per_class(labels, n_folds, seed):
    y = np.asarray(labels)
    folds = _stratified_folds(y, n_folds, seed)
    assert folds.shape == y.shape and folds.min() >= 0 and folds.max() < n_folds
    sizes = np.bincount(folds, minlength=n_folds)
    assert sizes.max() - sizes.min() <= 1
    for k in np.unique(y):
        per_fold = np.bincount(folds[y == k], minlength=n_folds)
        assert per_fold.max() - per_fold.min() <= 1


class PriorClassifier(ClassifierMixin, BaseEstimator):
    """Predicts the training class frequencies: fast enough for property tests."""

    def fit(self, X, y):
        self.classes_, counts = np.unique(y, return_counts=True)
        self.prior_ = counts / counts.sum()
        return self

    def predict_proba(self, X):
        return np.tile(self.prior_, (X.shape[0], 1))


@hyp_settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=2, max_size=60).filter(lambda v: len(set(v)) >= 2),
       st.integers(0, 3), st.integers(2, 6))
def test_cv_property_rows_are_probabilities_over_all_classes(labels, extra_classes, n_folds):
    y = np.asarray(labels)
    k = int(y.max()) + 1 + extra_classes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModelWarning)
        probs = cross_val_pred_probs(np.zeros((y.size, 1)), y, n_folds=n_folds, classifier=PriorClassifier(),
                                     n_classes=k)
    assert probs.shape == (y.size, k)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)
    assert (probs > 0).all()
