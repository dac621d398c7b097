"""One relabel round: collect -> pull -> score -> select -> push, each step recorded in the store.

A round that died half way resumes where it stopped: collect and pull are idempotent upserts; scoring writes the
round row and all its scores in one transaction; the selection is fixed once recorded, so pushing again asks
the connector (idempotent itself) only for what is not yet recorded, and review tasks are recorded only after the
connector returned them.

    loop = Loop(store, connector, model={"featurizer": "tfidf"})
    loop.round(budget=20)        # what `relabel round --budget 20` does
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from connectors.records import Connector, ProjectInfo, PushedTask, ReviewRequest
from relabel import progress
from relabel.scoring import active
from relabel.scoring import confident
# Imported by name: relabel/__init__.py exports the function `consensus`, which shadows the submodule attribute.
from relabel.scoring.consensus import get_majority_vote_label
from relabel.scoring.consensus_em import consensus as consensus_of
from relabel.scoring.annotations import Annotations
from relabel.scoring.error_estimate import ExpectedErrors, expected_errors as expected_errors_of, fit_recalibration, format_expected, recalibrate
from relabel.config import (DEFAULT_BUDGET, DEFAULT_FEATURIZER, DEFAULT_FULL_PULL_HOURS, DEFAULT_STORE, Config, ReviewSettings, config_path,
                     parse_config, positive_budget, review_mode, write_config)
from relabel.loop.export import export_rows, iter_export_rows, write_export
from relabel.errors import (AnnotationError, ConfigError, ConnectorError, InputError, LabelError, StoreError, StoreLocked,
                     preview)
from relabel.loop.lock import writer_lock
from relabel.redaction import url_without_userinfo
from relabel.scoring.selection import select_for_review
from relabel.scoring.stop_signal import BatchEstimate, Evidence, batch_errors, stop_reason
from relabel.loop.store import Store
from relabel.loop.store_pull import PullSummary
from relabel.loop.store_schema import now

if TYPE_CHECKING:
    from relabel.loop.writeback import WritebackSummary

# A round is "open" (resumable) until its review tasks are all recorded.
OPEN_STATUSES = ("scored", "selected")
# How many of the model's classes the review panel lists: enough to show the runner-up and one more.
MODEL_TOP_CLASSES = 3


@dataclass(frozen=True)
class ScoreSummary:
    """What scoring a round computed."""

    round: int
    method: str                 # "model-dawid-skene" (relabel's default consensus, see relabel/scoring/consensus_em.py)
    items: int
    labelled_items: int
    annotations: int
    annotators: int
    label_issues: int
    expected_remaining_errors: float
    notes: tuple[str, ...] = ()
    model: str | None = None    # the chosen pipeline and its cross-validated scores (ModelReport.summary)
    expected_low: int | None = None       # the 90% interval of expected_remaining_errors
    expected_high: int | None = None
    overrides: int = 0                    # consensus labels that none of the item's annotators gave

    @property
    def expected_text(self) -> str:
        """ "≈ N (90% interval a–b)" """
        return format_expected(self.expected_remaining_errors, self.expected_low, self.expected_high)


@dataclass(frozen=True)
class PushSummary:
    """What a push did: review tasks created now and the round's total."""

    round: int
    mode: str
    selected: int
    new: int
    total: int
    stop_reason: str | None = None        # why nothing was pushed (the stop signal), None when it pushed
    batch: BatchEstimate | None = None    # the stop signal's estimate for the items sent (None: not computed now)


@dataclass(frozen=True)
class CollectSummary:
    """Reviewers' answers turned into decisions (relabel/loop/decisions.py says what counts).

    ``decisions`` are new decisions, ``changed`` decisions a reviewer edited to another label since the last
    collect; ``confirmed``/``corrected``/``skipped``/``disputed`` count the outcomes of both; ``ordinary`` counts
    new or changed answers by people who are not reviewers (kept as annotations).
    """

    decisions: int
    confirmed: int
    corrected: int
    skipped: int
    changed: int = 0
    disputed: int = 0
    ordinary: int = 0
    notes: tuple[str, ...] = ()       # e.g. a review project deleted in Label Studio
    forgotten: int = 0                # unanswered review tasks of deleted review projects, to push again


@dataclass(frozen=True)
class RoundSummary:
    """Everything one `relabel round` did, step by step."""

    round: int
    resumed: bool
    collect: CollectSummary | None = None
    pull: PullSummary | None = None
    score: ScoreSummary | None = None
    push: PushSummary | None = None
    steps: tuple[str, ...] = field(default_factory=tuple)
    stop_reason: str | None = None        # why the round pushed nothing (the stop signal); None when it pushed
    # Set when the round was not started because nothing changed since the last one ("nothing changed since
    # round 4; 30 review tasks still open"); ``round`` is then that last round. Read by the plugin service.
    unchanged_reason: str | None = None
    notes: tuple[str, ...] = ()       # e.g. the annotations the round leaves out, and why


def _writes(command: str):
    """Run a Loop method under the store's writer lock (relabel/loop/lock.py), so the CLI, the plugin service and
    scripts are guarded alike. Nested calls (``round`` -> ``push``) re-enter the lock their caller holds."""
    def decorate(method):
        @functools.wraps(method)
        def locked(self, *args, **kwargs):
            with writer_lock(self.store, command, wait=self.lock_wait) as lock:
                outermost = self._lock is None
                if outermost:
                    self._lock = lock
                try:
                    return method(self, *args, **kwargs)
                finally:
                    if outermost:
                        self._lock = None
        return locked
    return decorate


def _reads(method):
    """Run a Loop method that only reads inside one snapshot of the store (it never waits for the writer lock
    and sees one committed state throughout, never half of a write that lands meanwhile)."""
    @functools.wraps(method)
    def snapshot(self, *args, **kwargs):
        with self.store.snapshot():
            return method(self, *args, **kwargs)
    return snapshot


class Loop:
    """The relabel loop over one store and one connector.

    ``connector`` may be a Connector or a zero-argument callable making one, so commands that never talk to
    Label Studio (status, annotators, export) never need a key or a server. The steps that write (collect,
    pull, score, push, round) hold the store's writer lock; a second writer waits up to ``lock_wait`` seconds
    and then raises StoreLocked naming the owner. Readers never take it.
    """

    def __init__(self, store: Store, connector: Connector | Callable[[], Connector] | None = None, *,
                 model: dict | object | None = None, review: ReviewSettings | None = None,
                 full_pull_hours: float | None = DEFAULT_FULL_PULL_HOURS, lock_wait: float = 0.0):
        self.store = store
        self._connector = connector
        self.model = model
        self.review = review or ReviewSettings()
        self.full_pull_hours = full_pull_hours
        self.lock_wait = _lock_wait(lock_wait)
        self._lock = None

    @classmethod
    def from_config(cls, config: Config, connector: Connector | Callable[[], Connector] | None = None, *,
                    lock_wait: float = 0.0) -> "Loop":
        """A Loop for a config: its store, its review settings, its model table, and a lazily made connector."""
        store = Store(config.store_path)
        store.check_project(config.label_studio.project)
        return cls(store, connector if connector is not None else (lambda: make_connector(config)),
                   model=config.model, review=config.review, lock_wait=lock_wait,
                   full_pull_hours=config.label_studio.full_pull_hours)

    def _working_on(self, round_number: int | None) -> None:
        """Tell a refused second writer which round this command is on; stop if our lock was taken over."""
        if self._lock is None:
            return
        if self._lock.lost:
            raise StoreLocked("This command's writer lock was taken over by another relabel command (this one "
                              "looked dead: no heartbeat for a minute); stopping before writing more; "
                              "run it again when the other one has finished.")
        self._lock.set_round(round_number)

    @property
    def connector(self) -> Connector:
        if self._connector is None:
            raise ConfigError("This command needs Label Studio but no connector was configured; "
                              "run it with a relabel.toml (see `relabel init`).")
        if callable(self._connector) and not hasattr(self._connector, "pull"):
            self._connector = self._connector()
        return self._connector

    def close(self) -> None:
        self.store.close()

    # ---- collect ----------------------------------------------------------------------------------------
    @_writes("collect")
    def collect(self) -> CollectSummary:
        """Re-read every answer on every pushed review task and record what is new or changed.

        Answered tasks are read again because a reviewer may edit an answer after it was collected: the
        decision changes and the ledger keeps both versions. Answers by people who are not in
        ``[review] reviewers`` become ordinary annotations, not decisions (relabel/loop/decisions.py).
        """
        tasks = [PushedTask(item_id=r["item_id"], round=r["round"], target_project=r["target_project"],
                            task_id=r["task_id"], mode=r["mode"]) for r in self.store.review_tasks()]
        notes, forgotten, gone = self._forget_deleted_review_projects(tasks)
        # A deleted project's answered tasks stay recorded with their decisions, but cannot be read again.
        tasks = [p for p in tasks if p.target_project not in gone]
        answers = self.connector.collect(tasks) if tasks else []
        deciding = [a for a in answers if self.review.decides(a.reviewer)]
        self.store.record_review_answers(answers, {a.reviewer for a in deciding})
        ordinary = self.store.record_review_annotations([a for a in answers if not self.review.decides(a.reviewer)])
        rows = self.store.record_decisions(deciding)
        for r in rows:
            if r["change"] == "changed":
                self.store.log_event("collect", f"decision changed: item {r['item_id']} (round {r['round']}) by "
                                                f"{r['reviewer']} is now {r['label'] or 'skipped'}",
                                     round=r["round"], details={"item_id": r["item_id"], "label": r["label"]})
        counted = [r for r in rows if r["change"] in ("new", "changed")]
        outcomes = [r["outcome"] for r in counted]
        summary = CollectSummary(decisions=sum(r["change"] == "new" for r in rows),
                                 changed=sum(r["change"] == "changed" for r in rows),
                                 confirmed=outcomes.count("confirmed"), corrected=outcomes.count("corrected"),
                                 skipped=outcomes.count("skipped"), disputed=outcomes.count("disputed"),
                                 ordinary=ordinary, notes=tuple(notes), forgotten=forgotten)
        self.store.log_event("collect", f"{summary.decisions} new and {summary.changed} changed decisions, "
                                        f"{ordinary} answers by non-reviewers, from {len(tasks)} review tasks",
                             details=summary.__dict__)
        return summary

    def _forget_deleted_review_projects(self, pending: list[PushedTask]) -> tuple[list[str], int, set[int]]:
        """Review projects deleted in Label Studio: forget their unanswered review tasks (so their items can be
        selected and pushed again, into a new review project) and keep every decision already collected.
        Returns a note per project whose tasks were forgotten now, how many, and every deleted project."""
        exists = getattr(self.connector, "review_project_exists", None)
        if exists is None:
            return [], 0, set()
        notes, total, gone = [], 0, set()
        for project in sorted({p.target_project for p in pending if p.mode == "project"}):
            if exists(project):
                continue
            gone.add(project)
            forgotten, kept = self.store.forget_review_tasks(project)
            if not forgotten:
                continue          # said when it was found deleted; its answered tasks stay as they are
            total += forgotten
            note = (f"Review project {project} was deleted in Label Studio: its {forgotten} unanswered review tasks "
                    f"are forgotten and their items can be selected again; the {kept} decisions already collected "
                    "from it are kept; the next push creates a new review project.")
            self.store.log_event("collect", note, details={"deleted_review_project": project})
            notes.append(note)
        return notes, total, gone

    # ---- pull -------------------------------------------------------------------------------------------
    @_writes("pull")
    def pull(self, full: bool | None = None) -> PullSummary:
        """Bring the store up to date with the source project.

        Usually incremental: only tasks changed since the last pull, and deletions found from the project's
        counts (see ``_reconcile_by_counts``). ``full=True`` reads the whole project and marks whatever is gone
        as deleted; ``full=None`` (the default) does that on the first pull and then once every
        ``full_pull_hours`` as a safety net. A connector without ``pull_batches`` is reconciled in full each time.
        """
        info = self.connector.describe()
        self.store.check_project(info.project_id)
        self.store.bind_project(info)   # before writing items: the store keeps the text once, by the text field
        if not hasattr(self.connector, "pull_batches"):
            pulled = self.connector.pull(since=self.store.get_meta("pull_cursor"), reconcile=True)
            return self._log_pull(self.store.apply_pull(pulled), "full")
        cursor = self.store.get_meta("pull_cursor")
        if full is None:
            full = cursor is None or self._full_pull_due()
        if full:
            return self._full_pull()
        summary = self.store.apply_pull_batches(self.connector.pull_batches(since=cursor))
        return self._reconcile_by_counts(summary, info)

    def _full_pull(self) -> PullSummary:
        summary = self.store.apply_pull_batches(self.connector.pull_batches(full=True), full=True)
        self.store.set_meta("last_full_pull", now())
        return self._log_pull(summary, "full")

    def _full_pull_due(self) -> bool:
        if self.full_pull_hours is None:
            return False
        last = self.store.get_meta("last_full_pull")
        if last is None:
            return True
        age = datetime.now(timezone.utc) - datetime.fromisoformat(last)
        return age.total_seconds() >= self.full_pull_hours * 3600

    def _reconcile_by_counts(self, summary: PullSummary, info: ProjectInfo) -> PullSummary:
        """Find deletions the incremental pull cannot see, listing ids only when the counts say some exist.

        A deleted annotation bumps its task's ``updated_at``, so the incremental pull already brought its task
        back without it; a deleted task leaves no trace but lowers the task count. ``info`` holds the project's
        counts from before the pull. When the store counts the same after it, nothing was deleted (no request
        at all). Otherwise the counts are read again: more live items in the store than tasks in the project
        means tasks were deleted, so the connector finds which (``deleted_task_ids``) and they are marked. More
        annotations in the store than in the project, or fewer than the project had both before and after the
        pull (something was missed), and the whole project is read once. Fewer than now but not fewer than
        before is only work that arrived during the pull; the next pull brings it.
        """
        before = (info.n_tasks, info.n_annotations, info.n_skipped)
        store = self.store.live_counts()
        if store == before:
            return self._log_pull(summary, "incremental")
        now_ = self.connector.project_counts()
        after = (now_.tasks, now_.annotations, now_.skipped)
        if store[0] > after[0]:
            gone = self.connector.deleted_task_ids(self.store.live_item_ids())
            items_gone, labels_gone = self.store.mark_items_deleted(gone)
            summary = replace(summary, deleted_items=summary.deleted_items + items_gone,
                              deleted=summary.deleted + labels_gone)
            store = self.store.live_counts()
        extra = any(s > a for s, a in zip(store, after))
        missed = any(s < min(a, b) for s, a, b in zip(store, after, before))
        if not (extra or missed):
            return self._log_pull(summary, "incremental")
        self.store.log_event("pull", f"the store counts {store[0]} tasks, {store[1]} annotations and {store[2]} "
                                     f"skipped; Label Studio {after[0]}, {after[1]} and {after[2]}: reading the "
                                     "whole project")
        full = self._full_pull()
        return replace(full, new=full.new + summary.new, changed=full.changed + summary.changed,
                       deleted=full.deleted + summary.deleted,
                       deleted_items=full.deleted_items + summary.deleted_items,
                       warnings=summary.warnings + full.warnings)

    def _log_pull(self, summary: PullSummary, kind: str) -> PullSummary:
        self.store.log_event("pull", f"{kind}: {summary.new} new, {summary.changed} changed, {summary.deleted} "
                                     f"deleted annotations; {summary.items} items, {summary.deleted_items} deleted",
                             details=summary.__dict__)
        return summary

    # ---- score ------------------------------------------------------------------------------------------
    @_writes("score")
    def score(self) -> ScoreSummary:
        """Score every item: model pred_probs, consensus (relabel.scoring.consensus.consensus) and qualities, label issues, ActiveLab."""
        latest = self.store.latest_round()
        if latest is not None and latest["status"] == "selected":
            # A push was started: some of its review tasks may already be in Label Studio. Re-scoring would
            # replace the selection and orphan them, so the round has to be finished first.
            raise StoreError(f"Round {latest['round']}'s review tasks were selected and may already be partly in "
                             "Label Studio; run `relabel push` (or `relabel round`) to finish that round first.")
        if latest is not None and latest["status"] == "scored":
            rnd = latest["round"]       # re-score an open round nobody has seen yet
        else:
            rnd = (latest["round"] + 1) if latest else 1
        self._working_on(rnd)
        table, annotation_ids = self.store.scoring_table()
        item_ids, texts = self.store.item_texts()
        _check_scorable(self.store, table, len(item_ids))
        result = _compute_round_scores(table, annotation_ids, item_ids, texts, self.store.final_labels(), self.model,
                                       cache=self.store, calibration=self._recalibration())
        round_row = {"round": rnd, "status": "scored", "method": result.method, "note": " ".join(result.notes),
                     "items": len(item_ids), "labelled_items": table.n_items, "annotations": len(table),
                     "annotators": table.n_annotators, "expected_remaining_errors": result.expected_errors.expected,
                     "expected_low": result.expected_errors.low, "expected_high": result.expected_errors.high,
                     "stop_reason": None,
                     "label_issues": result.n_issues, "model_weight": result.model_weight, "scored_at": now(),
                     "selected_at": None, "pushed_at": None, "budget": None, "mode": None,
                     "class_stats": json.dumps(result.class_stats), "classes": json.dumps(list(table.classes)),
                     "inputs": self.store.inputs_signature(),
                     "model_report": json.dumps(result.model_report.to_dict()) if result.model_report else None}
        self.store.save_scores(round_row, result.item_rows, result.annotator_rows, result.annotation_rows)
        self.store.log_event("score", f"round {rnd} scored with {result.method}", round=rnd,
                             details={"notes": list(result.notes)})
        return ScoreSummary(round=rnd, method=result.method, items=len(item_ids), labelled_items=table.n_items,
                            annotations=len(table), annotators=table.n_annotators, label_issues=result.n_issues,
                            expected_remaining_errors=result.expected_errors.expected, notes=result.notes,
                            expected_low=result.expected_errors.low, expected_high=result.expected_errors.high,
                            overrides=result.overrides,
                            model=result.model_report.summary() if result.model_report else None)

    def _recalibration(self) -> tuple[float, float]:
        """Platt-scaling parameters from reviewers' decisions: was the consensus with posterior q right?"""
        pairs = self.store.decision_posteriors()
        if not pairs:
            return 1.0, 0.0
        q, right = zip(*pairs)
        return fit_recalibration(np.array(q), np.array(right))

    # ---- select + push ----------------------------------------------------------------------------------
    @_writes("push")
    def push(self, budget: int | None = None) -> PushSummary:
        """Push the latest round's review tasks; pushing again creates nothing new."""
        latest = self.store.latest_round()
        if latest is None:
            raise StoreError("No scored round yet; run `relabel score` (or `relabel round`) first.")
        rnd = latest["round"]
        self._working_on(rnd)
        if latest["status"] == "stopped":
            return PushSummary(round=rnd, mode=latest["mode"] or self.review.mode, selected=0, new=0, total=0,
                               stop_reason=latest["stop_reason"])
        if latest["status"] == "scored":
            self._select(rnd, positive_budget(budget if budget is not None else self.review.budget))
            latest = self.store.latest_round()
            batch = self._batch_estimate(rnd)
            reason = stop_reason(batch, self.review.min_expected_errors)
            if reason is not None:
                self.store.mark_stopped(rnd, reason)
                self.store.log_event("push", f"round {rnd}: nothing pushed. {reason}", round=rnd,
                                     details=batch.as_dict())
                return PushSummary(round=rnd, mode=latest["mode"], selected=0, new=0, total=0, stop_reason=reason,
                                   batch=batch)
        else:
            batch = None
        selection = self.store.selection(rnd)
        mode = latest["mode"] or self.review.mode
        done = {r["item_id"] for r in self.store.review_tasks(rnd)}
        todo = [r for r in selection if r["item_id"] not in done]
        new = 0
        if todo:
            requests = self._review_requests(rnd, todo)
            # One bulk call; nothing is recorded until it returned, and the connector finds what an earlier,
            # killed push already created, so recording afterwards never duplicates. The in-flight mark is
            # written before anything is sent: a push killed with a request still on its way leaves it, and the
            # next push then lets that request land (or not) before it imports what is missing.
            unsure_since = self.store.push_started(rnd)
            pushed = self.connector.push(requests, mode=mode, show_suggestion=self.review.show_suggestion,
                                         preselect=self.review.preselect, unsure_since=unsure_since)
            missing = sorted({r.item_id for r in requests} - {str(t.item_id) for t in pushed})
            new = self.store.record_pushed(rnd, pushed, selection, mark_pushed=not missing)
            if missing:
                raise ConnectorError(f"Label Studio did not return review tasks for items {preview(missing)} of "
                                     f"round {rnd}; run `relabel push` again to finish the round.")
            self._assign(rnd, pushed)
        elif latest["status"] != "pushed":
            self.store.record_pushed(rnd, [], selection, mark_pushed=True)
        total = len(self.store.review_tasks(rnd))
        self.store.log_event("push", f"round {rnd}: {new} new review tasks, {total} in total ({mode})", round=rnd)
        return PushSummary(round=rnd, mode=mode, selected=len(selection), new=new, total=total, batch=batch)

    def _batch_estimate(self, rnd: int) -> BatchEstimate:
        """The stop signal's figures for round ``rnd``'s selection (relabel/scoring/stop_signal.py): its items'
        recalibrated P(wrong), and what reviewers decided in the latest round before it; recorded in the round row."""
        selected = {r["item_id"] for r in self.store.selection(rnd)}
        p_wrong = [r["p_wrong"] for r in self.store.scores_of(rnd, selected).values() if r["p_wrong"] is not None]
        decided = self.store.latest_decided_round(before=rnd)
        evidence = Evidence() if decided is None else Evidence(*decided)
        batch = batch_errors(p_wrong, evidence)
        self.store.save_batch_estimate(rnd, batch.expected, batch.low, batch.high, str(evidence))
        return batch

    def _review_requests(self, rnd: int, selection: list[dict]) -> list[ReviewRequest]:
        """The review requests of selected items, with what the review panel shows: who said what, the
        model's top classes."""
        ids = [r["item_id"] for r in selection]
        data = self.store.item_data(ids)
        labels = self.store.labels_of(ids)
        model = self.store.model_top(rnd, ids)
        return [ReviewRequest(item_id=r["item_id"], round=rnd, data=data.get(r["item_id"], {}),
                              quality=float(r["quality"]), reason=r["reason"], suggested_label=r["suggested"],
                              annotators=tuple(labels.get(r["item_id"], ())),
                              model_top=tuple(model.get(r["item_id"], ())))
                for r in selection]

    def _assign(self, rnd: int, pushed: list[PushedTask]) -> None:
        """Assign the new review tasks to the reviewers where the server allows it (Enterprise only)."""
        assign = getattr(self.connector, "assign", None)
        if not self.review.reviewers or assign is None:
            return
        outcome = assign(pushed, self.review.reviewers)
        self.store.log_event("assign", f"round {rnd}: {len(pushed)} review tasks {outcome}", round=rnd)

    def _select(self, rnd: int, budget: int) -> None:
        classes = self.store.classes
        position = {c: k for k, c in enumerate(classes)}
        # Columns, not one dict per item: at a million items the dicts were GBs (bench_scale, issue 15).
        scores = self.store.score_columns(rnd, ("item_id", "labelled", "consensus_label", "model_label", "quality",
                                                "reviewed", "model_prob", "label_issue"))
        ids = scores["item_id"]
        votes = np.zeros((len(ids), len(classes)), dtype=np.int64)
        consensus_idx = np.array([position.get(c, -1) if labelled else -1
                                  for c, labelled in zip(scores["consensus_label"], scores["labelled"])], dtype=np.intp)
        model_label = np.array([position[c] for c in scores["model_label"]], dtype=np.intp)
        quality = np.array(scores["quality"], dtype=float)   # None (unlabelled) becomes NaN
        reviewed = np.array(scores["reviewed"], dtype=bool)
        waiting_ids = self.store.waiting_item_ids()
        waiting = np.array([i in waiting_ids for i in ids])
        requeued = self.store.requeued_items()
        select = functools.partial(select_for_review, quality, consensus_idx, votes, model_label,
                                   np.array(scores["model_prob"], dtype=float), classes, budget,
                                   reviewed=reviewed, waiting=waiting,
                                   label_issue=np.array(scores["label_issue"], dtype=bool),
                                   requeue=np.array([i in requeued for i in ids]))
        # The order never reads the votes; only the chosen items' reasons do. So the items are chosen first and
        # only their labels are read (not every annotation of the project again: at 1M items that re-read made
        # select grow faster than linearly, bench_scale), then the same selection is made with their votes.
        chosen = {ids[i]: i for i in select().index}
        for item, label in self.store.scorable_labels_of(chosen):
            if label in position:
                votes[chosen[item], position[label]] += 1
        sel = select()
        rows_out = [{"item_id": ids[i], "rank": n, "quality": float(q),
                     "reason": f"{requeued[ids[i]]}; {reason}" if ids[i] in requeued else reason,
                     "suggested": classes[int(s)]}
                    for n, (i, q, s, reason) in enumerate(zip(sel.index, sel.quality, sel.suggested, sel.reasons))]
        self.store.save_selection(rnd, rows_out, budget=budget, mode=review_mode(self.review.mode))
        self.store.log_event("select", f"round {rnd}: {len(rows_out)} items selected (budget {budget})", round=rnd)

    # ---- a whole round ----------------------------------------------------------------------------------
    @_writes("round")
    def round(self, budget: int | None = None, force: bool = False,
              on_step: Callable[[str, object], None] | None = None) -> RoundSummary:
        """collect -> pull -> score -> select -> push; an open round is resumed instead of started again.

        When nothing is new since the last round was scored (no new, changed or deleted annotations or tasks,
        no new or changed decisions: ``Store.inputs_signature``), no round is started: the summary's ``unchanged_reason`` says so, and the
        review queue is not flooded by a cron job. ``force`` starts a round anyway.
        ``on_step(name, summary)`` is called as each step starts (summary None) and ends (its summary), so the
        CLI prints a line per step while the round runs, not all at the end.
        """
        if budget is not None:
            positive_budget(budget)
        step = _stepper(on_step)
        latest = self.store.latest_round()
        opened = latest is not None and latest["status"] in OPEN_STATUSES
        self._working_on(latest["round"] if opened else (latest["round"] + 1 if latest else 1))
        if opened:
            pushed = step("push", lambda: self.push(budget))
            return RoundSummary(round=latest["round"], resumed=True, push=pushed, steps=("push",),
                                stop_reason=pushed.stop_reason)
        collected = step("collect", self.collect) if self.store.review_tasks() else None
        pulled = step("pull", self.pull)
        # Compared with what the last round scored, not with the last collect or pull: `relabel collect`
        # run by hand in between must not hide its decisions from the next round.
        # Review tasks forgotten because their review project was deleted must go out again: that is a change.
        forgotten = collected is not None and collected.forgotten > 0
        unchanged = latest is not None and latest.get("inputs") == self.store.inputs_signature()
        if unchanged and not force and not forgotten:
            reason = (f"nothing changed since round {latest['round']}; "
                      f"{len(self.store.waiting_item_ids())} review tasks still open")
            self.store.log_event("round", reason, round=latest["round"])
            return RoundSummary(round=latest["round"], resumed=False, collect=collected, pull=pulled,
                                steps=(("collect",) if collected else ()) + ("pull",), unchanged_reason=reason)
        scored = step("score", self.score)
        pushed = step("push", lambda: self.push(budget))
        steps = (("collect",) if collected else ()) + ("pull", "score", "select", "push")
        return RoundSummary(round=scored.round, resumed=False, collect=collected, pull=pulled, score=scored,
                            push=pushed, steps=steps, stop_reason=pushed.stop_reason, notes=_excluded_note(self.store))

    # ---- reports ------------------------------------------------------------------------------------------
    @_reads
    def status(self) -> dict:
        """{"rounds": [{round, status, items, annotations, pushed, reviewed, corrected, expected_remaining_errors,
        expected_low/high, batch_expected/low/high/evidence, stop_reason}]}"""
        decisions = self.store.decisions()
        out = []
        for r in self.store.rounds():
            mine = [d for d in decisions if d["round"] == r["round"]]
            out.append({"round": r["round"], "status": r["status"], "items": r["items"],
                        "annotations": r["annotations"], "pushed": len(self.store.review_tasks(r["round"])),
                        # Decided answers only: a skip or a disputed answer leaves the item undecided.
                        "reviewed": sum(d["outcome"] in ("confirmed", "corrected") for d in mine),
                        "corrected": sum(d["outcome"] == "corrected" for d in mine),
                        "expected_remaining_errors": r["expected_remaining_errors"],
                        "expected_low": r["expected_low"], "expected_high": r["expected_high"],
                        # the stop signal's estimate for the items the round sent (or would have sent)
                        "batch_expected": r["batch_expected"], "batch_low": r["batch_low"],
                        "batch_high": r["batch_high"], "batch_evidence": r["batch_evidence"],
                        "stop_reason": r["stop_reason"]})
        return {"rounds": out}

    @_reads
    def annotators(self) -> list[dict]:
        """Per-annotator quality, agreement, worst class and number of labels in the latest round."""
        latest = self._latest_scored()
        return [{"annotator": r["annotator_id"], "quality": r["quality"], "agreement": r["agreement"],
                 "worst_class": r["worst_class"], "labels": r["num_labels"]}
                for r in self.store.annotator_scores(latest["round"])]

    @_reads
    def export_rows(self) -> list[dict]:
        """Every item with its final label, annotators' labels, review and link (relabel/loop/export.py)."""
        return export_rows(self.store)

    def export(self, fmt: str, out: str | Path) -> int:
        """Write the export rows as CSV or JSON Lines as they are read; returns the number of items written."""
        return write_export(iter_export_rows(self.store), fmt, out)

    @_writes("writeback")
    def writeback(self) -> "WritebackSummary":
        """Write every item's final label into the source project (relabel/loop/writeback.py)."""
        from relabel.loop.writeback import write_back
        return write_back(self.store, self.connector)

    def _latest_scored(self) -> dict:
        latest = self.store.latest_round()
        if latest is None:
            raise StoreError("No round has been scored yet; run `relabel round` first.")
        return latest


def _excluded_note(store: Store) -> tuple[str, ...]:
    """A round says which stored annotations it leaves out (the pull that found them warned only once)."""
    excluded = store.excluded_annotations()
    if not excluded:
        return ()
    examples = preview([f"{r['annotation_id']} on item {r['item_id']} ({r['label'] or 'several choices'})"
                        for r in excluded], limit=3)
    return (f"{len(excluded)} annotations are not scored because their choice is not a single class of the "
            f"labeling config: {examples}; fix them in Label Studio or add the class to the config.",)


def _lock_wait(seconds) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0 \
            or seconds == float("inf"):
        raise ConfigError(f"The lock wait (--wait) must be a number of seconds >= 0. Got {seconds!r}.")
    return float(seconds)


def _stepper(on_step):
    """Run a step between two on_step calls (start: None, end: its summary)."""
    def run(name, work):
        if on_step is not None:
            on_step(name, None)
        summary = work()
        if on_step is not None:
            on_step(name, summary)
        return summary
    return run


def initialise(path=None, *, url: str, project: int, label_tag: str | None = None, text_field: str | None = None,
               api_key_file: str | None = None, mode: str = "project", budget: int = DEFAULT_BUDGET,
               store: str = DEFAULT_STORE, featurizer: str | None = None, overwrite: bool = False,
               connector: Connector | Callable[[], Connector] | None = None,
               lock_wait: float = 0.0) -> ProjectInfo:
    """`relabel init`: check the settings and the connection, then write the config and bind the store.

    Order matters for "nothing half-written": everything that can fail (settings, server, key, project,
    labeling config, a store made for another project) is checked before the config file is written.
    """
    file = config_path(path)
    if file.exists() and not overwrite:
        raise ConfigError(f"The config file {str(file)!r} already exists; pass --force to overwrite it "
                          "or --config to write another file.")
    settings = dict(url=url, project=project, label_tag=label_tag, text_field=text_field,
                    api_key_file=api_key_file, mode=mode, budget=budget, show_suggestion=True, store=store,
                    model={"featurizer": featurizer or DEFAULT_FEATURIZER})
    ls = {k: v for k, v in (("url", url), ("project", project), ("label_tag", label_tag),
                            ("text_field", text_field), ("api_key_file", api_key_file)) if v is not None}
    config = parse_config({"label_studio": ls, "review": {"mode": mode, "budget": budget},
                           "store": {"path": store}, "model": settings["model"]},
                          base=file.resolve().parent, path=file)
    config.model_settings()  # a bad --featurizer fails here, not at the first scoring after the config is written
    if connector is None:
        conn = make_connector(config)
    else:
        conn = connector() if callable(connector) and not hasattr(connector, "describe") else connector
    info = conn.describe()
    if info.review_of is not None:
        raise ConfigError(f"Project {info.project_id} ({info.title!r}) is relabel's own review project for project "
                          f"{info.review_of}; its answers are reviews, not annotations. Use --project "
                          f"{info.review_of} (the source project) instead.")
    config.store_path.parent.mkdir(parents=True, exist_ok=True)
    with Store(config.store_path) as st, writer_lock(st, "init", wait=_lock_wait(lock_wait)):
        st.check_project(info.project_id)
        write_config(file, overwrite=overwrite, **settings)
        st.bind_project(info)
        # Reports link each item to its task in Label Studio; the URL is not a secret, the key never goes here.
        st.set_meta("label_studio_url", url_without_userinfo(config.label_studio.url))
        st.log_event("init", f"project {info.project_id} {info.title!r}: {info.n_tasks} tasks, "
                             f"{info.n_annotations} annotations, classes {', '.join(info.classes)}")
    return info


def make_connector(config: Config) -> Connector:
    """The Label Studio connector for a config (the key is read now, from the environment or the key file)."""
    from connectors.label_studio import LabelStudioConnector  # the SDK is heavy; only commands that talk need it
    ls = config.label_studio
    return LabelStudioConnector(ls.url, config.api_key(), ls.project, label_tag=ls.label_tag,
                                text_field=ls.text_field)


# ---- scoring ------------------------------------------------------------------------------------------------
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
class _Scores:
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


def _check_scorable(store: Store, table: Annotations, n_items: int) -> None:
    if len(table) == 0:
        title = store.get_meta("project_title") or ""
        raise AnnotationError(f"Project {store.project_id} {title!r} has no labelled tasks ({n_items} tasks, "
                              "0 annotations); annotate some tasks in Label Studio, then run relabel again.")
    present = np.unique(table.label)
    if present.size < 2:
        raise AnnotationError(f"Every annotation in project {store.project_id} is '{table.classes[present[0]]}'; "
                              "the model needs at least two classes among the labels, so annotate items of "
                              "another class first.")


def _compute_round_scores(table: Annotations, annotation_ids: np.ndarray, item_ids: list[str], texts: list,
                          reviewer_labels: dict[str, str], model, cache,
                          calibration: tuple[float, float] = (1.0, 0.0)) -> _Scores:
    """All of a round's numbers, as rows for the store. Inputs come from the store, so they are trusted."""
    from relabel.models.fit import ModelSettings, fit_predict_probs  # the model stack (scikit-learn, maybe torch) loads only when scoring

    classes = table.classes
    k = len(classes)
    position = {c: i for i, c in enumerate(classes)}
    where = {iid: n for n, iid in enumerate(item_ids)}
    rows = np.array([where[str(i)] for i in table.item_ids], dtype=np.intp)  # labelled item -> row in items
    n = len(item_ids)
    notes: list[str] = []

    reviewed = np.zeros(n, dtype=bool)
    final = np.full(n, -1, dtype=np.intp)
    for iid, label in reviewer_labels.items():
        if iid in where and label in position:
            reviewed[where[iid]] = True
            final[where[iid]] = position[label]

    # The model learns from the majority vote (cheap, no pred_probs needed), overridden by reviewers' labels.
    train = np.full(n, -1, dtype=np.intp)
    majority = get_majority_vote_label(table)
    train[rows] = majority
    train[reviewed] = final[reviewed]
    texts = [t if t is not None else "" for t in texts]
    settings = model if isinstance(model, ModelSettings) else ModelSettings.from_dict(model)
    weight = None
    if settings.weight_uncertain:
        # Optional: an item counts as much as its annotators agree with the majority (2 of 3 -> 0.67); reviewers'
        # decisions are gold and count fully.
        weight = np.ones(n)
        weight[rows] = _majority_share(table, majority)
        weight[reviewed] = 1.0
    fitted = fit_predict_probs(item_ids, texts, train, k, settings, cache=cache, progress=progress.enabled(),
                               sample_weight=weight)
    pred_probs = fitted.probs
    p_lab = pred_probs[rows]

    # relabel's default consensus: the model as each item's prior, a confusion matrix per annotator, and the
    # reviewers' decisions as gold. It needs no second annotator, so there is no single-label special case.
    res = consensus_of(table, p_lab, known_labels=final[rows])
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
                "p_wrong": float(p_wrong[j]) if labelled and not reviewed[i] else (0.0 if labelled else None)}

    def annotation_rows():
        for a, q in zip(annotation_ids, ann_quality):
            yield {"annotation_id": str(a), "quality": float(q)}

    return _Scores(method, _Rows(item_rows, n), annotator_rows, _Rows(annotation_rows, len(annotation_ids)),
                   expected, int(issues.sum()), model_weight, tuple(notes), class_stats, fitted.report, overrides)


def _majority_share(table: Annotations, majority: np.ndarray) -> np.ndarray:
    """Per labelled item: the share of its annotations that agree with its majority label (one bincount)."""
    agree = np.bincount(table.item, weights=(table.label == majority[table.item]), minlength=table.n_items)
    return agree / np.maximum(np.bincount(table.item, minlength=table.n_items), 1)


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
