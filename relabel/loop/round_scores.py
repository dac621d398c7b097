"""A round's numbers: the model's out-of-sample probabilities, the consensus with its quality per item, annotator
and annotation, confident learning's label issues, ActiveLab scores and the expected wrong labels left, as rows
for the store (made one at a time as the store writes them). The score step (relabel/loop/score_step.py) reads
the inputs from the store and writes these rows back."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from relabel import progress
from relabel.errors import AnnotationError, InputError, LabelError
from relabel.loop import data_review
from relabel.loop.model_phase import hold_round_model, model_inputs
from relabel.loop.store import Store
from relabel.scoring import active
from relabel.scoring import confident
from relabel.scoring.annotations import Annotations
# Imported by name: relabel/__init__.py exports the function `consensus`, which shadows the submodule attribute.
from relabel.scoring.consensus import get_majority_vote_label
from relabel.scoring.consensus_em import consensus as consensus_of
from relabel.scoring.error_estimate import ExpectedErrors, expected_errors as expected_errors_of, recalibrate

# How many of the model's classes the review panel lists: enough to show the runner-up and one more.
MODEL_TOP_CLASSES = 3


class _Rows:
    """A round's rows for the store, made one at a time each time they are iterated: at a million items the list
    of dicts was GBs, and the store writes them as they come (Store.save_scores)."""

    def __init__(self, make: Callable[[], Iterator[dict]], n: int):
        self._make, self._n = make, n

    def __iter__(self) -> Iterator[dict]:
        return self._make()

    def __len__(self) -> int:
        return self._n


@dataclass(frozen=True)
class RoundScores:
    """What ``compute_round_scores`` returns: the round's rows for the store and its figures."""

    method: str
    item_rows: _Rows
    annotator_rows: list
    annotation_rows: _Rows
    expected_errors: ExpectedErrors
    n_issues: int
    model_weight: float | None
    notes: tuple
    class_stats: dict = field(default_factory=dict)
    model_report: object = None
    overrides: int = 0


def check_scorable(store: Store, table: Annotations, n_items: int) -> None:
    if len(table) == 0:
        title = store.get_meta("project_title") or ""
        raise AnnotationError(f"Project {store.project_id} {title!r} has no labelled tasks ({n_items} tasks, "
                              "0 annotations); annotate some tasks in Label Studio, then run relabel again.")
    present = np.unique(table.label)
    if present.size < 2:
        raise AnnotationError(f"Every annotation in project {store.project_id} is '{table.classes[present[0]]}'; "
                              "the model needs at least two classes among the labels, so annotate items of "
                              "another class first.")


def compute_round_scores(table: Annotations, annotation_ids: np.ndarray, item_ids: list[str], texts: list,
                         reviewer_labels: dict[str, str], model, cache,
                         calibration: tuple[float, float] = (1.0, 0.0), reuse=None,
                         data_issues: bool = True, earned_before: bool = False,
                         keep_model: bool = False) -> RoundScores:
    """All of a round's numbers, as rows for the store. Inputs come from the store, so they are trusted.
    ``reuse``: the ModelCache the model phase keeps between rounds (relabel.loop.model_phase); ``keep_model``:
    hold this round's model in it for the next round (relabel serve; model_phase.hold_round_model)."""
    from relabel.models.fit import fit_predict_probs  # the model stack (scikit-learn, maybe torch) loads only when scoring

    classes = table.classes
    k = len(classes)
    n = len(item_ids)
    notes: list[str] = []
    inputs = model_inputs(table, item_ids, texts, reviewer_labels, model)
    rows, reviewed, final = inputs.rows, inputs.reviewed, inputs.final
    majority = get_majority_vote_label(table)
    fitted = fit_predict_probs(item_ids, inputs.texts, inputs.train, k, inputs.settings, cache=cache,
                               progress=progress.enabled(), sample_weight=inputs.weight, reuse=reuse,
                               class_names=classes)
    if keep_model and reuse is not None:
        fitted = hold_round_model(reuse, inputs, k, item_ids, fitted)
    pred_probs = fitted.probs
    p_lab = pred_probs[rows]

    # relabel's default consensus: the model as each item's prior, a confusion matrix per annotator, and the
    # reviewers' decisions as gold. It needs no second annotator, so there is no single-label special case.
    res = consensus_of(table, p_lab, known_labels=final[rows], earned_before=earned_before)
    method = res.method
    annotator_rows = _annotator_rows(table, res.annotator_quality, res.agreement_with_consensus,
                                     res.worst_class, res.num_examples_labeled, res.annotator_weight)
    cons = np.asarray(res.consensus_label, dtype=np.intp)
    quality, agreement, posterior = res.consensus_quality_score, res.annotator_agreement, res.posterior
    ann_quality, model_weight = res.annotation_quality, None

    try:
        issues = np.asarray(confident.find_label_issues(cons, p_lab), dtype=bool)
    except (LabelError, InputError) as exc:
        issues = np.zeros(table.n_items, dtype=bool)
        notes.append(f"Confident learning was skipped ({exc}).")
    class_stats = _class_stats(table, cons, p_lab)
    # The override regime (relabel/scoring/override_evidence.py) is kept beside the class matrices in the round
    # row, for `relabel status` and the report.
    class_stats["override_evidence"] = res.override_evidence.as_dict() if res.override_evidence else None
    if class_stats["override_evidence"] is not None and res.majority_evidence is not None:
        # may the annotators' fitted weights overturn majorities (relabel/scoring/majority_evidence.py)
        class_stats["override_evidence"]["majorities"] = res.majority_evidence.as_dict()

    unl = np.setdiff1d(np.arange(n), rows)
    active_lab = np.full(n, np.nan)
    try:
        scores_l, scores_u = active.get_active_learning_scores(table, p_lab, pred_probs[unl] if unl.size else None)
        active_lab[rows] = scores_l
        if unl.size and scores_u is not None:
            active_lab[unl] = scores_u
    except InputError as exc:
        notes.append(f"ActiveLab scores were skipped ({exc}).")

    post_of_consensus = posterior[np.arange(table.n_items), cons]
    # Expected wrong labels left: each unreviewed labelled item is wrong with probability 1 - P(consensus),
    # the posterior recalibrated on reviewers' earlier decisions once there are enough (relabel.scoring.error_estimate).
    p_wrong = 1.0 - recalibrate(post_of_consensus, calibration)
    unreviewed = ~reviewed[rows]
    expected = expected_errors_of(1.0 - p_wrong[unreviewed])
    override = np.asarray(res.override, dtype=bool)

    model_top = pred_probs.argmax(axis=1)
    # The review panel shows the model's view as its most likely classes; the rest of pred_probs is not kept.
    top_k = np.argsort(-pred_probs, axis=1, kind="stable")[:, :min(MODEL_TOP_CLASSES, k)]
    counts = table.num_annotations()
    lab_pos = np.full(n, -1, dtype=np.intp)
    lab_pos[rows] = np.arange(table.n_items)
    overrides = int((override[lab_pos[lab_pos >= 0]] & ~reviewed[lab_pos >= 0]).sum())

    # Data issues beside the label issues, on the feature rows the model built (relabel/loop/data_review.py).
    # Duplicates conflict when the labels people gave differ (the annotators' majority, or a reviewer's
    # decision): the consensus may already have overruled one copy with the model, hiding that it was labelled
    # two ways.
    current = np.where(reviewed, final, -1)
    current[rows] = np.where(reviewed[rows], final[rows], majority)
    data_cols = {c: [None] * n for c in data_review.COLUMNS}
    if data_issues and fitted.features is not None:
        found, keep = data_review.round_data_issues(fitted.features, texts, current, np.zeros(n, dtype=bool))
        data_cols = data_review.item_columns(found, keep, item_ids)
        found_counts = found.counts() if found is not None else {}
        if any(found_counts.values()):   # said only when there is something to say
            notes.append(f"Data issues: {found_counts['outlier']} outliers, {found_counts['duplicate_groups']} "
                         f"duplicate sets ({found_counts['conflicting_duplicate_groups']} labelled two ways).")

    def item_rows():
        for i, iid in enumerate(item_ids):
            j = lab_pos[i]
            labelled = j >= 0
            final_label = classes[final[i]] if reviewed[i] else (classes[cons[j]] if labelled else None)
            yield {
                "item_id": iid, "labelled": int(labelled),
                "consensus_label": classes[cons[j]] if labelled else None,
                "majority_label": classes[majority[j]] if labelled else None,
                "quality": float(quality[j]) if labelled else None,
                "agreement": float(agreement[j]) if labelled else None,
                "num_annotations": int(counts[j]) if labelled else 0,
                "posterior": float(post_of_consensus[j]) if labelled else None,
                "model_label": classes[model_top[i]], "model_prob": float(pred_probs[i, model_top[i]]),
                "label_issue": int(bool(issues[j])) if labelled else 0,
                "active_score": None if np.isnan(active_lab[i]) else float(active_lab[i]),
                "reviewed": int(reviewed[i]), "final_label": final_label,
                "model_top": json.dumps([[classes[c], round(float(pred_probs[i, c]), 4)] for c in top_k[i]]),
                "override": int(bool(override[j]) and not reviewed[i]) if labelled else 0,
                "p_wrong": float(p_wrong[j]) if labelled and not reviewed[i] else (0.0 if labelled else None),
                **{c: data_cols[c][i] for c in data_review.COLUMNS}}

    def annotation_rows():
        for a, q in zip(annotation_ids, ann_quality):
            yield {"annotation_id": str(a), "quality": float(q)}

    return RoundScores(method, _Rows(item_rows, n), annotator_rows, _Rows(annotation_rows, len(annotation_ids)),
                   expected, int(issues.sum()), model_weight, tuple(notes), class_stats, fitted.report, overrides)


def _class_stats(table: Annotations, cons: np.ndarray, p_lab: np.ndarray) -> dict:
    """K x K matrices the round report draws, kept in the round row as JSON (a few KB even for many classes),
    because the store keeps only the model's top class per item, not the full pred_probs they need.

    ``annotator_confusion[c][g]``: annotations labelled g on items whose consensus is c (one bincount).
    ``confident_joint[g][t]``, ``noise_matrix[g][t]`` = P(given g | true t), ``py``: confident learning on the
    consensus labels and the model's out-of-sample probabilities (absent when it cannot run, e.g. one class).
    """
    k = len(table.classes)
    pairs = cons[table.item] * k + table.label
    stats: dict = {"annotator_confusion": np.bincount(pairs, minlength=k * k).reshape(k, k).tolist()}
    try:
        py, noise, _, joint = confident.estimate_py_and_noise_matrices_from_probabilities(cons, p_lab)
    except (LabelError, InputError):
        return stats
    stats.update(confident_joint=np.asarray(joint).tolist(), noise_matrix=np.asarray(noise).tolist(),
                 py=np.asarray(py).tolist())
    return stats


def _annotator_rows(table: Annotations, quality, agreement, worst, n_labels, weight) -> list[dict]:
    quality, agreement, weight = (np.asarray(x, dtype=float) for x in (quality, agreement, weight))
    rows = []
    for a, aid in enumerate(table.annotator_ids):
        w = worst[a]
        worst_name = table.classes[int(w)] if isinstance(w, (int, np.integer)) and int(w) >= 0 else \
            (None if w is None or (isinstance(w, float) and np.isnan(w)) else str(w))
        rows.append({"annotator_id": str(aid), "quality": _num(quality[a]), "agreement": _num(agreement[a]),
                     "worst_class": worst_name, "num_labels": int(n_labels[a]), "weight": _num(weight[a])})
    return rows


def _num(x) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)
