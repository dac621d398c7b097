"""relabel's default consensus: Dawid-Skene with every setting fitted on the run's data, as a ConsensusResult.

CROWDLAB gives each annotator one weight; here each annotator has a confusion matrix, and the class prior (or
the model's temperature), the pooling of annotators towards each other and the discount of correlated
annotators are fitted on the data being scored (relabel.scoring.fitted_em). Reviewers' decisions are gold. Without
pred_probs it is the same EM on the annotations alone with a learned class prior. benchmarks/quality.py
compares it with majority vote, Dawid-Skene, GLAD, MACE and CROWDLAB; the README shows the tables.

Overrides: a consensus label that no annotator of the item gave, or a model that flips the item's majority.
Where the model has earned them they pay (CIFAR-10N at 2-3 labels per item, benchmarks/quality.py); a text
model trained on a few hundred items, or a model at chance, has not. So by default (``allow_overrides="earned"``)
the model changes final labels only when the run's own evidence says it beats the annotators
(relabel.scoring.override_evidence: its agreement with held-out annotators against theirs with each other, and
reviewers' verdicts on items where model and majority differ, each with an interval). Otherwise the labels are
the annotation-only consensus (the most probable class among those the item's annotators gave) and the model
only moves the quality score, i.e. the review queue. Without a model a label nobody gave is never the consensus
(on the crowd sets such labels were right 0 of 12, 3 of 5 and 41 of 137 times). ``override`` flags the items
whose consensus no annotator gave, for the store, the export and the report; ``override_evidence`` says which
regime the run is in and why.

Majorities: the annotation-only labels overturn an item's strict plurality only when held-out annotations say the
fitted annotator weights earned it (relabel.scoring.majority_evidence; on small projects they made labels worse
than a majority vote); ``majority_evidence`` says which.

Re-exported as :func:`relabel.scoring.consensus.consensus`; the cleanlab-named functions in :mod:`relabel.scoring.consensus`
keep computing exactly what cleanlab computes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from relabel.scoring.annotations import Annotations, keep_best
from relabel.results import ConsensusResult, with_names
from relabel.errors import AnnotationError, ConfigError, preview
from relabel.scoring.fitted_em import annotation_only_posterior, fitted_dawid_skene
from relabel.scoring.majority_evidence import MajorityEvidence, keep_majorities, majority_evidence
from relabel.scoring.override_evidence import OverrideEvidence, override_evidence
from relabel.scoring.validation import check_pred_probs

# "earned" (default): overrides when relabel.scoring.override_evidence grants them; "model": whenever there is a
# model (the pre-issue-20 default, for benchmarks' "overrides allowed" columns); "always"; "never".
OVERRIDE_POLICIES = ("earned", "model", "always", "never")


@dataclass(frozen=True, eq=False)
class EMConsensusResult(ConsensusResult):
    """A ConsensusResult plus each annotator's estimated confusion matrix (annotators x true x given).

    ``posterior`` is the calibrated one the quality score comes from (``relabel.scoring.fitted_em``: annotation-only runs
    discount it by the held-out annotation likelihood); the labels come from the EM's own posterior, so an
    annotation-only item's label is not always its argmax (the two differ on a few split items).
    ``annotator_weight`` and ``model_weight`` are NaN: no single weight describes an annotator here. The
    model's influence is its fitted ``temperature``; ``annotator_quality`` is the expected accuracy of the
    annotator's labels (mean posterior probability that each of them is right).
    """

    confusion: np.ndarray = None
    method: str = "dawid-skene"
    override: np.ndarray = None        # (items,) bool: the consensus is a label none of its annotators gave
    settings: dict = None              # the fitted settings: temperature, pool_strength, discount, class_prior
    override_evidence: OverrideEvidence = None   # may the model change labels here, and why
    majority_evidence: MajorityEvidence = None   # may fitted annotator weights overturn majorities, and why

    @property
    def expected_errors(self):
        """Expected wrong consensus labels with a 90% interval (relabel.scoring.error_estimate.ExpectedErrors)."""
        from relabel.scoring.error_estimate import expected_errors
        return expected_errors(self.consensus_quality_score)


def consensus(annotations: Annotations, pred_probs=None, *, known_labels=None, max_iter: int = 50,
              allow_overrides: str = "earned", annotator_discount: float | None = None,
              pool_strength: float | None = None, dtype=np.float32, earned_before: bool = False) -> EMConsensusResult:
    """Consensus labels, quality scores and annotator statistics: relabel's default.

    ``pred_probs`` (items x classes, out-of-sample) makes it model-aware; without it the annotations alone
    decide (Dawid-Skene). ``known_labels`` (one class index per item, -1 = not reviewed) are reviewers'
    decisions: those items keep that label and teach the annotators' confusion matrices.
    Items must have at least one label; one annotator, or one label per item, is fine.
    ``earned_before``: an earlier round of the project granted overrides (kept until the model is shown worse).
    ``allow_overrides``: "earned" (default: the model changes labels only where the run's evidence says it beats
    the annotators, see the module docstring), "model" (whenever there is a model), "always" or "never". ``annotator_discount`` / ``pool_strength`` fix a setting instead of fitting it (ablations);
    ``dtype`` is the float type of the items x classes arrays of the EM (float32 halves the memory).
    """
    if allow_overrides not in OVERRIDE_POLICIES:
        raise ConfigError(f"The 'allow_overrides' setting must be one of {', '.join(OVERRIDE_POLICIES)}. "
                          f"Got {allow_overrides!r}.")
    if annotator_discount is not None and not 0 < annotator_discount <= 1:
        raise ConfigError(f"The 'annotator_discount' setting must be in (0, 1]. Got {annotator_discount}.")
    if pool_strength is not None and not pool_strength >= 0:
        raise ConfigError(f"The 'pool_strength' setting must be >= 0. Got {pool_strength}.")
    if max_iter < 1:
        raise ConfigError(f"The 'max_iter' setting must be a positive integer. Got {max_iter}.")
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
    p = None
    if pred_probs is not None:
        p = check_pred_probs(pred_probs, n_rows=annotations.n_items, n_classes=annotations.n_classes)
    em = fitted_dawid_skene(annotations, p, known_labels=known, max_iter=max_iter, discount=annotator_discount,
                            pool_strength=pool_strength, dtype=dtype)
    evidence = override_evidence(annotations, p, known, earned_before=earned_before)
    label_scores, majority = em.posterior, None
    if allow_overrides == "earned":
        labels_from = em
        if p is not None and not evidence.allowed:
            # The model has not earned a say in the labels: they are the annotation-only consensus (reviewers'
            # decisions still final); the model-aware posterior keeps ordering the queue via the quality score.
            labels_from = fitted_dawid_skene(annotations, None, known_labels=known, max_iter=max_iter,
                                             pool_strength=pool_strength, dtype=dtype)
        allow_overrides = "always" if p is not None and evidence.allowed else "never"
        label_scores = labels_from.posterior
        if allow_overrides == "never":
            label_scores, majority = _earned_majorities(annotations, labels_from, known, max_iter, dtype)
    elif allow_overrides == "model":
        allow_overrides = "never" if p is None else "always"
    return with_names(_result(annotations, em, "dawid-skene" if p is None else "model-dawid-skene", allow_overrides,
                              known, label_scores, evidence, majority), annotations)


def _earned_majorities(a: Annotations, labels_from, known, max_iter: int, dtype):
    """The annotation-only labels' scores, with every unreviewed strict plurality kept unless the fitted annotator
    weights earned overturning them (relabel.scoring.majority_evidence), and that verdict."""
    reviewed = np.zeros(a.n_items, bool) if known is None else known >= 0
    labels = _restrict_to_given(a, labels_from.posterior, reviewed)

    def refit(rest: Annotations, rest_known) -> np.ndarray:
        posterior = annotation_only_posterior(rest, known_labels=rest_known, pool_strength=labels_from.pool_strength,
                                              max_iter=max_iter, dtype=dtype)
        return _restrict_to_given(rest, posterior, np.zeros(rest.n_items, bool) if rest_known is None
                                  else rest_known >= 0)
    verdict = majority_evidence(a, labels, known, refit)
    if verdict.allowed:
        return labels_from.posterior, verdict
    return keep_majorities(a.vote_counts(), labels_from.posterior, ~reviewed), verdict


def _restrict_to_given(a: Annotations, posterior: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Per item, the most probable class among those its annotators gave (items where ``allowed`` is False),
    else the overall argmax."""
    given = a.vote_counts() > 0
    masked = np.where(given | allowed[:, None], posterior, -1.0)
    return masked.argmax(axis=1)


def _result(a: Annotations, em, method: str, allow_overrides: str, known, label_posterior: np.ndarray,
            evidence: OverrideEvidence, majority: MajorityEvidence | None = None) -> EMConsensusResult:
    counts = a.num_annotations()
    allowed = np.full(a.n_items, allow_overrides == "always")
    if known is not None:
        allowed |= known >= 0                    # a reviewer's label is final, whoever gave it
    label = _restrict_to_given(a, label_posterior, allowed)
    # The labels come from the EM's posterior; every confidence figure from the held-out-calibrated one
    # (relabel.scoring.fitted_em: the same posterior with a model, discounted by the held-out fit without one).
    posterior = em.quality_posterior
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
        temperature=float(em.temperature),
        confusion=em.confusion,
        method=method,
        override=votes_for_consensus == 0,
        settings={"temperature": float(em.temperature), "pool_strength": em.pool_strength,
                  "discount": em.discount,
                  "quality_discount": em.quality_discount, "quality_temperature": em.quality_temperature,
                  "class_prior": em.class_prior.tolist(), "iterations": em.n_iter},
        override_evidence=evidence,
        majority_evidence=majority,
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
    keep_best(candidates, np.divide(agrees, used, out=np.zeros(used.shape), where=has), largest=False)
    keep_best(candidates, used.astype(float), largest=True)
    keep_best(candidates, np.divide(summed_quality, used, out=np.zeros(used.shape), where=has), largest=True)
    return np.where(has.any(axis=1), candidates.argmax(axis=1), -1)
