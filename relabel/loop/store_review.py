"""Review tasks and reviewers' decisions in the store: what was pushed, every answer collected, the decisions and
their ledger, and which items wait for review or go back to it.

Part of the store (relabel/loop/store.py and its store_* siblings, the only modules that touch SQLite).
"""
from __future__ import annotations

import json
import time

from connectors.records import AnnotationRecord, PushedTask, ReviewAnswer
from relabel.errors import StoreError
from relabel.loop.decisions import change_of, latest_per_reviewer, requeue_note, task_outcomes
from relabel.loop.store_pull import annotation_row, fingerprint
from relabel.loop.store_schema import FLAGGED, now


class StoreReview:
    """The review records of Store (mixed into relabel.loop.store.Store, whose ``db``, ``get_meta``,
    ``set_meta``, ``count`` and ``_annotation_fingerprints`` they use)."""

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
        rows = [annotation_row(r) for r in records]
        fresh = sum(1 for r in rows if before.get(r["annotation_id"]) != fingerprint(r))
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
                               f"and outcome != 'disputed' and item_id not in {FLAGGED} "
                               "order by round, answered_at, rowid"):
            out[r["item_id"]] = r["label"]
        return out

    def flagged_items(self) -> set[str]:
        """Items a reviewer flagged as bad data (in the latest round that reviewed them)."""
        return {r[0] for r in self.db.execute(FLAGGED[1:-1])}

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

    def waiting_item_ids(self, audit: bool = True) -> set[str]:
        """Items with a pushed review task that nobody has answered yet; ``audit=False`` leaves out the audit items
        (they come on top of the budget, so the budget's top-up does not count them)."""
        audit_clause = "" if audit else (
            " and not exists (select 1 from selections s where s.round = t.round and s.item_id = t.item_id "
            "and s.audit = 1)")
        return {r[0] for r in self.db.execute(
            "select t.item_id from review_tasks t where not exists "
            "(select 1 from decisions d where d.task_id = t.task_id and d.round = t.round) and not exists "
            "(select 1 from review_answers a where a.task_id = t.task_id and a.round = t.round)"
            + audit_clause).fetchall()}
