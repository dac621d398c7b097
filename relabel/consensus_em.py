"""relabel's default consensus: Dawid-Skene with the model as each item's prior, as a ConsensusResult.

CROWDLAB gives each annotator one weight; here each annotator has a confusion matrix, the model's
temperature is fitted to the annotators, reviewers' decisions are gold, and the posterior is a real posterior,
so "expected wrong labels left" (the sum of 1 - P(consensus)) means what it says. On CIFAR-10N it is more
accurate than CROWDLAB and ranks wrong labels better (benchmarks/quality.py; the README shows the tables).
Without pred_probs it is Dawid-Skene on the annotations alone (with the same shrinkage of each annotator's
confusion matrix towards everyone's).

Re-exported as :func:`relabel.consensus.consensus`; the cleanlab-named functions in :mod:`relabel.consensus`
keep computing exactly what cleanlab computes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .annotations import Annotations
from .consensus import ConsensusResult, _keep_best, with_names
from .dawid_skene import ANNOTATOR_DISCOUNT, model_dawid_skene
from .errors import AnnotationError, ConfigError, preview
from .validation import check_pred_probs


@dataclass(frozen=True, eq=False)
class EMConsensusResult(ConsensusResult):
    """A ConsensusResult plus each annotator's estimated confusion matrix (annotators x true x given).

    ``annotator_weight`` and ``model_weight`` are NaN: no single weight describes an annotator here. The
    model's influence is its fitted ``temperature``; ``annotator_quality`` is the expected accuracy of the
    annotator's labels (mean posterior probability that each of them is right).
    """

    confusion: np.ndarray = None
    method: str = "dawid-skene"


def consensus(annotations: Annotations, pred_probs=None, *, known_labels=None,
              annotator_discount: float = ANNOTATOR_DISCOUNT, max_iter: int = 50) -> EMConsensusResult:
    """Consensus labels, quality scores and annotator statistics: relabel's default.

    ``pred_probs`` (items x classes, out-of-sample) makes it model-aware; without it the annotations alone
    decide (Dawid-Skene). ``known_labels`` (one class index per item, -1 = not reviewed) are reviewers'
    decisions: those items keep that label and teach the annotators' confusion matrices.
    Items must have at least one label; one annotator, or one label per item, is fine.
    """
    if not isinstance(annotations, Annotations):
        annotations = Annotations.coerce(annotations)
    counts = annotations.num_annotations()
    if (counts == 0).any():
        raise AnnotationError(f"Items {preview(annotations.item_ids[counts == 0].tolist())} have no label; score "
                              "only labelled items (unlabelled ones get ActiveLab scores instead).")
    if len(annotations) == 0:
        raise AnnotationError("There are no annotations to compute a consensus from.")
    known = None
    if known_labels is not None:
        known = np.asarray(known_labels)
        if known.shape != (annotations.n_items,) or not np.issubdtype(known.dtype, np.integer):
            raise ConfigError("known_labels must be one integer class index (or -1) per item of the annotations.")
        bad = (known < -1) | (known >= annotations.n_classes)
        if bad.any():
            raise ConfigError(f"known_labels of items {preview(annotations.item_ids[bad].tolist())} are not class "
                              f"indices 0..{annotations.n_classes - 1} (or -1 for 'not reviewed').")
    if pred_probs is None:
        # Annotations alone: the same EM with a flat prior and no discount, i.e. Dawid-Skene with each
        # annotator's confusion shrunk towards everyone's (more accurate than classic Dawid-Skene on
        # CIFAR-10N and Snow 2008, where annotators with a handful of labels otherwise look perfect).
        flat = np.full((annotations.n_items, annotations.n_classes), 1.0 / annotations.n_classes)
        result = model_dawid_skene(annotations, flat, known_labels=known, annotator_discount=1.0, max_iter=max_iter)
        method = "dawid-skene"
    else:
        p = check_pred_probs(pred_probs, n_rows=annotations.n_items, n_classes=annotations.n_classes)
        result = model_dawid_skene(annotations, p, known_labels=known, annotator_discount=annotator_discount,
                                   max_iter=max_iter)
        method = "model-dawid-skene"
    return with_names(_result(annotations, result, method), annotations)


def _result(a: Annotations, em, method: str) -> EMConsensusResult:
    posterior = em.posterior
    label = posterior.argmax(axis=1)
    counts = a.num_annotations()
    votes_for_consensus = np.bincount(a.item, weights=(a.label == label[a.item]), minlength=a.n_items)
    # P(this annotation is right) under the posterior: the per-annotation quality.
    annotation_quality = posterior[a.item, a.label]
    n_labels = np.bincount(a.annotator, minlength=a.n_annotators)
    has = n_labels > 0
    mean = lambda w: np.divide(np.bincount(a.annotator, weights=w, minlength=a.n_annotators), n_labels,  # noqa: E731
                               out=np.full(a.n_annotators, np.nan), where=has)
    quality = posterior[np.arange(a.n_items), label]
    return EMConsensusResult(
        consensus_label=label.astype(np.int64),
        consensus_quality_score=quality,
        annotator_agreement=votes_for_consensus / counts,
        num_annotations=counts.astype(np.int64),
        posterior=posterior,
        annotation_quality=annotation_quality,
        annotator_quality=mean(annotation_quality),
        agreement_with_consensus=mean((a.label == label[a.item]).astype(float)),
        worst_class=_worst_class(a, label, quality),
        num_examples_labeled=n_labels.astype(np.int64),
        annotator_weight=np.full(a.n_annotators, np.nan),
        model_weight=float("nan"),
        temperature=float(getattr(em, "temperature", 1.0)),
        confusion=em.confusion,
        method=method,
    )


def _worst_class(a: Annotations, label: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Among the classes an annotator used, the one its labels least often agree with the consensus on.

    The same rule as CROWDLAB's (ties: most used, then highest mean consensus quality, then smallest class),
    on an annotators x classes grid.
    """
    k = a.n_classes
    key = a.annotator * k + a.label
    size = a.n_annotators * k
    used = np.bincount(key, minlength=size).reshape(-1, k)
    agrees = np.bincount(key, weights=(a.label == label[a.item]), minlength=size).reshape(-1, k)
    summed_quality = np.bincount(key, weights=quality[a.item], minlength=size).reshape(-1, k)
    has = used > 0
    candidates = has.copy()
    _keep_best(candidates, np.divide(agrees, used, out=np.zeros(used.shape), where=has), largest=False)
    _keep_best(candidates, used.astype(float), largest=True)
    _keep_best(candidates, np.divide(summed_quality, used, out=np.zeros(used.shape), where=has), largest=True)
    return np.where(has.any(axis=1), candidates.argmax(axis=1), -1)
