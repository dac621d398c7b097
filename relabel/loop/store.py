"""The SQLite store: the only module that touches SQLite (through sqlite-utils, in WAL mode).

It holds what relabel pulled (items, annotations), what each round computed (scores, annotator_scores,
annotation_scores, selections), what it pushed (review_tasks), what reviewers answered (decisions), the embedding
cache, an audit log (events) and a little metadata (project id, classes, pull cursor, schema version).

Every multi-row write runs inside one transaction (``Database.atomic``), so a failure half way leaves nothing
half-written. Secrets (API keys) are never written here.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import sqlite_utils

from connectors.records import AnnotationRecord, ProjectInfo, Pull, PushedTask, ReviewAnswer
from relabel.scoring.annotations import Annotations
from relabel.loop.decisions import change_of, latest_per_reviewer, requeue_note, task_outcomes
from relabel.errors import InputError, StoreError, preview

# 2: an item's text is kept once, in items.text, and no longer also inside items.data (see _item_row).
SCHEMA_VERSION = 2
_events_log = logging.getLogger("relabel.events")
# SQLite's default limit on bound parameters in one statement is 32766 since 3.32 but 999 before; chunk
# lookups so the store works on either.
_MAX_SQL_PARAMS = 900
# Another process (a second `relabel` command, a test) may hold the write lock for a moment: wait this many
# milliseconds before giving up with "database is locked".
_BUSY_TIMEOUT_MS = 10_000
# Rows fetched at a time where a read streams (the scoring table): bounded memory, few round trips.
_FETCH_ROWS = 50_000
# Rows rewritten per executemany while migrating, so the migration's memory does not grow with the store.
_MIGRATE_BATCH = 10_000

_TABLES: dict[str, tuple[dict, object]] = {
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
    "selections": ({"round": int, "item_id": str, "rank": int, "quality": float, "reason": str,
                    "suggested": str, "kind": str}, ("round", "item_id")),
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
    "embeddings": ({"model_id": str, "text_hash": str, "dim": int, "vector": bytes}, ("model_id", "text_hash")),
    "events": ({"id": int, "at": str, "round": int, "step": str, "message": str, "details": str}, "id"),
}
_INDEXES = [
    ("annotations", ["item_id"]),
    # _NOT_SUPERSEDED looks up one annotator's labels of one item for every annotation: without this index SQLite
    # scanned all of that annotator's labels each time, O(annotations^2 / annotators) (>12 min at 300k labels).
    ("annotations", ["item_id", "annotator_id"]),
    ("annotations", ["annotator_id"]),
    ("review_tasks", ["item_id"]),
    ("decisions", ["item_id"]),
    ("decision_log", ["item_id"]),
]
# Annotations that count as labels: the source project's, and answers on review tasks by people who are not
# reviewers (relabel/loop/decisions.py), which are ordinary labels of the item.
COUNTED_KINDS = ("annotation", "review_annotation")
_COUNTED = "('annotation', 'review_annotation')"
# An annotator's answer on a review task replaces their own earlier label of the item (they looked again), and
# their latest such answer wins: one label per annotator and item, as scoring requires. (SQL over alias `a`.)
_NOT_SUPERSEDED = (
    "not exists (select 1 from annotations b where b.item_id = a.item_id and b.annotator_id = a.annotator_id "
    "and b.kind = 'review_annotation' and b.deleted = 0 and b.skipped = 0 and b.valid = 1 "
    "and b.label is not null and b.annotation_id != a.annotation_id "
    "and (a.kind = 'annotation' or b.updated_at > a.updated_at "
    "or (b.updated_at = a.updated_at and b.annotation_id > a.annotation_id)))")
# The annotations (alias a) that count as labels: see Store._scorable_rows.
# Items a reviewer flagged as bad data in their latest reviewed round: excluded from scoring and final labels.
_FLAGGED = ("(select d.item_id from decisions d where d.flagged = 1 and d.round = "
            "(select max(d2.round) from decisions d2 where d2.item_id = d.item_id))")
_SCORABLE = (f"a.kind in {_COUNTED} and a.deleted = 0 and a.skipped = 0 and a.valid = 1 and {_NOT_SUPERSEDED} "
             "and a.label is not null "
             "and a.annotation_id not in (select annotation_id from decisions where annotation_id is not null) "
             f"and a.item_id not in {_FLAGGED}")


def now() -> str:
    """The current UTC time as ISO 8601, the one timestamp format in the store."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class PullSummary:
    """What a pull changed in the store."""

    items: int
    new: int
    changed: int
    unchanged: int
    deleted: int
    warnings: tuple[str, ...] = ()
    deleted_items: int = 0
    skipped: int = 0            # of the pulled annotations, how many were skips (cancelled): no label


class Store:
    """A relabel store for one Label Studio project.

    >>> store = Store("relabel.db")            # doctest: +SKIP
    >>> store.bind_project(info)               # refuses a store made for another project
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            if self.path.parent and not self.path.parent.exists():
                raise StoreError(f"The folder {str(self.path.parent)!r} of the store does not exist; "
                                 "create it or point the 'store' setting elsewhere.")
            if str(self.path) != ":memory:":
                _refuse_unusable(self.path)
            self.db = _Database(self.path)
            self.db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            if str(self.path) != ":memory:":
                self.db.enable_wal()
            self._create_schema()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"Cannot open the store {str(self.path)!r} ({exc}); is it a relabel store? "
                             "Point the 'store' setting at a new file or fix the file.") from exc

    # ---- lifecycle --------------------------------------------------------------------------------------
    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _create_schema(self) -> None:
        with self.db.atomic():
            for name, (columns, pk) in _TABLES.items():
                if not self.db[name].exists():
                    self.db[name].create(columns, pk=pk, not_null=None)
                else:
                    # A store written by an older relabel lacks columns added since (e.g. rounds.class_stats):
                    # add them empty, so old rounds read as "not recorded" instead of failing.
                    have = set(self.db[name].columns_dict)
                    for column, kind in columns.items():
                        if column not in have:
                            self.db[name].add_column(column, kind)
            for table, cols in _INDEXES:
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
                    row = _item_row(item_id, json.loads(data or "{}"), text, field)
                    if row["data"] != data:
                        updates.append((row["data"], item_id))
                    if len(updates) >= _MIGRATE_BATCH:
                        self.db.conn.executemany("update items set data = ? where item_id = ?", updates)
                        updates = []
                self.db.conn.executemany("update items set data = ? where item_id = ?", updates)
            self.db["meta"].upsert({"key": "schema_version", "value": str(SCHEMA_VERSION)}, pk="key")

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one consistent state (a WAL read transaction), whatever writers commit meanwhile."""
        if self.db.conn.in_transaction:      # already inside a transaction: it is the snapshot
            yield
            return
        self.db.execute("begin")
        try:
            yield
        finally:
            self.db.execute("rollback")       # nothing was written; ends the read transaction

    # ---- meta ---------------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("select value from meta where key = ?", [key]).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str | None) -> None:
        with self.db.atomic():
            self.db["meta"].upsert({"key": key, "value": value}, pk="key")

    @property
    def project_id(self) -> int | None:
        value = self.get_meta("project_id")
        return None if value is None else int(value)

    @property
    def classes(self) -> tuple[str, ...]:
        value = self.get_meta("classes")
        return tuple(json.loads(value)) if value else ()

    def check_project(self, project_id: int) -> None:
        """Raise StoreError when this store was made for another project."""
        mine = self.project_id
        if mine is not None and int(project_id) != mine:
            raise StoreError(f"The store {str(self.path)!r} belongs to project {mine}, not project {project_id}; "
                             "use another 'store' path for this project.")

    def bind_project(self, info: ProjectInfo) -> None:
        """Record the project this store is for (its id, classes, label tag); refuse a different project."""
        self.check_project(info.project_id)
        with self.db.atomic():
            for key, value in (("project_id", str(info.project_id)), ("project_title", info.title),
                               ("classes", json.dumps(list(info.classes))), ("label_tag", info.label_tag),
                               ("text_field", info.text_field)):
                self.db["meta"].upsert({"key": key, "value": value}, pk="key")

    # ---- events (audit log) -----------------------------------------------------------------------------
    def log_event(self, step: str, message: str, round: int | None = None, details: dict | None = None) -> None:
        """Append one line to the audit log (and to the "relabel.events" logger, which `relabel -v` shows).
        Never pass secrets in ``details``."""
        _events_log.info("%s%s: %s", f"round {round} " if round is not None else "", step, message)
        with self.db.atomic():
            self.db["events"].insert({"at": now(), "round": round, "step": step, "message": message,
                                      "details": json.dumps(details) if details else None})

    def events(self, step: str | None = None) -> list[dict]:
        where, params = ("where step = ?", [step]) if step else ("", [])
        return list(self.db.query(f"select * from events {where} order by id", params))

    # ---- pull -------------------------------------------------------------------------------------------
    def apply_pull(self, pull: Pull) -> PullSummary:
        """Upsert the pulled items and annotations (by id) in one transaction; mark deletions on a reconcile."""
        rows, new, changed, duplicates = self._annotation_rows(pull.annotations)
        warnings = list(pull.warnings) + duplicates
        deleted = deleted_items = 0
        with self.db.atomic():
            self._upsert(pull.items, rows)
            if pull.all_annotation_ids is not None:
                deleted = self._mark_missing_deleted("annotations", "annotation_id", pull.all_annotation_ids,
                                                     "kind = 'annotation'")
            if pull.all_item_ids is not None:
                # Tasks deleted in Label Studio: without this they stay live items forever (unlabelled once
                # their annotations are marked deleted), counted in every round and written by export.
                deleted_items = self._mark_missing_deleted("items", "item_id", pull.all_item_ids)
            if pull.cursor is not None:
                self.db["meta"].upsert({"key": "pull_cursor", "value": pull.cursor}, pk="key")
        return PullSummary(items=len(pull.items), new=new, changed=changed,
                           unchanged=len(rows) - new - changed, deleted=deleted, warnings=tuple(warnings),
                           deleted_items=deleted_items, skipped=sum(r["skipped"] for r in rows))

    def apply_pull_batches(self, batches: Iterable[Pull], full: bool = False) -> PullSummary:
        """Write a pull batch by batch, in memory bounded by one batch; each batch must hold whole tasks.

        Each batch is one transaction. Because a batch holds every annotation of each of its tasks, annotations
        of those tasks that the batch lacks were deleted in the source and are marked so. With ``full`` the
        batches are the whole project: items and annotations that no batch had are marked deleted at the end.
        The cursor is written last, with those marks, so an interrupted pull is simply pulled again.
        """
        totals = dict(items=0, new=0, changed=0, unchanged=0, deleted=0, deleted_items=0, skipped=0)
        warnings: list[str] = []
        cursor = None
        if full:
            for table in ("seen_items", "seen_annotations"):
                self.db.execute(f"create temp table if not exists {table} (id text primary key)")
                self.db.execute(f"delete from temp.{table}")
        for pull in batches:
            summary = self._apply_batch(pull, full)
            for key in totals:
                totals[key] += getattr(summary, key)
            warnings.extend(summary.warnings)
            cursor = pull.cursor if pull.cursor is not None else cursor
        with self.db.atomic():
            if full:
                totals["deleted"] += self._mark_unseen_deleted("annotations", "annotation_id", "seen_annotations",
                                                               "kind = 'annotation'")
                totals["deleted_items"] += self._mark_unseen_deleted("items", "item_id", "seen_items")
            if cursor is not None:
                self.db["meta"].upsert({"key": "pull_cursor", "value": cursor}, pk="key")
        return PullSummary(warnings=tuple(warnings), **totals)

    def _apply_batch(self, pull: Pull, full: bool) -> PullSummary:
        rows, new, changed, duplicates = self._annotation_rows(pull.annotations)
        ids = [r["annotation_id"] for r in rows]
        item_ids = [str(it.item_id) for it in pull.items]
        with self.db.atomic():
            self._upsert(pull.items, rows)
            deleted = self._mark_gone_from_tasks(item_ids, set(ids))
            if full:
                self.db.conn.executemany("insert or ignore into temp.seen_items values (?)", ((i,) for i in item_ids))
                self.db.conn.executemany("insert or ignore into temp.seen_annotations values (?)",
                                         ((i,) for i in ids))
        return PullSummary(items=len(item_ids), new=new, changed=changed, unchanged=len(rows) - new - changed,
                           deleted=deleted, skipped=sum(r["skipped"] for r in rows),
                           warnings=tuple(pull.warnings) + tuple(duplicates))

    def _annotation_rows(self, records: Iterable[AnnotationRecord]) -> tuple[list[dict], int, int, list[str]]:
        """Store rows of pulled annotations (the first of a repeated id; a warning names the others), and how
        many are new and how many changed."""
        records, duplicates = _first_of_each(records)
        rows = [_annotation_row(r) for r in records]
        before = self._annotation_fingerprints([r["annotation_id"] for r in rows])
        new = sum(1 for r in rows if r["annotation_id"] not in before)
        changed = sum(1 for r in rows if r["annotation_id"] in before
                      and before[r["annotation_id"]] != _fingerprint(r))
        return rows, new, changed, duplicates

    def _upsert(self, items, annotation_rows: list[dict]) -> None:
        if items:
            field = self.get_meta("text_field")
            self.db["items"].upsert_all([_item_row(it.item_id, it.data, it.text, field, it.updated_at)
                                         for it in items], pk="item_id")
        if annotation_rows:
            self.db["annotations"].upsert_all(annotation_rows, pk="annotation_id")

    def _mark_gone_from_tasks(self, item_ids: list[str], present: set[str]) -> int:
        """Mark live source annotations of ``item_ids`` that are not in ``present`` as deleted."""
        gone = []
        for chunk in _chunks(item_ids):
            gone += [r[0] for r in self.db.execute(
                f"select annotation_id from annotations where deleted = 0 and kind = 'annotation' and item_id in "
                f"({','.join('?' * len(chunk))})", chunk).fetchall() if r[0] not in present]
        for chunk in _chunks(gone):
            self.db.execute(f"update annotations set deleted = 1 where annotation_id in "
                            f"({','.join('?' * len(chunk))})", chunk)
        return len(gone)

    def _mark_unseen_deleted(self, table: str, key: str, seen: str, where: str = "1") -> int:
        cursor = self.db.execute(f"update {table} set deleted = 1 where deleted = 0 and {where} and "
                                 f"{key} not in (select id from temp.{seen})")
        return cursor.rowcount

    def live_item_ids(self) -> list[str]:
        """The ids of every live item."""
        return [r[0] for r in self.db.execute("select item_id from items where deleted = 0")]

    def mark_items_deleted(self, item_ids: Iterable[str]) -> tuple[int, int]:
        """Mark items deleted in the source as deleted, with their annotations (a deleted task takes its
        annotations along); returns how many (items, annotations) were marked."""
        n_items = n_annotations = 0
        with self.db.atomic():
            for chunk in _chunks([str(i) for i in item_ids]):
                marks = ",".join("?" * len(chunk))
                n_items += self.db.execute(f"update items set deleted = 1 where deleted = 0 and item_id in ({marks})",
                                           chunk).rowcount
                n_annotations += self.db.execute(f"update annotations set deleted = 1 where deleted = 0 and "
                                                 f"kind = 'annotation' and item_id in ({marks})", chunk).rowcount
        return n_items, n_annotations

    def live_counts(self) -> tuple[int, int, int]:
        """(items, finished annotations, skipped annotations) that are live: what the source should count too."""
        items = self.count("items", "deleted = 0")
        finished, skipped = self.db.execute(
            "select coalesce(sum(a.skipped = 0), 0), coalesce(sum(a.skipped = 1), 0) from annotations a "
            "join items i on i.item_id = a.item_id where a.kind = 'annotation' and a.deleted = 0 "
            "and i.deleted = 0").fetchone()
        return items, int(finished), int(skipped)

    def _mark_missing_deleted(self, table: str, key: str, present, where: str = "1") -> int:
        """Mark live rows whose id is not in ``present`` (a full reconcile's ids) as deleted; return how many."""
        keep = {str(i) for i in present}
        live = [r[0] for r in self.db.execute(f"select {key} from {table} where deleted = 0 and {where}").fetchall()]
        gone = [i for i in live if i not in keep]
        for chunk in _chunks(gone):
            self.db.execute(f"update {table} set deleted = 1 where {key} in ({','.join('?' * len(chunk))})", chunk)
        return len(gone)

    def _annotation_fingerprints(self, ids: list[str]) -> dict[str, tuple]:
        out: dict[str, tuple] = {}
        for chunk in _chunks([str(i) for i in ids]):
            for row in self.db.query(f"select * from annotations where annotation_id in "
                                     f"({','.join('?' * len(chunk))})", chunk):
                out[row["annotation_id"]] = _fingerprint(row)
        return out

    # ---- reading items and annotations -----------------------------------------------------------------
    def items(self, with_data: bool = True) -> list[dict]:
        """Every live item in the order it was first pulled: item_id, text, and data (dict) ``with_data``."""
        if not with_data:
            return [{"item_id": r[0], "text": r[1]} for r in
                    self.db.execute("select item_id, text from items where deleted = 0 order by rowid")]
        field = self.get_meta("text_field")
        return [{"item_id": item_id, "text": text, "data": _item_data(data, text, field)}
                for item_id, text, data in self.db.execute(
                    "select item_id, text, data from items where deleted = 0 order by rowid")]

    def item_texts(self) -> tuple[list[str], list[str | None]]:
        """The ids and texts of every live item in pull order, as two lists (no dict per item: scoring reads a
        million of them)."""
        rows = self.db.execute("select item_id, text from items where deleted = 0 order by rowid")
        ids: list[str] = []
        texts: list[str | None] = []
        while chunk := rows.fetchmany(_FETCH_ROWS):
            i, t = zip(*chunk)
            ids.extend(i)
            texts.extend(t)
        return ids, texts

    def item_data(self, item_ids: Iterable[str]) -> dict[str, dict]:
        """The task data of some items, as the source holds it (the text put back under its field)."""
        field = self.get_meta("text_field")
        out = {}
        for chunk in _chunks([str(i) for i in item_ids]):
            for item_id, data, text in self.db.execute(f"select item_id, data, text from items where item_id in "
                                                       f"({','.join('?' * len(chunk))})", chunk):
                out[item_id] = _item_data(data, text, field)
        return out

    def _scorable_rows(self) -> list[tuple]:
        return self._scorable_cursor().fetchall()

    def _scorable_cursor(self) -> sqlite3.Cursor:
        # Only labels that count: a source-project annotation, with a valid choice, not skipped, not deleted,
        # and not an answer to a review task (in-place reviews land in the source project too).
        return self.db.execute(
            "select a.annotation_id, a.item_id, a.annotator_id, a.label from annotations a "
            f"join items i on i.item_id = a.item_id where {_SCORABLE} and i.deleted = 0 "
            "order by i.rowid, a.rowid")

    def annotations_table(self) -> Annotations:
        """The labels that count, encoded once: valid, non-skipped, non-deleted; classes from the project."""
        return self.scoring_table()[0]

    def scoring_table(self) -> tuple[Annotations, np.ndarray]:
        """``annotations_table()`` plus the annotation id of each row (for per-annotation scores)."""
        classes = self.classes
        if not classes:
            raise StoreError(f"The store {str(self.path)!r} does not know the project's classes yet; "
                             "run `relabel init` (or `relabel pull`) first.")
        # Encoded as the rows stream in (ids to codes in order of first appearance, as Annotations.from_records
        # does): at 3M annotations the fetched tuples and their id lists were ~1 GB more (bench_scale, issue 15).
        items: dict = {}
        annotators: dict = {}
        position = {c: k for k, c in enumerate(classes)}
        ann_ids, item, annotator, label = [], [], [], []
        cursor = self._scorable_cursor()
        while rows := cursor.fetchmany(_FETCH_ROWS):
            a, i, w, g = zip(*rows)
            ann_ids.append(np.array(a, dtype=object))
            item.append(np.fromiter((items.setdefault(v, len(items)) for v in i), dtype=np.intp, count=len(i)))
            annotator.append(np.fromiter((annotators.setdefault(v, len(annotators)) for v in w), dtype=np.intp,
                                         count=len(w)))
            label.append(np.fromiter((position.get(v, -1) for v in g), dtype=np.intp, count=len(g)))
        del rows
        labels = np.concatenate(label) if label else np.zeros(0, dtype=np.intp)
        if (labels < 0).any():   # a stored label that is not a class (the labeling config changed): name it
            return self._scoring_table_of(self._scorable_rows(), classes)
        ids = lambda index: np.array(list(index) + [None], dtype=object)[:-1]  # noqa: E731 (1-D even for tuples)
        table = Annotations(np.concatenate(item) if item else np.zeros(0, dtype=np.intp),
                            np.concatenate(annotator) if annotator else np.zeros(0, dtype=np.intp), labels,
                            ids(items), ids(annotators), tuple(classes))
        return table, np.concatenate(ann_ids) if ann_ids else np.zeros(0, dtype=object)

    @staticmethod
    def _scoring_table_of(rows: list[tuple], classes) -> tuple[Annotations, np.ndarray]:
        ann_ids = np.array([r[0] for r in rows], dtype=object)
        table = Annotations.from_records([r[1] for r in rows], [r[2] for r in rows],
                                         np.array([r[3] for r in rows], dtype=object), classes=classes)
        return table, ann_ids

    def export_items(self, round: int) -> Iterator[tuple]:
        """(item_id, text, consensus_label, quality, label_issue, override, outlier_score, outlier, duplicate_of,
        conflicting_duplicate) of every live item with its score in ``round``, in item order, read row by row so
        an export's memory does not grow with the project."""
        yield from self.db.execute(
            "select i.item_id, i.text, s.consensus_label, s.quality, s.label_issue, s.override, s.outlier_score, "
            "s.outlier, s.duplicate_of, s.conflicting_duplicate "
            "from items i left join scores s on s.item_id = i.item_id and s.round = ? "
            "where i.deleted = 0 order by i.rowid", [round])

    def excluded_annotations(self) -> list[dict]:
        """Live annotations that are stored but not scored because their choice is not a class of the labeling
        config (or several were chosen): annotation_id, item_id, annotator_id, label."""
        return list(self.db.query(
            "select a.annotation_id, a.item_id, a.annotator_id, a.label from annotations a join items i "
            "on i.item_id = a.item_id where a.kind = 'annotation' and a.deleted = 0 and a.valid = 0 "
            "and i.deleted = 0 order by a.rowid"))

    def annotation_counts(self) -> dict[str, int]:
        """Number of counted labels per annotator (what Label Studio's own counts should match)."""
        return {r[0]: r[1] for r in self.db.execute(
            "select a.annotator_id, count(*) from annotations a join items i on i.item_id = a.item_id "
            f"where a.kind in {_COUNTED} and a.deleted = 0 and a.skipped = 0 and i.deleted = 0 and {_NOT_SUPERSEDED} "
            "group by a.annotator_id order by a.annotator_id").fetchall()}

    def annotation_activity(self) -> tuple[list[tuple[str, int, int]], list[tuple[str, float]]]:
        """The report's time per label and skips, over live source-project annotations: per annotator
        (annotator_id, annotations incl. skips, skips), and every recorded (annotator_id, lead_time seconds)."""
        # No join with items: a reconcile marks the annotations of a deleted task deleted too, and the join
        # tripled the cost of this query on 300,000 annotations.
        live = "from annotations where kind = 'annotation' and deleted = 0"
        counts = self.db.execute(f"select annotator_id, count(*), sum(skipped) {live} "
                                 "group by annotator_id order by annotator_id").fetchall()
        times = self.db.execute(f"select annotator_id, lead_time {live} and lead_time is not null").fetchall()
        return counts, times

    def count(self, table: str, where: str = "", params: list | None = None) -> int:
        if table not in _TABLES:
            raise StoreError(f"No table {table!r} in the store.")
        sql = f"select count(*) from {table}" + (f" where {where}" if where else "")
        return int(self.db.execute(sql, params or []).fetchone()[0])

    # ---- rounds and scores ------------------------------------------------------------------------------
    def inputs_signature(self) -> str:
        """A digest of everything a round's scores and selection depend on: the live items, every annotation
        (label, skip, validity, deletion) and every reviewer decision. Equal digests: nothing new to score."""
        digest = hashlib.sha256()
        for sql in ("select item_id from items where deleted = 0 order by item_id",
                    "select annotation_id, item_id, annotator_id, label, kind, skipped, valid, deleted "
                    "from annotations order by annotation_id",
                    "select round, task_id, reviewer, label, outcome from decisions order by round, task_id, reviewer"):
            for row in self.db.execute(sql):
                digest.update(json.dumps(row).encode())
            digest.update(b"|")
        return digest.hexdigest()

    def rounds(self) -> list[dict]:
        return list(self.db.query("select * from rounds order by round"))

    def latest_round(self) -> dict | None:
        rows = list(self.db.query("select * from rounds order by round desc limit 1"))
        return rows[0] if rows else None

    def save_scores(self, round_row: dict, item_rows: Iterable[dict], annotator_rows: Iterable[dict],
                    annotation_rows: Iterable[dict]) -> None:
        """Write a round and all its scores in one transaction, replacing an earlier unpushed scoring of it.

        The rows may be any iterables of dicts (a column a dict leaves out is NULL): they are read once, row by row,
        so a caller can generate a million of them without holding them (relabel.loop.rounds does)."""
        rnd = int(round_row["round"])
        existing = self.db.execute("select status from rounds where round = ?", [rnd]).fetchone()
        if existing is not None and existing[0] == "pushed":
            raise StoreError(f"Round {rnd} was already pushed; its scores are final. Start a new round.")
        with self.db.atomic():
            for table in ("scores", "annotator_scores", "annotation_scores", "selections"):
                self.db.execute(f"delete from {table} where round = ?", [rnd])
            self.db["rounds"].upsert(round_row, pk="round")
            _insert_stream(self.db, "scores", item_rows, round=rnd)
            _insert_stream(self.db, "annotator_scores", annotator_rows, round=rnd)
            _insert_stream(self.db, "annotation_scores", annotation_rows, round=rnd)

    def round_classes(self, round: int) -> tuple[str, ...]:
        """The classes, in order, that a round was scored with: its matrices and label indexes follow them.

        Rounds scored before relabel recorded them fall back to the project's current classes (right unless the
        labeling config changed since; the report checks the matrices' size).
        """
        row = self.db.execute("select classes from rounds where round = ?", [round]).fetchone()
        return tuple(json.loads(row[0])) if row and row[0] else self.classes

    def class_stats(self, round: int) -> dict:
        """The per-class matrices a round recorded when it was scored ({} for rounds scored before they were)."""
        row = self.db.execute("select class_stats from rounds where round = ?", [round]).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    def model_report(self, round: int) -> dict:
        """What the model phase chose and scored for a round (relabel.models.search.ModelReport as a dict; {} when
        the round used a pred_probs file or was scored before relabel recorded it)."""
        row = self.db.execute("select model_report from rounds where round = ?", [round]).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    def score_columns(self, round: int, columns: Iterable[str]) -> dict[str, list]:
        """Some columns of a round's scores as lists in item order (one query, no per-row dicts: for reports
        over 100,000 items)."""
        columns = list(columns)
        unknown = sorted(set(columns) - set(_TABLES["scores"][0]))
        if unknown:
            raise StoreError(f"No score columns {preview(unknown)}; choose from {', '.join(_TABLES['scores'][0])}.")
        rows = self.db.execute(f"select {', '.join('s.' + c for c in columns)} from scores s join items i "
                               f"on i.item_id = s.item_id where s.round = ? order by i.rowid", [round]).fetchall()
        return {c: [r[n] for r in rows] for n, c in enumerate(columns)}

    def lowest_quality(self, round: int, limit: int) -> list[dict]:
        """The round's ``limit`` labelled, unreviewed items of lowest quality (ties in item order), with text."""
        return list(self.db.query(
            "select s.*, i.text from scores s join items i on i.item_id = s.item_id "
            "where s.round = ? and s.labelled = 1 and s.reviewed = 0 and s.quality is not null "
            "order by s.quality, i.rowid limit ?", [round, int(limit)]))

    def scorable_labels_of(self, item_ids: Iterable[str]) -> list[tuple[str, str]]:
        """(item_id, label) of the labels that count in scoring (those of ``annotations_table()``) of some items."""
        out: list[tuple[str, str]] = []
        for chunk in _chunks([str(i) for i in item_ids]):
            out += self.db.execute("select a.item_id, a.label from annotations a join items i on i.item_id = "
                                   f"a.item_id where {_SCORABLE} and i.deleted = 0 and a.item_id in "
                                   f"({','.join('?' * len(chunk))})", chunk).fetchall()
        return out

    def labels_of(self, item_ids: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
        """The counted labels of some items as (annotator, label) pairs, in the order they were given."""
        out: dict[str, list[tuple[str, str]]] = {}
        for chunk in _chunks([str(i) for i in item_ids]):
            for item, annotator, label in self.db.execute(
                    f"select item_id, annotator_id, label from annotations a where kind in {_COUNTED} "
                    f"and deleted = 0 and skipped = 0 and valid = 1 and label is not null and {_NOT_SUPERSEDED} "
                    f"and item_id in ({','.join('?' * len(chunk))}) order by rowid", chunk).fetchall():
                out.setdefault(item, []).append((annotator, label))
        return out

    def model_top(self, round: int, item_ids: Iterable[str]) -> dict[str, list[tuple[str, float]]]:
        """The model's top classes with probabilities for some items of a round (what the review panel shows)."""
        out: dict[str, list[tuple[str, float]]] = {}
        for chunk in _chunks([str(i) for i in item_ids]):
            for item, top in self.db.execute(
                    f"select item_id, model_top from scores where round = ? and item_id in "
                    f"({','.join('?' * len(chunk))})", [round, *chunk]).fetchall():
                if top:
                    out[item] = [(label, float(p)) for label, p in json.loads(top)]
        return out

    def scores(self, round: int) -> list[dict]:
        return list(self.db.query("select s.* from scores s join items i on i.item_id = s.item_id "
                                  "where s.round = ? order by i.rowid", [round]))

    def scores_of(self, round: int, item_ids: Iterable[str]) -> dict[str, dict]:
        """The round's score rows of some items, by item id (a /predict call asks for a few tasks at a time)."""
        out: dict[str, dict] = {}
        for chunk in _chunks(sorted({str(i) for i in item_ids})):
            marks = ",".join("?" * len(chunk))
            for row in self.db.query(f"select * from scores where round = ? and item_id in ({marks})", [round, *chunk]):
                out[row["item_id"]] = row
        return out

    def annotator_scores(self, round: int) -> list[dict]:
        return list(self.db.query("select * from annotator_scores where round = ? "
                                  "order by quality is null, quality, agreement, annotator_id", [round]))

    def annotation_scores(self, round: int) -> dict[str, float]:
        return {r["annotation_id"]: r["quality"]
                for r in self.db.query("select * from annotation_scores where round = ?", [round])}

    def save_selection(self, round: int, rows: list[dict], budget: int, mode: str) -> None:
        """Record which items a round sends to review (fixed once made, so pushing again adds nothing)."""
        with self.db.atomic():
            self.db.execute("delete from selections where round = ?", [round])
            _insert(self.db, "selections", [{**r, "round": round} for r in rows])
            self.db.execute("update rounds set status = 'selected', selected_at = ?, budget = ?, mode = ? "
                            "where round = ?", [now(), budget, mode, round])

    def decision_posteriors(self) -> list[tuple[float, bool]]:
        """(posterior of the consensus when the item was sent, reviewer kept that label) per decision."""
        rows = self.db.execute(
            "select s.posterior, d.outcome from decisions d join scores s on s.round = d.round and "
            "s.item_id = d.item_id where d.outcome in ('confirmed', 'corrected') and s.posterior is not null")
        return [(float(q), outcome == "confirmed") for q, outcome in rows.fetchall()]

    def latest_decided_round(self, before: int) -> tuple[int, int, int] | None:
        """(round, items decided, items corrected) of the latest round before ``before`` whose reviewers decided
        something (confirmed or corrected; skips and disputes decide nothing), or None."""
        row = self.db.execute(
            "select round, count(distinct item_id), count(distinct case when outcome = 'corrected' then item_id end) "
            "from decisions where outcome in ('confirmed', 'corrected') and round < ? group by round "
            "order by round desc limit 1", [int(before)]).fetchone()
        return None if row is None else (int(row[0]), int(row[1]), int(row[2]))

    def save_batch_estimate(self, round: int, expected: float, low: int, high: int, evidence: str) -> None:
        """Record the stop signal's estimate of wrong labels among the items ``round`` sends."""
        with self.db.atomic():
            self.db.execute("update rounds set batch_expected = ?, batch_low = ?, batch_high = ?, batch_evidence = ? "
                            "where round = ?", [float(expected), int(low), int(high), evidence, round])

    def mark_stopped(self, round: int, reason: str) -> None:
        """Close a round that pushes nothing (the stop signal), keeping its selection for the record."""
        with self.db.atomic():
            self.db.execute("update rounds set status = 'stopped', stop_reason = ? where round = ?", [reason, round])

    def selection(self, round: int) -> list[dict]:
        return list(self.db.query("select * from selections where round = ? order by rank", [round]))

    # ---- review tasks and decisions ---------------------------------------------------------------------
    def record_pushed(self, round: int, tasks: list[PushedTask], selection: list[dict],
                      mark_pushed: bool) -> int:
        """Record review tasks the connector created (only after it returned); returns how many were new."""
        by_item = {r["item_id"]: r for r in selection}
        stamp = now()
        rows = []
        for t in tasks:
            sel = by_item.get(str(t.item_id), {})
            rows.append({"round": int(t.round), "item_id": str(t.item_id), "mode": t.mode,
                         "target_project": int(t.target_project), "task_id": int(t.task_id),
                         "reason": sel.get("reason"), "quality": sel.get("quality"),
                         "suggested": sel.get("suggested"), "pushed_at": stamp})
        known = {(r["round"], r["item_id"]) for r in self.review_tasks()}
        new = sum(1 for r in rows if (r["round"], r["item_id"]) not in known)
        with self.db.atomic():
            if rows:
                self.db["review_tasks"].upsert_all(rows, pk=("round", "item_id"))
            if mark_pushed:
                self.db.execute("update rounds set status = 'pushed', pushed_at = ? where round = ?", [stamp, round])
            if tasks:   # what the connector returned is all there is: no write of this push is in doubt now
                self.db.execute("delete from meta where key = 'push_in_flight'")
        return new

    def push_started(self, round: int) -> float | None:
        """Mark that a push of ``round`` is about to send writes; return when an earlier, unfinished push
        started (a ``time.time()``), or None. The mark is cleared by ``record_pushed``."""
        earlier = self.get_meta("push_in_flight")
        self.set_meta("push_in_flight", json.dumps({"round": int(round), "at": time.time()}))
        return None if not earlier else float(json.loads(earlier)["at"])

    def forget_review_tasks(self, target_project: int) -> tuple[int, int]:
        """Drop the unanswered review tasks of a review project that no longer exists; keep every decision.
        Returns (review tasks forgotten, decisions kept)."""
        with self.db.atomic():
            kept = self.count("decisions", "task_id in (select task_id from review_tasks where target_project = ?)",
                              [int(target_project)])
            forgotten = self.db.execute(
                "delete from review_tasks where target_project = ? and not exists (select 1 from decisions d "
                "where d.task_id = review_tasks.task_id and d.round = review_tasks.round)",
                [int(target_project)]).rowcount
        return forgotten, kept

    def review_tasks(self, round: int | None = None) -> list[dict]:
        where, params = ("where round = ?", [round]) if round is not None else ("", [])
        return list(self.db.query(f"select * from review_tasks {where} order by round, rowid", params))

    def record_decisions(self, answers: list[ReviewAnswer]) -> list[dict]:
        """Record reviewers' answers as decisions and return the rows that are new or changed.

        One current decision per (round, task, reviewer): their latest answer. An edit replaces it and both
        versions stay in ``decision_log``; each returned row carries ``change`` ("new", "changed", "edited").
        Outcomes are then recomputed per task, so reviewers who disagree are all marked "disputed".
        """
        tasks = {(r["round"], r["task_id"]): r for r in self.review_tasks()}
        for a in answers:
            if (int(a.round), int(a.task_id)) not in tasks:
                raise StoreError(f"Review task {a.task_id} (item {a.item_id!r}, round {a.round}) was never recorded "
                                 "as pushed; run `relabel push` to record it before collecting.")
        previous = {}
        for r in self.db.query("select round, item_id, consensus_label from scores where item_id in "
                               "(select item_id from review_tasks)"):
            previous[(r["round"], r["item_id"])] = r["consensus_label"]
        current = {(r["round"], r["task_id"], r["reviewer"]): r for r in self.db.query("select * from decisions")}
        stamp = now()
        rows, log = [], []
        for a in latest_per_reviewer(answers):
            task = tasks[(int(a.round), int(a.task_id))]
            change = change_of(current.get((task["round"], int(a.task_id), str(a.reviewer))), a)
            if change is None:
                continue
            prev = task["suggested"] or previous.get((task["round"], task["item_id"]))
            row = {"task_id": int(a.task_id), "reviewer": str(a.reviewer), "round": int(task["round"]),
                   "item_id": task["item_id"], "label": a.label, "previous_label": prev, "outcome": None,
                   "answered_at": a.answered_at, "annotation_id": a.annotation_id, "collected_at": stamp,
                   "flagged": int(bool(getattr(a, "flagged", False)))}
            rows.append(row)
            log.append({**{k: row[k] for k in ("round", "task_id", "item_id", "reviewer", "label",
                                                "previous_label", "answered_at", "annotation_id",
                                                "collected_at")}, "change": change})
        if not rows:
            return []
        with self.db.atomic():
            self.db["decisions"].upsert_all(rows, pk=("round", "task_id", "reviewer"))
            self.db["decision_log"].insert_all(log)
            touched = sorted({(r["round"], r["task_id"]) for r in rows})
            for rnd, task_id in touched:
                mine = list(self.db.query("select rowid, * from decisions where round = ? and task_id = ? "
                                          "order by rowid", [rnd, task_id]))
                for r, outcome in zip(mine, task_outcomes(mine)):
                    self.db.execute("update decisions set outcome = ? where rowid = ?", [outcome, r["rowid"]])
        outcomes = {(r["round"], r["task_id"], r["reviewer"]): r["outcome"] for r in self.db.query(
            "select round, task_id, reviewer, outcome from decisions")}
        return [{**r, "outcome": outcomes[(r["round"], r["task_id"], r["reviewer"])], "change": l["change"]}
                for r, l in zip(rows, log)]

    def record_review_annotations(self, answers: list[ReviewAnswer]) -> int:
        """Keep answers on review-project tasks by people who do not decide as ordinary annotations of the
        item (kind "review_annotation"); returns how many are new or changed. In-place answers are already
        annotations of the source project (pulled), so only review-project tasks are recorded here."""
        tasks = {(r["round"], r["task_id"]): r for r in self.review_tasks()}
        records = []
        for a in answers:
            task = tasks.get((int(a.round), int(a.task_id)))
            if task is None or task["mode"] != "project" or a.annotation_id is None:
                continue
            records.append(AnnotationRecord(
                annotation_id=str(a.annotation_id), item_id=task["item_id"], annotator_id=str(a.reviewer),
                label=a.label, created_at=a.answered_at, updated_at=a.answered_at, kind="review_annotation",
                skipped=a.label is None))
        if not records:
            return 0
        before = self._annotation_fingerprints([r.annotation_id for r in records])
        rows = [_annotation_row(r) for r in records]
        fresh = sum(1 for r in rows if before.get(r["annotation_id"]) != _fingerprint(r))
        with self.db.atomic():
            self.db["annotations"].upsert_all(rows, pk="annotation_id")
        return fresh

    def decisions(self) -> list[dict]:
        return list(self.db.query("select * from decisions order by round, answered_at, rowid"))

    def decision_log(self, item_id: str | None = None) -> list[dict]:
        """Every version of every decision, oldest first (optionally of one item)."""
        where, params = ("where item_id = ?", [str(item_id)]) if item_id is not None else ("", [])
        return list(self.db.query(f"select * from decision_log {where} order by id", params))

    def final_labels(self) -> dict[str, str]:
        """Each reviewed item's reviewer label: from its latest round whose task was answered with a label and
        not disputed (skips and disputed tasks decide nothing, see relabel/loop/decisions.py)."""
        out: dict[str, str] = {}
        for r in self.db.query("select item_id, label from decisions where label is not null "
                               f"and outcome != 'disputed' and item_id not in {_FLAGGED} "
                               "order by round, answered_at, rowid"):
            out[r["item_id"]] = r["label"]
        return out

    def flagged_items(self) -> set[str]:
        """Items a reviewer flagged as bad data (in the latest round that reviewed them)."""
        return {r[0] for r in self.db.execute(_FLAGGED[1:-1])}

    def record_review_answers(self, answers: list[ReviewAnswer], deciders: set[str]) -> None:
        """Remember every answer on review tasks and whether it decides: a task answered only by people who do
        not decide is no longer waiting (Label Studio counts it done) and goes back to review."""
        tasks = {(r["round"], r["task_id"]): r["item_id"] for r in self.review_tasks()}
        rows = [{"annotation_id": str(a.annotation_id), "round": int(a.round), "task_id": int(a.task_id),
                 "item_id": tasks.get((int(a.round), int(a.task_id)), str(a.item_id)), "reviewer": str(a.reviewer),
                 "label": a.label, "decides": int(str(a.reviewer) in deciders), "answered_at": a.answered_at}
                for a in answers if a.annotation_id is not None]
        if rows:
            with self.db.atomic():
                self.db["review_answers"].upsert_all(rows, pk="annotation_id")

    def requeued_items(self) -> dict[str, str]:
        """Items to send back to review first, with why: their latest answered task was skipped, disputed, or
        answered only by people who do not decide, and they have no reviewer label and no task still waiting."""
        final, waiting = self.final_labels(), self.waiting_item_ids()
        notes = {item: (rows[0]["round"], requeue_note(rows)) for item, rows in self.latest_task_decisions().items()}
        for rnd, item, who in self.db.execute(
                "select a.round, a.item_id, group_concat(distinct a.reviewer) from review_answers a where not exists "
                "(select 1 from decisions d where d.round = a.round and d.task_id = a.task_id) "
                "group by a.round, a.task_id order by a.round").fetchall():
            if rnd >= notes.get(item, (0, ""))[0]:
                notes[item] = (rnd, f"answered in round {rnd} only by non-reviewers ({who.replace(',', ', ')})")
        return {item: note for item, (_, note) in notes.items() if item not in final and item not in waiting}

    def latest_task_decisions(self) -> dict[str, list[dict]]:
        """Per item, the current decisions on its latest answered review task (one row per reviewer)."""
        tasks: dict[str, dict[tuple, list[dict]]] = {}
        for r in self.db.query("select * from decisions order by rowid"):
            tasks.setdefault(r["item_id"], {}).setdefault((r["round"], r["task_id"]), []).append(r)
        return {item: groups[max(groups)] for item, groups in tasks.items()}

    def waiting_item_ids(self) -> set[str]:
        """Items with a pushed review task that nobody has answered yet."""
        return {r[0] for r in self.db.execute(
            "select t.item_id from review_tasks t where not exists "
            "(select 1 from decisions d where d.task_id = t.task_id and d.round = t.round) and not exists "
            "(select 1 from review_answers a where a.task_id = t.task_id and a.round = t.round)").fetchall()}

    # ---- embedding cache (used by relabel.models.fit) ---------------------------------------------------------
    def cached_embeddings(self, model_id: str, text_hashes: list[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``text_hashes`` for ``model_id`` (float32), keyed by text hash."""
        out: dict[str, np.ndarray] = {}
        for chunk in _chunks(list(dict.fromkeys(text_hashes))):
            sql = (f"select text_hash, dim, vector from embeddings where model_id = ? and text_hash in "
                   f"({','.join('?' * len(chunk))})")
            for h, dim, blob in self.db.execute(sql, [model_id, *chunk]).fetchall():
                out[h] = np.frombuffer(blob, dtype=np.float32, count=dim).copy()
        return out

    def save_embeddings(self, model_id: str, text_hashes: list[str], vectors: np.ndarray) -> None:
        """Cache one float32 vector per text hash for ``model_id`` (replacing any earlier vector)."""
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[0] != len(text_hashes):
            raise InputError(f"save_embeddings needs one row of vectors per text hash; got {len(text_hashes)} "
                             f"hashes and an array of shape {vectors.shape}.")
        if not np.isfinite(vectors).all():
            bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
            raise InputError(f"Embeddings for text hashes {preview([text_hashes[i] for i in bad])} contain NaN or "
                             "infinite values; fix the featurizer before caching.")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = int(vectors.shape[1])
        rows = [(model_id, str(h), dim, vectors[i].tobytes()) for i, h in enumerate(text_hashes)]
        with self.db.atomic():
            self.db.conn.executemany("insert or replace into embeddings (model_id, text_hash, dim, vector) "
                                     "values (?, ?, ?, ?)", rows)


# ---- helpers ------------------------------------------------------------------------------------------------
def _item_row(item_id, data: dict, text: str | None, text_field: str | None, updated_at: str | None = None) -> dict:
    """An items row that keeps the text once: in ``text``, dropped from ``data`` when it is the same string
    there (a non-string value stays in ``data``, so reading it back gives exactly what the source had)."""
    if text_field and text is not None and data.get(text_field) == text:
        data = {k: v for k, v in data.items() if k != text_field}
    return {"item_id": str(item_id), "data": json.dumps(data, sort_keys=True), "text": text,
            "updated_at": updated_at, "deleted": 0}


def _item_data(data: str | None, text: str | None, text_field: str | None) -> dict:
    """The task data of an items row, with its text back under the text field (see ``_item_row``)."""
    out = json.loads(data or "{}")
    if text_field and text is not None and text_field not in out:
        out[text_field] = text
    return out

def _first_of_each(records: Iterable[AnnotationRecord]) -> tuple[list[AnnotationRecord], list[str]]:
    """Each annotation id once (its first copy) and a warning per duplicated id, instead of refusing the pull:
    one odd annotation must not block a whole project."""
    first: dict[str, AnnotationRecord] = {}
    copies: dict[str, list[AnnotationRecord]] = {}
    for r in records:
        if r.annotation_id in first:
            copies.setdefault(r.annotation_id, []).append(r)
        else:
            first[r.annotation_id] = r
    warnings = [f"Annotation {aid} came {len(more) + 1} times (on items "
                f"{preview([first[aid].item_id] + [m.item_id for m in more])}); the copy on item "
                f"{first[aid].item_id!r} is kept and the others are skipped; check it in Label Studio."
                for aid, more in copies.items()]
    return list(first.values()), warnings


def _refuse_unusable(path: Path) -> None:
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


def _annotation_row(r: AnnotationRecord) -> dict:
    return {"annotation_id": str(r.annotation_id), "item_id": str(r.item_id), "annotator_id": str(r.annotator_id),
            "label": r.label, "created_at": r.created_at, "updated_at": r.updated_at, "kind": r.kind,
            "skipped": int(bool(r.skipped)), "valid": int(bool(r.valid)), "deleted": 0,
            "lead_time": getattr(r, "lead_time", None)}


def _fingerprint(row: dict) -> tuple:
    return (row["item_id"], row["annotator_id"], row["label"], row["updated_at"], row["kind"],
            int(row["skipped"]), int(row["valid"]), int(row["deleted"]))


def _insert(db: sqlite_utils.Database, table: str, rows: list[dict]) -> None:
    if rows:
        db[table].insert_all(rows, pk=_TABLES[table][1])


class _Database(sqlite_utils.Database):
    """sqlite-utils' Database whose outermost ``atomic()`` begins IMMEDIATE: the write lock is taken (waiting up to
    the busy timeout) before the transaction's first read. With sqlite-utils' deferred BEGIN a transaction that
    read first and wrote second failed at once with "database is locked" (SQLITE_BUSY_SNAPSHOT, which no busy
    timeout retries) whenever another connection committed in between: the lock's heartbeat did, during the
    thousand batches of a 1M-item pull (bench_scale, issue 15)."""

    @contextlib.contextmanager
    def atomic(self):
        if self.conn.in_transaction:       # nested: sqlite-utils' savepoint
            with super().atomic():
                yield self
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.rollback()
            raise
        else:
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                self.rollback()
                raise


def _insert_stream(db: sqlite_utils.Database, table: str, rows: Iterable[dict], **fixed) -> None:
    """Insert dicts row by row with one prepared statement (sqlite3's executemany over a generator): no list of
    the rows and no copy of each dict, where sqlite-utils' insert_all built each batch's parameters in Python
    (at a million items the copies of the round's score rows were GBs). ``fixed`` columns are the same for every
    row. A key that is not a column of the table is refused, as insert_all refused it."""
    columns = list(_TABLES[table][0])
    known = set(columns)
    positions = [(c, fixed[c]) if c in fixed else (c, None) for c in columns]

    def values(row: dict) -> tuple:
        if not row.keys() <= known:
            raise StoreError(f"Rows for {table!r} have no column {preview(sorted(set(row) - known))}; the columns "
                             f"are {', '.join(columns)}.")
        return tuple(value if column in fixed else row.get(column) for column, value in positions)

    db.conn.executemany(f"insert into [{table}] ({', '.join(f'[{c}]' for c in columns)}) "
                        f"values ({', '.join('?' * len(columns))})", map(values, rows))


def _chunks(values: list, size: int = _MAX_SQL_PARAMS) -> Iterator[list]:
    for start in range(0, len(values), size):
        yield values[start:start + size]
