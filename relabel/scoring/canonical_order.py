"""Run a fit on the annotation table in one canonical order, so its result cannot depend on row order.

The fitted EM (relabel.scoring.fitted_em) makes discrete choices on float sums: a bounded search over the pooling
strength keeps the best point it evaluated, the held-out calibration is a quasi-Newton fit, and the discount's
annotation sample is drawn by row / item index. Summing the same annotations in another order (another row
order, or items and annotators numbered in another order of first appearance) moves those sums by rounding
only, but near a tie the searches then pick another point: on 40 items, a permuted table moved the posterior
by 1.6e-4 (tests/test_consensus_em.py). So the fit always sees the table in one order, mapped back after:

* items numbered by sorted item id;
* annotators numbered by what they did, not by name: by their number of labels, then a hash of the multiset of
  their (item, label) pairs. Renaming annotators therefore changes nothing at all; annotators left tied have
  the same labels on the same items (barring a 64-bit hash collision), so they are interchangeable and their
  order cannot change a sum;
* rows sorted by (item, annotator, label).
"""
from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np

from relabel.scoring.annotations import Annotations

# Fields of the fit's result indexed by item (first axis) and by annotator (first axis): mapped back.
ITEM_FIELDS = ("posterior", "quality_posterior")
ANNOTATOR_FIELDS = ("confusion",)


def sorted_order(ids: np.ndarray) -> np.ndarray:
    """Positions of item ``ids`` in sorted order; ids of mixed types (e.g. 3 and "3a") sort by (type name, text)."""
    ids = np.asarray(ids)
    if ids.dtype != object:
        return np.argsort(ids, kind="stable")
    values = ids.tolist()
    if all(type(v) is str for v in values):      # ids from the store: numpy sorts fixed-width text in C
        return np.argsort(np.array(values, dtype=str), kind="stable")
    try:
        return np.asarray(sorted(range(len(values)), key=values.__getitem__), dtype=np.intp)
    except TypeError:
        keys = [(type(v).__name__, str(v)) for v in values]
        return np.asarray(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.intp)


def _rank(order: np.ndarray) -> np.ndarray:
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a uint64 -> uint64 bijection scattering nearby keys (wrapping arithmetic)."""
    x = x.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def annotator_order(item: np.ndarray, annotator: np.ndarray, label: np.ndarray, n_annotators: int,
                    n_classes: int) -> np.ndarray:
    """Annotators by (number of labels, hash of their (item, label) multiset): independent of their names and of
    row order (the hash is a wrapping sum, which no order changes). ``item``: canonical item numbers."""
    n_labels = np.bincount(annotator, minlength=n_annotators)
    by_annotator = np.argsort(annotator, kind="stable")
    row_hash = _mix(item[by_annotator].astype(np.uint64) * np.uint64(n_classes) + label[by_annotator])
    fingerprint = np.zeros(n_annotators, dtype=np.uint64)
    used = n_labels > 0
    starts = np.concatenate([[0], np.cumsum(n_labels)[:-1]])[used]
    if starts.size:
        with np.errstate(over="ignore"):
            fingerprint[used] = np.add.reduceat(row_hash, starts)
    return np.lexsort((fingerprint, n_labels))


def canonical(a: Annotations) -> tuple[Annotations, np.ndarray, np.ndarray] | None:
    """(the table in canonical order, item order, annotator order), or None if ``a`` already is canonical.

    Canonical item c is the caller's item ``item_order[c]`` (likewise annotators)."""
    label = np.asarray(a.label, dtype=np.intp)
    item_order = sorted_order(a.item_ids)
    item = _rank(item_order)[a.item]
    annotators = annotator_order(item, np.asarray(a.annotator, dtype=np.intp), label, len(a.annotator_ids),
                                 len(a.classes))
    annotator = _rank(annotators)[a.annotator]
    n_items, n_annotators, k = len(a.item_ids), len(a.annotator_ids), len(a.classes)
    if n_items * n_annotators * k < 2 ** 62:       # one int64 key sorts ~2x faster than a 3-key lexsort
        rows = np.argsort((item.astype(np.int64) * n_annotators + annotator) * k + label, kind="stable")
    else:
        rows = np.lexsort((label, annotator, item))
    if ((item_order == np.arange(item_order.size)).all() and (annotators == np.arange(annotators.size)).all()
            and (rows == np.arange(rows.size)).all()):
        return None
    return (Annotations(item[rows], annotator[rows], label[rows], np.asarray(a.item_ids)[item_order],
                        np.asarray(a.annotator_ids)[annotators], a.classes), item_order, annotators)


def in_canonical_order(fit):
    """Decorate ``fit(annotations, pred_probs=None, *, known_labels=None, ...)`` returning a dataclass with the
    ITEM_FIELDS / ANNOTATOR_FIELDS so that it runs on the canonical table (per-item inputs reordered alike)."""

    @functools.wraps(fit)
    def run(annotations: Annotations, pred_probs=None, *, known_labels=None, **settings):
        found = canonical(annotations)
        if found is None:
            return fit(annotations, pred_probs, known_labels=known_labels, **settings)
        table, item_order, annotator_order = found
        by_item = lambda x: None if x is None else np.asarray(x)[item_order]  # noqa: E731
        result = fit(table, by_item(pred_probs), known_labels=by_item(known_labels), **settings)
        item_back, annotator_back = _rank(item_order), _rank(annotator_order)
        back = {f: getattr(result, f)[item_back] for f in ITEM_FIELDS if getattr(result, f) is not None}
        back.update({f: getattr(result, f)[annotator_back] for f in ANNOTATOR_FIELDS
                     if getattr(result, f) is not None})
        return replace(result, **back)

    return run
