"""Filtering (cleanlab.filter's seam): which items are label issues, by pruning the confident joint or by score.

ALGORITHMS.md sections 1.4-1.5: ``find_label_issues`` with its seven ``filter_by`` rules, how many items of
each class to flag (``frac_noise``, ``num_to_remove_per_class``, ``min_examples_per_class``) and which ones
(lowest self-confidence, largest margin), and the optional ranking of the flagged items by a quality score.
"""
from __future__ import annotations

import warnings

import numpy as np

from relabel.errors import ConfigError, preview
from relabel.scoring.confident.counting import (
    _calibrate_confident_joint,
    _check_confident_joint,
    _check_inputs,
    _class_members,
    _compute_confident_joint,
    _compute_confident_thresholds,
    _confident_guess_agrees,
    _label_counts,
    _num_off_diagonal_issues,
    _round_preserving_row_totals,
    _sorted_self_confidence,
)
from relabel.scoring.confident.ranking import _compute_label_quality_scores, check_quality_method
from relabel.scoring.validation import ROW_SUM_TOLERANCE, VALUE_TOLERANCE

# ---- 1.4 / 1.5 label issues ---------------------------------------------------------------------------------
FILTER_BY = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given",
             "low_normalized_margin", "low_self_confidence")
_PRUNING_FILTERS = ("prune_by_noise_rate", "prune_by_class", "both")
_SCORE_FILTERS = ("low_normalized_margin", "low_self_confidence")


# ---- sorting helpers (deliberate difference 3: stable ties) ---------------------------------------------
def _smallest(keys: np.ndarray, m: int) -> np.ndarray:
    """Positions of the m smallest keys, ties broken towards the lower position (= stable argsort[:m]).

    A partition finds the m-th smallest key in O(n); only keys equal to it need the index tie-break, so
    this costs O(n) instead of a full O(n log n) sort. Positions are returned in no particular order.
    """
    n = keys.shape[0]
    if m <= 0:
        return np.empty(0, dtype=np.intp)
    if m >= n:
        return np.arange(n)
    cutoff = np.partition(keys, m - 1)[m - 1]
    below = np.flatnonzero(keys < cutoff)
    at_cutoff = np.flatnonzero(keys == cutoff)[: m - below.size]
    return np.concatenate([below, at_cutoff])



def _unflag_near_agreement(mask: np.ndarray, labels: np.ndarray, pred_probs: np.ndarray) -> None:
    rows = np.flatnonzero(mask)
    mask[rows[_confident_guess_agrees(labels, pred_probs, rows)]] = False



def _keep_at_least_n_per_class(prune_counts: np.ndarray, n: int, frac_noise: float) -> np.ndarray:
    """Prune matrix P (rows true j, columns given k) so each column keeps >= n items, then scaled by frac_noise."""
    diagonal = np.diagonal(prune_counts)
    kept = np.maximum(diagonal, n)
    # The items a column must keep are taken evenly from its non-zero noise entries.
    n_noise_entries = np.maximum(np.count_nonzero(prune_counts, axis=0) - 1.0, 1.0)
    reduced = prune_counts - (kept - diagonal) / n_noise_entries
    reduced[reduced < 0] = 0
    np.fill_diagonal(reduced, kept)
    return _reduce_prune_counts(reduced, frac_noise)


def _reduce_prune_counts(prune_counts: np.ndarray, frac_noise: float) -> np.ndarray:
    """Each noise (off-diagonal) count times frac_noise, the diagonal taking what was removed; as int64.

    frac_noise removes only that fraction of each noise entry; the diagonal takes what is not removed, so
    column totals stay the same. Truncating to int (not rounding) is the reference behaviour.
    """
    scaled = prune_counts * frac_noise
    np.fill_diagonal(scaled, prune_counts.diagonal())
    np.fill_diagonal(scaled, prune_counts.diagonal() + np.sum(prune_counts - scaled, axis=0))
    # row-major, as the reference's row-wise rounding returns it: later row sums then add in the same order
    return np.ascontiguousarray(scaled.astype(np.int64))


def _prune_counts_for_removal(prune_counts: np.ndarray, num_to_remove: np.ndarray,
                              label_counts: np.ndarray) -> np.ndarray:
    """Prune matrix that removes num_to_remove[j] items of each class, split as the noise in P suggests."""
    with np.errstate(divide="ignore", invalid="ignore"):
        # Broadcasting divides column k by the sum of row k: the reference's (odd but exact) normalisation.
        shares = prune_counts / np.sum(prune_counts, axis=1)
        noise_per_class = shares.sum(axis=1) - shares.diagonal()
        target = shares * (num_to_remove / noise_per_class)[:, None]
    np.fill_diagonal(target, label_counts - num_to_remove)
    return _round_preserving_row_totals(target)


def _prune_by_class(sorted_self_confidence, bounds, prune_counts, prunable) -> np.ndarray:
    """Flag, in each given class k, the n_k - P[k, k] items with the lowest p[i, k] (mask in class-sorted order)."""
    mask = np.zeros(sorted_self_confidence.shape[0], dtype=bool)
    for k in np.flatnonzero(prunable):
        start, stop = bounds[k], bounds[k + 1]
        m = (stop - start) - int(prune_counts[k, k])
        if m >= 1:
            mask[start + _smallest(sorted_self_confidence[start:stop], m)] = True
    return mask


# Items whose own-class probability is at least this are searched only if the candidates below it cannot
# settle a pair (j, k): their margin p_j - p_k is at most about 1 - 2 * 0.5 = 0.
CANDIDATE_SELF_CONFIDENCE = 0.5


def _prune_by_noise_rate(pred_probs, order, bounds, sorted_self_confidence, prune_counts, prunable) -> np.ndarray:
    """Flag, for each given class k and true class j != k, the P[j, k] items of k with the largest p_j - p_k.

    Returns a mask in class-sorted order. Exact, but fast: in class k only the candidates with p_k below
    CANDIDATE_SELF_CONFIDENCE are gathered. Every other item has margin p_j - p_k <= 1 + slack - 2 p_k
    (a row sums to at most 1 + slack), so when the P[j, k]-th largest candidate margin is above that bound no
    other item can reach, or tie with, the cut-off; otherwise the pair falls back to all of class k's items.
    """
    n_classes = pred_probs.shape[1]
    # Validated rows sum to 1 within ROW_SUM_TOLERANCE and entries are >= -VALUE_TOLERANCE.
    slack = ROW_SUM_TOLERANCE + n_classes * VALUE_TOLERANCE
    mask = np.zeros(sorted_self_confidence.shape[0], dtype=bool)
    for k in np.flatnonzero(prunable):  # K iterations; the work inside is vectorised over class k's items
        to_flag = prune_counts[:, k].copy()
        to_flag[k] = 0
        true_classes = np.flatnonzero(to_flag > 0)
        if not true_classes.size:
            continue
        start, stop = bounds[k], bounds[k + 1]
        own = sorted_self_confidence[start:stop]
        candidates = np.flatnonzero(own < CANDIDATE_SELF_CONFIDENCE)  # ascending: ties still break by index
        rest = np.flatnonzero(own >= CANDIDATE_SELF_CONFIDENCE)
        # the largest margin any non-candidate could have
        rest_bound = 1 + slack - 2 * own[rest].min() if rest.size else -np.inf
        rows = np.take(pred_probs, order[start + candidates], axis=0)
        all_rows = None
        for j in true_classes:
            m = int(to_flag[j])
            if m < candidates.size:
                negated = rows[:, k] - rows[:, j]  # largest margin = smallest negated margin (exact negation)
                chosen = _smallest(negated, m)
                if -negated[chosen].max() > rest_bound:
                    mask[start + candidates[chosen]] = True
                    continue
            if all_rows is None:
                all_rows = np.take(pred_probs, order[start:stop], axis=0)
            mask[start + _smallest(all_rows[:, k] - all_rows[:, j], m)] = True
    return mask


def _check_filter_options(filter_by, frac_noise, num_to_remove_per_class, min_examples_per_class,
                          return_indices_ranked_by, rank_by_kwargs) -> dict:
    if filter_by not in FILTER_BY:
        raise ConfigError(f"Unknown filter_by {filter_by!r}; choose one of {', '.join(FILTER_BY)}.")
    if not isinstance(frac_noise, (int, float, np.number)) or not 0 <= frac_noise <= 1:
        raise ConfigError(f"frac_noise must be a number between 0 and 1; got {frac_noise!r}. "
                          "Use 1 to remove every estimated issue.")
    if (isinstance(min_examples_per_class, (bool, np.bool_)) or not isinstance(min_examples_per_class, (int, np.integer))
            or min_examples_per_class < 0):
        raise ConfigError(f"min_examples_per_class must be a non-negative integer; got {min_examples_per_class!r}.")
    if num_to_remove_per_class is not None and filter_by not in _PRUNING_FILTERS:
        raise ConfigError(f"num_to_remove_per_class works only with filter_by {', '.join(_PRUNING_FILTERS)}; "
                          f"got filter_by={filter_by!r}. Drop num_to_remove_per_class or change filter_by.")
    kwargs = dict(rank_by_kwargs or {})
    unknown = sorted(set(kwargs) - {"adjust_pred_probs"})
    if unknown:
        raise ConfigError(f"rank_by_kwargs accepts only 'adjust_pred_probs'; got {preview(unknown)}.")
    if return_indices_ranked_by is not None:
        check_quality_method(return_indices_ranked_by, bool(kwargs.get("adjust_pred_probs", False)))
    return kwargs


def _check_num_to_remove(num_to_remove_per_class, label_counts: np.ndarray) -> np.ndarray:
    r = np.asarray(num_to_remove_per_class)
    n_classes = label_counts.shape[0]
    if r.ndim == 0 and np.issubdtype(r.dtype, np.number) and np.isfinite(r) and r == np.round(r) and r >= 0:
        # A scalar applies to every class, as in cleanlab; a class cannot lose more items than it has.
        return np.minimum(np.full(n_classes, int(r), dtype=np.int64), label_counts.astype(np.int64))
    if (r.shape != (n_classes,) or not np.issubdtype(r.dtype, np.number) or not np.all(np.isfinite(r))
            or np.any(r != np.round(r)) or np.any(r < 0)):
        raise ConfigError(f"num_to_remove_per_class must be {n_classes} non-negative integers, one per class; "
                          f"got {preview(np.ravel(r))}.")
    too_many = np.flatnonzero(r > label_counts)
    if too_many.size:
        k = too_many[0]
        raise ConfigError(f"num_to_remove_per_class asks to remove {int(r[k])} items of class {k} but only "
                          f"{int(label_counts[k])} are given that label; lower it for classes {preview(too_many)}.")
    return r.astype(np.int64)


def find_label_issues(labels, pred_probs, *, return_indices_ranked_by: str | None = None,
                      rank_by_kwargs: dict | None = None, filter_by: str = "prune_by_noise_rate",
                      frac_noise: float = 1.0, num_to_remove_per_class=None, min_examples_per_class: int = 1,
                      confident_joint=None, n_jobs: int | None = None, verbose: bool = False) -> np.ndarray:
    """Which items are likely mislabelled: a boolean mask, or their indices ranked most-likely-wrong first.

    ``filter_by`` chooses how many and which items of each given class are flagged:
    ``prune_by_noise_rate`` (default): for each pair (true j, given k) the P[j, k] items of class k with the
    largest margin p_j - p_k, where P is the calibrated confident joint transposed; ``prune_by_class``: the
    n_k - P[k, k] items of class k with the lowest p_k; ``both``: items flagged by both;
    ``confident_learning``: the off-diagonal items of the confident joint; ``predicted_neq_given``: argmax
    differs from the label; ``low_self_confidence`` / ``low_normalized_margin``: the num_label_issues()
    items with the lowest score. All but the two ``low_*`` filters then un-flag items whose argmax becomes
    the given label when it gets 1e-6 more probability.

    ``frac_noise`` flags only that fraction of each estimated noise count; ``num_to_remove_per_class`` (K
    counts, or one count for every class) fixes how many items of each class are flagged; a class with at most ``min_examples_per_class``
    items is not pruned (a warning names it), and a class of one item is never flagged. With
    ``return_indices_ranked_by`` (a quality method; ``rank_by_kwargs`` may set ``adjust_pred_probs``) the
    flagged indices are returned in ascending score order, ties in index order (stable sort: cleanlab's
    unstable sort may order exactly equal scores differently, and may pick differently among items tied at
    a cut-off). ``confident_joint`` (uncalibrated or calibrated counts) replaces the computed one for the
    pruning filters. Same as ``cleanlab.filter.find_label_issues`` (single-label). ``n_jobs`` and ``verbose``
    are accepted for compatibility and change nothing: the work is vectorised, not pooled, and prints nothing.
    """
    kwargs = _check_filter_options(filter_by, frac_noise, num_to_remove_per_class, min_examples_per_class,
                                   return_indices_ranked_by, rank_by_kwargs)
    y, p = _check_inputs(labels, pred_probs)
    return _find_label_issues(y, p, kwargs, return_indices_ranked_by, filter_by, frac_noise, num_to_remove_per_class,
                              min_examples_per_class, confident_joint)


def _find_label_issues(y: np.ndarray, p: np.ndarray, kwargs: dict, return_indices_ranked_by, filter_by, frac_noise,
                       num_to_remove_per_class, min_examples_per_class, confident_joint) -> np.ndarray:
    """find_label_issues on validated inputs and options. The multi-label reduction
    (relabel.scoring.multilabel_confident) calls it per class, where a class nobody or everybody was given
    leaves one given class, which the public function refuses."""
    n_classes = p.shape[1]
    label_counts = _label_counts(y, n_classes)
    removal = None if num_to_remove_per_class is None else _check_num_to_remove(num_to_remove_per_class, label_counts)
    order, bounds = members = _class_members(y, n_classes)
    own = _sorted_self_confidence(y, p, order)
    thresholds = _compute_confident_thresholds(y, p, members, own)
    joint, off_diagonal = _compute_confident_joint(y, p, thresholds)
    if confident_joint is not None and filter_by != "confident_learning":
        joint = _check_confident_joint(confident_joint, n_classes)
    else:
        if confident_joint is not None:
            warnings.warn("confident_joint is ignored with filter_by='confident_learning', which needs the items "
                          "behind the joint; it is recomputed from labels and pred_probs.", stacklevel=2)
        joint = _calibrate_confident_joint(joint, label_counts)

    if filter_by in _SCORE_FILTERS:
        scores = _compute_label_quality_scores(y, p, filter_by[4:], adjust_pred_probs=False)
        n_issues = _num_off_diagonal_issues(y, p, off_diagonal)
        mask = np.zeros(y.shape[0], dtype=bool)
        mask[_smallest(scores, n_issues)] = True
    elif filter_by in _PRUNING_FILTERS:
        prune_counts = _keep_at_least_n_per_class(joint.T, min_examples_per_class, frac_noise)
        if removal is not None:
            prune_counts = _prune_counts_for_removal(prune_counts, removal, label_counts)
        # A class at or below min_examples_per_class is left alone; a single item is never flagged.
        prunable = (label_counts > min_examples_per_class) & (label_counts > 1)
        small = np.flatnonzero((label_counts > 0) & ~prunable)
        if small.size:
            fix = ("lower min_examples_per_class to include them" if np.any(label_counts[small] > 1)
                   else "a class with a single item is never searched")
            warnings.warn(f"Classes {preview(small)} have at most max(min_examples_per_class, 1) = "
                          f"{max(min_examples_per_class, 1)} items and were not searched for label issues; {fix}.",
                          stacklevel=2)
        if filter_by == "prune_by_class":
            sorted_mask = _prune_by_class(own, bounds, prune_counts, prunable)
        else:
            sorted_mask = _prune_by_noise_rate(p, order, bounds, own, prune_counts, prunable)
            if filter_by == "both":
                sorted_mask &= _prune_by_class(own, bounds, prune_counts, prunable)
        mask = np.empty(y.shape[0], dtype=bool)
        mask[order] = sorted_mask
    elif filter_by == "confident_learning":
        mask = np.zeros(y.shape[0], dtype=bool)
        mask[off_diagonal] = True
    else:  # predicted_neq_given
        mask = p.argmax(axis=1) != y
    if filter_by not in _SCORE_FILTERS:
        _unflag_near_agreement(mask, y, p)

    if return_indices_ranked_by is None:
        return mask
    flagged = np.flatnonzero(mask)
    adjust = bool(kwargs.get("adjust_pred_probs", False))
    # Scores depend only on each row (and, when adjusting, on thresholds from all items), so score just the
    # flagged rows.
    t = _compute_confident_thresholds(y, p, members, own) if adjust else None
    scores = _compute_label_quality_scores(y[flagged], p[flagged], return_indices_ranked_by, adjust, t)
    return flagged[np.argsort(scores, kind="stable")]




def find_predicted_neq_given(labels, pred_probs, *, multi_label: bool = False) -> np.ndarray:
    """Mask of items whose argmax differs from their label (the simple baseline; no un-flagging).

    Same as ``cleanlab.filter.find_predicted_neq_given`` (single-label: ``multi_label=True`` is refused).
    """
    _refuse_multi_label(multi_label)
    y, p = _check_inputs(labels, pred_probs, allow_one_class=True)
    return p.argmax(axis=1) != y


def find_label_issues_using_argmax_confusion_matrix(labels, pred_probs, *, calibrate: bool = True,
                                                    filter_by: str = "prune_by_noise_rate") -> np.ndarray:
    """find_label_issues with the confusion matrix of (given label, argmax) in place of the confident joint.

    With ``calibrate`` the matrix is first calibrated to the given-label counts. Same as
    ``cleanlab.filter.find_label_issues_using_argmax_confusion_matrix``.
    """
    y, p = _check_inputs(labels, pred_probs)
    n_classes = p.shape[1]
    confusion = np.bincount(y * n_classes + p.argmax(axis=1), minlength=n_classes * n_classes)
    confusion = confusion.reshape(n_classes, n_classes).astype(np.int64)
    if calibrate:
        confusion = _calibrate_confident_joint(confusion, _label_counts(y, n_classes))
    return find_label_issues(y, p, confident_joint=confusion, filter_by=filter_by)


def _refuse_multi_label(multi_label) -> None:
    if multi_label:
        raise ConfigError("multi_label=True is not supported yet: relabel handles single-label data only; "
                          "pass one class index per item.")
