"""Report sections about the review queue: its state per round, what reviewers changed, and the "you are done"
banner when the loop's stop signal fired.

Each figure is read from the store (review_tasks, decisions, rounds, events); nothing is recomputed.
"""
from __future__ import annotations

from datetime import datetime, timezone

from relabel.report.html import age, e, fmt, parse_time, section, when
from relabel.loop.store import Store

# Reviewer changes listed in full; beyond this the section says how many more there are.
CHANGES_LISTED = 100


def task_link(base_url: str, project, item_id) -> str:
    """An item id linked to its task in the source project (plain text when no URL is known)."""
    if not base_url or project is None:
        return e(item_id)
    return (f"<a href=\"{e(base_url)}/projects/{e(project)}/data?task={e(item_id)}\" target=\"_blank\" "
            f"rel=\"noopener noreferrer\">{e(item_id)}</a>")


# ---- the stop signal ----------------------------------------------------------------------------------------
def stop_reason(row: dict) -> str | None:
    """Why the loop says it is done at this round (the stop signal's ``stop_reason`` of the round row), or None."""
    return str(row["stop_reason"]) if row.get("stop_reason") else None


def done_banner(row: dict) -> str:
    reason = stop_reason(row)
    if reason is None:
        return ""
    return (f"<div class=\"banner done\" id=\"done\"><strong>You are done.</strong> {e(reason)} "
            "relabel sent nothing more to review; add annotations or lower the stop setting to go on.</div>")


# ---- queue state --------------------------------------------------------------------------------------------
def queue_state(store: Store, upto: int, now: datetime | None = None) -> list[dict]:
    """Per round up to ``upto``: review tasks pushed, answered, skipped only, still open, and the age of the
    oldest open task. A task counts as answered when any reviewer gave it a label, skipped when every answer
    was a skip."""
    now = now or datetime.now(timezone.utc)
    answers: dict[tuple[int, int], list] = {}
    for d in store.decisions():
        answers.setdefault((d["round"], d["task_id"]), []).append(d["label"])
    out = []
    for r in store.rounds():
        if r["round"] > upto:
            break
        tasks = store.review_tasks(r["round"])
        answered = skipped = 0
        open_since = []
        for t in tasks:
            labels = answers.get((t["round"], t["task_id"]))
            if labels is None:
                moment = parse_time(t["pushed_at"])
                if moment is not None:
                    open_since.append((now - moment).total_seconds())
            elif any(label is not None for label in labels):
                answered += 1
            else:
                skipped += 1
        pushed = len(tasks)
        out.append({"round": r["round"], "pushed": pushed, "answered": answered, "skipped": skipped,
                    "open": pushed - answered - skipped, "oldest_open_seconds": max(open_since, default=None),
                    "pushed_at": r.get("pushed_at")})
    return out


def queue_section(store: Store, rnd: int) -> str:
    rows = queue_state(store, rnd)
    if not any(r["pushed"] for r in rows):
        return section("queue", "Review queue", body="<p class=\"note\">Nothing has been sent to review yet.</p>")
    body = "".join(
        f"<tr><td>{r['round']}</td><td>{e(when(r['pushed_at']))}</td><td class=\"n\">{fmt(r['pushed'])}</td>"
        f"<td class=\"n\">{fmt(r['answered'])}</td><td class=\"n\">{fmt(r['skipped'])}</td>"
        f"<td class=\"n\">{fmt(r['open'])}</td><td class=\"n\">{e(age(r['oldest_open_seconds']))}</td></tr>"
        for r in rows)
    head = ("<tr><th>round</th><th>pushed</th><th class=\"n\">tasks</th><th class=\"n\">answered</th>"
            "<th class=\"n\">skipped</th><th class=\"n\">open</th><th class=\"n\">oldest open</th></tr>")
    open_now = sum(r["open"] for r in rows)
    lead = (f"Each round's own review tasks (per round, as `relabel status` counts them). {open_now:,} tasks are "
            "still open; a skipped task is not a decision and its item can be sent again.")
    return section("queue", "Review queue", lead, f"<table id=\"queue-table\"><thead>{head}</thead>"
                                                 f"<tbody>{body}</tbody></table>")


# ---- what reviewers changed ---------------------------------------------------------------------------------
def reviewer_changes(store: Store, upto: int) -> list[dict]:
    """Decisions of rounds up to ``upto`` whose label differs from the label relabel had (newest first)."""
    rows = [d for d in store.decisions() if d["round"] <= upto and d["label"] is not None
            and d["previous_label"] is not None and d["label"] != d["previous_label"]]
    return sorted(rows, key=lambda d: (d["answered_at"] or "", d["round"]), reverse=True)


def changes_section(store: Store, rnd: int, base_url: str) -> str:
    rows = reviewer_changes(store, rnd)
    if not rows:
        return section("changes", "What reviewers changed",
                       body="<p class=\"note\">No reviewer has changed a label yet.</p>")
    project = store.project_id
    body = "".join(
        f"<tr><td>{task_link(base_url, project, d['item_id'])}</td><td class=\"n\">{d['round']}</td>"
        f"<td><span class=\"label\">{e(d['previous_label'])}</span> → <span class=\"label sugg\">{e(d['label'])}"
        f"</span></td><td>{e(d['reviewer'])}</td><td>{e(when(d['answered_at']))}</td></tr>"
        for d in rows[:CHANGES_LISTED])
    more = (f"<p class=\"note\">{len(rows) - CHANGES_LISTED:,} more not listed; `relabel export` has them all.</p>"
            if len(rows) > CHANGES_LISTED else "")
    head = ("<tr><th>task</th><th class=\"n\">round</th><th>old → new</th><th>reviewer</th>"
            "<th>answered</th></tr>")
    lead = (f"{len(rows):,} labels changed by reviewers in rounds 1–{rnd} (cumulative), newest first: relabel's "
            "label before review, the reviewer's after.")
    return section("changes", "What reviewers changed", lead,
                   f"<div class=\"scroll\"><table id=\"changes-table\"><thead>{head}</thead><tbody>{body}</tbody>"
                   f"</table></div>{more}")
