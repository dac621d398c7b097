"""One classifier, one fold: the estimator a candidate pipeline fits, and the probabilities it gives.

The lowest module of the model layer: fit (the project's pred_probs), search (choosing a pipeline) and pipelines
(fitting one over folds) all build on it, and it imports none of them.
"""
from __future__ import annotations

import numpy as np

from relabel.errors import ConfigError
from relabel.models.classifiers import check_options, classifier_class

# Every class keeps at least this probability before rows are renormalised: a class no labelled item has yet
# must still be a possible answer, and log-based scores (entropy, temperature scaling) need no exact zeros.
# Small enough that 100 such classes take 0.1% of a row, and well above the 1e-6 epsilon of the scoring code.
PROBABILITY_FLOOR = 1e-5
# Inverse regularisation strength of the default logistic regression (see make_classifier for the measurement).
DEFAULT_C = 10.0

def make_classifier(classifier=None, options: dict | None = None, seed: int = 0):
    """A fresh, unfitted classifier with predict_proba.

    ``classifier`` is None (logistic regression), an estimator instance (cloned), an estimator class, or the name
    of a scikit-learn classifier ("RandomForestClassifier" or "sklearn.ensemble.RandomForestClassifier"; any other
    string is refused before it is imported, see relabel.models.classifiers); ``options`` are its keyword arguments.
    """
    from sklearn.base import clone
    options = dict(options or {})
    if classifier is None:
        from sklearn.linear_model import LogisticRegression
        # Rows of TF-IDF and of normalised embeddings have unit length, so scikit-learn's default C = 1 regularises
        # them into underfitting: on 20 Newsgroups (benchmarks/text_pipeline.py) C = 10 raised out-of-fold accuracy
        # from 0.899 to 0.914 (TF-IDF) and 0.812 to 0.827 (MiniLM), and with TF-IDF the validated label errors among
        # the 93 lowest-quality items from 25 to 41. lbfgs then needs more than its default 100 iterations.
        options.setdefault("C", DEFAULT_C)
        options.setdefault("max_iter", 2000)
        estimator = _instantiate(LogisticRegression, options, "LogisticRegression")
    elif isinstance(classifier, str):
        # A name from a config: only scikit-learn classifiers, refused before import otherwise (relabel.models.classifiers).
        estimator = _instantiate(classifier_class(classifier), check_options(options), classifier)
    elif isinstance(classifier, type):
        estimator = _instantiate(classifier, options, classifier.__name__)
    else:
        try:
            estimator = clone(classifier)
        except TypeError as exc:  # every fold fits a fresh copy, so the estimator must be clonable
            raise ConfigError(f"The classifier {type(classifier).__name__} cannot be copied for each fold ({exc}); "
                              "give a scikit-learn-style estimator (with get_params/set_params).") from exc
        if options:
            estimator.set_params(**options)
    if not hasattr(estimator, "predict_proba") or not hasattr(estimator, "fit"):
        raise ConfigError(f"The classifier {type(estimator).__name__} has no predict_proba; choose an estimator "
                          "that outputs probabilities (e.g. LogisticRegression, or SVC(probability=True)).")
    params = estimator.get_params() if hasattr(estimator, "get_params") else {}
    if "random_state" in params and params["random_state"] is None:
        estimator.set_params(random_state=seed)
    return estimator


def _instantiate(estimator_class, options: dict, name: str):
    try:
        return estimator_class(**options)
    except TypeError as exc:
        raise ConfigError(f"The classifier {name} rejected classifier_options {options!r} ({exc}); fix "
                          "classifier_options.") from exc


def stratified_folds(y: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold index of each row: rows grouped by class (shuffled within), dealt round-robin to the folds."""
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(y.size)
    by_class = shuffled[np.argsort(y[shuffled], kind="stable")]
    folds = np.empty(y.size, dtype=np.intp)
    folds[by_class] = np.arange(y.size) % n_folds
    return folds


def fit_predict(estimator, X_train, y_train, X_test, n_classes: int, sample_weight=None) -> np.ndarray:
    """Probabilities over all n_classes for X_test from a clone of ``estimator`` fit on the training rows."""
    from sklearn.base import clone
    probs = np.zeros((X_test.shape[0], n_classes), dtype=np.float64)
    seen = np.unique(y_train)
    if seen.size == 1:
        # A training fold of one class (a two-class project with a single item of the other): no classifier
        # can be fit, and the only thing it could say is that one class.
        probs[:, seen[0]] = 1.0
    else:
        fit_options = {} if sample_weight is None else {"sample_weight": sample_weight}
        model = clone(estimator).fit(X_train, y_train, **fit_options)
        probs[:, np.asarray(model.classes_, dtype=np.intp)] = model.predict_proba(X_test)
    return floor_and_normalise(probs)


def floor_and_normalise(probs: np.ndarray) -> np.ndarray:
    np.maximum(probs, PROBABILITY_FLOOR, out=probs)
    probs /= probs.sum(axis=1, keepdims=True)
    return probs
