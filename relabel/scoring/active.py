"""ActiveLab: which items most need another label (ALGORITHMS.md section 3; Goh and Mueller 2023).

An item's score is its CROWDLAB consensus quality, pulled towards the chance level 1/K by an amount that
shrinks as more (and more trusted) annotators and the model have weighed in: an item with a doubtful
consensus and few labels scores lowest, so one more label there is worth the most. Unlabelled items are
scored on the same scale from the model alone, so both lists can be merged into one queue.

Same names, arguments and results as cleanlab 2.9's ``get_active_learning_scores``, computed on the
long-format :class:`~relabel.scoring.annotations.Annotations` table. Differences from cleanlab are those of
:mod:`relabel.scoring.consensus`: votes counted correctly in the temperature search, majority-vote ties resolved to
the smallest class. Unlike cleanlab, ``labels_multiannotator`` given without ``pred_probs`` is an error
rather than silently ignored.
"""
from __future__ import annotations

import numpy as np

from relabel.scoring.confident.ranking import _compute_label_quality_scores
from relabel.scoring.consensus import (
    _compute_best_temperature,
    _compute_consensus,
    _compute_majority_vote,
    _compute_temperature_scale,
    _prepare,
)
from relabel.scoring.validation import check_active_learning_inputs, check_pred_probs


def get_active_learning_scores(labels_multiannotator=None, pred_probs=None,
                               pred_probs_unlabeled=None) -> tuple[np.ndarray, np.ndarray]:
    """ActiveLab scores for labelled and unlabelled items; lower = more worth (re)labelling.

    ``labels_multiannotator`` (an :class:`Annotations`, DataFrame or items x annotators array with NaN) and
    ``pred_probs`` score the labelled items; ``pred_probs_unlabeled`` scores items nobody labelled yet. Give
    the first two, the last, or all three. Returns ``(scores_labeled, scores_unlabeled)``; an array is empty
    when its input was not given. Every item may have a single label (then no temperature is fitted and all
    weights are 1); otherwise pred_probs are temperature-scaled to the vote fractions and CROWDLAB's
    consensus quality and weights are used (ALGORITHMS 3).
    """
    check_active_learning_inputs(labels_multiannotator, pred_probs, pred_probs_unlabeled)

    temperature, model_weight, mean_annotator_weight = 1.0, 1.0, 1.0
    scores_labeled = np.array([])
    if pred_probs is not None:
        table, p, _ = _prepare(labels_multiannotator, pred_probs, allow_single_label=True)
        n_classes = table.n_classes
        if (table.num_annotations == 1).all():
            # Nothing to compare annotators with: no temperature, every source weighs 1, and the consensus
            # (each item's only label) is scored by the model alone.
            consensus = _compute_majority_vote(table, p)
            quality = _compute_label_quality_scores(consensus, p, "self_confidence", False)
            annotator_weight = np.where(table.active, 1.0, np.nan)
        else:
            temperature = _compute_best_temperature(table, p)
            p = _compute_temperature_scale(p, temperature)
            stats = _compute_consensus(table, p, ["best_quality"], "crowdlab", "self_confidence", False)
            best = stats["best_quality"]
            quality, model_weight, annotator_weight = best.quality, best.model_weight, best.annotator_weight
        mean_annotator_weight = float(np.mean(annotator_weight[table.active]))
        # Total trust already placed in each item's consensus: its annotators' weights plus the model's.
        trust = np.bincount(table.item, weights=annotator_weight[table.annotator], minlength=table.n_items)
        trust += model_weight
        # Weighted mean of the consensus quality and chance level 1/K, the latter weighing like one average
        # annotator: few or distrusted labels leave the score near 1/K.
        scores_labeled = (quality * trust + (1 / n_classes) * mean_annotator_weight) / (trust + mean_annotator_weight)
    else:
        n_classes = None

    scores_unlabeled = np.array([])
    if pred_probs_unlabeled is not None:
        p_unlabeled = check_pred_probs(pred_probs_unlabeled, n_classes=n_classes, name="pred_probs_unlabeled")
        n_classes = p_unlabeled.shape[1]
        scaled = _compute_temperature_scale(p_unlabeled.astype(np.float64), temperature)
        confidence = scaled.max(axis=1)
        scores_unlabeled = ((confidence * model_weight + (1 / n_classes) * mean_annotator_weight)
                            / (model_weight + mean_annotator_weight))
    return scores_labeled, scores_unlabeled
