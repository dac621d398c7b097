"""CROWDLAB: consensus labels and quality scores from several annotators and a model (ALGORITHMS.md section 2).

CROWDLAB (Goh, Tkachenko, Mueller 2022) mixes a model's out-of-sample ``pred_probs`` with every annotator's
label, each weighted by how much better than "always say the most common class" it is, into a posterior per
item; the consensus label is the posterior's argmax and its quality score is the label quality of the consensus
under the posterior. Everything here runs on the long-format :class:`~relabel.scoring.annotations.Annotations` table:
per-item, per-annotator and per-(item, class) sums are ``np.bincount`` calls, so the cost is
O(#annotations + items x classes) and no items x annotators matrix is ever built (except in the
``detailed_label_quality`` DataFrame of the cleanlab-compatible wrapper, which is that matrix by definition).

Entry points:

* :func:`crowdlab` -- the sparse-native entry point the rest of relabel uses; returns a :class:`ConsensusResult`.
* :func:`get_label_quality_multiannotator` and :func:`get_majority_vote_label` -- the names, arguments and
  return values of ``cleanlab.multiannotator`` 2.9, so a cleanlab user can switch by changing the import.
* :func:`find_best_temperature` and :func:`temperature_scale` -- the temperature scaling of ALGORITHMS 2.6,
  used by ``calibrate_probs=True`` and by ActiveLab (:mod:`relabel.scoring.active`).

Outputs match cleanlab 2.9.0 (floats to 1e-9, integers exactly) except for these deliberate differences:

1. **Votes are counted correctly.** cleanlab's vote-count helper, given float labels (its dense matrix is
   float because of NaN), writes the counts of the classes present into slots 0..u-1 instead of each
   class's own slot. That corrupts ``quality_method="agreement"`` and the temperature search of
   ``calibrate_probs`` / ActiveLab; here every vote lands in its own class.
2. **The last majority-vote tie-break is the smallest class index**, not ``np.random.choice``, so results are
   reproducible.
3. **Sorts are stable.** ``annotator_stats`` is ordered by (annotator_quality, agreement_with_consensus) with
   NaN last and annotator order kept among exact ties.

Two consequences of computing on the long table that only show at the level of float rounding: a tie in the
posterior (which sends an item back to its majority-vote label, 2.3) is an exact tie of this module's
vectorised sums, whereas cleanlab's per-annotator loop can split an exact tie by one unit in the last place;
and cleanlab silently ignores ``label_quality_score_kwargs`` in ``annotator_quality`` when
``return_detailed_quality=False``, whereas here annotator quality always uses the per-annotation scores the
kwargs define (ALGORITHMS 2.4).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from relabel.scoring.annotations import Annotations, keep_best
from relabel.scoring.confident.counting import THRESHOLD_FLOOR, UNREACHABLE_THRESHOLD
from relabel.scoring.confident.ranking import _compute_label_quality_scores, check_quality_method
from relabel.errors import AnnotationError, ConfigError, LabelError, PredProbsError, preview
from relabel.results import ConsensusResult, with_names
from relabel.scoring.validation import check_pred_probs, check_tie_break_probs

# Lower clip of the error rates and weights (cleanlab's CLIPPING_LOWER_BOUND): keeps a weight positive and
# an error rate away from 0 so that "1 - error / baseline error" never divides by zero.
CLIP_FLOOR = 1e-6
# Temperature scaling (ALGORITHMS 2.6): the coarse grid searched first, the number of points of each half of
# the fine grid around its best value, and the floor that keeps log() of a zero probability finite.
TEMPERATURE_GRID = (0.1, 0.2, 0.5, 0.8, 1.0, 2.0, 3.0, 5.0, 8.0)
FINE_GRID_STEPS = 4
PROB_FLOOR = 1e-30

CONSENSUS_METHODS = ("best_quality", "majority_vote")
QUALITY_METHODS = ("crowdlab", "agreement")
_SCORE_KWARGS = ("method", "adjust_pred_probs")


# ---- the validated table ------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Table:
    """Validated annotations, rows sorted by (item, annotator), plus the counts every step needs.

    Sorting by (item, annotator) makes every per-item sum add annotators in the order cleanlab's dense loop
    does; that keeps the majority-vote credibility means bit-identical to cleanlab's, and those are compared
    for exact ties. ``order`` maps sorted rows back to the caller's rows (None when the caller's rows were
    already sorted, as ``Annotations.from_dense`` makes them).
    """

    item: np.ndarray
    annotator: np.ndarray
    label: np.ndarray
    order: np.ndarray | None
    n_items: int
    n_annotators: int
    n_classes: int
    num_annotations: np.ndarray   # (N,) labels per item
    votes: np.ndarray             # (N, K) correctly counted votes
    multi: np.ndarray             # (N,) item has >= 2 labels: the set ALGORITHMS calls M
    labelled: np.ndarray          # (M,) labels per annotator
    active: np.ndarray            # (M,) annotator has at least one label

    def to_caller_order(self, per_row: np.ndarray) -> np.ndarray:
        """A per-annotation array in the caller's row order."""
        if self.order is None:
            return per_row
        out = np.empty_like(per_row)
        out[self.order] = per_row
        return out


def _plain(value):
    """numpy scalar -> Python scalar, so messages read 'item 3', not 'item np.int64(3)'."""
    return value.item() if isinstance(value, np.generic) else value


def _is_dataframe(obj) -> bool:
    return hasattr(obj, "columns") and hasattr(obj, "to_numpy")


def _to_annotations(labels_multiannotator, n_classes: int) -> tuple[Annotations, bool]:
    """(Annotations, came_from_dense) from an Annotations, a DataFrame or a dense N x M array."""
    if isinstance(labels_multiannotator, Annotations):
        return Annotations.coerce(labels_multiannotator, n_classes=n_classes), False
    if labels_multiannotator is None:
        raise AnnotationError("labels_multiannotator is missing; pass an Annotations table or an items x "
                              "annotators matrix with NaN for 'not labelled'.")
    frame = _is_dataframe(labels_multiannotator)
    try:
        dense = (labels_multiannotator.to_numpy(dtype=float, na_value=np.nan) if frame
                 else np.asarray(labels_multiannotator, dtype=float))
    except (TypeError, ValueError) as exc:
        raise LabelError("labels_multiannotator must hold integer class indices 0..K-1 and NaN for "
                         f"'not labelled' ({exc}); encode class names first, e.g. with Annotations.from_records."
                         ) from None
    if dense.ndim == 2:
        too_big = dense >= n_classes  # NaN compares False
        if too_big.any():
            items, annotators = np.nonzero(too_big)
            item_ids = np.asarray(labels_multiannotator.index) if frame else np.arange(dense.shape[0])
            annotator_ids = np.asarray(labels_multiannotator.columns) if frame else np.arange(dense.shape[1])
            where = [f"item {_plain(item_ids[i])!r} by annotator {_plain(annotator_ids[a])!r}: {dense[i, a]:g}"
                     for i, a in zip(items[:5], annotators[:5])]
            raise LabelError(f"Labels outside the {n_classes} classes 0..{n_classes - 1} of pred_probs ("
                             + "; ".join(where) + "); pred_probs needs one column per class, or fix those labels.")
    return Annotations.from_dense(labels_multiannotator, n_classes=n_classes), True


def _class_major_counts(item: np.ndarray, label: np.ndarray, n_items: int, n_classes: int,
                        weights: np.ndarray | None = None) -> np.ndarray:
    """Per-(item, class) sums as an items x classes array stored class-major (Fortran order).

    Class-major storage makes the per-item reductions CROWDLAB needs (max, sum, ties over the K classes)
    run as K vectorised passes over all items, about ten times faster than reducing short C-order rows.
    """
    flat = np.bincount(label * n_items + item, weights=weights, minlength=n_items * n_classes)
    return flat.reshape(n_classes, n_items).T


def _prepare(labels_multiannotator, pred_probs, *, allow_single_label: bool = False,
             n_classes: int | None = None, tie_break_only: bool = False) -> tuple[_Table, np.ndarray | None, Annotations]:
    """Validate the public inputs once; everything after this trusts the returned table and pred_probs.

    Without pred_probs (majority vote alone) ``n_classes`` gives K and the returned pred_probs is None.
    ``tie_break_only``: pred_probs only break majority-vote ties, so rows need not sum to 1
    (check_tie_break_probs); every caller whose pred_probs feed a score keeps the strict check.
    """
    check = check_tie_break_probs if tie_break_only else check_pred_probs
    p = check(pred_probs) if pred_probs is not None else None
    annotations, dense = _to_annotations(labels_multiannotator, p.shape[1] if p is not None else n_classes)
    n_items, n_annotators, n_classes = annotations.n_items, annotations.n_annotators, annotations.n_classes
    if p is not None and p.shape[0] != n_items:
        raise PredProbsError(f"pred_probs has {p.shape[0]} rows but the annotations cover {n_items} items; "
                             "give one row per item, in item order.")
    item, annotator, label = (np.asarray(a, dtype=np.intp) for a in
                              (annotations.item, annotations.annotator, annotations.label))
    num_annotations = np.bincount(item, minlength=n_items)
    if (num_annotations == 0).any():
        missing = annotations.item_ids[num_annotations == 0]
        raise AnnotationError(f"Items {preview(missing.tolist())} have no label; every item needs at least one "
                              "annotation, so drop those items (and their pred_probs rows) or label them.")
    labelled = np.bincount(annotator, minlength=n_annotators)
    active = labelled > 0
    if dense and not active.all():
        idle = annotations.annotator_ids[~active]
        raise AnnotationError(f"Annotators {preview(idle.tolist())} did not label any item; drop their columns "
                              "from labels_multiannotator.")
    if not allow_single_label:
        if active.sum() < 2:
            raise AnnotationError(f"CROWDLAB needs at least two annotators but got {int(active.sum())}; with one "
                                  "label per item use relabel.scoring.confident.get_label_quality_scores instead.")
        if (num_annotations == 1).all():
            raise AnnotationError("Every item has exactly one label, so annotators cannot be compared; collect a "
                                  "second label for some items, or use relabel.scoring.confident.get_label_quality_scores.")

    # Sort rows by (item, annotator); a table from a dense matrix is already sorted, which one pass confirms.
    key = item.astype(np.int64) * max(n_annotators, 1) + annotator
    order = None
    if key.size > 1 and not (key[1:] > key[:-1]).all():
        order = np.argsort(key, kind="stable")
        key = key[order]
        item, annotator, label = item[order], annotator[order], label[order]
    duplicate = np.flatnonzero(key[1:] == key[:-1]) if key.size > 1 else np.zeros(0, np.intp)
    if duplicate.size:
        ids = annotations.annotator_ids, annotations.item_ids
        pairs = [f"{_plain(ids[0][annotator[r]])!r} on item {_plain(ids[1][item[r]])!r}" for r in duplicate[:5]]
        raise AnnotationError(f"Some annotators labelled the same item more than once ({'; '.join(pairs)}); "
                              "keep one annotation per annotator and item (e.g. the latest).")

    votes = _class_major_counts(item, label, n_items, n_classes)
    table = _Table(item, annotator, label, order, n_items, n_annotators, n_classes, num_annotations, votes,
                   num_annotations >= 2, labelled, active)
    if p is not None and p.dtype != np.float64:
        p = p.astype(np.float64)
    return table, p, annotations


def _check_options(consensus_methods, quality_method: str, label_quality_score_kwargs) -> tuple[str, bool]:
    """Validate the settings; returns the label quality (method, adjust_pred_probs)."""
    for method in consensus_methods:
        if method not in CONSENSUS_METHODS:
            raise ConfigError(f"Unknown consensus_method {method!r}; choose one of {', '.join(CONSENSUS_METHODS)}.")
    if not consensus_methods:
        raise ConfigError("consensus_method is an empty list; give at least one of "
                          f"{', '.join(CONSENSUS_METHODS)}.")
    if quality_method not in QUALITY_METHODS:
        raise ConfigError(f"Unknown quality_method {quality_method!r}; choose one of {', '.join(QUALITY_METHODS)}.")
    kwargs = dict(label_quality_score_kwargs or {})
    unknown = sorted(set(kwargs) - set(_SCORE_KWARGS))
    if unknown:
        raise ConfigError(f"label_quality_score_kwargs has unknown keys {preview(unknown)}; "
                          f"only {', '.join(_SCORE_KWARGS)} are used.")
    method = kwargs.get("method", "self_confidence")
    adjust = bool(kwargs.get("adjust_pred_probs", False))
    check_quality_method(method, adjust)
    return method, adjust


# ---- 2.6 temperature scaling ------------------------------------------------------------------------------
def _compute_soft_cross_entropy(log_p: np.ndarray, vote_item: np.ndarray, vote_class: np.ndarray,
                                vote_fraction: np.ndarray, temperature: float) -> float:
    """Mean over items of -sum_k e_ik ln max(q_ik, 1e-30) / ln K, q = softmax(log p / T), e = vote fractions.

    Only the (item, class) pairs somebody voted for have e_ik > 0, so q is gathered there alone; the softmax
    denominator still needs the whole row.
    """
    n_items, n_classes = log_p.shape
    exp_x = np.exp(log_p / temperature)
    row_sum = exp_x.sum(axis=1)
    q = exp_x[vote_item, vote_class] / row_sum[vote_item]
    per_item = np.bincount(vote_item, weights=vote_fraction * np.log(np.maximum(q, PROB_FLOOR)),
                           minlength=n_items)
    return float(np.mean(-per_item / np.log(n_classes)))


def _compute_best_temperature(table: _Table, p: np.ndarray) -> float:
    """The temperature whose scaled pred_probs best match the annotators' vote fractions (ALGORITHMS 2.6)."""
    vote_item, vote_class = np.nonzero(table.votes)
    vote_fraction = table.votes[vote_item, vote_class] / table.num_annotations[vote_item]
    log_p = np.full(p.shape, -np.inf)
    np.log(p, out=log_p, where=p > 0)  # log 0 = -inf, so a zero probability stays zero at every temperature

    def losses(grid):
        return np.array([_compute_soft_cross_entropy(log_p, vote_item, vote_class, vote_fraction, t) for t in grid])

    coarse = np.asarray(TEMPERATURE_GRID, dtype=float)
    best = int(np.argmin(losses(coarse)))  # the first minimiser
    # Refine between the best coarse value's neighbours: FINE_GRID_STEPS points from the lower neighbour up to
    # (not including) the best value, then FINE_GRID_STEPS + 1 points from the best value to the upper one.
    fine = []
    if best > 0:
        fine.append(np.linspace(coarse[best - 1], coarse[best], FINE_GRID_STEPS, endpoint=False))
    if best < coarse.size - 1:
        fine.append(np.linspace(coarse[best], coarse[best + 1], FINE_GRID_STEPS + 1, endpoint=True))
    fine = np.concatenate(fine)
    return float(fine[int(np.argmin(losses(fine)))])


def _compute_temperature_scale(p: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T) per row, after flooring p at 1e-30 so that log() stays finite."""
    clipped = np.maximum(p, PROB_FLOOR)
    clipped /= clipped.sum(axis=1, keepdims=True)
    scaled = np.exp(np.log(clipped) / temperature)
    scaled /= scaled.sum(axis=1, keepdims=True)
    # A second normalisation, as cleanlab does, so both agree to the last bit.
    scaled /= scaled.sum(axis=1, keepdims=True)
    return scaled


def find_best_temperature(labels_multiannotator, pred_probs) -> float:
    """The temperature T that makes softmax(log pred_probs / T) best match the annotators' vote fractions.

    Searches (0.1, 0.2, 0.5, 0.8, 1, 2, 3, 5, 8), then a finer grid around the best value (ALGORITHMS 2.6);
    the loss is the mean normalised soft cross-entropy between vote fractions and scaled pred_probs. T > 1
    softens an over-confident model. Votes are counted correctly (see the module docstring). Items with a
    single label count too; one annotator is enough.
    """
    table, p, _ = _prepare(labels_multiannotator, pred_probs, allow_single_label=True)
    return _compute_best_temperature(table, p)


def temperature_scale(pred_probs, temperature: float) -> np.ndarray:
    """pred_probs rescaled by a temperature: softmax(log p / T) per row (T < 1 sharpens, T > 1 softens)."""
    p = check_pred_probs(pred_probs)
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        value = float("nan")
    if not np.isfinite(value) or value <= 0:
        raise ConfigError(f"temperature must be a positive number; got {temperature!r}.")
    return _compute_temperature_scale(p.astype(np.float64), value)


# ---- 2.1 majority vote ------------------------------------------------------------------------------------
def _compute_majority_vote(table: _Table, p: np.ndarray | None) -> np.ndarray:
    """Majority vote with ALGORITHMS 2.1's tie-breaks, vectorised over the tied items."""
    votes = table.votes
    candidates = votes == votes.max(axis=1, keepdims=True)
    unique_top = candidates.sum(axis=1) == 1
    consensus = candidates.argmax(axis=1)
    tied = np.flatnonzero(~unique_top)
    if tied.size == 0:
        return consensus
    cand = candidates[tied]
    if p is not None:  # (1) the class the model finds most likely
        keep_best(cand, p[tied], largest=True)
    # (2) the class with the fewest votes in the whole dataset, so ties do not deepen class imbalance
    keep_best(cand, np.broadcast_to(votes.sum(axis=0).astype(float), cand.shape), largest=False)
    still = np.flatnonzero(cand.sum(axis=1) > 1)
    if still.size:
        credibility = _annotator_credibility(table, consensus, unique_top)
        if credibility is not None:  # (3) the class whose voters agree most with clear majorities elsewhere
            rows = tied[still]
            position = np.full(table.n_items, -1, dtype=np.intp)
            position[rows] = np.arange(rows.size)
            on = position[table.item] >= 0
            k = table.n_classes
            # Rows are sorted by (item, annotator), so each sum adds voters in annotator order as cleanlab's
            # np.mean does: equal means stay bit-for-bit equal and the tie survives to the next rule.
            total = np.bincount(position[table.item[on]] * k + table.label[on],
                                weights=credibility[table.annotator[on]], minlength=rows.size * k)
            count = votes[rows]
            mean = np.divide(total.reshape(rows.size, k), count, out=np.full(count.shape, -np.inf),
                             where=count > 0)
            sub = cand[still]
            keep_best(sub, mean, largest=True)
            cand[still] = sub
    consensus[tied] = cand.argmax(axis=1)  # (4) the smallest class index still tied
    return consensus


def _annotator_credibility(table: _Table, consensus: np.ndarray, unique_top: np.ndarray) -> np.ndarray | None:
    """Each annotator's agreement with the majority vote on items whose vote had a unique top class.

    Annotators with no such item get the mean of the others; None when no item had a unique top class.
    """
    on = unique_top[table.item]
    if not on.any():
        return None
    agree = (table.label[on] == consensus[table.item[on]]).astype(float)
    count = np.bincount(table.annotator[on], minlength=table.n_annotators)
    credibility = np.divide(np.bincount(table.annotator[on], weights=agree, minlength=table.n_annotators), count,
                            out=np.full(table.n_annotators, np.nan), where=count > 0)
    known = ~np.isnan(credibility)
    credibility[~known] = np.mean(credibility[known])
    return credibility


def get_majority_vote_label(labels_multiannotator, pred_probs=None, verbose: bool = True) -> np.ndarray:
    """The majority vote label of each item, ties broken as in ALGORITHMS 2.1.

    Among the classes with the most votes keep, in turn: the one with the largest ``pred_probs`` (if given);
    the one with the fewest votes in the whole dataset; the one whose voters on this item agree most often with
    the majority vote on items with a clear winner; finally the smallest class index (cleanlab picks at random
    here). ``labels_multiannotator`` is an :class:`Annotations`, a DataFrame (columns = annotators) or an
    items x annotators array with NaN for 'not labelled'. Returns an int array with one label per item.
    ``pred_probs`` only break ties, so their rows need not sum to 1 (cleanlab's ensemble functions pass
    means of unnormalised model outputs); they must be finite and non-negative.
    ``verbose`` is accepted for compatibility with cleanlab; relabel prints nothing.
    """
    if pred_probs is None:
        if isinstance(labels_multiannotator, Annotations):
            n_classes = labels_multiannotator.n_classes
        else:
            values = np.asarray(labels_multiannotator.to_numpy(dtype=float, na_value=np.nan)
                                if _is_dataframe(labels_multiannotator) else labels_multiannotator, dtype=float)
            # cleanlab's K without a model: the largest label given, plus one.
            n_classes = int(np.nanmax(values)) + 1 if np.isfinite(values).any() else 1
        table, _, _ = _prepare(labels_multiannotator, None, allow_single_label=True, n_classes=n_classes)
        return _compute_majority_vote(table, None)
    # pred_probs only break ties here, so unnormalised rows are accepted as cleanlab accepts them.
    table, p, _ = _prepare(labels_multiannotator, pred_probs, allow_single_label=True, tie_break_only=True)
    return _compute_majority_vote(table, p)


# ---- 2.2 statistics for one consensus vector --------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Stats:
    consensus: np.ndarray
    agreement: np.ndarray
    posterior: np.ndarray
    quality: np.ndarray
    model_weight: float
    annotator_weight: np.ndarray


def _compute_annotator_agreement_rates(table: _Table) -> np.ndarray:
    """alpha_j: how often annotator j agrees with the other annotators of the same items (ALGORITHMS 2.2.4).

    Over j's labels on items with >= 2 labels: sum of (#labels equal to j's on the item - 1) divided by the sum
    of (n_i - 1) -- two bincounts instead of a pairwise loop. Annotators who never share an item get the mean
    of the others; annotator ids without labels get NaN.
    """
    on = table.multi[table.item]
    item, annotator = table.item[on], table.annotator[on]
    same = table.votes[item, table.label[on]] - 1
    numerator = np.bincount(annotator, weights=same, minlength=table.n_annotators)
    denominator = np.bincount(annotator, weights=table.num_annotations[item] - 1, minlength=table.n_annotators)
    rate = np.divide(numerator, denominator, out=np.full(table.n_annotators, np.nan), where=denominator > 0)
    known = ~np.isnan(rate)
    rate[~known & table.active] = np.mean(rate[known])
    return rate


def _compute_stats(table: _Table, p: np.ndarray, model_label: np.ndarray, agreement_rate: np.ndarray | None,
                   consensus: np.ndarray, quality_method: str, method: str, adjust: bool) -> _Stats:
    """Agreement, posterior, weights and consensus quality for one consensus vector (ALGORITHMS 2.2, 2.5)."""
    n_items, k = table.n_items, table.n_classes
    agreement = table.votes[np.arange(n_items), consensus] / table.num_annotations
    if quality_method == "agreement":
        posterior = table.votes / table.num_annotations[:, None]
        return _Stats(consensus, agreement, posterior, agreement, float("nan"),
                      np.full(table.n_annotators, np.nan))

    multi = table.multi
    p_agree = np.mean(agreement[multi])          # chance an annotator gives the consensus label
    p_other = (1 - p_agree) / (k - 1)            # ... or one particular other class
    consensus_multi = consensus[multi]
    # Baseline error: how often "always answer the most common consensus class" would be wrong.
    most_common = np.argmax(np.bincount(consensus_multi, minlength=k))
    baseline_error = max(float(np.mean(consensus_multi != most_common)), CLIP_FLOOR)
    # A weight is the fraction of the baseline error a source avoids, floored so that it stays positive.
    annotator_weight = np.maximum(1 - (1 - agreement_rate) / baseline_error, CLIP_FLOOR)
    model_error = float(np.mean(model_label[multi] != consensus_multi))
    # The model counts like sqrt(mean #labels per item) annotators of its relative accuracy.
    model_weight = max(1 - model_error / baseline_error, CLIP_FLOOR) * float(np.sqrt(np.mean(table.num_annotations)))

    row_weight = annotator_weight[table.annotator]
    total = np.bincount(table.item, weights=row_weight, minlength=n_items)
    voted = _class_major_counts(table.item, table.label, n_items, k, weights=row_weight)
    # P[i,k] = (w_M p[i,k] + sum_j w_j (P_agree if L_ij = k else P_other)) / (w_M + sum_j w_j), rearranged so
    # the annotator part is one scatter-add: P_other * W_i + (P_agree - P_other) * S[i,k].
    posterior = voted
    posterior *= p_agree - p_other
    posterior += p_other * total[:, None]
    posterior += model_weight * p
    posterior /= (model_weight + total)[:, None]
    quality = _compute_label_quality_scores(consensus, posterior, method, adjust)
    return _Stats(consensus, agreement, posterior, quality, model_weight, annotator_weight)


def _best_quality_labels(posterior: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """argmax of the posterior where its maximum is unique, else the fallback (majority vote) label."""
    top = posterior.max(axis=1, keepdims=True)
    unique = (posterior == top).sum(axis=1) == 1
    return np.where(unique, posterior.argmax(axis=1), fallback)


def _compute_consensus(table: _Table, p: np.ndarray, methods, quality_method: str, method: str,
                       adjust: bool) -> dict[str, _Stats]:
    """Stats of every requested consensus method (ALGORITHMS 2.3); best_quality starts from majority vote."""
    model_label = p.argmax(axis=1)
    # The posterior is built class-major (see _class_major_counts); one transposed copy of pred_probs lets
    # both posteriors add it without a strided pass each.
    p_class_major = np.asfortranarray(p) if quality_method == "crowdlab" else p
    rate = _compute_annotator_agreement_rates(table) if quality_method == "crowdlab" else None
    majority = _compute_majority_vote(table, p)
    results = {"majority_vote": _compute_stats(table, p_class_major, model_label, rate, majority, quality_method,
                                               method, adjust)}
    if "best_quality" in methods:
        best = _best_quality_labels(results["majority_vote"].posterior, majority)
        results["best_quality"] = _compute_stats(table, p_class_major, model_label, rate, best, quality_method,
                                                 method, adjust)
    return results


# ---- 2.4 per-annotation and per-annotator outputs ------------------------------------------------------------
def _compute_annotation_quality(table: _Table, posterior: np.ndarray, method: str, adjust: bool) -> np.ndarray:
    """Quality score of every label under its item's posterior, in sorted row order."""
    if method == "self_confidence" and not adjust:
        return posterior[table.item, table.label]  # self-confidence without gathering whole rows
    rows = posterior[table.item]
    if adjust:
        # cleanlab scores each annotator's labels as a separate dataset, so the confident thresholds come
        # from that annotator's own labels: t[j, k] = mean posterior of class k over j's labels of class k.
        k = table.n_classes
        key = table.annotator * k + table.label
        count = np.bincount(key, minlength=table.n_annotators * k)
        summed = np.bincount(key, weights=posterior[table.item, table.label], minlength=table.n_annotators * k)
        thresholds = np.divide(summed, count, out=np.full(count.shape, UNREACHABLE_THRESHOLD), where=count > 0)
        thresholds = np.maximum(thresholds, THRESHOLD_FLOOR).reshape(table.n_annotators, k)
        # The same adjustment as confident.ranking._adjust_pred_probs, with each row's own annotator's thresholds.
        rows -= thresholds[table.annotator]
        rows += thresholds.max(axis=1)[table.annotator][:, None]
        rows /= rows.sum(axis=1, keepdims=True)
    return _compute_label_quality_scores(table.label, rows, method, False)


def _per_annotator_mean(table: _Table, values: np.ndarray, rows=None) -> np.ndarray:
    """Mean of a per-annotation value over each annotator's rows (NaN where an annotator has none)."""
    annotator = table.annotator if rows is None else table.annotator[rows]
    values = values if rows is None else values[rows]
    count = np.bincount(annotator, minlength=table.n_annotators)
    total = np.bincount(annotator, weights=values, minlength=table.n_annotators)
    return np.divide(total, count, out=np.full(table.n_annotators, np.nan), where=count > 0)


def _compute_worst_class(table: _Table, consensus: np.ndarray, consensus_quality: np.ndarray) -> np.ndarray:
    """Per annotator, among the classes it used, the one its labels least often agree with the consensus on.

    Ties: the class it used most, then the one with the highest mean consensus quality, then the smallest.
    Works on an annotators x classes grid (never items x annotators); -1 for annotators without labels.
    """
    k = table.n_classes
    key = table.annotator * k + table.label
    size = table.n_annotators * k
    used = np.bincount(key, minlength=size).reshape(table.n_annotators, k)
    agrees = (table.label == consensus[table.item]).astype(float)
    correct = np.bincount(key, weights=agrees, minlength=size).reshape(-1, k)
    quality = np.bincount(key, weights=consensus_quality[table.item], minlength=size).reshape(-1, k)
    has = used > 0
    accuracy = np.divide(correct, used, out=np.zeros(used.shape), where=has)
    candidates = has.copy()
    keep_best(candidates, accuracy, largest=False)
    keep_best(candidates, used.astype(float), largest=True)
    keep_best(candidates, np.divide(quality, used, out=np.zeros(used.shape), where=has), largest=True)
    return np.where(table.active, candidates.argmax(axis=1), -1)


def _compute_annotator_stats(table: _Table, stats: _Stats, annotation_quality: np.ndarray,
                             quality_method: str) -> dict[str, np.ndarray]:
    """annotator_quality, agreement_with_consensus, worst_class and num_examples_labeled (ALGORITHMS 2.4)."""
    correct = (table.label == stats.consensus[table.item]).astype(float)
    agreement_with_consensus = _per_annotator_mean(table, correct)
    # Agreement with the consensus on items where someone else also voted: singles agree by construction.
    agreement_on_shared = _per_annotator_mean(table, correct, rows=table.multi[table.item])
    if quality_method == "crowdlab":
        mean_quality = _per_annotator_mean(table, annotation_quality)
        n_active = int(table.active.sum())
        # All annotators together weigh as much as sum(w_j) * (mean #labels per item / #annotators), the weight
        # of the labels an average item gets; omega is the model's share against that.
        annotators_weight = np.sum(stats.annotator_weight[table.active]) * (np.mean(table.num_annotations) / n_active)
        omega = stats.model_weight / (stats.model_weight + annotators_weight)
        annotator_quality = omega * mean_quality + (1 - omega) * agreement_on_shared
    else:
        annotator_quality = agreement_on_shared
    return {
        "annotator_quality": annotator_quality,
        "agreement_with_consensus": agreement_with_consensus,
        "worst_class": _compute_worst_class(table, stats.consensus, stats.quality),
        "num_examples_labeled": table.labelled.astype(np.int64),
    }


def _methods_list(consensus_method) -> list[str]:
    return list(consensus_method) if isinstance(consensus_method, (list, tuple)) else [consensus_method]


# ---- public entry points --------------------------------------------------------------------------------------
def crowdlab(annotations, pred_probs, *, consensus_method: str = "best_quality", quality_method: str = "crowdlab",
             calibrate_probs: bool = False, label_quality_score_kwargs: dict | None = None) -> ConsensusResult:
    """Consensus labels, their quality, and per-annotation and per-annotator quality (CROWDLAB).

    ``annotations`` is an :class:`Annotations` table (or a DataFrame / items x annotators array with NaN for
    'not labelled'); ``pred_probs`` is items x classes, out-of-sample, rows summing to 1.
    ``consensus_method``: ``"best_quality"`` (majority vote, then the argmax of the CROWDLAB posterior) or
    ``"majority_vote"``. ``quality_method``: ``"crowdlab"`` (model + weighted annotators) or ``"agreement"``
    (vote fractions). ``calibrate_probs`` temperature-scales ``pred_probs`` to the vote fractions first.
    ``label_quality_score_kwargs`` (``method``, ``adjust_pred_probs``) choose the score of a label under the
    posterior, as in :func:`relabel.scoring.confident.get_label_quality_scores`.

    Raises :class:`~relabel.errors.InputError` subclasses for bad pred_probs, labels outside the classes,
    items with no label, fewer than two annotators, duplicate (item, annotator) annotations or every item
    labelled once, and :class:`~relabel.errors.ConfigError` for unknown settings. Cost is
    O(#annotations + items x classes); no items x annotators matrix is built.
    """
    if isinstance(consensus_method, (list, tuple)):
        raise ConfigError("crowdlab() takes one consensus_method; use get_label_quality_multiannotator for a list.")
    method, adjust = _check_options([consensus_method], quality_method, label_quality_score_kwargs)
    table, p, named = _prepare(annotations, pred_probs)
    temperature = 1.0
    if calibrate_probs:
        temperature = _compute_best_temperature(table, p)
        p = _compute_temperature_scale(p, temperature)
    stats = _compute_consensus(table, p, [consensus_method], quality_method, method, adjust)[consensus_method]
    return with_names(_finish(table, stats, quality_method, method, adjust, temperature), named)


def _finish(table: _Table, stats: _Stats, quality_method: str, method: str, adjust: bool,
            temperature: float) -> ConsensusResult:
    annotation_quality = _compute_annotation_quality(table, stats.posterior, method, adjust)
    per_annotator = _compute_annotator_stats(table, stats, annotation_quality, quality_method)
    return ConsensusResult(
        consensus_label=stats.consensus.astype(np.int64, copy=False),
        consensus_quality_score=stats.quality,
        annotator_agreement=stats.agreement,
        num_annotations=table.num_annotations.astype(np.int64, copy=False),
        posterior=stats.posterior,
        annotation_quality=table.to_caller_order(annotation_quality),
        annotator_weight=stats.annotator_weight,
        model_weight=stats.model_weight,
        temperature=temperature,
        **per_annotator,
    )


def _frame_indexes(labels_multiannotator, annotations: Annotations) -> tuple:
    """The (item, annotator) index of the caller's input for the DataFrames; None for plain arrays (0..n-1)."""
    import pandas as pd  # only the cleanlab-compatible wrappers need pandas; the numeric core stays numpy-only

    if isinstance(labels_multiannotator, Annotations):
        return pd.Index(annotations.item_ids), pd.Index(annotations.annotator_ids)
    if _is_dataframe(labels_multiannotator):
        return labels_multiannotator.index, labels_multiannotator.columns
    return None, None


def _frames(table: _Table, all_stats: dict[str, _Stats], methods: list[str], quality_method: str, method: str,
            adjust: bool, return_detailed_quality: bool, return_annotator_stats: bool, item_index,
            annotator_index) -> dict:
    """cleanlab's label_quality, detailed_label_quality and annotator_stats DataFrames (the first method's stats)."""
    import pandas as pd

    main = all_stats[methods[0]]
    if return_detailed_quality or return_annotator_stats:
        annotation_quality = _compute_annotation_quality(table, main.posterior, method, adjust)

    label_quality = pd.DataFrame({
        "consensus_label": main.consensus.astype(np.int64),
        "consensus_quality_score": main.quality,
        "annotator_agreement": main.agreement,
        "num_annotations": table.num_annotations.astype(np.int64),
    }, index=item_index)
    for extra in methods[1:]:
        stats = all_stats[extra]
        label_quality[f"consensus_label_{extra}"] = stats.consensus.astype(np.int64)
        label_quality[f"consensus_quality_score_{extra}"] = stats.quality
        label_quality[f"annotator_agreement_{extra}"] = stats.agreement
    info = {"label_quality": label_quality}

    if return_detailed_quality:
        detailed = np.full((table.n_items, table.n_annotators), np.nan)
        detailed[table.item, table.annotator] = annotation_quality
        info["detailed_label_quality"] = pd.DataFrame(detailed, index=item_index,
                                                      columns=annotator_index).add_prefix("quality_annotator_")
    if return_annotator_stats:
        columns = _compute_annotator_stats(table, main, annotation_quality, quality_method)
        frame = pd.DataFrame(columns, index=annotator_index)
        # Stable: lowest quality first, then lowest agreement; NaN sorts last in numpy as in pandas.
        order = np.lexsort((columns["agreement_with_consensus"], columns["annotator_quality"]))
        info["annotator_stats"] = frame.iloc[order]
    return info


def get_label_quality_multiannotator(labels_multiannotator, pred_probs, *, consensus_method="best_quality",
                                     quality_method: str = "crowdlab", calibrate_probs: bool = False,
                                     return_detailed_quality: bool = True, return_annotator_stats: bool = True,
                                     return_weights: bool = False, verbose: bool = True,
                                     label_quality_score_kwargs: dict | None = None) -> dict:
    """cleanlab 2.9's ``get_label_quality_multiannotator``: the same dict, keys, DataFrame columns and dtypes.

    A thin wrapper over the computation of :func:`crowdlab` (same internals, any input form). Returns ``label_quality`` (consensus_label, consensus_quality_score,
    annotator_agreement, num_annotations per item), ``detailed_label_quality`` (items x annotators,
    ``quality_annotator_<id>``, NaN where not labelled; only this output is dense),
    ``annotator_stats`` (annotator_quality, agreement_with_consensus, worst_class, num_examples_labeled; lowest
    quality first, NaN last, stable among ties) and, with ``return_weights``, ``model_weight`` and
    ``annotator_weight``. ``consensus_method`` may be a list: the first method fills the main columns, the
    others add ``consensus_label_<m>``, ``consensus_quality_score_<m>`` and ``annotator_agreement_<m>``; as in
    cleanlab, the returned weights are those of the last method listed. ``verbose`` is accepted for
    compatibility; relabel prints nothing.
    """
    methods = _methods_list(consensus_method)
    method, adjust = _check_options(methods, quality_method, label_quality_score_kwargs)
    if return_weights and quality_method != "crowdlab":
        raise ConfigError("Model and annotator weights exist only for quality_method='crowdlab'; set "
                          "return_weights=False or quality_method='crowdlab'.")
    table, p, annotations = _prepare(labels_multiannotator, pred_probs)
    item_index, annotator_index = _frame_indexes(labels_multiannotator, annotations)
    temperature = 1.0
    if calibrate_probs:
        temperature = _compute_best_temperature(table, p)
        p = _compute_temperature_scale(p, temperature)
    all_stats = _compute_consensus(table, p, methods, quality_method, method, adjust)
    info = _frames(table, all_stats, methods, quality_method, method, adjust, return_detailed_quality,
                   return_annotator_stats, item_index, annotator_index)
    if return_weights:
        last = all_stats[methods[-1]]
        info["model_weight"] = np.float64(last.model_weight)
        info["annotator_weight"] = last.annotator_weight
    return info
