"""``cleanlab.outlier`` (2.9.0) over relabel's outlier scores: change the import, keep the code.

    from relabel.compat.cleanlab.outlier import OutOfDistribution
    scores = OutOfDistribution().fit_score(features=embeddings)

The scores are relabel.scoring.outliers' (kNN distance on relabel.scoring.neighbours' graph; entropy,
least-confidence and GEN from probabilities) and match cleanlab's within 1e-6. The fitted neighbour index in
``params["knn"]`` is a :class:`NeighbourIndex`, a scikit-learn ``NearestNeighbors`` whose search is relabel's
(exact up to 20,000 items, faiss HNSW above), so code that passes its own ``NearestNeighbors`` still works. Where it differs:
nothing is printed (``verbose`` is accepted and ignored); errors are relabel's (ValueError subclasses).
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import NearestNeighbors

from relabel.errors import ConfigError, InputError
from relabel.scoring.neighbours import check_features, default_k, default_metric, knn_graph, search
from relabel.scoring.outliers import (distances_to_scores, fit_prediction_thresholds, fitted_scale,
                                      prediction_outlier_scores, check_prediction_method)

__all__ = ["OutOfDistribution", "NeighbourIndex"]


class NeighbourIndex(NearestNeighbors):
    """A ``NearestNeighbors`` whose ``kneighbors`` runs relabel's exact or approximate search."""

    def __init__(self, n_neighbors: int = 10, metric: str = "cosine"):
        super().__init__(n_neighbors=n_neighbors, metric=metric)

    def fit(self, X, y=None):
        self._fit_X = check_features(X)
        self.n_samples_fit_, self.n_features_in_ = self._fit_X.shape
        self.effective_metric_, self.effective_metric_params_ = self.metric, {}
        return self

    def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
        if not hasattr(self, "_fit_X"):
            raise NotFittedError("This NeighbourIndex is not fitted yet; call fit(features) first.")
        k = n_neighbors or self.n_neighbors
        queries = None if X is None else check_features(X)
        distances, indices, _ = search(self._fit_X, queries, k, self.metric)
        return (distances, indices) if return_distance else indices


def _metric_name(knn) -> str:
    metric = knn.metric
    return metric if isinstance(metric, str) else getattr(metric, "__name__", str(metric))


def _get_ood_predictions_scores(pred_probs, *, labels=None, confident_thresholds=None,
                                adjust_pred_probs: bool = True, method: str = "entropy",
                                M: int = 100, gamma: float = 0.1):
    """(scores, confident_thresholds or None), as cleanlab's function of the same name."""
    check_prediction_method(method)
    if (confident_thresholds is not None or labels is not None) and not adjust_pred_probs:
        warnings.warn("labels / confident_thresholds are ignored because adjust_pred_probs is False; set "
                      "params['adjust_pred_probs'] = True to adjust the scores.", UserWarning)
    if adjust_pred_probs:
        if confident_thresholds is None:
            if labels is None:
                raise InputError("Cannot calculate adjust_pred_probs without labels: pass labels, or set "
                                 "params['adjust_pred_probs'] = False.")
            confident_thresholds = fit_prediction_thresholds(np.asarray(labels), pred_probs)
        scores = prediction_outlier_scores(pred_probs, method, confident_thresholds, M, gamma)
    else:
        scores = prediction_outlier_scores(pred_probs, method, None, M, gamma)
    return scores, confident_thresholds


class OutOfDistribution:
    """Outlier scores in [0, 1] (lower = more atypical) from features or from predicted probabilities.

    ``params`` keys as cleanlab's: k, t, knn (features); confident_thresholds, adjust_pred_probs, method,
    M, gamma (pred_probs). The distance scale is frozen on the first data scored and reused afterwards.
    """

    OUTLIER_PARAMS = {"k", "t", "knn"}
    OOD_PARAMS = {"confident_thresholds", "adjust_pred_probs", "method", "M", "gamma"}
    DEFAULT_PARAM_DICT = {"k": None, "t": 1, "knn": None, "method": "entropy", "adjust_pred_probs": True,
                          "confident_thresholds": None, "M": 100, "gamma": 0.1}

    def __init__(self, params: dict | None = None) -> None:
        wrong = sorted(set(params or {}) - set(self.DEFAULT_PARAM_DICT))
        if wrong:
            raise ConfigError(f"OutOfDistribution params {wrong} are unknown; use only "
                              f"{sorted(self.DEFAULT_PARAM_DICT)}. Remove {wrong} from params dict.")
        self.params = dict(self.DEFAULT_PARAM_DICT)
        self.params.update(params or {})
        self.params["scaling_factor"] = None

    # ---- public API --------------------------------------------------------------------------------
    def fit_score(self, *, features=None, pred_probs=None, labels=None, verbose: bool = True) -> np.ndarray:
        scores = self._shared_fit(features=features, pred_probs=pred_probs, labels=labels)
        return self.score(features=features, pred_probs=pred_probs) if scores is None else scores

    def fit(self, *, features=None, pred_probs=None, labels=None, verbose: bool = True) -> None:
        self._shared_fit(features=features, pred_probs=pred_probs, labels=labels)

    def score(self, *, features=None, pred_probs=None) -> np.ndarray:
        self._assert_valid_inputs(features, pred_probs)
        if features is not None:
            if self.params["knn"] is None:
                raise ConfigError("OOD estimator needs to be fit on features first: call fit() or fit_score().")
            scores, _ = self._get_ood_features_scores(features, **self._get_params(self.OUTLIER_PARAMS))
            return scores
        if self.params["confident_thresholds"] is None and self.params["adjust_pred_probs"]:
            raise ConfigError("OOD estimator needs to be fit on pred_probs first since adjust_pred_probs=True: "
                              "call fit() or fit_score().")
        scores, _ = _get_ood_predictions_scores(pred_probs, **self._get_params(self.OOD_PARAMS))
        return scores

    # ---- cleanlab's internals, kept for code (and tests) that call them ------------------------------
    def _get_params(self, keys) -> dict:
        return {k: v for k, v in self.params.items() if k in keys}

    @staticmethod
    def _assert_valid_inputs(features, pred_probs) -> None:
        if features is None and pred_probs is None:
            raise InputError("Not enough information to compute scores: pass features or pred_probs.")
        if features is not None and pred_probs is not None:
            raise InputError("Cannot fit to OOD Estimator to both features and pred_probs: pass one of them.")
        if features is not None and np.ndim(features) != 2:
            raise InputError(f"Feature array needs to be of shape (N, M), items x dimensions; got shape "
                             f"{np.shape(features)}.")

    def _shared_fit(self, *, features=None, pred_probs=None, labels=None):
        self._assert_valid_inputs(features, pred_probs)
        if features is not None:
            if self.params["knn"] is not None:
                warnings.warn("A neighbour index is already fitted: call score() to apply it, or create a new "
                              "OutOfDistribution to fit another.", UserWarning)
                return None
            scores, knn = self._get_ood_features_scores(features, **self._get_params(self.OUTLIER_PARAMS))
            self.params["knn"] = knn
            return scores
        if self.params["confident_thresholds"] is not None:
            warnings.warn("Confident thresholds are already fitted: call score() to apply them, or create a new "
                          "OutOfDistribution to fit others.", UserWarning)
            return None
        scores, thresholds = _get_ood_predictions_scores(pred_probs, labels=labels,
                                                         **self._get_params(self.OOD_PARAMS))
        if thresholds is None:
            warnings.warn("Nothing to fit with adjust_pred_probs=False: score() can be called directly.",
                          UserWarning)
        else:
            self.params["confident_thresholds"] = thresholds
        return scores

    def _get_ood_features_scores(self, features=None, knn=None, k: int | None = None, t: float = 1):
        """(scores, fitted index). Without ``knn`` the index is fitted on ``features`` and each item's
        neighbours exclude itself (exact duplicates laid out as cleanlab does); with ``knn`` the features are
        queried against it as given."""
        if knn is None:
            if features is None:
                raise InputError("Both knn and features arguments cannot be None: pass features to fit on.")
            x = check_features(features)
            k = default_k(x.shape[0], k)
            graph = knn_graph(x, k=k, metric=default_metric(x))
            knn = NeighbourIndex(n_neighbors=k, metric=graph.metric).fit(x)
            distances, metric, p = graph.distances, graph.metric, None
        else:
            k = knn.n_neighbors if k is None else k
            if k > knn.n_neighbors:
                warnings.warn(f"k={k} cannot exceed the index's n_neighbors={knn.n_neighbors}; using "
                              f"k={knn.n_neighbors}.", UserWarning)
                k = knn.n_neighbors
            try:
                distances, _ = knn.kneighbors(features)
            except NotFittedError:
                knn.fit(features)
                distances, _ = knn.kneighbors(features)
            metric = _metric_name(knn)
            p = getattr(knn, "p", None) if metric == "minkowski" else None
        mean_d = np.asarray(distances)[:, :k].mean(axis=1)
        if self.params["scaling_factor"] is None:
            self.params["scaling_factor"] = fitted_scale(mean_d)
        scale = self.params["scaling_factor"]
        if not isinstance(scale, float):
            raise ConfigError(f"params['scaling_factor'] must be a float, got {type(scale).__name__}.")
        return distances_to_scores(mean_d, scale, t, metric, p), knn
