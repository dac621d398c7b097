"""CROWDLAB and ActiveLab with an ensemble of models (ALGORITHMS.md sections 2 and 3, several pred_probs).

The names, arguments and results of cleanlab 2.9's ``get_label_quality_multiannotator_ensemble`` and
``get_active_learning_scores_ensemble``. ``pred_probs`` is P x N x K (one N x K matrix per model). Each model
gets its own weight, computed exactly as the single model's (its accuracy against the consensus relative to
"always say the most common class", times sqrt(mean #labels per item)), and the posterior mixes every model and
every annotator. Majority-vote ties are broken by the models' mean pred_probs; the single-annotator ActiveLab
of unlabelled items takes a majority vote over the models' argmax labels. Differences from cleanlab are those
of :mod:`relabel.scoring.consensus` (votes counted correctly, smallest-class last tie-break), and each model's
pred_probs must be probability rows (cleanlab lets unnormalised rows through; they would skew the scores).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from relabel.errors import PredProbsError
from relabel.scoring.confident.ranking import _compute_label_quality_scores
from relabel.scoring.consensus import (
    CLIP_FLOOR,
    _best_quality_labels,
    _check_options,
    _class_major_counts,
    _compute_annotator_agreement_rates,
    _compute_best_temperature,
    _compute_majority_vote,
    _compute_temperature_scale,
    _frame_indexes,
    _frames,
    _prepare,
    _Stats,
    _Table,
)
from relabel.scoring.validation import check_active_learning_inputs, check_pred_probs


def _check_ensemble(pred_probs, name: str, n_classes: int | None = None) -> np.ndarray:
    """P x N x K float64, every model's rows checked as probability vectors."""
    p = np.asarray(pred_probs)
    if p.ndim != 3:
        raise PredProbsError(f"{name} must be 3-D (models x items x classes) for the ensemble functions; got "
                             f"shape {p.shape}. With one model use the non-ensemble function.")
    if p.shape[0] < 1:
        raise PredProbsError(f"{name} holds no model; give at least one items x classes matrix.")
    return np.stack([check_pred_probs(m, n_classes=n_classes, name=f"{name}[{i}]").astype(np.float64)
                     for i, m in enumerate(p)])


def _ensemble_stats(table: _Table, ps: np.ndarray, rate: np.ndarray, consensus: np.ndarray, method: str,
                    adjust: bool) -> _Stats:
    """_compute_stats of consensus.py with one weight per model; ``model_weight`` is the array of them."""
    n_items, k = table.n_items, table.n_classes
    agreement = table.votes[np.arange(n_items), consensus] / table.num_annotations
    multi = table.multi
    p_agree = np.mean(agreement[multi])
    p_other = (1 - p_agree) / (k - 1)
    consensus_multi = consensus[multi]
    most_common = np.argmax(np.bincount(consensus_multi, minlength=k))
    baseline_error = max(float(np.mean(consensus_multi != most_common)), CLIP_FLOOR)
    annotator_weight = np.maximum(1 - (1 - rate) / baseline_error, CLIP_FLOOR)
    model_error = np.array([np.mean(m.argmax(axis=1)[multi] != consensus_multi) for m in ps])
    model_weight = np.maximum(1 - model_error / baseline_error, CLIP_FLOOR) * float(np.sqrt(np.mean(table.num_annotations)))

    row_weight = annotator_weight[table.annotator]
    total = np.bincount(table.item, weights=row_weight, minlength=n_items)
    posterior = _class_major_counts(table.item, table.label, n_items, k, weights=row_weight)
    posterior *= p_agree - p_other
    posterior += p_other * total[:, None]
    posterior += np.tensordot(model_weight, ps, axes=1)
    posterior /= (model_weight.sum() + total)[:, None]
    quality = _compute_label_quality_scores(consensus, posterior, method, adjust)
    return _Stats(consensus, agreement, posterior, quality, model_weight, annotator_weight)


def _ensemble_consensus(table: _Table, ps: np.ndarray, method: str, adjust: bool) -> _Stats:
    """best_quality consensus: majority vote (ties by the mean model), then the posterior's unique argmax."""
    rate = _compute_annotator_agreement_rates(table)
    majority = _compute_majority_vote(table, ps.mean(axis=0))
    first = _ensemble_stats(table, ps, rate, majority, method, adjust)
    return _ensemble_stats(table, ps, rate, _best_quality_labels(first.posterior, majority), method, adjust)


def _scaled(table: _Table, ps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each model temperature-scaled to the votes on its own (ALGORITHMS 2.6); returns (scaled, temperatures)."""
    temperatures = np.array([_compute_best_temperature(table, m) for m in ps])
    return np.stack([_compute_temperature_scale(m, t) for m, t in zip(ps, temperatures)]), temperatures


def get_label_quality_multiannotator_ensemble(labels_multiannotator, pred_probs, *, calibrate_probs: bool = False,
                                              return_detailed_quality: bool = True,
                                              return_annotator_stats: bool = True, return_weights: bool = False,
                                              verbose: bool = True,
                                              label_quality_score_kwargs: dict | None = None) -> dict:
    """cleanlab 2.9's ``get_label_quality_multiannotator_ensemble``: CROWDLAB with P models (P x N x K).

    The same dict as :func:`~relabel.scoring.consensus.get_label_quality_multiannotator` (consensus method
    best_quality); ``model_weight`` is an array with one weight per model, and annotator quality uses their
    mean. ``calibrate_probs`` scales each model by its own temperature. ``verbose`` is accepted and ignored.
    """
    method, adjust = _check_options(["best_quality"], "crowdlab", label_quality_score_kwargs)
    ps = _check_ensemble(pred_probs, "pred_probs")
    table, _, annotations = _prepare(labels_multiannotator, ps[0])
    ps = _check_ensemble(ps, "pred_probs", n_classes=table.n_classes)
    if ps.shape[1] != table.n_items:
        raise PredProbsError(f"pred_probs has {ps.shape[1]} rows per model but the annotations cover "
                             f"{table.n_items} items; give one row per item, in item order.")
    if calibrate_probs:
        ps, _ = _scaled(table, ps)
    stats = _ensemble_consensus(table, ps, method, adjust)
    # Annotator quality weighs the annotators against the models' mean weight, as cleanlab does.
    mean_model = dataclasses.replace(stats, model_weight=float(np.mean(stats.model_weight)))
    item_index, annotator_index = _frame_indexes(labels_multiannotator, annotations)
    info = _frames(table, {"best_quality": mean_model}, ["best_quality"], "crowdlab", method, adjust,
                   return_detailed_quality, return_annotator_stats, item_index, annotator_index)
    if return_weights:
        info["model_weight"] = stats.model_weight
        info["annotator_weight"] = stats.annotator_weight
    return info


def get_active_learning_scores_ensemble(labels_multiannotator=None, pred_probs=None,
                                       pred_probs_unlabeled=None) -> tuple[np.ndarray, np.ndarray]:
    """ActiveLab scores with P models: ``pred_probs`` and ``pred_probs_unlabeled`` are P x N x K.

    As :func:`~relabel.scoring.active.get_active_learning_scores`, with every model's weight counted in an
    item's trust. Unlabelled items: each model is scaled by its temperature, the consensus is the majority
    vote of the models' argmax (ties by their mean, which need not sum to 1: only its order matters), and the
    score is that class's probability under the models' weighted mean mixed with chance level 1/K, the latter
    weighing like one average annotator. Returns ``(scores_labeled, scores_unlabeled)``.
    """
    check_active_learning_inputs(labels_multiannotator, pred_probs, pred_probs_unlabeled, whose="models'")

    n_classes = None
    scores_labeled = np.array([])
    model_weight, mean_annotator_weight, temperatures = None, 1.0, None
    if pred_probs is not None:
        ps = _check_ensemble(pred_probs, "pred_probs")
        table, _, _ = _prepare(labels_multiannotator, ps[0], allow_single_label=True)
        n_classes = table.n_classes
        ps = _check_ensemble(ps, "pred_probs", n_classes=n_classes)
        if ps.shape[1] != table.n_items:
            raise PredProbsError(f"pred_probs has {ps.shape[1]} rows per model but the annotations cover "
                                 f"{table.n_items} items; give one row per item, in item order.")
        if (table.num_annotations == 1).all():
            # Nothing to compare annotators with: no temperature, every source weighs 1, and the consensus is
            # scored by the models' mean.
            mean = ps.mean(axis=0)
            consensus = _compute_majority_vote(table, mean)
            quality = _compute_label_quality_scores(consensus, mean, "self_confidence", False)
            model_weight = np.ones(ps.shape[0])
            annotator_weight = np.where(table.active, 1.0, np.nan)
        else:
            ps, temperatures = _scaled(table, ps)
            stats = _ensemble_consensus(table, ps, "self_confidence", False)
            quality, model_weight, annotator_weight = stats.quality, stats.model_weight, stats.annotator_weight
        mean_annotator_weight = float(np.mean(annotator_weight[table.active]))
        trust = np.bincount(table.item, weights=annotator_weight[table.annotator], minlength=table.n_items)
        trust += model_weight.sum()
        scores_labeled = (quality * trust + (1 / n_classes) * mean_annotator_weight) / (trust + mean_annotator_weight)

    scores_unlabeled = np.array([])
    if pred_probs_unlabeled is not None:
        pu = _check_ensemble(pred_probs_unlabeled, "pred_probs_unlabeled", n_classes=n_classes)
        n_models, _, n_classes = pu.shape
        if model_weight is None:
            model_weight = np.ones(n_models)
        elif model_weight.shape[0] != n_models:
            raise PredProbsError(f"pred_probs_unlabeled holds {n_models} models but pred_probs holds "
                                 f"{model_weight.shape[0]}; give the same models for both.")
        if temperatures is not None:
            pu = np.stack([_compute_temperature_scale(m, t) for m, t in zip(pu, temperatures)])
        # One "annotation" per model: its argmax label; ties go to the class the models' mean favours.
        model_labels = pu.argmax(axis=2).T.astype(float)
        votes, _, _ = _prepare(model_labels, None, allow_single_label=True, n_classes=n_classes)
        consensus = _compute_majority_vote(votes, pu.mean(axis=0))
        uniform = np.full(pu.shape[1:], 1 / n_classes)
        mixed = (np.tensordot(model_weight, pu, axes=1) + mean_annotator_weight * uniform)
        mixed /= model_weight.sum() + mean_annotator_weight
        scores_unlabeled = _compute_label_quality_scores(consensus, mixed, "self_confidence", False)
    return scores_labeled, scores_unlabeled
