"""Reading items and annotations from the store: the items, the labels that count (encoded for scoring), and the
annotations left out or counted per annotator.

Part of the store (relabel/loop/store.py and its store_* siblings, the only modules that touch SQLite).
"""
from __future__ import annotations

import sqlite3
from typing import Iterable, Iterator

import numpy as np

from relabel.errors import StoreError
from relabel.loop.store_schema import COUNTED, NOT_SUPERSEDED, SCORABLE, task_data_of
from relabel.loop.store_sql import chunks
from relabel.scoring.annotations import Annotations

# Rows fetched at a time where a read streams (the scoring table): bounded memory, few round trips.
_FETCH_ROWS = 50_000


class StoreItems:
    """The item and annotation reads of Store (mixed into relabel.loop.store.Store, whose ``db``, ``path``,
    ``classes``, ``get_meta`` and ``count`` they use)."""

    def items(self, with_data: bool = True) -> list[dict]:
        """Every live item in the order it was first pulled: item_id, text, and data (dict) ``with_data``."""
        if not with_data:
            return [{"item_id": r[0], "text": r[1]} for r in
                    self.db.execute("select item_id, text from items where deleted = 0 order by rowid")]
        field = self.get_meta("text_field")
        return [{"item_id": item_id, "text": text, "data": task_data_of(data, text, field)}
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
        for chunk in chunks([str(i) for i in item_ids]):
            for item_id, data, text in self.db.execute(f"select item_id, data, text from items where item_id in "
                                                       f"({','.join('?' * len(chunk))})", chunk):
                out[item_id] = task_data_of(data, text, field)
        return out

    def _scorable_rows(self) -> list[tuple]:
        return self._scorable_cursor().fetchall()

    def _scorable_cursor(self) -> sqlite3.Cursor:
        # Only labels that count: a source-project annotation, with a valid choice, not skipped, not deleted,
        # and not an answer to a review task (in-place reviews land in the source project too).
        return self.db.execute(
            "select a.annotation_id, a.item_id, a.annotator_id, a.label from annotations a "
            f"join items i on i.item_id = a.item_id where {SCORABLE} and i.deleted = 0 "
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
        """(item_id, text, consensus_label, quality, label_issue, override) of every live item with its score in
        ``round``, in item order, read row by row so an export's memory does not grow with the project."""
        yield from self.db.execute(
            "select i.item_id, i.text, s.consensus_label, s.quality, s.label_issue, s.override "
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
            f"where a.kind in {COUNTED} and a.deleted = 0 and a.skipped = 0 and i.deleted = 0 and {NOT_SUPERSEDED} "
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

    def scorable_labels_of(self, item_ids: Iterable[str]) -> list[tuple[str, str]]:
        """(item_id, label) of the labels that count in scoring (those of ``annotations_table()``) of some items."""
        out: list[tuple[str, str]] = []
        for chunk in chunks([str(i) for i in item_ids]):
            out += self.db.execute("select a.item_id, a.label from annotations a join items i on i.item_id = "
                                   f"a.item_id where {SCORABLE} and i.deleted = 0 and a.item_id in "
                                   f"({','.join('?' * len(chunk))})", chunk).fetchall()
        return out

    def labels_of(self, item_ids: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
        """The counted labels of some items as (annotator, label) pairs, in the order they were given."""
        out: dict[str, list[tuple[str, str]]] = {}
        for chunk in chunks([str(i) for i in item_ids]):
            for item, annotator, label in self.db.execute(
                    f"select item_id, annotator_id, label from annotations a where kind in {COUNTED} "
                    f"and deleted = 0 and skipped = 0 and valid = 1 and label is not null and {NOT_SUPERSEDED} "
                    f"and item_id in ({','.join('?' * len(chunk))}) order by rowid", chunk).fetchall():
                out.setdefault(item, []).append((annotator, label))
        return out
