"""Named views of relabel's results: item ids, annotator ids and class names instead of bare positions.

    result = consensus(annotations, pred_probs)
    result.to_frame()              # one row per item id: consensus_label (class name), quality, agreement, ...
    result.annotator_frame()       # one row per annotator id: quality, agreement, worst_class (name), labels
    result.annotator_stats()["ann@x"]["annotator_quality"]

The numeric fields of a result stay numpy arrays in table order (what cleanlab-style code indexes); these
methods put the names on them. pandas is imported only when a frame is asked for.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


class NamedResult:
    """Mixin for a result dataclass with ``item_ids``, ``annotator_ids`` and ``classes`` fields."""

    item_ids: np.ndarray | None
    annotator_ids: np.ndarray | None
    classes: tuple | None

    def _class_names(self, codes) -> list:
        """Class indices as class names (None for -1, "no class")."""
        names = tuple(self.classes) if self.classes is not None else None
        out = []
        for c in np.asarray(codes).tolist():
            c = int(c)
            out.append(None if c < 0 else (names[c] if names is not None else c))
        return out

    def _ids(self, ids, n: int, what: str) -> list:
        if ids is None:
            return list(range(n))
        if len(ids) != n:
            raise ValueError(f"This result has {n} {what} but {len(ids)} {what} ids.")
        return [_plain(i) for i in ids]

    def to_frame(self):
        """One row per item, indexed by ``item_id``: consensus_label (class name), consensus_quality_score,
        annotator_agreement, num_annotations and, per class, ``p_<class>`` (the posterior)."""
        import pandas as pd
        labels = np.asarray(self.consensus_label)
        frame = pd.DataFrame({
            "consensus_label": self._class_names(labels),
            "consensus_quality_score": np.asarray(self.consensus_quality_score, dtype=float),
            "annotator_agreement": np.asarray(self.annotator_agreement, dtype=float),
            "num_annotations": np.asarray(self.num_annotations, dtype=np.int64),
        }, index=pd.Index(self._ids(self.item_ids, labels.shape[0], "items"), name="item_id"))
        posterior = np.asarray(self.posterior, dtype=float)
        names = self.classes if self.classes is not None else range(posterior.shape[1])
        for k, name in enumerate(names):
            frame[f"p_{name}"] = posterior[:, k]
        return frame

    def annotator_frame(self):
        """One row per annotator, indexed by ``annotator_id``: annotator_quality, agreement_with_consensus,
        worst_class (class name), num_examples_labeled, annotator_weight."""
        import pandas as pd
        quality = np.asarray(self.annotator_quality, dtype=float)
        return pd.DataFrame({
            "annotator_quality": quality,
            "agreement_with_consensus": np.asarray(self.agreement_with_consensus, dtype=float),
            "worst_class": self._class_names(self.worst_class),
            "num_examples_labeled": np.asarray(self.num_examples_labeled, dtype=np.int64),
            "annotator_weight": np.asarray(self.annotator_weight, dtype=float),
        }, index=pd.Index(self._ids(self.annotator_ids, quality.shape[0], "annotators"), name="annotator_id"))

    def annotator_stats(self) -> dict:
        """``{annotator_id: {annotator_quality, agreement_with_consensus, worst_class, num_examples_labeled,
        annotator_weight}}`` with plain Python values (NaN where undefined)."""
        frame = self.annotator_frame()
        return {annotator: {k: _plain(v) for k, v in row.items()} for annotator, row in frame.iterrows()}


def _plain(value):
    """A numpy scalar as the Python value it holds (ids and stats print and compare like the caller's)."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True, eq=False)
class ConsensusResult(NamedResult):
    """Everything CROWDLAB computes, as numpy arrays aligned with an :class:`Annotations` table.

    Per item (``annotations.item_ids`` order): ``consensus_label``, ``consensus_quality_score``,
    ``annotator_agreement`` (fraction of the item's annotators who gave the consensus), ``num_annotations``
    and ``posterior`` (items x classes, rows sum to 1).
    Per annotation (the row order of ``annotations``): ``annotation_quality``, the quality score of that label
    under its item's posterior (cleanlab's ``detailed_label_quality``).
    Per annotator (``annotations.annotator_ids`` order): ``annotator_quality``, ``agreement_with_consensus``,
    ``worst_class``, ``num_examples_labeled`` and ``annotator_weight``; ``model_weight`` is a float.
    With ``quality_method="agreement"`` there are no weights: ``annotator_weight`` and ``model_weight`` are NaN.
    An annotator id with no annotations in a long-format table gets NaN statistics, ``worst_class`` -1 and 0
    examples. ``temperature`` is the temperature applied to ``pred_probs`` (1.0 unless ``calibrate_probs``).
    ``item_ids``, ``annotator_ids`` and ``classes`` name those positions: ``to_frame()``, ``annotator_frame()``
    and ``annotator_stats()`` (relabel.results) give the results keyed by item id and annotator id, with
    class names.
    """

    consensus_label: np.ndarray
    consensus_quality_score: np.ndarray
    annotator_agreement: np.ndarray
    num_annotations: np.ndarray
    posterior: np.ndarray
    annotation_quality: np.ndarray
    annotator_quality: np.ndarray
    agreement_with_consensus: np.ndarray
    worst_class: np.ndarray
    num_examples_labeled: np.ndarray
    annotator_weight: np.ndarray
    model_weight: float
    temperature: float = 1.0
    item_ids: np.ndarray | None = None
    annotator_ids: np.ndarray | None = None
    classes: tuple | None = None


def with_names(result: ConsensusResult, annotations) -> ConsensusResult:
    """The result with the item ids, annotator ids and classes of ``annotations`` attached (an Annotations table,
    or anything with those three fields: this module sits below the scoring layer and does not import it)."""
    return replace(result, item_ids=np.asarray(annotations.item_ids),
                   annotator_ids=np.asarray(annotations.annotator_ids), classes=tuple(annotations.classes))
