"""Ranking (cleanlab.rank's seam): label quality scores, one per item; lower means more likely mislabelled.

ALGORITHMS.md section 1.6: ``get_label_quality_scores`` with the self-confidence, normalised-margin and
confidence-weighted-entropy scores (optionally on pred_probs adjusted by the confident thresholds), plus
``check_quality_method`` and the trusted ``_compute_label_quality_scores`` that CROWDLAB and active learning
call on validated inputs. ``get_label_quality_ensemble_scores`` averages the scores of several models, weighted
uniformly, by accuracy, by a search over exp(-t * log-loss) or by the caller's weights.
"""
from __future__ import annotations

import numpy as np

from relabel.errors import ConfigError, InputError, PredProbsError
from relabel.scoring.confident.counting import FUZZY_EPS, _check_inputs, _compute_confident_thresholds, _self_confidence

QUALITY_METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
ENSEMBLE_WEIGHTINGS = ("uniform", "accuracy", "log_loss_search", "custom")
# cleanlab's t values for weight_ensemble_members_by="log_loss_search" (its default list, as a tuple).
LOG_LOSS_SEARCH_T_VALUES = (1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2, 2e2)
# Each member's pred_probs are floored here (rows renormalised) before its own log-loss, so a 0 costs ln(1e6)
# and not infinity; the reference's value, needed for its weights.
LOG_LOSS_MEMBER_FLOOR = 1e-6


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



# ---- ensembles of models ---------------------------------------------------------------------------------
def _check_ensemble_members(labels, pred_probs_list) -> tuple[np.ndarray, np.ndarray]:
    """(labels, M x N x K stack) from a non-empty list of N x K pred_probs that all have the same shape."""
    if not isinstance(pred_probs_list, (list, tuple)):
        raise PredProbsError(f"pred_probs_list must be a list of N x K pred_probs, one per model; got "
                             f"{type(pred_probs_list).__name__}. Use list(array) for an M x N x K array.")
    if len(pred_probs_list) == 0:
        raise PredProbsError("pred_probs_list is empty; give the pred_probs of at least one model.")
    checked = [_check_inputs(labels, p, allow_one_class=True) for p in pred_probs_list]
    shapes = {p.shape for _, p in checked}
    if len(shapes) > 1:
        raise PredProbsError(f"pred_probs_list holds matrices of different shapes {sorted(shapes)}; every model "
                             "must give one row per item and one column per class.")
    return checked[0][0], np.stack([p for _, p in checked])


def _log_loss(given: np.ndarray) -> np.ndarray:
    """Mean of -ln p[i, y_i] over the last axis, p clipped to [eps, 1 - eps] as sklearn.metrics.log_loss does."""
    eps = np.finfo(given.dtype).eps
    return np.mean(-np.log(np.clip(given, eps, 1 - eps)), axis=-1)


def _sequential_sum(values: np.ndarray, axis: int) -> np.ndarray:
    """Sum along ``axis`` adding one term at a time (as Python's sum does), not numpy's pairwise order."""
    return np.take(np.cumsum(values, axis=axis), -1, axis=axis)


def _log_loss_search_weights(labels: np.ndarray, members: np.ndarray, t_values) -> np.ndarray:
    """Weights exp(-t * log-loss_m) / sum, for the t whose weighted mean of the members has the lowest log-loss.

    Only p[i, y_i] enters a log-loss, so every t is tried at once on the M x N given-label probabilities.
    Equal losses keep the first t; a t whose weights all underflow (0 / 0) is skipped.
    """
    rows = np.arange(labels.size)
    given = members[:, rows, labels]
    floored = np.clip(members, LOG_LOSS_MEMBER_FLOOR, None)
    member_loss = _log_loss(floored[:, rows, labels] / floored.sum(axis=2))  # one per member
    t = np.asarray(t_values, dtype=float)
    if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t)):
        raise ConfigError(f"log_loss_search_T_values must be a non-empty list of finite numbers; got {t_values!r}.")
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.exp(-t[:, None] * member_loss)  # T x M
        weights = scaled / _sequential_sum(scaled, axis=1)[:, None]
        mixture_loss = _log_loss(_sequential_sum(weights[:, :, None] * given, axis=1))  # one per t
    mixture_loss[np.isnan(mixture_loss)] = np.inf
    best = int(np.argmin(mixture_loss))
    if not np.isfinite(mixture_loss[best]):
        raise InputError(f"No t in log_loss_search_T_values {t_values!r} gives usable weights (every exp(-t * "
                         "log-loss) underflows to 0); add smaller t values or use another weighting.")
    return weights[best]


def _ensemble_weights(labels: np.ndarray, members: np.ndarray, weighting: str, custom_weights,
                      t_values) -> np.ndarray | None:
    """One weight per member (None for uniform: a plain mean)."""
    if weighting == "uniform":
        return None
    if weighting == "accuracy":
        accuracy = np.mean(members.argmax(axis=2) == labels, axis=1)
        total = _sequential_sum(accuracy, axis=0)
        if total == 0:
            raise InputError("No model's argmax agrees with any given label, so weighting by accuracy divides by "
                             "0; use weight_ensemble_members_by='uniform' or 'log_loss_search'.")
        return accuracy / total
    if weighting == "log_loss_search":
        return _log_loss_search_weights(labels, members, t_values)
    if custom_weights is None:
        raise ConfigError("weight_ensemble_members_by='custom' needs custom_weights, one weight per model.")
    weights = np.asarray(custom_weights, dtype=float)
    if weights.shape != (members.shape[0],) or not np.all(np.isfinite(weights)):
        raise ConfigError(f"custom_weights must hold one finite weight per model ({members.shape[0]}); got "
                          f"shape {weights.shape}.")
    return weights


def get_label_quality_ensemble_scores(labels, pred_probs_list, *, method: str = "self_confidence",
                                      adjust_pred_probs: bool = False, weight_ensemble_members_by: str = "accuracy",
                                      custom_weights=None, log_loss_search_T_values=LOG_LOSS_SEARCH_T_VALUES,
                                      verbose: bool = True) -> np.ndarray:
    """One label quality score per item from several models: the weighted mean of each model's score.

    Each model's score is get_label_quality_scores(labels, its pred_probs, method, adjust_pred_probs). Weights
    (``weight_ensemble_members_by``): ``uniform`` (plain mean), ``accuracy`` (each model's accuracy against the
    given labels, normalised to sum 1), ``log_loss_search`` (exp(-t * the model's log-loss), normalised, for the
    t in ``log_loss_search_T_values`` whose weighted mean of the models' pred_probs has the lowest log-loss) or
    ``custom`` (``custom_weights`` as given, not normalised). ``verbose`` prints the weighting and the weights.
    Same as ``cleanlab.rank.get_label_quality_ensemble_scores``, except that bad input raises relabel's errors
    and log_loss_search also works when some class is absent from the labels (sklearn's log-loss refuses it).
    """
    check_quality_method(method, adjust_pred_probs)
    if weight_ensemble_members_by not in ENSEMBLE_WEIGHTINGS:
        raise ConfigError(f"Unknown weight_ensemble_members_by {weight_ensemble_members_by!r}; choose one of "
                          f"{', '.join(ENSEMBLE_WEIGHTINGS)}.")
    if custom_weights is not None and weight_ensemble_members_by != "custom":
        raise ConfigError(f"custom_weights were given but weight_ensemble_members_by is "
                          f"{weight_ensemble_members_by!r}; set it to 'custom' or drop custom_weights.")
    y, members = _check_ensemble_members(labels, pred_probs_list)
    weights = _ensemble_weights(y, members, weight_ensemble_members_by, custom_weights, log_loss_search_T_values)
    # N x M, one column per model, reduced along the models as a weighted sum (or a mean).
    scores = np.vstack([_compute_label_quality_scores(y, p, method, adjust_pred_probs) for p in members]).T
    if verbose:
        shown = "equal" if weights is None else ", ".join(f"{w:.4g}" for w in weights)
        print(f"Ensemble of {members.shape[0]} models weighted by {weight_ensemble_members_by}: {shown}")
    return scores.mean(axis=1) if weights is None else (scores * weights).sum(axis=1)
