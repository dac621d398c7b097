"""Rounds and their scores in the store: the round rows, the per-item, per-annotator and per-annotation scores,
the selection sent to review, and the stop signal's figures.

Part of the store (relabel/loop/store.py and its store_* siblings, the only modules that touch SQLite).
"""
from __future__ import annotations

import hashlib
import json
from typing import Iterable

from relabel.errors import StoreError, preview
from relabel.loop.store_schema import TABLES, now
from relabel.loop.store_sql import chunks, insert_rows, insert_stream


class StoreRounds:
    """The round and score records of Store (mixed into relabel.loop.store.Store, whose ``db`` and ``classes``
    they use)."""

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
        so a caller can generate a million of them without holding them (relabel.loop.round_scores does)."""
        rnd = int(round_row["round"])
        existing = self.db.execute("select status from rounds where round = ?", [rnd]).fetchone()
        if existing is not None and existing[0] == "pushed":
            raise StoreError(f"Round {rnd} was already pushed; its scores are final. Start a new round.")
        with self.db.atomic():
            for table in ("scores", "annotator_scores", "annotation_scores", "selections"):
                self.db.execute(f"delete from {table} where round = ?", [rnd])
            self.db["rounds"].upsert(round_row, pk="round")
            insert_stream(self.db, "scores", item_rows, round=rnd)
            insert_stream(self.db, "annotator_scores", annotator_rows, round=rnd)
            insert_stream(self.db, "annotation_scores", annotation_rows, round=rnd)

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
        unknown = sorted(set(columns) - set(TABLES["scores"][0]))
        if unknown:
            raise StoreError(f"No score columns {preview(unknown)}; choose from {', '.join(TABLES['scores'][0])}.")
        rows = self.db.execute(f"select {', '.join('s.' + c for c in columns)} from scores s join items i "
                               f"on i.item_id = s.item_id where s.round = ? order by i.rowid", [round]).fetchall()
        return {c: [r[n] for r in rows] for n, c in enumerate(columns)}

    def lowest_quality(self, round: int, limit: int) -> list[dict]:
        """The round's ``limit`` labelled, unreviewed items of lowest quality (ties in item order), with text."""
        return list(self.db.query(
            "select s.*, i.text from scores s join items i on i.item_id = s.item_id "
            "where s.round = ? and s.labelled = 1 and s.reviewed = 0 and s.quality is not null "
            "order by s.quality, i.rowid limit ?", [round, int(limit)]))

    def model_top(self, round: int, item_ids: Iterable[str]) -> dict[str, list[tuple[str, float]]]:
        """The model's top classes with probabilities for some items of a round (what the review panel shows)."""
        out: dict[str, list[tuple[str, float]]] = {}
        for chunk in chunks([str(i) for i in item_ids]):
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
        for chunk in chunks(sorted({str(i) for i in item_ids})):
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
            insert_rows(self.db, "selections", [{**r, "round": round} for r in rows])
            self.db.execute("update rounds set status = 'selected', selected_at = ?, budget = ?, mode = ? "
                            "where round = ?", [now(), budget, mode, round])

    def audit_outcomes(self) -> list[tuple[str, int, float, float, bool]]:
        """(item, round, P(wrong) when drawn, inclusion probability, reviewer corrected the consensus shown) per
        decided audit item (confirmed or corrected; skips and disputes decide nothing), oldest round first."""
        rows = self.db.execute(
            "select s.item_id, s.round, s.p_wrong, s.inclusion, max(d.outcome = 'corrected') from selections s "
            "join decisions d on d.round = s.round and d.item_id = s.item_id where s.audit = 1 and "
            "d.outcome in ('confirmed', 'corrected') group by s.round, s.item_id order by s.round, s.item_id")
        return [(str(i), int(r), float(p), float(pi), bool(c)) for i, r, p, pi, c in rows.fetchall()]

    def decided_item_ids(self) -> set[str]:
        """Items a reviewer decided (confirmed or corrected): their final label is the reviewer's."""
        return {r[0] for r in self.db.execute(
            "select distinct item_id from decisions where outcome in ('confirmed', 'corrected')").fetchall()}

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

    def save_expected_total(self, round: int, expected: float, low: int, high: int) -> None:
        """Restate the round's expected wrong labels left (the stop signal raised its batch's estimate)."""
        with self.db.atomic():
            self.db.execute("update rounds set expected_remaining_errors = ?, expected_low = ?, expected_high = ? "
                            "where round = ?", [float(expected), int(low), int(high), round])

    def mark_stopped(self, round: int, reason: str) -> None:
        """Close a round that pushes nothing (the stop signal), keeping its selection for the record."""
        with self.db.atomic():
            self.db.execute("update rounds set status = 'stopped', stop_reason = ? where round = ?", [reason, round])

    def selection(self, round: int) -> list[dict]:
        return list(self.db.query("select * from selections where round = ? order by rank", [round]))
