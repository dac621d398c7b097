"""Writing a pull into the store: items and annotations upserted by id, and what the source deleted marked so.

Part of the store (relabel/loop/store.py and its store_* siblings, the only modules that touch SQLite).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from connectors.records import AnnotationRecord, Pull
from relabel.errors import preview
from relabel.loop.store_schema import item_row
from relabel.loop.store_sql import chunks


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


class StorePull:
    """The pull part of Store (mixed into relabel.loop.store.Store, whose ``db``, ``get_meta`` and ``count`` it
    uses): one transaction per pull or batch, so an interrupted pull leaves whole batches and is pulled again."""

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
        rows = [annotation_row(r) for r in records]
        before = self._annotation_fingerprints([r["annotation_id"] for r in rows])
        new = sum(1 for r in rows if r["annotation_id"] not in before)
        changed = sum(1 for r in rows if r["annotation_id"] in before
                      and before[r["annotation_id"]] != fingerprint(r))
        return rows, new, changed, duplicates

    def _upsert(self, items, annotation_rows: list[dict]) -> None:
        if items:
            field = self.get_meta("text_field")
            self.db["items"].upsert_all([item_row(it.item_id, it.data, it.text, field, it.updated_at)
                                         for it in items], pk="item_id")
        if annotation_rows:
            self.db["annotations"].upsert_all(annotation_rows, pk="annotation_id")

    def _mark_gone_from_tasks(self, item_ids: list[str], present: set[str]) -> int:
        """Mark live source annotations of ``item_ids`` that are not in ``present`` as deleted."""
        gone = []
        for chunk in chunks(item_ids):
            gone += [r[0] for r in self.db.execute(
                f"select annotation_id from annotations where deleted = 0 and kind = 'annotation' and item_id in "
                f"({','.join('?' * len(chunk))})", chunk).fetchall() if r[0] not in present]
        for chunk in chunks(gone):
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
            for chunk in chunks([str(i) for i in item_ids]):
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
        for chunk in chunks(gone):
            self.db.execute(f"update {table} set deleted = 1 where {key} in ({','.join('?' * len(chunk))})", chunk)
        return len(gone)

    def _annotation_fingerprints(self, ids: list[str]) -> dict[str, tuple]:
        out: dict[str, tuple] = {}
        for chunk in chunks([str(i) for i in ids]):
            for row in self.db.query(f"select * from annotations where annotation_id in "
                                     f"({','.join('?' * len(chunk))})", chunk):
                out[row["annotation_id"]] = fingerprint(row)
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


def annotation_row(r: AnnotationRecord) -> dict:
    return {"annotation_id": str(r.annotation_id), "item_id": str(r.item_id), "annotator_id": str(r.annotator_id),
            "label": r.label, "created_at": r.created_at, "updated_at": r.updated_at, "kind": r.kind,
            "skipped": int(bool(r.skipped)), "valid": int(bool(r.valid)), "deleted": 0,
            "lead_time": getattr(r, "lead_time", None)}


def fingerprint(row: dict) -> tuple:
    return (row["item_id"], row["annotator_id"], row["label"], row["updated_at"], row["kind"],
            int(row["skipped"]), int(row["valid"]), int(row["deleted"]))
