"""Confident learning on single labels: thresholds, confident joint, noise matrices, label issues, quality scores.

Implements ALGORITHMS.md section 1 (Northcutt, Jiang, Chuang, JAIR 2021) with the names, parameters,
defaults and return shapes of cleanlab 2.9's ``cleanlab.count``, ``cleanlab.filter`` and ``cleanlab.rank``,
so a cleanlab user can switch by changing the import. Outputs match cleanlab 2.9.0 (floats to 1e-9,
integers and masks exactly), except for the deliberate difference that applies here:

* **Ties are broken by a stable sort.** cleanlab orders exactly equal keys with numpy's default
  (unstable) argsort, so its order among equal scores depends on the numpy build. Every ranking and
  every "take the m smallest/largest" here keeps index order among equal keys.

Public functions validate their inputs and raise :mod:`relabel.errors` exceptions; the private
``_compute_*`` functions trust theirs (CROWDLAB in ``consensus.py`` calls them directly).
"""
from __future__ import annotations

import numpy as np

from .errors import ConfigError, LabelError, preview
from .validation import check_labels, check_pred_probs

# Fuzzy comparison: an item clears a class threshold when p >= t - FUZZY_EPS, and de-flagging adds it to
# the given label's probability; it also floors the denominators of the entropy score.
FUZZY_EPS = 1e-6
# Thresholds are floored above FUZZY_EPS so that "p >= t - eps" never degenerates to "p >= 0" (always true).
THRESHOLD_FLOOR = 2 * FUZZY_EPS
# A threshold no probability can reach: classes nobody was given count no confident items.
UNREACHABLE_THRESHOLD = 2.0
# Division guard for empty rows and columns of the joint and noise matrices.
TINY = 1e-100

QUALITY_METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")


# ---- validation at the public edge ---------------------------------------------------------------------
def _check_inputs(labels, pred_probs, allow_one_class: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Validated (labels as intp, pred_probs as float32/float64) or a relabel.errors exception."""
    p = check_pred_probs(pred_probs)
    y = check_labels(labels, n_rows=p.shape[0], n_classes=p.shape[1])
    if y.size == 0:
        raise LabelError("labels is empty; give at least one labelled item.")
    if not allow_one_class:
        present = np.flatnonzero(np.bincount(y, minlength=p.shape[1]))
        if present.size < 2:
            raise LabelError(f"labels contain only class {present[0]}; confident learning needs at least 2 classes "
                             "among the given labels, so add items of another class.")
    return y, p


def check_quality_method(method: str, adjust_pred_probs: bool = False) -> None:
    """Raise ConfigError unless ``method`` names a label quality score usable with ``adjust_pred_probs``."""
    if method not in QUALITY_METHODS:
        raise ConfigError(f"Unknown label quality method {method!r}; choose one of {', '.join(QUALITY_METHODS)}.")
    if adjust_pred_probs and method == "confidence_weighted_entropy":
        raise ConfigError("adjust_pred_probs=True is not supported with method='confidence_weighted_entropy'; "
                          "use self_confidence or normalized_margin, or set adjust_pred_probs=False.")


# ---- 1.1 thresholds --------------------------------------------------------------------------------------
def _class_members(labels: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Item indices grouped by given class (index order inside each class) and the class boundaries.

    Items of class k are ``order[bounds[k]:bounds[k + 1]]``. One stable sort replaces K boolean masks.
    """
    # A narrow key lets numpy use its radix sort, several times faster than a stable sort of intp.
    key = labels.astype(np.uint8 if n_classes <= 256 else np.uint16 if n_classes <= 65536 else np.intp, copy=False)
    order = np.argsort(key, kind="stable")
    bounds = np.zeros(n_classes + 1, dtype=np.intp)
    np.cumsum(np.bincount(labels, minlength=n_classes), out=bounds[1:])
    return order, bounds


def _compute_confident_thresholds(labels: np.ndarray, pred_probs: np.ndarray,
                                  members: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """t_k = mean of p[i, k] over items given class k; absent classes get an unreachable threshold."""
    n_classes = pred_probs.shape[1]
    order, bounds = members if members is not None else _class_members(labels, n_classes)
    thresholds = np.full(n_classes, UNREACHABLE_THRESHOLD, dtype=np.float64)
    for k in range(n_classes):  # one mean per class over its own items: O(N) in total
        if bounds[k + 1] > bounds[k]:
            # np.mean of the gathered values (index order) sums exactly as cleanlab's boolean-mask mean does,
            # so thresholds agree to the last bit and "p >= t - eps" never flips between the two.
            thresholds[k] = np.mean(pred_probs[order[bounds[k]:bounds[k + 1]], k])
    return np.maximum(thresholds, THRESHOLD_FLOOR)


def get_confident_thresholds(labels, pred_probs) -> np.ndarray:
    """Per-class confident thresholds: the mean predicted probability of class k over items labelled k.

    A class that no item is given gets threshold 2 (no probability reaches it); every threshold is floored
    at 2e-6. Returns a float64 array of shape (K,). Same as ``cleanlab.count.get_confident_thresholds``.
    """
    y, p = _check_inputs(labels, pred_probs, allow_one_class=True)
    return _compute_confident_thresholds(y, p)


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


def _self_confidence(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    return pred_probs[np.arange(labels.shape[0]), labels]


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
