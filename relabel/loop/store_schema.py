"""The store's schema: its tables and indexes, the SQL that says which annotations count, and the creation and
migration of a store file (refusing one that is not a relabel store or comes from a newer relabel).

Part of the store (relabel/loop/store.py and its store_* siblings, the only modules that touch SQLite).
"""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from relabel.errors import StoreError
from relabel.loop.span_schema import SPAN_INDEXES, SPAN_TABLES

# 2: an item's text is kept once, in items.text, and no longer also inside items.data (see item_row).
SCHEMA_VERSION = 2
# SQLite's default limit on bound parameters in one statement is 32766 since 3.32 but 999 before; chunk
# lookups so the store works on either.
MAX_SQL_PARAMS = 900
# Rows rewritten per executemany while migrating, so the migration's memory does not grow with the store.
_MIGRATE_BATCH = 10_000

TABLES: dict[str, tuple[dict, object]] = {
    "meta": ({"key": str, "value": str}, "key"),
    "items": ({"item_id": str, "data": str, "text": str, "updated_at": str, "deleted": int}, "item_id"),
    "annotations": ({"annotation_id": str, "item_id": str, "annotator_id": str, "label": str,
                     "created_at": str, "updated_at": str, "kind": str, "skipped": int, "valid": int,
                     "deleted": int, "lead_time": float}, "annotation_id"),
    "rounds": ({"round": int, "status": str, "method": str, "note": str, "items": int, "labelled_items": int,
                "annotations": int, "annotators": int, "expected_remaining_errors": float,
                "expected_low": int, "expected_high": int, "stop_reason": str,
                # the stop signal's estimate for the items the round sends (relabel/scoring/stop_signal.py)
                "batch_expected": float, "batch_low": int, "batch_high": int, "batch_evidence": str,
                "label_issues": int, "model_weight": float, "budget": int, "mode": str,
                "scored_at": str, "selected_at": str, "pushed_at": str, "class_stats": str, "classes": str,
                "inputs": str, "model_report": str}, "round"),
    "scores": ({"round": int, "item_id": str, "labelled": int, "consensus_label": str, "majority_label": str,
                "quality": float,
                "agreement": float, "num_annotations": int, "posterior": float, "model_label": str,
                "model_prob": float, "label_issue": int, "active_score": float, "reviewed": int,
                "final_label": str, "model_top": str, "override": int, "p_wrong": float,
                # data issues (relabel/loop/data_review.py): None where not computed
                "outlier_score": float, "outlier": int, "duplicate_group": int, "duplicate_of": str,
                "conflicting_duplicate": int}, ("round", "item_id")),
    "annotator_scores": ({"round": int, "annotator_id": str, "quality": float, "agreement": float,
                          "worst_class": str, "num_labels": int, "weight": float}, ("round", "annotator_id")),
    "annotation_scores": ({"round": int, "annotation_id": str, "quality": float}, ("round", "annotation_id")),
    # kind: "label" or a data issue ("conflicting_duplicate", "outlier"). audit = 1: drawn at random for the audit
    # (relabel/scoring/audit.py), with its inclusion probability and P(wrong) when drawn; 0 or NULL (stores from
    # before audits): the ranked part. Rank is the push order.
    "selections": ({"round": int, "item_id": str, "rank": int, "quality": float, "reason": str,
                    "suggested": str, "kind": str, "audit": int, "inclusion": float, "p_wrong": float},
                   ("round", "item_id")),
    "review_tasks": ({"round": int, "item_id": str, "mode": str, "target_project": int, "task_id": int,
                      "reason": str, "quality": float, "suggested": str, "pushed_at": str}, ("round", "item_id")),
    "decisions": ({"task_id": int, "reviewer": str, "round": int, "item_id": str, "label": str,
                   "previous_label": str, "outcome": str, "answered_at": str, "annotation_id": str,
                   "collected_at": str, "flagged": int}, ("round", "task_id", "reviewer")),
    # Every answer on a review task as last collected, whether it decides or not (who may decide can change).
    "review_answers": ({"annotation_id": str, "round": int, "task_id": int, "item_id": str, "reviewer": str,
                        "label": str, "decides": int, "answered_at": str}, "annotation_id"),
    # The ledger: every version of every reviewer decision, in the order collected (never updated or deleted).
    "decision_log": ({"id": int, "round": int, "task_id": int, "item_id": str, "reviewer": str, "label": str,
                      "previous_label": str, "change": str, "answered_at": str, "annotation_id": str,
                      "collected_at": str}, "id"),
    # Multi-label projects (issue 24; relabel/loop/multilabel_round.py). Sets are JSON arrays of class names in
    # config order, as annotations.label and decisions.label hold them there ("[]" = "none apply").
    "multilabel_scores": ({"round": int, "item_id": str, "labelled": int, "labels": str, "probabilities": str,
                           "model": str, "quality": float, "agreement": float, "num_annotations": int,
                           "reviewed": int, "final_labels": str, "reason": str}, ("round", "item_id")),
    "multilabel_annotator_classes": ({"round": int, "annotator_id": str, "class": str, "sensitivity": float,
                                      "specificity": float, "num_labels": int},
                                     ("round", "annotator_id", "class")),
    "embeddings": ({"model_id": str, "text_hash": str, "dim": int, "vector": bytes}, ("model_id", "text_hash")),
    "events": ({"id": int, "at": str, "round": int, "step": str, "message": str, "details": str}, "id"),
}
# Span projects' tables (issue 23), beside the classification ones.
TABLES.update(SPAN_TABLES)
INDEXES = [
    ("annotations", ["item_id"]),
    # NOT_SUPERSEDED looks up one annotator's labels of one item for every annotation: without this index SQLite
    # scanned all of that annotator's labels each time, O(annotations^2 / annotators) (>12 min at 300k labels).
    ("annotations", ["item_id", "annotator_id"]),
    ("annotations", ["annotator_id"]),
    ("review_tasks", ["item_id"]),
    ("decisions", ["item_id"]),
    ("decision_log", ["item_id"]),
    *SPAN_INDEXES,
]
# Annotations that count as labels: the source project's, and answers on review tasks by people who are not
# reviewers (relabel/loop/decisions.py), which are ordinary labels of the item.
COUNTED_KINDS = ("annotation", "review_annotation")
COUNTED = "('annotation', 'review_annotation')"
# An annotator's answer on a review task replaces their own earlier label of the item (they looked again), and
# their latest such answer wins: one label per annotator and item, as scoring requires. (SQL over alias `a`.)
NOT_SUPERSEDED = (
    "not exists (select 1 from annotations b where b.item_id = a.item_id and b.annotator_id = a.annotator_id "
    "and b.kind = 'review_annotation' and b.deleted = 0 and b.skipped = 0 and b.valid = 1 "
    "and b.label is not null and b.annotation_id != a.annotation_id "
    "and (a.kind = 'annotation' or b.updated_at > a.updated_at "
    "or (b.updated_at = a.updated_at and b.annotation_id > a.annotation_id)))")
# The annotations (alias a) that count as labels: see StoreItems._scorable_cursor.
# Items a reviewer flagged as bad data in their latest reviewed round: excluded from scoring and final labels.
FLAGGED = ("(select d.item_id from decisions d where d.flagged = 1 and d.round = "
           "(select max(d2.round) from decisions d2 where d2.item_id = d.item_id))")
SCORABLE = (f"a.kind in {COUNTED} and a.deleted = 0 and a.skipped = 0 and a.valid = 1 and {NOT_SUPERSEDED} "
            "and a.label is not null "
            "and a.annotation_id not in (select annotation_id from decisions where annotation_id is not null) "
            f"and a.item_id not in {FLAGGED}")


def now() -> str:
    """The current UTC time as ISO 8601, the one timestamp format in the store."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class StoreSchema:
    """Creating and migrating the store's tables (mixed into relabel.loop.store.Store, whose ``db``, ``path``,
    ``get_meta`` and ``set_meta`` it uses)."""

    def _create_schema(self) -> None:
        """Create missing tables, columns and indexes, record the schema version, and migrate an older store."""
        with self.db.atomic():
            for name, (columns, pk) in TABLES.items():
                if not self.db[name].exists():
                    self.db[name].create(columns, pk=pk, not_null=None)
                else:
                    # A store written by an older relabel lacks columns added since (e.g. rounds.class_stats):
                    # add them empty, so old rounds read as "not recorded" instead of failing.
                    have = set(self.db[name].columns_dict)
                    for column, kind in columns.items():
                        if column not in have:
                            self.db[name].add_column(column, kind)
            for table, cols in INDEXES:
                self.db[table].create_index(cols, if_not_exists=True)
        version = self.get_meta("schema_version")
        if version is None:
            self.set_meta("schema_version", str(SCHEMA_VERSION))
        elif int(version) > SCHEMA_VERSION:
            raise StoreError(f"The store {str(self.path)!r} has schema version {version}, newer than this relabel "
                             f"({SCHEMA_VERSION}); upgrade relabel.")
        elif int(version) < 2:
            self._migrate_text_once()

    def _migrate_text_once(self) -> None:
        """Schema 1 -> 2: drop each item's text from items.data where items.text holds the same string.

        One transaction, so an interrupted migration leaves the store at version 1, to be migrated again.
        SQLite does not give the freed pages back to the file by itself; `VACUUM` does, when the user wants.
        """
        field = self.get_meta("text_field")
        with self.db.atomic():
            if field:
                rows = self.db.execute("select item_id, data, text from items where text is not null")
                updates = []
                for item_id, data, text in rows:
                    row = item_row(item_id, json.loads(data or "{}"), text, field)
                    if row["data"] != data:
                        updates.append((row["data"], item_id))
                    if len(updates) >= _MIGRATE_BATCH:
                        self.db.conn.executemany("update items set data = ? where item_id = ?", updates)
                        updates = []
                self.db.conn.executemany("update items set data = ? where item_id = ?", updates)
            self.db["meta"].upsert({"key": "schema_version", "value": str(SCHEMA_VERSION)}, pk="key")


def refuse_unusable(path: Path) -> None:
    """Refuse a file that is not a SQLite database, or a store from a newer relabel, before anything touches it.

    Opening the store for real switches it to WAL and adds missing tables and columns; a newer relabel's store
    must be refused byte-for-byte unchanged, so it is read first through an immutable, read-only URI, which takes
    no lock and writes no -wal or -shm file.
    """
    if not path.exists() or path.stat().st_size == 0:
        return
    if path.is_dir():
        raise StoreError(f"The store path {str(path)!r} is a folder; point the 'store' setting at a file.")
    uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
    try:
        probe = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f"Cannot open the store {str(path)!r} ({exc}); check the 'store' setting.") from None
    try:
        names = {r[0] for r in probe.execute("select name from sqlite_master where type = 'table'")}
        version = None
        if "meta" in names:
            row = probe.execute("select value from meta where key = 'schema_version'").fetchone()
            version = row[0] if row else None
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"The file {str(path)!r} is not a relabel store ({exc}); point the 'store' setting at "
                         "a new file, or restore the store from a backup.") from None
    finally:
        probe.close()
    if names and "meta" not in names:
        raise StoreError(f"The SQLite file {str(path)!r} is not a relabel store (it has no meta table); point the "
                         "'store' setting at a new file.")
    try:
        newer = version is not None and int(version) > SCHEMA_VERSION
    except ValueError:
        raise StoreError(f"The store {str(path)!r} has an unreadable schema version {version!r}; restore it from a "
                         "backup or point the 'store' setting at a new file.") from None
    if newer:
        raise StoreError(f"The store {str(path)!r} has schema version {version}, newer than this relabel "
                         f"({SCHEMA_VERSION}); upgrade relabel to use it. Nothing in it was changed.")


def item_row(item_id, data: dict, text: str | None, text_field: str | None, updated_at: str | None = None) -> dict:
    """An items row that keeps the text once: in ``text``, dropped from ``data`` when it is the same string
    there (a non-string value stays in ``data``, so reading it back gives exactly what the source had)."""
    if text_field and text is not None and data.get(text_field) == text:
        data = {k: v for k, v in data.items() if k != text_field}
    return {"item_id": str(item_id), "data": json.dumps(data, sort_keys=True), "text": text,
            "updated_at": updated_at, "deleted": 0}


def task_data_of(data: str | None, text: str | None, text_field: str | None) -> dict:
    """The task data of an items row, with its text back under the text field (see ``item_row``)."""
    out = json.loads(data or "{}")
    if text_field and text is not None and text_field not in out:
        out[text_field] = text
    return out
