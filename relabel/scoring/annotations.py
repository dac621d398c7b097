"""The one data structure: annotations in long format, encoded once to integer arrays.

One row per annotation: (item, annotator, label). Everything numeric in relabel works on these three
integer arrays, so cost is O(#annotations x K) and never O(items x annotators): 1,000,000 items labelled
by 10,000 annotators is 3,000,000 rows here, where the dense form cleanlab takes would be 80 GB.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from relabel.errors import AnnotationError, LabelError, preview


def _factorize(values) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes and unique values, uniques in order of first appearance (so callers keep their order)."""
    values = np.asarray(values)
    if values.ndim != 1:
        raise AnnotationError(f"Expected a 1-D sequence of ids, got an array of shape {values.shape}.")
    if values.dtype == object:
        hashed = _factorize_objects(values)
        if hashed is not None:
            return hashed
    uniques, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inverse.reshape(-1)].astype(np.intp), uniques[order]


def _factorize_objects(values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Codes of an object array by hashing, in order of first appearance (None if some value is unhashable).

    Ids from the store are Python strings: np.unique sorts them with Python comparisons, 1.5 s for 300,000
    e-mail addresses, where one dict pass is linear (a 100,000-item report spent most of its time here).
    """
    index: dict = {}
    try:
        codes = np.fromiter((index.setdefault(v, len(index)) for v in values.tolist()), dtype=np.intp,
                            count=values.size)
    except TypeError:
        return None
    uniques = np.empty(len(index), dtype=object)
    uniques[:] = list(index)
    return codes, uniques


@dataclass(frozen=True, eq=False)
class Annotations:
    """Annotations as three aligned integer arrays plus the ids they index.

    ``item[r]``, ``annotator[r]`` and ``label[r]`` describe annotation ``r``; they index ``item_ids``,
    ``annotator_ids`` and ``classes``. Classes come from the labeling config (or are given), never from
    "labels seen so far", so a class nobody used still has its column.
    """

    item: np.ndarray
    annotator: np.ndarray
    label: np.ndarray
    item_ids: np.ndarray
    annotator_ids: np.ndarray
    classes: tuple

    # ---- construction -------------------------------------------------------------------------------
    @classmethod
    def from_records(cls, item_ids, annotator_ids, labels, classes=None) -> "Annotations":
        """Build from one entry per annotation.

        ``labels`` are class names when ``classes`` is given (or integer positions into it); without
        ``classes`` they must be integers 0..K-1 and the classes are ``0..max(label)``.
        Items and annotators keep the order in which they first appear.
        """
        labels = np.asarray(labels)
        n = labels.shape[0] if labels.ndim == 1 else -1
        if labels.ndim != 1 or len(item_ids) != n or len(annotator_ids) != n:
            raise AnnotationError(
                "item_ids, annotator_ids and labels must be 1-D and of equal length; got lengths "
                f"{len(item_ids)}, {len(annotator_ids)} and {labels.shape}."
            )
        item, items = _factorize(item_ids)
        annotator, annotators = _factorize(annotator_ids)
        codes, classes = _encode_labels(labels, classes)
        return cls(item, annotator, codes, items, annotators, classes)

    @classmethod
    def from_dense(cls, matrix, n_classes: int | None = None) -> "Annotations":
        """Build from cleanlab's N x M form: row = item, column = annotator, NaN = not labelled.

        A pandas DataFrame keeps its column names as annotator ids and its index as item ids.
        """
        annotator_ids = item_ids = None
        if hasattr(matrix, "columns") and hasattr(matrix, "to_numpy"):
            annotator_ids = np.asarray(matrix.columns)
            item_ids = np.asarray(matrix.index)
            matrix = matrix.to_numpy(dtype=float, na_value=np.nan)
        dense = np.asarray(matrix, dtype=float)
        if dense.ndim != 2:
            raise AnnotationError(
                f"labels_multiannotator must be 2-D (items x annotators); got shape {dense.shape}."
            )
        n_items, n_annotators = dense.shape
        item, annotator = np.nonzero(~np.isnan(dense))
        values = dense[item, annotator]
        bad = (values < 0) | (values != np.round(values))
        if bad.any():
            where = [f"item {i}, annotator {a}: {v:g}" for i, a, v in
                     zip(item[bad][:5], annotator[bad][:5], values[bad][:5])]
            raise LabelError(
                "Labels must be non-negative integer class indices (NaN for 'not labelled'); got "
                + "; ".join(where) + "."
            )
        label = values.astype(np.intp)
        k = int(label.max()) + 1 if label.size else 0
        if n_classes is not None:
            if k > n_classes:
                raise LabelError(
                    f"Label {k - 1} is outside the {n_classes} classes 0..{n_classes - 1}; "
                    "pass the right n_classes or fix the labels."
                )
            k = n_classes
        return cls(
            item.astype(np.intp),
            annotator.astype(np.intp),
            label,
            np.arange(n_items) if item_ids is None else item_ids,
            np.arange(n_annotators) if annotator_ids is None else annotator_ids,
            tuple(range(k)),
        )

    @classmethod
    def coerce(cls, data, n_classes: int | None = None) -> "Annotations":
        """Accept an Annotations, a DataFrame or a dense array (the forms cleanlab users have)."""
        if isinstance(data, Annotations):
            if n_classes is not None and data.n_classes > n_classes:
                raise LabelError(
                    f"The annotations have {data.n_classes} classes but pred_probs has {n_classes} columns; "
                    "pred_probs needs one column per class, in the order of the classes."
                )
            return data.with_n_classes(n_classes) if n_classes is not None else data
        return cls.from_dense(data, n_classes=n_classes)

    def with_n_classes(self, n_classes: int) -> "Annotations":
        """The same annotations with classes 0..n_classes-1 when classes were integers (cleanlab's K)."""
        if n_classes == self.n_classes:
            return self
        if self.classes != tuple(range(self.n_classes)):
            raise LabelError(
                f"The annotations' classes {self.classes!r} do not match the {n_classes} columns of pred_probs."
            )
        return Annotations(self.item, self.annotator, self.label, self.item_ids, self.annotator_ids,
                           tuple(range(n_classes)))

    # ---- shape --------------------------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        return int(self.item_ids.shape[0])

    @property
    def n_annotators(self) -> int:
        return int(self.annotator_ids.shape[0])

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def __repr__(self) -> str:
        return (f"Annotations({len(self)} annotations, {self.n_items} items, "
                f"{self.n_annotators} annotators, {self.n_classes} classes)")

    # ---- derived arrays -----------------------------------------------------------------------------
    def num_annotations(self) -> np.ndarray:
        """Number of labels per item, shape (n_items,)."""
        return np.bincount(self.item, minlength=self.n_items)

    def vote_counts(self) -> np.ndarray:
        """How many annotators gave each class to each item, shape (n_items, n_classes), one bincount."""
        k = self.n_classes
        flat = np.bincount(self.item * k + self.label, minlength=self.n_items * k)
        return flat.reshape(self.n_items, k)

    def to_dense(self) -> np.ndarray:
        """cleanlab's N x M float matrix with NaN for 'not labelled' (for interop; relabel never needs it)."""
        dense = np.full((self.n_items, self.n_annotators), np.nan)
        dense[self.item, self.annotator] = self.label
        return dense

    def select(self, rows) -> "Annotations":
        """A subset of annotation rows (boolean mask or indices), keeping every item, annotator and class."""
        return Annotations(self.item[rows], self.annotator[rows], self.label[rows],
                           self.item_ids, self.annotator_ids, self.classes)


def _encode_labels(labels: np.ndarray, classes) -> tuple[np.ndarray, tuple]:
    """Map labels to integer positions in ``classes``, naming any label that is not a class."""
    if classes is None:
        if labels.size and not np.issubdtype(labels.dtype, np.number):
            raise LabelError(
                "Labels are not integers; pass classes=[...] (the labeling config's choices, in order) "
                "to encode class names."
            )
        as_int = labels.astype(np.intp) if labels.size else labels.astype(np.intp)
        bad = (as_int != labels) | (as_int < 0) if labels.size else np.zeros(0, bool)
        if bad.any():
            raise LabelError(
                f"Labels must be non-negative integers 0..K-1; got {preview(np.unique(labels[bad]))}."
            )
        return as_int, tuple(range(int(as_int.max()) + 1 if as_int.size else 0))
    classes = tuple(classes)
    position = {c: i for i, c in enumerate(classes)}
    if len(position) != len(classes):
        raise LabelError(f"classes contains duplicates: {classes!r}.")
    hashed = _factorize_objects(labels) if labels.dtype == object else None
    inverse, uniques = hashed if hashed is not None else np.unique(labels, return_inverse=True)[::-1]
    lookup = np.array([position.get(_plain(u), -1) for u in uniques], dtype=np.intp)
    if (lookup < 0).any() and np.issubdtype(labels.dtype, np.integer):
        # Integer labels with named classes are positions into classes.
        lookup = np.where((uniques >= 0) & (uniques < len(classes)), uniques, -1).astype(np.intp)
    unknown = uniques[lookup < 0]
    if unknown.size:
        raise LabelError(
            f"Labels {preview(unknown.tolist())} are not among the classes {preview(classes, 20)}; "
            "add them to the labeling config or fix those annotations."
        )
    return lookup[inverse.reshape(-1)], classes


def _plain(value):
    """numpy scalar -> Python scalar, so np.str_('a') finds 'a' in a dict."""
    return value.item() if isinstance(value, np.generic) else value


def keep_best(candidates: np.ndarray, score: np.ndarray, largest: bool) -> None:
    """Among each row's candidate classes keep those with the largest (or smallest) score, in place."""
    fill = -np.inf if largest else np.inf
    masked = np.where(candidates, score, fill)
    best = masked.max(axis=1, keepdims=True) if largest else masked.min(axis=1, keepdims=True)
    candidates &= masked == best
