"""Checks at the edge of the numeric core: public functions call these, private _compute_* trust them."""
from __future__ import annotations

import numpy as np

from relabel.errors import AnnotationError, LabelError, PredProbsError, preview

# pred_probs rows may drift from 1 by float rounding (float16 model outputs drift by ~4e-4); beyond this
# they are not probabilities (logits, or a missing softmax) and scoring them would be silently wrong.
ROW_SUM_TOLERANCE = 1e-3
# Values this far outside [0, 1] are rounding, not a bug. The same tolerance as the row sums: a float32 softmax
# gives 1.00001 as readily as a row summing to 1.0004, and accepting one but not the other made no sense.
VALUE_TOLERANCE = ROW_SUM_TOLERANCE


def check_pred_probs(pred_probs, n_rows: int | None = None, n_classes: int | None = None,
                     name: str = "pred_probs") -> np.ndarray:
    """Return pred_probs as a float array, or raise naming the rows that are not probability vectors."""
    p = np.asarray(pred_probs)
    if p.dtype == object or not np.issubdtype(p.dtype, np.number):
        raise PredProbsError(f"{name} must be a numeric N x K array; got dtype {p.dtype}.")
    if p.dtype != np.float64 and p.dtype != np.float32:
        p = p.astype(np.float64)
    if p.ndim != 2:
        raise PredProbsError(f"{name} must be 2-D (items x classes); got shape {p.shape}.")
    if n_rows is not None and p.shape[0] != n_rows:
        raise PredProbsError(
            f"{name} has {p.shape[0]} rows but there are {n_rows} items; give one row per item, in item order."
        )
    if n_classes is not None and p.shape[1] != n_classes:
        raise PredProbsError(
            f"{name} has {p.shape[1]} columns but there are {n_classes} classes; give one column per class."
        )
    if p.shape[1] < 2:
        raise PredProbsError(f"{name} needs at least 2 columns (classes); got {p.shape[1]}.")
    # Fast path for valid input: two whole-array reductions and one mat-vec for the row sums are ~6x faster
    # than reductions along the short class axis (1M x 10: ~30 ms instead of ~190 ms). NaN propagates
    # through min/max and inf breaks the bounds, so anything wrong falls through to the row-by-row checks
    # below, which find the offending rows for the message.
    if p.size and p.min() >= -VALUE_TOLERANCE and p.max() <= 1 + VALUE_TOLERANCE:
        if np.all(np.abs(p @ np.ones(p.shape[1], dtype=p.dtype) - 1) <= ROW_SUM_TOLERANCE):
            return p
    bad_value = ~np.isfinite(p).all(axis=1)
    if bad_value.any():
        rows = np.flatnonzero(bad_value)
        raise PredProbsError(f"{name} has NaN or infinite values in rows {preview(rows)}; "
                             "fix the model output for those items.")
    low, high = p.min(axis=1), p.max(axis=1)
    out = (low < -VALUE_TOLERANCE) | (high > 1 + VALUE_TOLERANCE)
    if out.any():
        rows = np.flatnonzero(out)
        first = p[rows[0]]
        value = first.min() if low[rows[0]] < -VALUE_TOLERANCE else first.max()   # the offending value
        raise PredProbsError(f"{name} has values outside [0, 1] in rows {preview(rows)} "
                             f"(e.g. {value:.6g} in row {rows[0]}); pass probabilities, e.g. a softmax of the logits.")
    off = np.abs(p.sum(axis=1) - 1) > ROW_SUM_TOLERANCE
    if off.any():
        rows = np.flatnonzero(off)
        raise PredProbsError(f"{name} rows {preview(rows)} do not sum to 1 (row {rows[0]} sums to "
                             f"{p[rows[0]].sum():.6g}); normalise each row to a probability vector.")
    return p


def check_tie_break_probs(pred_probs, name: str = "pred_probs") -> np.ndarray:
    """Return pred_probs used only to break ties (their argmax among tied classes), or raise.

    Looser than check_pred_probs on purpose: rows need not sum to 1, because only the order of a row's
    values matters. cleanlab's own ensemble functions pass such rows (a mean of unnormalised model outputs
    summing to 1.57) to ``get_majority_vote_label``, and cleanlab accepts them there. Values must still be
    finite and non-negative; wherever pred_probs feed a score, check_pred_probs stays in force.
    """
    p = np.asarray(pred_probs)
    if p.dtype == object or not np.issubdtype(p.dtype, np.number):
        raise PredProbsError(f"{name} must be a numeric N x K array; got dtype {p.dtype}.")
    p = p.astype(np.float64, copy=False)
    if p.ndim != 2 or p.shape[1] < 2:
        raise PredProbsError(f"{name} must be 2-D (items x classes) with at least 2 columns; got shape {p.shape}.")
    bad = ~np.isfinite(p).all(axis=1) | (p < -VALUE_TOLERANCE).any(axis=1)
    if bad.any():
        raise PredProbsError(f"{name} has NaN, infinite or negative values in rows {preview(np.flatnonzero(bad))}; "
                             "pass the model's probabilities for those items.")
    return p


def check_labels(labels, n_rows: int | None = None, n_classes: int | None = None) -> np.ndarray:
    """Return labels as an integer array, or raise naming the bad labels."""
    y = np.asarray(labels)
    if y.ndim != 1:
        raise LabelError(f"labels must be 1-D (one label per item); got shape {y.shape}.")
    if n_rows is not None and y.shape[0] != n_rows:
        raise LabelError(f"labels has {y.shape[0]} entries but pred_probs has {n_rows} rows; they must match.")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.number) or not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise LabelError("labels must be integer class indices 0..K-1; got non-integer values "
                             f"{preview(np.unique(y[~np.isfinite(y) | (y != np.round(y))]) if np.issubdtype(y.dtype, np.number) else y[:5])}.")
    y = y.astype(np.intp)
    if y.size and y.min() < 0:
        raise LabelError(f"labels must be non-negative class indices; items {preview(np.flatnonzero(y < 0))} "
                         "have negative labels.")
    if n_classes is not None and y.size and y.max() >= n_classes:
        bad = np.flatnonzero(y >= n_classes)
        raise LabelError(f"Items {preview(bad)} have label {y[bad[0]]}, outside the {n_classes} classes "
                         f"0..{n_classes - 1} of pred_probs; pred_probs needs a column for every class.")
    return y


def check_active_learning_inputs(labels_multiannotator, pred_probs, pred_probs_unlabeled, whose: str = "model's") -> None:
    """ActiveLab takes labelled items (labels with pred_probs), unlabelled items (pred_probs_unlabeled), or both;
    refuse the combinations that name one half of a pair without the other. ``whose`` words the message
    ("model's" or "models'")."""
    if pred_probs is None and pred_probs_unlabeled is None:
        raise PredProbsError("Give pred_probs (with labels_multiannotator) for labelled items, "
                             "pred_probs_unlabeled for unlabelled items, or both; both are None.")
    if pred_probs is not None and labels_multiannotator is None:
        raise AnnotationError("pred_probs was given without labels_multiannotator; pass the labels of those "
                              "items, or give pred_probs_unlabeled alone for unlabelled items.")
    if pred_probs is None and labels_multiannotator is not None:
        raise PredProbsError(f"labels_multiannotator was given without pred_probs; pass the {whose} pred_probs "
                             "for the labelled items too, or drop labels_multiannotator.")
