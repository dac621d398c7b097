"""Counting (cleanlab.count's seam): per-class thresholds, the confident joint, its calibration, noise matrices.

ALGORITHMS.md sections 1.1-1.3 and the issue count of 1.4: ``get_confident_thresholds``,
``compute_confident_joint``, ``calibrate_confident_joint``, ``estimate_joint``, ``estimate_latent``,
``estimate_py_and_noise_matrices_from_probabilities`` and ``num_label_issues``, with cleanlab 2.9's names,
parameters and results (see the package docstring for the deliberate differences). Also the shared pieces
the filtering and ranking modules build on: input validation, the fuzzy-comparison constants, items grouped
by class and their self-confidence. Imports nothing from its sibling modules.
"""
from __future__ import annotations

import warnings

import numpy as np

from relabel.errors import ConfigError, InputError, LabelError, preview
from relabel.scoring.validation import check_labels, check_pred_probs

# Fuzzy comparison: an item clears a class threshold when p >= t - FUZZY_EPS, and de-flagging adds it to
# the given label's probability; it also floors the denominators of the entropy score.
FUZZY_EPS = 1e-6
# Thresholds are floored above FUZZY_EPS so that "p >= t - eps" never degenerates to "p >= 0" (always true).
THRESHOLD_FLOOR = 2 * FUZZY_EPS
# A threshold no probability can reach: classes nobody was given count no confident items.
UNREACHABLE_THRESHOLD = 2.0
# Division guard for empty rows and columns of the joint and noise matrices.
TINY = 1e-100


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


def _self_confidence(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    # take_along_axis is ~3x faster than pred_probs[arange, labels] on a million rows
    return np.take_along_axis(pred_probs, labels[:, None], axis=1)[:, 0]



# ---- rounding that keeps totals (deliberate difference 3: stable ties) ---------------------------------
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



def _num_off_diagonal_issues(labels, pred_probs, off_diagonal: np.ndarray) -> int:
    """Size of the off-diagonal set after un-flagging items the model nearly agrees with."""
    return int(np.count_nonzero(~_confident_guess_agrees(labels, pred_probs, off_diagonal)))



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

