"""Outlier scores: how unlike the rest of the project an item is, from its embedding or from the model's probabilities.

Scores lie in [0, 1]; lower means more atypical (the item most unlike any other item scores lowest). Both kinds
follow cleanlab 2.9.0's ``OutOfDistribution`` exactly (tests/test_outliers_parity.py checks within 1e-6):

* **Feature score** (Kriegel-style kNN distance): d_i = mean distance from item i to its k nearest other items
  (neighbours.py: k = min(10, N - 1), cosine above 3 dimensions, exact duplicates at distance 0), then
  score_i = exp(-t * d_i / s) where the scale s is the median d over the items the scorer was fitted on, frozen at
  fit time so later scores are comparable. Distances below the metric's rounding tolerance score exactly 1.
* **Prediction scores** from out-of-fold probabilities, optionally adjusted for class imbalance (subtract each
  class's confident threshold, shift by the largest, renormalise): ``entropy`` = 1 - normalised entropy,
  ``least_confidence`` = the largest probability.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from relabel.errors import ConfigError, PredProbsError
from relabel.scoring.confident.counting import get_confident_thresholds
from relabel.scoring.confident.ranking import _adjust_pred_probs, _normalized_entropy
from relabel.scoring.neighbours import KnnGraph, check_features, knn_graph, search
from relabel.scoring.validation import check_pred_probs

# The scale is floored so identical items (all distances 0) do not divide by zero: cleanlab floors the median
# at 100 machine epsilons and the divisor at 1e-6.
SCALE_FLOOR = 100 * np.finfo(np.float64).eps
DIVISOR_FLOOR = 1e-6
# Mean distances below these tolerances are rounding noise around 0 and score exactly 1: 100 negative
# epsilons for cosine (distances in [0, 2]) and the square root of 100 epsilons for euclidean (a distance is
# the square root of a sum of squares, so its rounding noise is the square root of the sum's).
PRECISION_MULTIPLIER = 100
COSINE_TOLERANCE = PRECISION_MULTIPLIER * np.finfo(np.float64).epsneg
EUCLIDEAN_TOLERANCE = float(np.sqrt(PRECISION_MULTIPLIER * np.finfo(np.float64).eps))

PREDICTION_METHODS = ("entropy", "least_confidence", "gen")
# GEN (Liu, Lochman and Zach, CVPR 2023): the M largest softmax probabilities with exponent gamma.
GEN_TOP_CLASSES = 100
GEN_GAMMA = 0.1


@dataclass(frozen=True)
class FeatureOutlierModel:
    """What a fitted feature scorer keeps: the fitted items, the metric, k, t and the frozen scale."""

    features: np.ndarray
    metric: str
    k: int
    t: float
    scale: float


def precision_tolerance(metric: str, p: float | None = None) -> float | None:
    """The mean distance below which an item counts as sitting on its neighbours (None: no such rule)."""
    if metric == "cosine":
        return COSINE_TOLERANCE
    if metric == "euclidean":
        return EUCLIDEAN_TOLERANCE
    if metric == "minkowski":
        if p is None:
            raise ConfigError("metric 'minkowski' needs its power p to set the rounding tolerance; pass p.")
        return float((PRECISION_MULTIPLIER * np.finfo(np.float64).eps) ** (1 / p))
    return None


def distances_to_scores(mean_distances: np.ndarray, scale: float, t: float, metric: str,
                        p: float | None = None) -> np.ndarray:
    """exp(-t d / s), with distances inside the metric's rounding tolerance scoring exactly 1."""
    scores = np.exp(-t * mean_distances / max(scale, DIVISOR_FLOOR))
    tolerance = precision_tolerance(metric, p)
    if tolerance is not None:
        scores[mean_distances < tolerance] = 1.0
    return scores


def fitted_scale(mean_distances: np.ndarray) -> float:
    """The median mean-kNN distance of the fitted items, floored: frozen at fit time."""
    return float(max(np.median(mean_distances), SCALE_FLOOR))


def fit_feature_outliers(features, k: int | None = None, t: float = 1,
                         graph: KnnGraph | None = None) -> tuple[np.ndarray, FeatureOutlierModel]:
    """Outlier scores of the fitted items themselves (each item's neighbours exclude itself) and the model.

    ``graph`` reuses a KnnGraph already built on the same features (the near-duplicate search builds one too).
    """
    x = check_features(features)
    graph = graph if graph is not None else knn_graph(x, k=k)
    mean_d = graph.distances.mean(axis=1)
    scale = fitted_scale(mean_d)
    model = FeatureOutlierModel(x, graph.metric, graph.k, t, scale)
    return distances_to_scores(mean_d, scale, t, graph.metric), model


def score_feature_outliers(model: FeatureOutlierModel, features) -> np.ndarray:
    """Scores of new items against the fitted ones, on the fitted scale.

    The new items are queried as given: an item that is also among the fitted ones finds itself at distance 0
    (cleanlab scores them the same way).
    """
    q = check_features(features)
    if q.shape[1] != model.features.shape[1]:
        raise ConfigError(f"features have {q.shape[1]} dimensions but the scorer was fitted on "
                          f"{model.features.shape[1]}; score embeddings from the same model.")
    distances, _, _ = search(model.features, q, model.k, model.metric)
    return distances_to_scores(distances.mean(axis=1), model.scale, model.t, model.metric)


def check_prediction_method(method: str) -> None:
    if method not in PREDICTION_METHODS:
        raise ConfigError(f"{method!r} is not a valid OOD scoring method; choose one of "
                          f"{', '.join(PREDICTION_METHODS)}.")


def fit_prediction_thresholds(labels, pred_probs) -> np.ndarray:
    """The per-class confident thresholds that ``adjust_pred_probs`` subtracts (fitted on labelled items)."""
    return get_confident_thresholds(labels, pred_probs)


def _gen_scores(pred_probs: np.ndarray, top: int, gamma: float) -> np.ndarray:
    # softmax of the probabilities themselves (not of logits), as cleanlab does; 1 + GEN / M keeps it in [0, 1]
    e = np.exp(pred_probs)
    probs = e / e.sum(axis=1, keepdims=True)
    largest = np.sort(probs, axis=1)[:, -top:]
    return 1 - np.sum(largest**gamma * (1 - largest) ** gamma, axis=1) / top


def prediction_outlier_scores(pred_probs, method: str = "entropy",
                              confident_thresholds: np.ndarray | None = None,
                              top: int = GEN_TOP_CLASSES, gamma: float = GEN_GAMMA) -> np.ndarray:
    """1 - normalised entropy, the largest probability, or GEN; adjusted first when thresholds are given."""
    check_prediction_method(method)
    p = check_pred_probs(pred_probs)
    if confident_thresholds is not None:
        t = np.asarray(confident_thresholds)
        if t.shape != (p.shape[1],):
            raise PredProbsError(f"confident_thresholds has shape {t.shape}, expected ({p.shape[1]},): "
                                 "one threshold per class of pred_probs.")
        p = _adjust_pred_probs(None, p, t)
    if method == "entropy":
        if p.min() < 0 or p.max() > 1:
            raise PredProbsError("adjusted pred_probs left [0, 1]; check that confident_thresholds are the "
                                 "per-class mean probabilities (each in [0, 1]).")
        return 1.0 - _normalized_entropy(p)
    if method == "least_confidence":
        return p.max(axis=1)
    return _gen_scores(p, top, gamma)
