"""The pull step of a round: bring the store up to date with the source project, incrementally, with deletions
found from the project's counts, and in full on the first pull and every ``full_pull_hours``."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

from connectors.records import ProjectInfo
from relabel.loop.loop_state import LoopState
from relabel.loop.store_pull import PullSummary
from relabel.loop.store_schema import now


def pull_project(loop: LoopState, full: bool | None = None) -> PullSummary:
    """Loop.pull: bring the store up to date with the source project (see its docstring for when it reads all)."""
    info = loop.connector.describe()
    loop.store.check_project(info.project_id)
    loop.store.bind_project(info)   # before writing items: the store keeps the text once, by the text field
    if not hasattr(loop.connector, "pull_batches"):
        pulled = loop.connector.pull(since=loop.store.get_meta("pull_cursor"), reconcile=True)
        return _log_pull(loop, loop.store.apply_pull(pulled), "full")
    cursor = loop.store.get_meta("pull_cursor")
    if full is None:
        full = cursor is None or _full_pull_due(loop)
    if full:
        return _full_pull(loop)
    summary = loop.store.apply_pull_batches(loop.connector.pull_batches(since=cursor))
    return _reconcile_by_counts(loop, summary, info)


def _full_pull(loop: LoopState) -> PullSummary:
    summary = loop.store.apply_pull_batches(loop.connector.pull_batches(full=True), full=True)
    loop.store.set_meta("last_full_pull", now())
    return _log_pull(loop, summary, "full")


def _full_pull_due(loop: LoopState) -> bool:
    if loop.full_pull_hours is None:
        return False
    last = loop.store.get_meta("last_full_pull")
    if last is None:
        return True
    age = datetime.now(timezone.utc) - datetime.fromisoformat(last)
    return age.total_seconds() >= loop.full_pull_hours * 3600


def _reconcile_by_counts(loop: LoopState, summary: PullSummary, info: ProjectInfo) -> PullSummary:
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
    store = loop.store.live_counts()
    if store == before:
        return _log_pull(loop, summary, "incremental")
    now_ = loop.connector.project_counts()
    after = (now_.tasks, now_.annotations, now_.skipped)
    if store[0] > after[0]:
        gone = loop.connector.deleted_task_ids(loop.store.live_item_ids())
        items_gone, labels_gone = loop.store.mark_items_deleted(gone)
        summary = replace(summary, deleted_items=summary.deleted_items + items_gone,
                          deleted=summary.deleted + labels_gone)
        store = loop.store.live_counts()
    extra = any(s > a for s, a in zip(store, after))
    missed = any(s < min(a, b) for s, a, b in zip(store, after, before))
    if not (extra or missed):
        return _log_pull(loop, summary, "incremental")
    loop.store.log_event("pull", f"the store counts {store[0]} tasks, {store[1]} annotations and {store[2]} "
                                 f"skipped; Label Studio {after[0]}, {after[1]} and {after[2]}: reading the "
                                 "whole project")
    full = _full_pull(loop)
    return replace(full, new=full.new + summary.new, changed=full.changed + summary.changed,
                   deleted=full.deleted + summary.deleted,
                   deleted_items=full.deleted_items + summary.deleted_items,
                   warnings=summary.warnings + full.warnings)


def _log_pull(loop: LoopState, summary: PullSummary, kind: str) -> PullSummary:
    loop.store.log_event("pull", f"{kind}: {summary.new} new, {summary.changed} changed, {summary.deleted} "
                                 f"deleted annotations; {summary.items} items, {summary.deleted_items} deleted",
                         details=summary.__dict__)
    return summary
