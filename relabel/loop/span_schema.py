"""The store's tables for span projects (issue 23), created beside the classification tables (additively: the
store creates missing tables on open, relabel/loop/store_schema.py).

Spans are kept in long format, one row per (annotation, control, region, label): a region with several labels
(``choice="multiple"``) is several rows. Each annotation's raw Label Studio result is kept too
(``span_annotations.result``), so a region relabel could not score (past the end of the text, no label, ...) is
never lost: it is named in the round's output and stays in the store as Label Studio gave it.
"""
from __future__ import annotations

SPAN_TABLES: dict[str, tuple[dict, object]] = {
    "span_annotations": ({"annotation_id": str, "item_id": str, "annotator_id": str, "updated_at": str,
                          "cancelled": int, "deleted": int, "result": str, "problems": str}, "annotation_id"),
    "spans": ({"annotation_id": str, "item_id": str, "annotator_id": str, "control": str, "start": int, "end": int,
               "label": str, "text": str}, ("annotation_id", "control", "start", "end", "label")),
    "span_consensus": ({"round": int, "item_id": str, "control": str, "start": int, "end": int, "label": str},
                       ("round", "item_id", "control", "start", "end", "label")),
    "span_item_scores": ({"round": int, "item_id": str, "quality": float, "n_annotators": int, "n_spans": int,
                          "reviewed": int, "reason": str}, ("round", "item_id")),
    # control and label "" : the annotator over all controls and labels
    "span_annotator_scores": ({"round": int, "annotator_id": str, "control": str, "label": str, "n_items": int,
                               "n_spans": int, "n_consensus": int, "exact_precision": float, "exact_recall": float,
                               "exact_f1": float, "relaxed_precision": float, "relaxed_recall": float,
                               "relaxed_f1": float}, ("round", "annotator_id", "control", "label")),
    "span_pairwise": ({"round": int, "annotator_a": str, "annotator_b": str, "shared_items": int, "spans": int,
                       "exact_f1": float, "relaxed_f1": float}, ("round", "annotator_a", "annotator_b")),
    # Every reviewer answer on a span review task as last collected; spans: JSON list of [control, start, end, label].
    "span_review_answers": ({"annotation_id": str, "round": int, "task_id": int, "item_id": str, "reviewer": str,
                             "decides": int, "updated_at": str, "spans": str, "collected_at": str}, "annotation_id"),
    # The ledger of span decisions: every version of every answer, in the order collected (never updated).
    "span_decision_log": ({"id": int, "annotation_id": str, "round": int, "task_id": int, "item_id": str,
                           "reviewer": str, "spans": str, "change": str, "updated_at": str, "collected_at": str}, "id"),
}
SPAN_INDEXES = [("spans", ["item_id"]), ("span_annotations", ["item_id"]), ("span_review_answers", ["item_id"])]
