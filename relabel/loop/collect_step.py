"""The collect step of a round: reviewers' answers on the pushed review tasks become decisions (or, from people who
do not decide, ordinary annotations); review projects deleted in Label Studio give their unanswered tasks back."""
from __future__ import annotations

from connectors.records import PushedTask
from relabel.loop.loop_state import LoopState
from relabel.loop.summaries import CollectSummary


def collect_answers(loop: LoopState) -> CollectSummary:
    """Loop.collect: record what is new or changed among the answers on every pushed review task."""
    tasks = [PushedTask(item_id=r["item_id"], round=r["round"], target_project=r["target_project"],
                        task_id=r["task_id"], mode=r["mode"]) for r in loop.store.review_tasks()]
    notes, forgotten, gone = _forget_deleted_review_projects(loop, tasks)
    # A deleted project's answered tasks stay recorded with their decisions, but cannot be read again.
    tasks = [p for p in tasks if p.target_project not in gone]
    answers = loop.connector.collect(tasks) if tasks else []
    deciding = [a for a in answers if loop.review.decides(a.reviewer)]
    loop.store.record_review_answers(answers, {a.reviewer for a in deciding})
    ordinary = loop.store.record_review_annotations([a for a in answers if not loop.review.decides(a.reviewer)])
    rows = loop.store.record_decisions(deciding)
    for r in rows:
        if r["change"] == "changed":
            loop.store.log_event("collect", f"decision changed: item {r['item_id']} (round {r['round']}) by "
                                            f"{r['reviewer']} is now {r['label'] or 'skipped'}",
                                 round=r["round"], details={"item_id": r["item_id"], "label": r["label"]})
    counted = [r for r in rows if r["change"] in ("new", "changed")]
    outcomes = [r["outcome"] for r in counted]
    summary = CollectSummary(decisions=sum(r["change"] == "new" for r in rows),
                             changed=sum(r["change"] == "changed" for r in rows),
                             confirmed=outcomes.count("confirmed"), corrected=outcomes.count("corrected"),
                             skipped=outcomes.count("skipped"), disputed=outcomes.count("disputed"),
                             ordinary=ordinary, notes=tuple(notes), forgotten=forgotten)
    loop.store.log_event("collect", f"{summary.decisions} new and {summary.changed} changed decisions, "
                                    f"{ordinary} answers by non-reviewers, from {len(tasks)} review tasks",
                         details=summary.__dict__)
    return summary


def _forget_deleted_review_projects(loop: LoopState, pending: list[PushedTask]) -> tuple[list[str], int, set[int]]:
    """Review projects deleted in Label Studio: forget their unanswered review tasks (so their items can be
    selected and pushed again, into a new review project) and keep every decision already collected.
    Returns a note per project whose tasks were forgotten now, how many, and every deleted project."""
    exists = getattr(loop.connector, "review_project_exists", None)
    if exists is None:
        return [], 0, set()
    notes, total, gone = [], 0, set()
    for project in sorted({p.target_project for p in pending if p.mode == "project"}):
        if exists(project):
            continue
        gone.add(project)
        forgotten, kept = loop.store.forget_review_tasks(project)
        if not forgotten:
            continue          # said when it was found deleted; its answered tasks stay as they are
        total += forgotten
        note = (f"Review project {project} was deleted in Label Studio: its {forgotten} unanswered review tasks "
                f"are forgotten and their items can be selected again; the {kept} decisions already collected "
                "from it are kept; the next push creates a new review project.")
        loop.store.log_event("collect", note, details={"deleted_review_project": project})
        notes.append(note)
    return notes, total, gone
