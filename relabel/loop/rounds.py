"""One relabel round: collect -> pull -> score -> select -> push, each step recorded in the store.

A round that died half way resumes where it stopped: collect and pull are idempotent upserts; scoring writes the
round row and all its scores in one transaction; the selection is fixed once recorded, so pushing again asks
the connector (idempotent itself) only for what is not yet recorded, and review tasks are recorded only after the
connector returned them.

    loop = Loop(store, connector, model={"featurizer": "tfidf"})
    loop.round(budget=20)        # what `relabel round --budget 20` does

Each step is a function over one state object (relabel/loop/loop_state.py) in its own module: collect_step,
pull_step, score_step (with the numbers in round_scores) and push_step (select and push); their summaries are in
summaries. ``Loop`` runs them under the store's writer lock and chains them into a round; `relabel init` is
relabel/loop/project_setup.py.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from connectors.records import Connector
from relabel.config import Config, positive_budget
from relabel.errors import StoreError, preview
from relabel.loop.audit_step import wrong_labels_left
from relabel.loop.collect_step import collect_answers
from relabel.loop.export import export_rows, iter_export_rows, write_export, write_export_metadata
from relabel.loop.lock import writer_lock
from relabel.loop.loop_state import LoopState
from relabel.loop.project_setup import make_connector
from relabel.loop.pull_step import pull_project
from relabel.loop.push_step import push_round
from relabel.loop.score_step import score_round
from relabel.loop.store import Store
from relabel.loop.store_pull import PullSummary
from relabel.loop.store_spans import is_span_store
from relabel.loop.summaries import CollectSummary, PushSummary, RoundSummary, ScoreSummary

if TYPE_CHECKING:
    from relabel.loop.writeback import WritebackSummary

# A round is "open" (resumable) until its review tasks are all recorded.
OPEN_STATUSES = ("scored", "selected")


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


class Loop(LoopState):
    """The relabel loop over one store and one connector.

    ``connector`` may be a Connector or a zero-argument callable making one, so commands that never talk to
    Label Studio (status, annotators, export) never need a key or a server. The steps that write (collect,
    pull, score, push, round) hold the store's writer lock; a second writer waits up to ``lock_wait`` seconds
    and then raises StoreLocked naming the owner. Readers never take it.
    """

    @classmethod
    def from_config(cls, config: Config, connector: Connector | Callable[[], Connector] | None = None, *,
                    lock_wait: float = 0.0) -> "Loop":
        """A Loop for a config: its store, its review settings, its model table, and a lazily made connector."""
        store = Store(config.store_path)
        store.check_project(config.label_studio.project)
        return cls(store, connector if connector is not None else (lambda: make_connector(config)),
                   model=config.model, review=config.review, lock_wait=lock_wait,
                   full_pull_hours=config.label_studio.full_pull_hours)

    # ---- collect ----------------------------------------------------------------------------------------
    @_writes("collect")
    def collect(self) -> CollectSummary:
        """Re-read every answer on every pushed review task and record what is new or changed.

        Answered tasks are read again because a reviewer may edit an answer after it was collected: the
        decision changes and the ledger keeps both versions. Answers by people who are not in
        ``[review] reviewers`` become ordinary annotations, not decisions (relabel/loop/decisions.py).
        """
        _not_for_spans(self.store, 'collect')
        return collect_answers(self)

    # ---- pull -------------------------------------------------------------------------------------------
    @_writes("pull")
    def pull(self, full: bool | None = None) -> PullSummary:
        """Bring the store up to date with the source project.

        Usually incremental: only tasks changed since the last pull, and deletions found from the project's
        counts (``_reconcile_by_counts`` in relabel/loop/pull_step.py). ``full=True`` reads the whole project
        and marks whatever is gone as deleted; ``full=None`` (the default) does that on the first pull and then
        once every ``full_pull_hours`` as a safety net. A connector without ``pull_batches`` is reconciled in full
        each time.
        """
        _not_for_spans(self.store, 'pull')
        return pull_project(self, full)

    # ---- score ------------------------------------------------------------------------------------------
    @_writes("score")
    def score(self) -> ScoreSummary:
        """Score every item: model pred_probs, consensus (relabel.scoring.consensus.consensus) and qualities, label issues, ActiveLab."""
        _not_for_spans(self.store, 'score')
        if self.store.is_multilabel:       # sets of classes per item (relabel/loop/multilabel_round.py)
            from relabel.loop.multilabel_round import score_multilabel
            return score_multilabel(self)
        return score_round(self)

    def prefit(self) -> bool:
        """Fit the next round's model now, from the store as it is, and hold it for that round (relabel serve calls
        this while reviewers answer; relabel.loop.model_phase.prefit). Takes no writer lock: it writes nothing but
        the embedding cache and the model cache folder. False when nothing was fitted."""
        from relabel.loop.model_phase import prefit
        if self.store.is_multilabel or is_span_store(self.store):   # these rounds fit their own models each round
            return False
        return prefit(self.store, self.model, self.model_cache)

    # ---- select + push ----------------------------------------------------------------------------------
    @_writes("push")
    def push(self, budget: int | None = None, add: int | None = None) -> PushSummary:
        """Push the latest round's review tasks (up to ``budget`` open, or ``add`` more); again creates nothing new."""
        _not_for_spans(self.store, 'push')
        if self.store.is_multilabel:
            from relabel.loop.multilabel_round import push_multilabel
            return push_multilabel(self, budget, add)
        return push_round(self, budget, add)

    # ---- a whole round ----------------------------------------------------------------------------------
    @_writes("round")
    def round(self, budget: int | None = None, force: bool = False,
              on_step: Callable[[str, object], None] | None = None, *, add: int | None = None) -> RoundSummary:
        """collect -> pull -> score -> select -> push; an open round is resumed instead of started again.

        When nothing is new since the last round was scored (no new, changed or deleted annotations or tasks,
        no new or changed decisions: ``Store.inputs_signature``), no round is started: the summary's ``unchanged_reason`` says so, and the
        review queue is not flooded by a cron job. ``force`` starts a round anyway.
        ``on_step(name, summary)`` is called as each step starts (summary None) and ends (its summary), so the
        CLI prints a line per step while the round runs, not all at the end. ``budget`` is the number of open
        review tasks to keep (the round pushes budget - open, relabel/loop/queue.py); ``add`` pushes that many
        more whatever is open.
        """
        if is_span_store(self.store):      # <Labels> on a text: relabel/loop/span_round.py
            from relabel.loop.span_round import span_round
            return span_round(self, budget, force, add)
        if budget is not None:
            positive_budget(budget)
        step = _stepper(on_step)
        latest = self.store.latest_round()
        opened = latest is not None and latest["status"] in OPEN_STATUSES
        self.working_on(latest["round"] if opened else (latest["round"] + 1 if latest else 1))
        if opened:
            pushed = step("push", lambda: self.push(budget, add))
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
        pushed = step("push", lambda: self.push(budget, add))
        steps = (("collect",) if collected else ()) + ("pull", "score", "select", "push")
        return RoundSummary(round=scored.round, resumed=False, collect=collected, pull=pulled, score=scored,
                            push=pushed, steps=steps, stop_reason=pushed.stop_reason, notes=_excluded_note(self.store))

    # ---- reports ------------------------------------------------------------------------------------------
    @_reads
    def status(self) -> dict:
        """{"rounds": [{round, status, items, annotations, pushed, reviewed, corrected, expected_remaining_errors,
        expected_low/high, batch_expected/low/high/evidence, stop_reason, overrides}], "wrong_labels_left": {source
        ("audit" or "model"), expected, low, high, audited, text, ...}}"""
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
                        "stop_reason": r["stop_reason"],
                        # may the model change final labels in this round, and why (issue 20)
                        "overrides": self.store.class_stats(r["round"]).get("override_evidence")})
        # The audited estimate of wrong labels left (relabel/loop/audit_step.py), or the model's until audits exist.
        return {"rounds": out, "wrong_labels_left": wrong_labels_left(self.store) if out else None}

    @_reads
    def annotators(self) -> list[dict]:
        """Per-annotator quality, agreement, worst class and number of labels in the latest round."""
        latest = self._latest_scored()
        if is_span_store(self.store):
            from relabel.loop.span_round import span_annotator_rows
            return span_annotator_rows(self.store)
        return [{"annotator": r["annotator_id"], "quality": r["quality"], "agreement": r["agreement"],
                 "worst_class": r["worst_class"], "labels": r["num_labels"]}
                for r in self.store.annotator_scores(latest["round"])]

    @_reads
    def export_rows(self) -> list[dict]:
        """Every item with its final label, annotators' labels, review and link (relabel/loop/export.py)."""
        if self.store.is_multilabel:
            from relabel.loop.multilabel_export import multilabel_export_rows
            return list(multilabel_export_rows(self.store))
        return export_rows(self.store)

    def export(self, fmt: str, out: str | Path) -> int:
        """Write the export rows as CSV or JSON Lines as they are read, and beside them ``<out>.meta.json``: how
        many wrong labels the export is estimated to hold (relabel/loop/audit_step.py); returns the rows written."""
        if is_span_store(self.store):
            from relabel.loop.span_round import span_export
            return span_export(self.store, fmt, out)
        if self.store.is_multilabel:
            from relabel.loop.multilabel_export import multilabel_export_rows
            rows = multilabel_export_rows(self.store)
        else:
            rows = iter_export_rows(self.store)
        written = write_export(rows, fmt, out)
        write_export_metadata(self.store, out, written)
        return written

    @_writes("writeback")
    def writeback(self) -> "WritebackSummary":
        """Write every item's final label into the source project (relabel/loop/writeback.py)."""
        if is_span_store(self.store):
            from relabel.loop.span_round import span_writeback
            return span_writeback(self)
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
    what = "a tag that is not a class" if store.is_multilabel else "not a single class"
    return (f"{len(excluded)} annotations are not scored because their choice is {what} of the "
            f"labeling config: {examples}; fix them in Label Studio or add the class to the config.",)



def _not_for_spans(store: Store, command: str) -> None:
    """The single steps are the classification loop's; a span project runs whole rounds (relabel/loop/span_round.py)."""
    if is_span_store(store):
        raise StoreError(f"`relabel {command}` is not made for span projects yet; run `relabel round`, which "
                         "collects, pulls, scores and pushes a span project in one go.")


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

