"""Inter-annotator agreement: the pairwise agreement matrix, Krippendorff's alpha, and each annotator's
confusion against reference labels.

    alpha = krippendorff_alpha(annotations)                 # nominal alpha over every item with 2+ labels
    pairs = pairwise_agreement(annotations, annotators=[0, 3, 5])
    pairs.agreed / pairs.shared                             # share of common items two annotators labelled alike
    conf = annotator_confusion(annotations, reference)      # annotators x reference class x given class

These are the figures Label Studio Enterprise and Argilla lead with. Everything works on the long annotation
table: vote counts per item are one bincount, annotator pairs are sparse products, and no items x annotators
matrix is built.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from relabel.scoring.annotations import Annotations
from relabel.errors import AnnotationError


@dataclass(frozen=True)
class PairwiseAgreement:
    """For the annotators ``annotator_ids`` (in that order): ``shared[a, b]`` items both labelled, ``agreed[a, b]``
    of those on which they gave the same label. The diagonal is each annotator's own number of labelled items."""

    annotator_ids: np.ndarray
    shared: np.ndarray
    agreed: np.ndarray

    @property
    def rate(self) -> np.ndarray:
        """agreed / shared, NaN where two annotators share no item."""
        return np.divide(self.agreed, self.shared, out=np.full(self.shared.shape, np.nan), where=self.shared > 0)


def krippendorff_alpha(annotations: Annotations) -> float:
    """Krippendorff's alpha for nominal data, with any number of annotators per item and missing labels.

    alpha = 1 - D_o / D_e, from the coincidence matrix o[c, k] = sum over items u with m_u >= 2 labels of
    (n_uc n_uk - [c = k] n_uc) / (m_u - 1) (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability"):
    D_o is the off-diagonal mass of o over n = sum(o), D_e the off-diagonal mass expected from the marginals
    n_c, i.e. alpha = 1 - (n - 1) sum_{c != k} o[c, k] / sum_{c != k} n_c n_k.
    Items with one label carry no pairable value and are left out. NaN when fewer than two values are
    pairable or every pairable label is the same class (no variation: alpha is undefined).
    """
    votes = annotations.vote_counts().astype(float)            # items x classes
    m = votes.sum(axis=1)
    pairable = m >= 2
    votes, m = votes[pairable], m[pairable]
    if votes.shape[0] == 0:
        return float("nan")
    weight = 1.0 / (m - 1.0)
    # o = sum_u w_u (v_u v_u^T - diag(v_u)): one weighted product over items, O(items x classes^2).
    coincidence = (votes * weight[:, None]).T @ votes - np.diag(weight @ votes)
    n_c = coincidence.sum(axis=1)
    n = n_c.sum()
    observed = n - np.trace(coincidence)
    expected = n * n - np.sum(n_c * n_c)
    if expected <= 0:
        return float("nan")
    return float(1.0 - (n - 1.0) * observed / expected)


def pairwise_agreement(annotations: Annotations, annotators=None) -> PairwiseAgreement:
    """Items shared and items agreed on by each pair of ``annotators`` (indices into ``annotator_ids``; default
    all). Two sparse products over the annotations: shared = Z^T Z with Z the items x annotators indicator,
    agreed = Y^T Y with Y indexed by (item, label) pairs, so the cost is the number of co-labelled pairs."""
    import scipy.sparse  # scikit-learn's own dependency; sparse products keep this O(annotation pairs)

    a = annotations
    chosen = np.arange(a.n_annotators) if annotators is None else np.asarray(annotators, dtype=np.intp)
    if chosen.ndim != 1 or (chosen.size and (chosen.min() < 0 or chosen.max() >= a.n_annotators)):
        raise AnnotationError(f"pairwise_agreement: annotators must be indices 0..{a.n_annotators - 1}.")
    column = np.full(a.n_annotators, -1, dtype=np.intp)
    column[chosen] = np.arange(chosen.size)
    keep = column[a.annotator] >= 0
    cols = column[a.annotator[keep]]
    ones = np.ones(cols.size)
    z = scipy.sparse.csr_matrix((ones, (a.item[keep], cols)), shape=(a.n_items, chosen.size))
    y = scipy.sparse.csr_matrix((ones, (a.item[keep] * a.n_classes + a.label[keep], cols)),
                                shape=(a.n_items * a.n_classes, chosen.size))
    shared = np.asarray((z.T @ z).todense(), dtype=np.int64)
    agreed = np.asarray((y.T @ y).todense(), dtype=np.int64)
    return PairwiseAgreement(annotator_ids=np.asarray(a.annotator_ids)[chosen], shared=shared, agreed=agreed)


def annotator_confusion(annotations: Annotations, reference: np.ndarray) -> np.ndarray:
    """``out[a, r, g]``: labels ``g`` annotator ``a`` gave to items whose reference label is ``r`` (one per item,
    -1 = none: those items are left out). One bincount; annotators x classes x classes."""
    a = annotations
    reference = np.asarray(reference)
    if reference.shape != (a.n_items,) or not np.issubdtype(reference.dtype, np.integer):
        raise AnnotationError("annotator_confusion needs one integer reference class (or -1) per item.")
    k = a.n_classes
    ref = reference[a.item]
    keep = ref >= 0
    key = (a.annotator[keep] * k + ref[keep]) * k + a.label[keep]
    return np.bincount(key, minlength=a.n_annotators * k * k).reshape(a.n_annotators, k, k)
