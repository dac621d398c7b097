"""Which classifier a relabel.toml may name: data, never code.

A relabel.toml is shared in teams and checked into repositories, so a setting that names a class must not become
a way to run arbitrary code (``classifier = "subprocess.run"`` with ``classifier_options = {args = ..., shell =
true}`` once ran a shell command). ``classifier_class(name)`` accepts only

- a short name from ``ALLOWED_CLASSIFIERS`` ("LogisticRegression", "RandomForestClassifier", ...), or
- a dotted path inside scikit-learn ("sklearn.ensemble.RandomForestClassifier"),

and refuses anything else *before importing it*: a path outside the ``sklearn`` package is never imported, so
nothing of it runs. What a scikit-learn path resolves to must then be a class deriving from sklearn's
``BaseEstimator`` with ``fit`` and ``predict_proba``; a function (``sklearn.utils.estimator_checks.check_estimator``),
a module or a regressor is refused with the same one-line ConfigError. Options must be plain TOML data
(numbers, strings, booleans, lists and tables of them).

Python callers that pass an estimator object or class (``cross_val_pred_probs(..., classifier=SVC(...))``) are
already running their own code and are not restricted here.
"""
from __future__ import annotations

import importlib
import re

from relabel.errors import ConfigError

# Short names a config may use, each a scikit-learn classifier with predict_proba, mapped to its public module.
ALLOWED_CLASSIFIERS = {
    "LogisticRegression": "sklearn.linear_model",
    "SGDClassifier": "sklearn.linear_model",
    "RandomForestClassifier": "sklearn.ensemble",
    "ExtraTreesClassifier": "sklearn.ensemble",
    "GradientBoostingClassifier": "sklearn.ensemble",
    "HistGradientBoostingClassifier": "sklearn.ensemble",
    "MultinomialNB": "sklearn.naive_bayes",
    "ComplementNB": "sklearn.naive_bayes",
    "BernoulliNB": "sklearn.naive_bayes",
    "GaussianNB": "sklearn.naive_bayes",
    "KNeighborsClassifier": "sklearn.neighbors",
    "SVC": "sklearn.svm",
    "MLPClassifier": "sklearn.neural_network",
    "LinearDiscriminantAnalysis": "sklearn.discriminant_analysis",
    "DecisionTreeClassifier": "sklearn.tree",
}
_ALLOWED_PACKAGE = "sklearn"
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_FIX = ("name a scikit-learn classifier with predict_proba, e.g. 'LogisticRegression' or "
        "'sklearn.ensemble.RandomForestClassifier'")


def classifier_class(name: str) -> type:
    """The scikit-learn classifier class a config names; ConfigError (nothing imported) for anything else."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"The 'classifier' setting must be a class name; got {name!r}; {_FIX}.")
    name = name.strip()
    if name in ALLOWED_CLASSIFIERS:
        module_name, attribute = ALLOWED_CLASSIFIERS[name], name
    else:
        if not _DOTTED.match(name) or name.split(".", 1)[0] != _ALLOWED_PACKAGE:
            # Refused before any import: only scikit-learn's own modules are ever imported for a config.
            raise ConfigError(f"The 'classifier' setting {name!r} is not a scikit-learn classifier, and relabel runs "
                              f"no other code named in a config; {_FIX}.")
        module_name, _, attribute = name.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"The 'classifier' setting {name!r} does not exist in scikit-learn ({exc}); {_FIX}.") from exc
    check_estimator_class(found, name)
    return found


def check_estimator_class(found, name: str) -> None:
    """Raise ConfigError unless ``found`` is a BaseEstimator subclass with fit and predict_proba."""
    from sklearn.base import BaseEstimator
    if not isinstance(found, type) or not issubclass(found, BaseEstimator):
        raise ConfigError(f"The 'classifier' setting {name!r} is a {type(found).__name__}, not a scikit-learn "
                          f"estimator class; {_FIX}.")
    if not hasattr(found, "predict_proba") or not hasattr(found, "fit"):
        raise ConfigError(f"The 'classifier' setting {name!r} has no predict_proba, so it gives no probabilities; "
                          f"{_FIX}.")


def check_options(options) -> dict:
    """``classifier_options`` as a dict of plain TOML data (ConfigError otherwise)."""
    if not isinstance(options, dict):
        raise ConfigError(f"The 'classifier_options' setting must be a table of keyword arguments. Got {options!r}.")
    bad = [key for key, value in options.items() if not isinstance(key, str) or not _is_data(value)]
    if bad:
        raise ConfigError(f"The 'classifier_options' {bad!r} are not plain values (numbers, strings, booleans, "
                          "lists, tables); give the classifier's keyword arguments as data.")
    return dict(options)


def _is_data(value) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_data(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_data(v) for k, v in value.items())
    return False
