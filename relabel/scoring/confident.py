"""Confident learning on single labels: thresholds, confident joint, noise matrices, label issues, quality scores.

Implements ALGORITHMS.md section 1 (Northcutt, Jiang, Chuang, JAIR 2021) with the names, parameters,
defaults and return shapes of cleanlab 2.9's ``cleanlab.count``, ``cleanlab.filter`` and ``cleanlab.rank``,
so a cleanlab user can switch by changing the import. Outputs match cleanlab 2.9.0 (floats to 1e-9,
integers and masks exactly), except for the one of the project's three deliberate differences that
applies to single labels (the other two, vote counting and the random majority-vote tie-break, concern
multi-annotator data and live in consensus.py):

* **Ties are broken by a stable sort** (deliberate difference 3). cleanlab orders exactly equal keys with
  numpy's default (unstable) argsort, so its choice among equal keys depends on the numpy build: which of
  several equally ranked items are flagged at a cut-off, the order of equal scores in a ranking, and which
  of several equal rounding residuals absorbs a unit in the calibrated joint. Here every such choice is
  what cleanlab gives when its argsort is stable: index order among equal keys (for the residuals, a
  stable ascending sort read from the end when rounding up). On the CIFAR-10 test set this moves one count
  of the calibrated joint and changes 2 of 10,000 flags relative to cleanlab on an AVX-512 machine.

Smaller differences: bad input raises :mod:`relabel.errors` exceptions (a singular noise matrix with
``py_method='eqn'`` raises InputError, not LinAlgError); fewer than two given classes is always an error
(cleanlab lets all-zero labels through, for its multi-label code; relabel's multi-label reduction, with
``multi_label``, is ``multilabel_confident``, which calls ``_find_label_issues`` per class); ``n_jobs`` /
``verbose`` are accepted and ignored because the work is vectorised.

Public functions validate their inputs and raise :mod:`relabel.errors` exceptions; the private
``_compute_*`` functions trust theirs (CROWDLAB in ``consensus.py`` calls them directly).
"""
from __future__ import annotations

import warnings

import numpy as np

from relabel.errors import ConfigError, InputError, LabelError, preview
from relabel.scoring.validation import ROW_SUM_TOLERANCE, VALUE_TOLERANCE, check_labels, check_pred_probs

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


def _sorted_self_confidence(labels: np.ndarray, pred_probs: np.ndarray, order: np.ndarray) -> np.ndarray:
    """p[i, y_i] for the items in class-sorted order (class k's items are one contiguous slice)."""
    return _self_confidence(labels, pred_probs)[order]


def _compute_confident_thresholds(labels: np.ndarray, pred_probs: np.ndarray,
                                  members: tuple[np.ndarray, np.ndarray] | None = None,
                                  sorted_self_confidence: np.ndarray | None = None) -> np.ndarray:
    """t_k = mean of p[i, k] over items given class k; absent classes get an unreachable threshold.

    ``members`` (from _class_members) and ``sorted_self_confidence`` (from _sorted_self_confidence) reuse
    work the caller has already done.
    """
    n_classes = pred_probs.shape[1]
    order, bounds = members if members is not None else _class_members(labels, n_classes)
    if sorted_self_confidence is None:
        sorted_self_confidence = _sorted_self_confidence(labels, pred_probs, order)
    thresholds = np.full(n_classes, UNREACHABLE_THRESHOLD, dtype=np.float64)
    for k in range(n_classes):  # one mean per class over its own items: O(N) in total
        start, stop = bounds[k], bounds[k + 1]
        if stop > start:
            # np.mean of the class's values in index order sums exactly as cleanlab's boolean-mask mean does,
            # so thresholds agree to the last bit and "p >= t - eps" never flips between the two.
            thresholds[k] = np.mean(sorted_self_confidence[start:stop])
    # Keep the dtype cleanlab ends up with (float32 pred_probs with every class given -> float32 thresholds),
    # so comparisons and the adjusted pred_probs round exactly as cleanlab's do.
    if np.all(bounds[1:] > bounds[:-1]):
        thresholds = thresholds.astype(pred_probs.dtype)
    return np.maximum(thresholds, THRESHOLD_FLOOR)


def get_confident_thresholds(labels, pred_probs) -> np.ndarray:
    """Per-class confident thresholds: the mean predicted probability of class k over items labelled k.

    A class that no item is given gets threshold 2 (no probability reaches it); every threshold is floored
    at 2e-6. Returns an array of shape (K,): float32 for float32 pred_probs when every class is given,
    else float64, as ``cleanlab.count.get_confident_thresholds`` does.
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
    # take_along_axis is ~3x faster than pred_probs[arange, labels] on a million rows
    return np.take_along_axis(pred_probs, labels[:, None], axis=1)[:, 0]


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


def _round_preserving_sum(values: np.ndarray) -> np.ndarray:
    """Round half-to-even, then move the fewest entries by one so the integers keep the rounded total.

    Entries furthest from their rounding absorb the difference (largest residual x - round(x) go up,
    smallest go down). Ties in the residual are resolved as a stable ascending sort read from the end
    when going up and from the start when going down, which is what cleanlab does when its sort is stable.
    A row with a non-finite entry (0/0 in num_to_remove_per_class) is rounded entry-wise with non-finite
    entries counting as 0, which flags exactly what cleanlab flags.
    """
    ints = np.round(values)
    if not np.all(np.isfinite(values)):
        return np.where(np.isfinite(ints), ints, 0).astype(np.int64)
    target = np.round(np.sum(values))
    int_sum = np.round(np.sum(ints))
    while abs(int_sum - target) > FUZZY_EPS:
        diff = np.round(target - int_sum)
        step = -1 if diff < 0 else 1
        changes = min(int(abs(diff)), values.shape[0])
        by_residual = np.argsort(values - ints, kind="stable")
        chosen = by_residual[::-1][:changes] if step > 0 else by_residual[:changes]
        ints[chosen] += step
        int_sum = np.round(np.sum(ints))
    return ints.astype(np.int64)


def _round_preserving_row_totals(matrix: np.ndarray) -> np.ndarray:
    """Round each row of a K x K matrix to integers that keep the row's rounded total (a K-loop on K x K)."""
    return np.array([_round_preserving_sum(row) for row in matrix], dtype=np.int64).reshape(matrix.shape)


# ---- 1.2 confident joint -----------------------------------------------------------------------------------
def _count_and_first_per_row(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Number of True per row of an N x K boolean matrix, and the column of the True where there is exactly one.

    Two uint8 mat-vecs avoid numpy's slow per-row reductions over a short axis (2-4x faster than
    count_nonzero / argmax along axis 1). The index sum wraps modulo 256 on rows with several True, which
    callers do not use; it is exact on rows with one.
    """
    n_classes = flags.shape[1]
    if n_classes < 256:
        as_bytes = flags.view(np.uint8)
        return (as_bytes @ np.ones(n_classes, dtype=np.uint8),
                (as_bytes @ np.arange(n_classes, dtype=np.uint8)).astype(np.intp))
    return np.count_nonzero(flags, axis=1), flags.argmax(axis=1)


def _compute_confident_joint(labels: np.ndarray, pred_probs: np.ndarray, thresholds: np.ndarray,
                             ) -> tuple[np.ndarray, np.ndarray]:
    """Uncalibrated confident joint (diagonal raised to >= 1) and the off-diagonal item indices.

    C[a, b] counts items given a whose guessed true label is b. An item is confident for class k when
    p[i, k] >= t_k - eps; with one confident class that is the guess, with several the argmax of the whole
    row, with none the item is not counted. One bincount over a*K + b fills the matrix.
    """
    n_classes = pred_probs.shape[1]
    confident = pred_probs >= thresholds - FUZZY_EPS
    n_confident, guess = _count_and_first_per_row(confident)  # guess: the confident class when there is one
    del confident
    several = np.flatnonzero(n_confident > 1)
    if several.size:
        guess[several] = np.take(pred_probs, several, axis=0).argmax(axis=1)
    counted = np.flatnonzero(n_confident > 0)
    given, guess = labels[counted], guess[counted]
    # Counted as [guess, given] and transposed, so the matrix is column-major like cleanlab's (a transposed
    # confusion matrix): calibration sums it in memory order, and the same order gives the same last bit.
    joint = np.bincount(guess * n_classes + given, minlength=n_classes * n_classes)
    joint = joint.reshape(n_classes, n_classes).astype(np.int64).T
    off_diagonal = counted[given != guess]
    # Every class keeps at least one item it is confidently right about, so no row or column is empty.
    np.fill_diagonal(joint, np.maximum(joint.diagonal(), 1))
    return joint, off_diagonal


def _calibrate_confident_joint(confident_joint: np.ndarray, label_counts: np.ndarray) -> np.ndarray:
    """Rescale rows to the given-label counts, the total to N, and round rows keeping their totals."""
    row_sums = np.maximum(confident_joint.sum(axis=1), TINY)
    # Scaling the transpose keeps cleanlab's memory layout (the input's, flipped twice), so the total below
    # is summed in the same order and half-way cases round identically; the layout of the joint matters.
    calibrated = (confident_joint.T / row_sums * label_counts).T
    calibrated = calibrated / max(np.sum(calibrated), TINY) * int(label_counts.sum())
    return _round_preserving_row_totals(calibrated)


def _label_counts(labels: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(labels, minlength=n_classes).astype(np.int64)


def _check_thresholds(thresholds, n_classes: int) -> np.ndarray:
    t = np.asarray(thresholds)
    if t.shape != (n_classes,) or not np.issubdtype(t.dtype, np.number) or not np.all(np.isfinite(t)):
        raise ConfigError(f"thresholds must be {n_classes} finite numbers, one per class (columns of pred_probs); "
                          f"got {preview(np.ravel(t))}. Leave thresholds=None to use the per-class mean confidences.")
    return t


def compute_confident_joint(labels, pred_probs, *, thresholds=None, calibrate: bool = True,
                            return_indices_of_off_diagonals: bool = False):
    """The K x K confident joint: C[a, b] = items given label a whose confidently guessed true label is b.

    ``thresholds`` default to :func:`get_confident_thresholds`. Every diagonal entry is at least 1. With
    ``calibrate`` (default) rows are rescaled to the given-label counts and the total to N, then rounded
    row-wise keeping totals. With ``return_indices_of_off_diagonals`` also returns the indices (ascending)
    of counted items whose guess differs from their label, as ``(joint, indices)``. Same as
    ``cleanlab.count.compute_confident_joint`` (single-label).
    """
    y, p = _check_inputs(labels, pred_probs)
    n_classes = p.shape[1]
    t = _compute_confident_thresholds(y, p) if thresholds is None else _check_thresholds(thresholds, n_classes)
    joint, off_diagonal = _compute_confident_joint(y, p, t)
    if calibrate:
        joint = _calibrate_confident_joint(joint, _label_counts(y, n_classes))
    return (joint, off_diagonal) if return_indices_of_off_diagonals else joint


def _check_confident_joint(confident_joint, n_classes: int | None = None) -> np.ndarray:
    c = np.asarray(confident_joint)
    k = c.shape[0] if c.ndim == 2 else -1
    if (c.ndim != 2 or c.shape[1] != k or (n_classes is not None and k != n_classes)
            or not np.issubdtype(c.dtype, np.number) or not np.all(np.isfinite(c)) or np.any(c < 0)):
        want = f"{n_classes} x {n_classes}" if n_classes is not None else "square K x K"
        raise ConfigError(f"confident_joint must be a {want} matrix of non-negative counts; got shape {c.shape}. "
                          "Pass the output of compute_confident_joint, or None to compute it.")
    return c


def calibrate_confident_joint(confident_joint, labels) -> np.ndarray:
    """Calibrate a confident joint so row a sums to the number of items given a and the total is N.

    Same as ``cleanlab.count.calibrate_confident_joint`` (single-label).
    """
    c = _check_confident_joint(confident_joint)
    y = check_labels(labels, n_classes=c.shape[0])
    return _calibrate_confident_joint(c, _label_counts(y, c.shape[0]))


def estimate_joint(labels, pred_probs, *, confident_joint=None) -> np.ndarray:
    """The estimated joint distribution of (given label, true label): the calibrated confident joint / N.

    With ``confident_joint`` given it is calibrated to ``labels`` (``pred_probs`` is then unused and may be
    None). Same as ``cleanlab.count.estimate_joint`` (single-label).
    """
    if confident_joint is None:
        calibrated = compute_confident_joint(labels, pred_probs, calibrate=True)
    else:
        calibrated = calibrate_confident_joint(confident_joint, labels)
    return calibrated / max(float(np.sum(calibrated)), TINY)


# ---- 1.3 noise matrices ----------------------------------------------------------------------------------
PY_METHODS = ("cnt", "eqn", "marginal", "marginal_ps")
# py is clipped to [PY_FLOOR, 1] and renormalised; after convergence the looser CONVERGED_PY_FLOOR applies.
PY_FLOOR = 1e-6
CONVERGED_PY_FLOOR = 1e-5
# Off-diagonal noise rates are capped just below 1 so no class is modelled as entirely flipped.
MAX_NOISE_RATE = 0.9999
# Fixed iteration counts of the convergence loop (outer x inner), as in the JAIR paper's implementation.
CONVERGE_OUTER, CONVERGE_INNER = 3, 5


def _clip_values(x: np.ndarray, low: float, high: float, new_sum: float) -> np.ndarray:
    """Clip into [low, high], then rescale to sum to new_sum."""
    x = np.clip(x, low, high)
    return x * new_sum / max(np.sum(x), TINY)


def _clip_noise_rates(matrix: np.ndarray) -> np.ndarray:
    """Off-diagonal rates into [0, MAX_NOISE_RATE], diagonal kept, then every column rescaled to sum 1."""
    clipped = np.clip(matrix, 0, MAX_NOISE_RATE)
    np.fill_diagonal(clipped, np.diagonal(matrix))
    return clipped / np.maximum(clipped.sum(axis=0), TINY)


def _compute_py(ps, noise_matrix, inverse_noise_matrix, py_method, true_label_counts) -> np.ndarray:
    """The latent prior p(true label) by one of PY_METHODS, clipped to [1e-6, 1] and summing to 1."""
    if py_method == "cnt":
        py = inverse_noise_matrix.diagonal() / np.maximum(noise_matrix.diagonal(), TINY) * ps
    elif py_method == "eqn":
        try:
            py = np.linalg.inv(noise_matrix).dot(ps)
        except np.linalg.LinAlgError:
            raise InputError("py_method='eqn' needs an invertible noise matrix but this one is singular; "
                             "use py_method='cnt' (the default).") from None
    elif py_method == "marginal":
        py = true_label_counts / max(float(np.sum(true_label_counts)), TINY)
    else:  # marginal_ps
        py = np.dot(inverse_noise_matrix, ps)
    return _clip_values(py, PY_FLOOR, 1.0, 1.0)


def _converge_estimates(ps, py, noise_matrix, inverse_noise_matrix):
    """Alternate py, the inverse noise matrix and the noise matrix so they satisfy their algebraic relations."""
    for _ in range(CONVERGE_OUTER):
        for _ in range(CONVERGE_INNER):
            joint = noise_matrix * py  # p(given s, true y) = p(s | y) p(y), arranged [s, y]
            inverse_noise_matrix = _clip_noise_rates(joint.T / np.maximum(ps, TINY))
            py = _compute_py(ps, noise_matrix, inverse_noise_matrix, "cnt", None)
        joint = (inverse_noise_matrix * ps).T  # p(y | s) p(s), arranged [s, y]
        noise_matrix = _clip_noise_rates(joint / np.maximum(py, TINY))
    return py, noise_matrix, inverse_noise_matrix


def _check_py_method(py_method: str) -> None:
    if py_method not in PY_METHODS:
        raise ConfigError(f"Unknown py_method {py_method!r}; choose one of {', '.join(PY_METHODS)}.")


def _compute_latent(confident_joint: np.ndarray, label_counts: np.ndarray, py_method: str,
                    converge_latent_estimates: bool):
    """(py, noise_matrix, inverse_noise_matrix) for a validated joint and the given-label counts (1.3)."""
    ps = label_counts / float(label_counts.sum())
    given_counts = confident_joint.sum(axis=1).astype(float)
    true_counts = confident_joint.sum(axis=0).astype(float)
    noise_matrix = confident_joint / np.maximum(true_counts, TINY)           # p(given s | true y), [s, y]
    inverse_noise_matrix = confident_joint.T / np.maximum(given_counts, TINY)  # p(true y | given s), [y, s]
    py = _compute_py(ps, noise_matrix, inverse_noise_matrix, py_method, true_counts)
    noise_matrix = _clip_noise_rates(noise_matrix)
    inverse_noise_matrix = _clip_noise_rates(inverse_noise_matrix)
    if converge_latent_estimates:
        py, noise_matrix, inverse_noise_matrix = _converge_estimates(ps, py, noise_matrix, inverse_noise_matrix)
        py = _clip_values(py, CONVERGED_PY_FLOOR, 1.0, 1.0)
        noise_matrix = _clip_noise_rates(noise_matrix)
        inverse_noise_matrix = _clip_noise_rates(inverse_noise_matrix)
    return py, noise_matrix, inverse_noise_matrix


def estimate_latent(confident_joint, labels, *, py_method: str = "cnt", converge_latent_estimates: bool = False):
    """(py, noise_matrix, inverse_noise_matrix) from a confident joint and the given labels.

    ``noise_matrix[s, y]`` = p(given s | true y) and ``inverse_noise_matrix[y, s]`` = p(true y | given s),
    both with columns summing to 1; ``py`` = p(true y) by ``py_method`` (cnt, eqn, marginal, marginal_ps).
    Same as ``cleanlab.count.estimate_latent``.
    """
    _check_py_method(py_method)
    c = _check_confident_joint(confident_joint)
    y = check_labels(labels, n_classes=c.shape[0])
    if y.size == 0:
        raise LabelError("labels is empty; give at least one labelled item.")
    return _compute_latent(c, _label_counts(y, c.shape[0]), py_method, converge_latent_estimates)


def estimate_py_and_noise_matrices_from_probabilities(labels, pred_probs, *, thresholds=None,
                                                      converge_latent_estimates: bool = True,
                                                      py_method: str = "cnt", calibrate: bool = True):
    """(py, noise_matrix, inverse_noise_matrix, confident_joint) estimated from labels and pred_probs.

    Same as ``cleanlab.count.estimate_py_and_noise_matrices_from_probabilities``.
    """
    _check_py_method(py_method)
    joint = compute_confident_joint(labels, pred_probs, thresholds=thresholds, calibrate=calibrate)
    y = check_labels(labels)
    py, nm, inv = _compute_latent(joint, _label_counts(y, joint.shape[0]), py_method, converge_latent_estimates)
    return py, nm, inv, joint


# ---- 1.4 / 1.5 label issues ---------------------------------------------------------------------------------
FILTER_BY = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given",
             "low_normalized_margin", "low_self_confidence")
_PRUNING_FILTERS = ("prune_by_noise_rate", "prune_by_class", "both")
_SCORE_FILTERS = ("low_normalized_margin", "low_self_confidence")
NUM_ISSUES_METHODS = ("off_diagonal", "off_diagonal_calibrated", "off_diagonal_custom")


def _confident_guess_agrees(labels: np.ndarray, pred_probs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For the given rows: is the given label the argmax once it gets FUZZY_EPS extra probability?

    Items the model only narrowly disagrees with are not called label issues. Works on the rows asked
    about only (a copy of those rows, in pred_probs' dtype so the addition rounds as cleanlab's does).
    """
    sub = np.take(pred_probs, rows, axis=0)  # np.take gathers rows ~1.6x faster than fancy indexing
    given = labels[rows]
    sub[np.arange(rows.size), given] += FUZZY_EPS
    return sub.argmax(axis=1) == given


def _unflag_near_agreement(mask: np.ndarray, labels: np.ndarray, pred_probs: np.ndarray) -> None:
    rows = np.flatnonzero(mask)
    mask[rows[_confident_guess_agrees(labels, pred_probs, rows)]] = False


def _num_off_diagonal_issues(labels, pred_probs, off_diagonal: np.ndarray) -> int:
    """Size of the off-diagonal set after un-flagging items the model nearly agrees with."""
    return int(np.count_nonzero(~_confident_guess_agrees(labels, pred_probs, off_diagonal)))


def _keep_at_least_n_per_class(prune_counts: np.ndarray, n: int, frac_noise: float) -> np.ndarray:
    """Prune matrix P (rows true j, columns given k) so each column keeps >= n items, then scaled by frac_noise."""
    diagonal = np.diagonal(prune_counts)
    kept = np.maximum(diagonal, n)
    # The items a column must keep are taken evenly from its non-zero noise entries.
    n_noise_entries = np.maximum(np.count_nonzero(prune_counts, axis=0) - 1.0, 1.0)
    reduced = prune_counts - (kept - diagonal) / n_noise_entries
    reduced[reduced < 0] = 0
    np.fill_diagonal(reduced, kept)
    # frac_noise removes only that fraction of each noise entry; the diagonal takes what is not removed,
    # so column totals stay the same. Truncating to int (not rounding) is the reference behaviour.
    scaled = reduced * frac_noise
    np.fill_diagonal(scaled, reduced.diagonal())
    np.fill_diagonal(scaled, reduced.diagonal() + np.sum(reduced - scaled, axis=0))
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
    """find_label_issues on validated inputs and options (the multi-label reduction calls it per class, where
    a class nobody or everybody was given leaves one given class)."""
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


def num_label_issues(labels, pred_probs, *, confident_joint=None, estimation_method: str = "off_diagonal") -> int:
    """Estimated number of label issues.

    ``off_diagonal`` (default): items off the diagonal of the (uncalibrated) confident joint, minus those the
    model nearly agrees with; ``off_diagonal_calibrated``: round((1 - trace(estimate_joint)) * N);
    ``off_diagonal_custom``: the same from the ``confident_joint`` you pass (ignored by the other two
    methods, with a warning). Same as ``cleanlab.count.num_label_issues`` (single-label).
    """
    if estimation_method not in NUM_ISSUES_METHODS:
        raise ConfigError(f"Unknown estimation_method {estimation_method!r}; choose one of "
                          f"{', '.join(NUM_ISSUES_METHODS)}.")
    if estimation_method == "off_diagonal_custom":
        if confident_joint is None:
            raise ConfigError("estimation_method='off_diagonal_custom' needs a confident_joint; pass one, or use "
                              "estimation_method='off_diagonal'.")
        y, p = _check_inputs(labels, pred_probs)
        joint = estimate_joint(y, p, confident_joint=_check_confident_joint(confident_joint, p.shape[1]))
        return int(np.rint((1.0 - joint.trace()) * y.shape[0]))
    if confident_joint is not None:
        warnings.warn("confident_joint is ignored unless estimation_method='off_diagonal_custom'; it is "
                      "recomputed from labels and pred_probs.", stacklevel=2)
    y, p = _check_inputs(labels, pred_probs)
    thresholds = _compute_confident_thresholds(y, p)
    joint, off_diagonal = _compute_confident_joint(y, p, thresholds)
    if estimation_method == "off_diagonal":
        return _num_off_diagonal_issues(y, p, off_diagonal)
    counts = _label_counts(y, p.shape[1])
    # cleanlab calibrates here twice (estimate_joint re-calibrates the calibrated joint); the second pass is
    # nearly always a no-op, but mirroring it keeps the count identical when float rounding says otherwise.
    calibrated = _calibrate_confident_joint(_calibrate_confident_joint(joint, counts), counts)
    frac_issues = 1.0 - (calibrated / max(float(np.sum(calibrated)), TINY)).trace()
    return int(np.rint(frac_issues * y.shape[0]))
