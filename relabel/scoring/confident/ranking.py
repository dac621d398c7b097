"""Ranking (cleanlab.rank's seam): label quality scores, one per item; lower means more likely mislabelled.

ALGORITHMS.md section 1.6: ``get_label_quality_scores`` with the self-confidence, normalised-margin and
confidence-weighted-entropy scores (optionally on pred_probs adjusted by the confident thresholds), plus
``check_quality_method`` and the trusted ``_compute_label_quality_scores`` that CROWDLAB and active learning
call on validated inputs.
"""
from __future__ import annotations

import numpy as np

from relabel.errors import ConfigError
from relabel.scoring.confident.counting import FUZZY_EPS, _check_inputs, _compute_confident_thresholds, _self_confidence

QUALITY_METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")


def check_quality_method(method: str, adjust_pred_probs: bool = False) -> None:
    """Raise ConfigError unless ``method`` names a label quality score usable with ``adjust_pred_probs``."""
    if method not in QUALITY_METHODS:
        raise ConfigError(f"Unknown label quality method {method!r}; choose one of {', '.join(QUALITY_METHODS)}.")
    if adjust_pred_probs and method == "confidence_weighted_entropy":
        raise ConfigError("adjust_pred_probs=True is not supported with method='confidence_weighted_entropy'; "
                          "use self_confidence or normalized_margin, or set adjust_pred_probs=False.")


# ---- 1.6 label quality scores ----------------------------------------------------------------------------
def _adjust_pred_probs(labels: np.ndarray, pred_probs: np.ndarray,
                       confident_thresholds: np.ndarray | None) -> np.ndarray:
    """p - t + max(t), rows renormalised: removes the class-imbalance bias of the thresholds."""
    t = _compute_confident_thresholds(labels, pred_probs) if confident_thresholds is None else confident_thresholds
    # Shifting by max(t) keeps every entry non-negative after subtracting its own class's threshold.
    adjusted = pred_probs - t
    adjusted += t.max()
    adjusted /= adjusted.sum(axis=1, keepdims=True)
    return adjusted



def _normalized_margin(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    rows = np.arange(labels.shape[0])
    given = pred_probs[rows, labels]
    others = pred_probs.copy()
    others[rows, labels] = -np.inf  # exclude the given class from the runner-up max
    # (margin + 1) / 2 maps the margin in [-1, 1] onto a score in [0, 1].
    return (given - others.max(axis=1) + 1) / 2


def _normalized_entropy(pred_probs: np.ndarray) -> np.ndarray:
    """Entropy of each row divided by ln K (so in [0, 1]), with 0 ln 0 = 0."""
    logs = np.zeros_like(pred_probs)
    np.log(pred_probs, out=logs, where=pred_probs > 0)
    return -np.sum(pred_probs * logs, axis=1) / np.log(pred_probs.shape[1])


def _confidence_weighted_entropy(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    # Entropy per unit of confidence in the given label: high for uncertain rows that also doubt the label.
    ratio = _normalized_entropy(pred_probs) / np.maximum(_self_confidence(labels, pred_probs), FUZZY_EPS)
    # ln(r + 1) / r falls from 1 (r -> 0) towards 0, turning "more doubt" into "lower score".
    return np.log(ratio + 1) / np.maximum(ratio, FUZZY_EPS)


_SCORERS = {
    "self_confidence": _self_confidence,
    "normalized_margin": _normalized_margin,
    "confidence_weighted_entropy": _confidence_weighted_entropy,
}


def _compute_label_quality_scores(labels: np.ndarray, pred_probs: np.ndarray, method: str,
                                  adjust_pred_probs: bool,
                                  confident_thresholds: np.ndarray | None = None) -> np.ndarray:
    """Label quality scores for validated inputs (see get_label_quality_scores); lower = more likely wrong.

    ``confident_thresholds`` (used only with ``adjust_pred_probs``) overrides the thresholds computed from
    ``labels``: CROWDLAB passes the thresholds of one annotator's own labels. ``method`` must be one of
    QUALITY_METHODS and not entropy when adjusting (call check_quality_method at the public edge).
    """
    if adjust_pred_probs:
        pred_probs = _adjust_pred_probs(labels, pred_probs, confident_thresholds)
    return _SCORERS[method](labels, pred_probs)


def get_label_quality_scores(labels, pred_probs, method: str = "self_confidence",
                             adjust_pred_probs: bool = False) -> np.ndarray:
    """A score in [0, 1] for each item's given label; lower means more likely mislabelled.

    Methods: ``self_confidence`` = p[i, y_i]; ``normalized_margin`` = (p[i, y_i] - max_{k != y_i} p[i, k] + 1) / 2;
    ``confidence_weighted_entropy`` = ln(r + 1) / r with r = normalised entropy / p[i, y_i].
    ``adjust_pred_probs`` first subtracts the per-class confident thresholds and renormalises (not with
    entropy). Same as ``cleanlab.rank.get_label_quality_scores``; one class among the labels is allowed.
    """
    check_quality_method(method, adjust_pred_probs)
    y, p = _check_inputs(labels, pred_probs, allow_one_class=True)
    return _compute_label_quality_scores(y, p, method, adjust_pred_probs)




def get_self_confidence_for_each_label(labels, pred_probs) -> np.ndarray:
    """p[i, y_i] for each item (get_label_quality_scores with self_confidence)."""
    y, p = _check_inputs(labels, pred_probs, allow_one_class=True)
    return _self_confidence(y, p)


def get_normalized_margin_for_each_label(labels, pred_probs) -> np.ndarray:
    """(p[i, y_i] - max_{k != y_i} p[i, k] + 1) / 2 for each item (get_label_quality_scores, normalized_margin)."""
    y, p = _check_inputs(labels, pred_probs, allow_one_class=True)
    return _normalized_margin(y, p)


def get_confidence_weighted_entropy_for_each_label(labels, pred_probs) -> np.ndarray:
    """ln(r + 1) / r with r = normalised entropy / p[i, y_i] (get_label_quality_scores, confidence_weighted_entropy)."""
    y, p = _check_inputs(labels, pred_probs, allow_one_class=True)
    return _confidence_weighted_entropy(y, p)


def order_label_issues(label_issues_mask, labels, pred_probs, *, rank_by: str = "self_confidence",
                       rank_by_kwargs: dict | None = None) -> np.ndarray:
    """Indices of the flagged items, lowest label quality score first (ties in index order).

    ``rank_by`` is a quality method and ``rank_by_kwargs`` may set ``adjust_pred_probs`` (thresholds come from
    all items). Same as ``cleanlab.rank.order_label_issues``.
    """
    kwargs = dict(rank_by_kwargs or {})
    unknown = sorted(set(kwargs) - {"adjust_pred_probs"})
    if unknown:
        raise ConfigError(f"rank_by_kwargs accepts only 'adjust_pred_probs'; got {unknown}.")
    adjust = bool(kwargs.get("adjust_pred_probs", False))
    check_quality_method(rank_by, adjust)
    y, p = _check_inputs(labels, pred_probs, allow_one_class=True)
    mask = np.asarray(label_issues_mask)
    if mask.shape != y.shape or mask.dtype != bool:
        raise ConfigError(f"label_issues_mask must be a boolean array with one entry per item ({y.size}); "
                          f"got dtype {mask.dtype}, shape {mask.shape}.")
    flagged = np.flatnonzero(mask)
    t = _compute_confident_thresholds(y, p) if adjust else None
    scores = _compute_label_quality_scores(y[flagged], p[flagged], rank_by, adjust, t)
    return flagged[np.argsort(scores, kind="stable")]


def find_top_issues(quality_scores, *, top: int = 10) -> np.ndarray:
    """Indices of the ``top`` lowest quality scores, lowest first (ties in index order).

    Same as ``cleanlab.rank.find_top_issues``; all indices when there are fewer scores than ``top``.
    """
    scores = np.asarray(quality_scores, dtype=float)
    if scores.ndim != 1:
        raise ConfigError(f"quality_scores must be 1-D (one score per item); got shape {scores.shape}.")
    if isinstance(top, (bool, np.bool_)) or not isinstance(top, (int, np.integer)) or top < 0:
        raise ConfigError(f"top must be a non-negative integer; got {top!r}.")
    return np.argsort(scores, kind="stable")[:top]
