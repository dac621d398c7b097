"""The score step of a round: every item's consensus and quality (relabel/loop/round_scores.py computes them),
recalibrated on reviewers' earlier decisions, written to the store as one round."""
from __future__ import annotations

import json

import numpy as np

from relabel.errors import StoreError
from relabel.loop.loop_state import LoopState
from relabel.loop.round_scores import check_scorable, compute_round_scores
from relabel.loop.store_schema import now
from relabel.loop.summaries import ScoreSummary
from relabel.scoring.error_estimate import fit_recalibration


def score_round(loop: LoopState) -> ScoreSummary:
    """Loop.score: score every item into a new round (or the open one nobody has seen yet)."""
    latest = loop.store.latest_round()
    if latest is not None and latest["status"] == "selected":
        # A push was started: some of its review tasks may already be in Label Studio. Re-scoring would
        # replace the selection and orphan them, so the round has to be finished first.
        raise StoreError(f"Round {latest['round']}'s review tasks were selected and may already be partly in "
                         "Label Studio; run `relabel push` (or `relabel round`) to finish that round first.")
    if latest is not None and latest["status"] == "scored":
        rnd = latest["round"]       # re-score an open round nobody has seen yet
    else:
        rnd = (latest["round"] + 1) if latest else 1
    loop.working_on(rnd)
    table, annotation_ids = loop.store.scoring_table()
    item_ids, texts = loop.store.item_texts()
    flagged = loop.store.flagged_items()
    if flagged:   # bad data (a reviewer's flag): out of scoring and final labels, kept in the store and export
        keep = [n for n, iid in enumerate(item_ids) if iid not in flagged]
        item_ids, texts = [item_ids[n] for n in keep], [texts[n] for n in keep]
    check_scorable(loop.store, table, len(item_ids))
    result = compute_round_scores(table, annotation_ids, item_ids, texts, loop.store.final_labels(), loop.model,
                                  cache=loop.store, calibration=_recalibration(loop), reuse=loop.model_cache,
                                  data_issues=bool(loop.review.data_issues),
                                  earned_before=_earned_before(loop, rnd),
                                  keep_model=getattr(loop, "keep_round_model", False))
    round_row = {"round": rnd, "status": "scored", "method": result.method, "note": " ".join(result.notes),
                 "items": len(item_ids), "labelled_items": table.n_items, "annotations": len(table),
                 "annotators": table.n_annotators, "expected_remaining_errors": result.expected_errors.expected,
                 "expected_low": result.expected_errors.low, "expected_high": result.expected_errors.high,
                 "stop_reason": None,
                 "label_issues": result.n_issues, "model_weight": result.model_weight, "scored_at": now(),
                 "selected_at": None, "pushed_at": None, "budget": None, "mode": None,
                 "class_stats": json.dumps(result.class_stats), "classes": json.dumps(list(table.classes)),
                 "inputs": loop.store.inputs_signature(),
                 "model_report": json.dumps(result.model_report.to_dict()) if result.model_report else None}
    loop.store.save_scores(round_row, result.item_rows, result.annotator_rows, result.annotation_rows)
    loop.store.log_event("score", f"round {rnd} scored with {result.method}", round=rnd,
                         details={"notes": list(result.notes)})
    return ScoreSummary(round=rnd, method=result.method, items=len(item_ids), labelled_items=table.n_items,
                        annotations=len(table), annotators=table.n_annotators, label_issues=result.n_issues,
                        expected_remaining_errors=result.expected_errors.expected, notes=result.notes,
                        expected_low=result.expected_errors.low, expected_high=result.expected_errors.high,
                        overrides=result.overrides,
                        override_evidence=result.class_stats.get("override_evidence"),
                        model=result.model_report.summary() if result.model_report else None)


def _recalibration(loop: LoopState) -> tuple[float, float]:
    """Platt-scaling parameters from reviewers' decisions: was the consensus with posterior q right?"""
    pairs = loop.store.decision_posteriors()
    if not pairs:
        return 1.0, 0.0
    q, right = zip(*pairs)
    return fit_recalibration(np.array(q), np.array(right))


def _earned_before(loop, rnd: int) -> bool:
    """Whether the round before ``rnd`` granted the model overrides (relabel/scoring/override_evidence.py)."""
    if rnd <= 1:
        return False
    evidence = (loop.store.class_stats(rnd - 1) or {}).get("override_evidence") or {}
    return evidence.get("regime") == "earned"
