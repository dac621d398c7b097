"""Confident learning for multi-label data: one-vs-rest over the classes, with cleanlab 2.9's results.

May import: relabel.scoring.confident (counting, ranking, filtering: the single-label pieces it runs per class),
numpy and the shared errors; it sits above the confident package, which never imports it.

Each item has a *set* of classes, and ``pred_probs`` is N x K with one independent probability per class (rows
need not sum to 1). Class k becomes a binary problem: given label 1 if k is in the item's set, model columns
(1 - p_k, p_k). Every single-label tool of :mod:`relabel.scoring.confident` then runs on each class, and the
per-class results combine:

* **label quality** per (item, class) is the binary score of class k (``self_confidence`` = p_k when k is given,
  1 - p_k when not); per item the K scores are aggregated, by default with an exponential moving average over the
  scores sorted high to low (alpha 0.8: the lowest scores weigh most, so one clearly wrong class pulls the item
  down, but a second one pulls it further);
* **label issues**: an item is flagged when any of its classes is (``filter_by`` as in single-label, per class);
  the ``low_*`` filters instead flag the ``confident_learning`` count of lowest-quality items;
* the **confident joint** and its relatives are K stacked 2 x 2 one-vs-rest matrices.

Names, parameters and results follow ``cleanlab.multilabel_classification`` and the ``multi_label=True`` paths of
``cleanlab.count`` / ``cleanlab.filter`` (2.9.0); the property tests compare them on random cases. As in
:mod:`relabel.scoring.confident`, rankings break exact ties by index (cleanlab's argsort is unstable). ``labels`` are read as
cleanlab reads them: one iterable of class indices per item, so a 0/1 indicator row is *not* an indicator row
(``[1, 0, 1]`` means classes {0, 1}); :func:`multilabel_onehot` converts index lists to indicators.
``low_memory`` (cleanlab's batched approximation) is accepted and computes the exact result.
"""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np

from relabel.errors import ConfigError, LabelError, PredProbsError, preview
from relabel.scoring.confident import counting, filtering, ranking
from relabel.scoring.validation import VALUE_TOLERANCE

# cleanlab's default aggregation of the per-class scores into one item score.
DEFAULT_AGGREGATOR = {"method": "exponential_moving_average", "alpha": 0.8}
# softmin's default temperature (cleanlab's): small enough that the minimum dominates, large enough not to
# underflow for scores in [0, 1].
SOFTMIN_TEMPERATURE = 0.1


# ---- inputs ----------------------------------------------------------------------------------------------
def multilabel_onehot(labels, n_classes: int) -> np.ndarray:
    """N x K 0/1 matrix (int64) from one iterable of class indices per item; an empty iterable is "none apply"."""
    try:
        rows = [np.asarray(list(row) if not isinstance(row, np.ndarray) else row).ravel() for row in labels]
    except TypeError:
        raise LabelError("multi-label labels must be one list of class indices per item, e.g. [[0, 2], [], [1]]; "
                         "got a flat sequence. Wrap each item's classes in a list.") from None
    lengths = np.fromiter((r.size for r in rows), dtype=np.intp, count=len(rows))
    flat = np.concatenate(rows) if rows and lengths.sum() else np.zeros(0, dtype=np.intp)
    if flat.size and (not np.issubdtype(flat.dtype, np.number) or np.any(flat != np.round(flat))):
        bad = next(i for i, r in enumerate(rows) if r.size and (not np.issubdtype(r.dtype, np.number)
                                                                  or np.any(r != np.round(r))))
        raise LabelError(f"Item {bad} has labels {preview(rows[bad])}; multi-label labels must be integer class "
                         f"indices 0..{n_classes - 1}.")
    flat = flat.astype(np.intp)
    out_of_range = (flat < 0) | (flat >= n_classes)
    if out_of_range.any():
        item = np.repeat(np.arange(len(rows)), lengths)[np.flatnonzero(out_of_range)[0]]
        raise LabelError(f"Item {item} has class {flat[out_of_range][0]}, outside the {n_classes} classes "
                         f"0..{n_classes - 1} of pred_probs; pred_probs needs a column for every class.")
    onehot = np.zeros((len(rows), n_classes), dtype=np.int64)
    onehot[np.repeat(np.arange(len(rows)), lengths), flat] = 1
    return onehot


def check_multilabel_pred_probs(pred_probs) -> np.ndarray:
    """N x K per-class probabilities (float32/float64), each in [0, 1]; rows need not sum to 1."""
    p = np.asarray(pred_probs)
    if p.dtype == object or not np.issubdtype(p.dtype, np.number):
        raise PredProbsError(f"pred_probs must be a numeric N x K array; got dtype {p.dtype}.")
    if p.dtype != np.float64 and p.dtype != np.float32:
        p = p.astype(np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise PredProbsError(f"pred_probs must be 2-D (items x classes); got shape {p.shape}.")
    bad = ~np.isfinite(p).all(axis=1) | (p < -VALUE_TOLERANCE).any(axis=1) | (p > 1 + VALUE_TOLERANCE).any(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise PredProbsError(f"pred_probs rows {preview(rows)} have values that are not probabilities in [0, 1]; "
                             "pass one sigmoid probability per class (rows need not sum to 1).")
    return p


def _check_inputs(labels, pred_probs) -> tuple[np.ndarray, np.ndarray]:
    p = check_multilabel_pred_probs(pred_probs)
    if isinstance(labels, (str, bytes)) or not hasattr(labels, "__len__"):
        raise LabelError("multi-label labels must be one list of class indices per item, e.g. [[0, 2], [], [1]].")
    if len(labels) != p.shape[0]:
        raise LabelError(f"labels has {len(labels)} items but pred_probs has {p.shape[0]} rows; they must match.")
    if p.shape[0] == 0:
        raise LabelError("labels is empty; give at least one labelled item.")
    return multilabel_onehot(labels, p.shape[1]), p


def binary_columns(p_k: np.ndarray) -> np.ndarray:
    """One class's probabilities as a two-column (not k, k) probability matrix."""
    return np.stack((1 - p_k, p_k), axis=1)


# ---- label quality ---------------------------------------------------------------------------------------
def _class_quality(onehot: np.ndarray, p: np.ndarray, method: str, adjust: bool) -> np.ndarray:
    """N x K binary label quality per (item, class)."""
    scores = np.empty(onehot.shape, dtype=np.float64)
    for k in range(onehot.shape[1]):
        scores[:, k] = ranking._compute_label_quality_scores(onehot[:, k].astype(np.intp), binary_columns(p[:, k]),
                                                        method, adjust)
    return scores


def exponential_moving_average(scores: np.ndarray, *, alpha: float | None = None, axis: int = 1, **_) -> np.ndarray:
    """Per row: sort high to low, start at the highest, then ema = alpha * next + (1 - alpha) * ema.

    alpha None is 2 / (K + 1). The lowest scores come last and weigh most.
    """
    ordered = np.sort(scores, axis=axis)[:, ::-1]
    if alpha is None:
        alpha = float(2 / (ordered.shape[1] + 1))
    if not 0 <= alpha <= 1:
        raise ConfigError(f"alpha must be in the interval [0, 1], got {alpha}; 1 keeps only the lowest score, "
                          "0 only the highest.")
    ema = ordered[:, 0]
    for column in ordered.T[1:]:
        ema = alpha * column + (1 - alpha) * ema
    return ema


def softmin(scores: np.ndarray, *, temperature: float = SOFTMIN_TEMPERATURE, axis: int = 1, **_) -> np.ndarray:
    """Scores weighted by softmax((1 - score) / temperature): a smooth minimum."""
    z = (1 - scores) / temperature
    z = z - z.max(axis=axis, keepdims=True)   # shift: exp never overflows
    w = np.exp(z)
    w /= w.sum(axis=axis, keepdims=True)
    return np.einsum("ij,ij->i", scores, w)


AGGREGATORS: dict[str, Callable] = {"exponential_moving_average": exponential_moving_average, "softmin": softmin}


def aggregate_scores(scores: np.ndarray, aggregator_kwargs: dict | None = None) -> np.ndarray:
    """One score per item from the N x K per-class scores (``aggregator_kwargs``: method name or callable + args)."""
    kwargs = dict(DEFAULT_AGGREGATOR if aggregator_kwargs is None else aggregator_kwargs)
    method = kwargs.pop("method", None)
    if isinstance(method, str):
        if method not in AGGREGATORS:
            raise ConfigError(f"Invalid aggregation method specified: {method!r}; choose one of "
                              f"{', '.join(AGGREGATORS)} or pass a callable.")
        method = AGGREGATORS[method]
    if not callable(method):
        raise ConfigError(f"aggregator_kwargs['method'] must be a name ({', '.join(AGGREGATORS)}) or a callable; "
                          f"got {type(method).__name__}.")
    return method(scores, axis=1, **kwargs)


def get_multilabel_quality_scores(labels, pred_probs, *, method: str = "self_confidence",
                                  adjust_pred_probs: bool = False,
                                  aggregator_kwargs: dict | None = None) -> np.ndarray:
    """A score in [0, 1] per item, low = some class of its set is likely wrong (cleanlab's
    ``multilabel_classification.get_label_quality_scores``; ``aggregator_kwargs`` None = EMA, alpha 0.8)."""
    ranking.check_quality_method(method, adjust_pred_probs)
    onehot, p = _check_inputs(labels, pred_probs)
    return aggregate_scores(_class_quality(onehot, p, method, adjust_pred_probs), aggregator_kwargs)


def get_multilabel_quality_scores_per_class(labels, pred_probs, *, method: str = "self_confidence",
                                            adjust_pred_probs: bool = False) -> np.ndarray:
    """N x K: how likely each (item, class) annotation is right (cleanlab's
    ``get_label_quality_scores_per_class``, there returned transposed per class; here items x classes)."""
    ranking.check_quality_method(method, adjust_pred_probs)
    onehot, p = _check_inputs(labels, pred_probs)
    return _class_quality(onehot, p, method, adjust_pred_probs)


# ---- confident joint -------------------------------------------------------------------------------------
def _per_class_thresholds(onehot: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.stack([counting._compute_confident_thresholds(onehot[:, k].astype(np.intp), binary_columns(p[:, k]))
                     for k in range(onehot.shape[1])])


def get_multilabel_confident_thresholds(labels, pred_probs) -> np.ndarray:
    """K x 2: per class, the confident thresholds of "not k" and "k" (cleanlab's multi_label thresholds)."""
    onehot, p = _check_inputs(labels, pred_probs)
    return _per_class_thresholds(onehot, p).astype(np.float64)


def compute_multilabel_confident_joint(labels, pred_probs, *, thresholds=None, calibrate: bool = True,
                                       return_indices_of_off_diagonals: bool = False):
    """K x 2 x 2 one-vs-rest confident joints, entry (k, given, true); with ``return_indices_of_off_diagonals``
    also one array of off-diagonal item indices per class."""
    onehot, p = _check_inputs(labels, pred_probs)
    joints = np.empty((onehot.shape[1], 2, 2), dtype=np.int64)
    off = []
    for k in range(onehot.shape[1]):
        y, p2 = onehot[:, k].astype(np.intp), binary_columns(p[:, k])
        t = counting._compute_confident_thresholds(y, p2) if thresholds is None else counting._check_thresholds(thresholds, 2)
        joint, off_k = counting._compute_confident_joint(y, p2, t)
        joints[k] = counting._calibrate_confident_joint(joint, counting._label_counts(y, 2)) if calibrate else joint
        off.append(off_k)
    return (joints, off) if return_indices_of_off_diagonals else joints


def _check_multilabel_joint(confident_joint, n_classes: int) -> np.ndarray:
    c = np.asarray(confident_joint)
    if c.shape != (n_classes, 2, 2) or not np.issubdtype(c.dtype, np.number) or np.any(c < 0):
        raise ConfigError(f"confident_joint should be of shape (num_classes, 2, 2) = ({n_classes}, 2, 2) with "
                          f"non-negative counts; got shape {c.shape}. Pass compute_confident_joint(..., "
                          "multi_label=True), or None to compute it.")
    return c


def calibrate_multilabel_confident_joint(confident_joint, labels) -> np.ndarray:
    """Each class's 2 x 2 joint calibrated to that class's given counts (rows) and N (total)."""
    c = np.asarray(confident_joint)
    onehot = multilabel_onehot(labels, c.shape[0] if c.ndim == 3 else 0)
    c = _check_multilabel_joint(c, onehot.shape[1])
    return np.stack([counting._calibrate_confident_joint(c[k], counting._label_counts(onehot[:, k].astype(np.intp), 2))
                     for k in range(c.shape[0])])


def estimate_multilabel_joint(labels, pred_probs, *, confident_joint=None) -> np.ndarray:
    """K x 2 x 2: each class's calibrated confident joint divided by its total."""
    onehot, p = _check_inputs(labels, pred_probs)
    joints = (compute_multilabel_confident_joint(labels, p) if confident_joint is None
              else _check_multilabel_joint(confident_joint, p.shape[1]))
    out = np.empty((p.shape[1], 2, 2))
    for k in range(p.shape[1]):
        # A given joint is calibrated to the labels (as cleanlab's per-class estimate_joint does); a computed one
        # already is, and calibrating a calibrated joint again returns it unchanged.
        calibrated = counting._calibrate_confident_joint(joints[k], counting._label_counts(onehot[:, k].astype(np.intp), 2))
        out[k] = calibrated / max(float(np.sum(calibrated)), counting.TINY)
    return out


# ---- label issues ----------------------------------------------------------------------------------------
def _usable_joint(confident_joint, n_classes: int):
    if confident_joint is None:
        return None
    c = np.asarray(confident_joint)
    if c.shape == (n_classes, n_classes):
        warnings.warn("A K x K confident_joint is the single-label format and is ignored with multi-label data; "
                      "pass the (K, 2, 2) one from compute_confident_joint(..., multi_label=True).", stacklevel=3)
        return None
    return _check_multilabel_joint(c, n_classes)


def find_multilabel_issues_per_class_mask(labels, pred_probs, *, filter_by: str = "prune_by_noise_rate",
                                          frac_noise: float = 1.0, num_to_remove_per_class=None,
                                          min_examples_per_class: int = 1, confident_joint=None,
                                          rank_by_kwargs: dict | None = None) -> np.ndarray:
    """N x K: True where class k of item i looks wrongly given or wrongly left out (the single-label filter
    run on each class's binary problem)."""
    opts = filtering._check_filter_options(filter_by, frac_noise, num_to_remove_per_class, min_examples_per_class, None,
                                    rank_by_kwargs)
    onehot, p = _check_inputs(labels, pred_probs)
    return _per_class_mask(onehot, p, opts, filter_by, frac_noise, num_to_remove_per_class, min_examples_per_class,
                           _usable_joint(confident_joint, p.shape[1]))


def _per_class_mask(onehot, p, opts, filter_by, frac_noise, num_to_remove_per_class, min_examples_per_class,
                    joints) -> np.ndarray:
    n_classes = p.shape[1]
    if num_to_remove_per_class is not None:
        r = np.asarray(num_to_remove_per_class)
        if r.shape != (n_classes,):
            raise ConfigError(f"num_to_remove_per_class must be {n_classes} counts with multi-label data, one per "
                              f"class (items whose class k is wrong); got {preview(np.ravel(r))}.")
    mask = np.zeros(onehot.shape, dtype=bool)
    for k in range(n_classes):
        # Removal counts apply to the items given class k (the binary problem's class 1 is "k is given" only
        # when its index is 1; cleanlab asks for [count, 0], i.e. items whose binary label is 0: not given k).
        removal = None if num_to_remove_per_class is None else [int(num_to_remove_per_class[k]), 0]
        mask[:, k] = filtering._find_label_issues(onehot[:, k].astype(np.intp), binary_columns(p[:, k]), opts, None,
                                           filter_by, frac_noise, removal, min_examples_per_class,
                                           None if joints is None else joints[k])
    return mask


def find_multilabel_label_issues(labels, pred_probs, *, return_indices_ranked_by: str | None = None,
                                 rank_by_kwargs: dict | None = None, filter_by: str = "prune_by_noise_rate",
                                 frac_noise: float = 1.0, num_to_remove_per_class=None,
                                 min_examples_per_class: int = 1, confident_joint=None, n_jobs=None,
                                 verbose: bool = False, low_memory: bool = False) -> np.ndarray:
    """Items with some class likely wrong: a boolean mask, or their indices ranked worst first
    (cleanlab's ``multilabel_classification.find_label_issues``)."""
    kwargs = filtering._check_filter_options(filter_by, frac_noise, num_to_remove_per_class, min_examples_per_class,
                                      return_indices_ranked_by, rank_by_kwargs)
    onehot, p = _check_inputs(labels, pred_probs)
    joints = _usable_joint(confident_joint, p.shape[1])
    adjust = bool(kwargs.get("adjust_pred_probs", False))
    if filter_by in filtering._SCORE_FILTERS:
        n_issues = int(_per_class_mask(onehot, p, kwargs, "confident_learning", 1.0, None, 1, joints)
                       .any(axis=1).sum())
        default_scores = aggregate_scores(_class_quality(onehot, p, "self_confidence", False))
        flagged = filtering._smallest(default_scores, n_issues)
        flagged = flagged[np.argsort(default_scores[flagged], kind="stable")]
        if return_indices_ranked_by is None:
            mask = np.zeros(p.shape[0], dtype=bool)
            mask[flagged] = True
            return mask
        # cleanlab scores the flagged items in index order but applies the resulting order to the flagged
        # indices sorted by the default score; mirrored here so the ranking is cleanlab's (same set either way).
        in_index_order = np.sort(flagged)
        ranked = aggregate_scores(_class_quality(onehot[in_index_order], p[in_index_order],
                                                 return_indices_ranked_by, adjust))
        return flagged[np.argsort(ranked, kind="stable")]
    mask = _per_class_mask(onehot, p, kwargs, filter_by, frac_noise, num_to_remove_per_class,
                           min_examples_per_class, joints).any(axis=1)
    if return_indices_ranked_by is None:
        return mask
    flagged = np.flatnonzero(mask)
    # Scores from all items: the adjusted probabilities' thresholds are every item's.
    scores = aggregate_scores(_class_quality(onehot, p, return_indices_ranked_by, adjust))
    return flagged[np.argsort(scores[flagged], kind="stable")]


def num_multilabel_label_issues(labels, pred_probs, *, confident_joint=None) -> int:
    """Items with some class off the diagonal of its confident joint (``filter_by='confident_learning'``)."""
    return int(np.sum(find_multilabel_label_issues(labels, pred_probs, confident_joint=confident_joint,
                                                   filter_by="confident_learning")))


def find_multilabel_predicted_neq_given(labels, pred_probs) -> np.ndarray:
    """Items where, for some class, the model's side of 0.5 (ties: "not given") differs from the label."""
    onehot, p = _check_inputs(labels, pred_probs)
    predicted = (p > 1 - p)       # the binary argmax of (1 - p, p), computed as the stacked columns compare
    return np.any(predicted != onehot.astype(bool), axis=1)


def find_label_issues(labels, pred_probs, *, return_indices_ranked_by: str | None = None,
                      rank_by_kwargs: dict | None = None, filter_by: str = "prune_by_noise_rate",
                      frac_noise: float = 1.0, num_to_remove_per_class=None, min_examples_per_class: int = 1,
                      confident_joint=None, n_jobs: int | None = None, verbose: bool = False,
                      multi_label: bool = False) -> np.ndarray:
    """:func:`relabel.scoring.confident.filtering.find_label_issues` with cleanlab's ``multi_label`` switch: True reads
    ``labels`` as one list of classes per item and runs :func:`find_multilabel_label_issues`.

    It lives here, not in ``confident``, because the multi-label reduction is built on the single-label filter
    (the import goes one way)."""
    options = dict(return_indices_ranked_by=return_indices_ranked_by, rank_by_kwargs=rank_by_kwargs,
                   filter_by=filter_by, frac_noise=frac_noise, num_to_remove_per_class=num_to_remove_per_class,
                   min_examples_per_class=min_examples_per_class, confident_joint=confident_joint)
    if multi_label:
        # As cleanlab 2.9 does: the flag still works, the multi-label function is the supported way.
        warnings.warn("find_label_issues(..., multi_label=True) is deprecated in cleanlab (and kept by relabel for "
                      "drop-in use); call multilabel_classification.find_label_issues instead.", DeprecationWarning,
                      stacklevel=2)
        if not isinstance(labels, list):
            raise LabelError("With multi_label=True, labels must be a list with one list of class indices per item "
                             f"(e.g. [[0, 2], [], [1]]); got {type(labels).__name__}.")
        return find_multilabel_label_issues(labels, pred_probs, **options)
    return filtering.find_label_issues(labels, pred_probs, **options)
