"""What reviewers' answers mean: which answer is a decision, what an edit is, when a task is disputed.

Pure functions over plain rows (no SQLite, no Label Studio), used by the store's decision ledger and by the loop.

The rules (README "For reviewers"):
- Only the people in ``[review] reviewers`` decide (anyone, when the list is empty). Anyone else's answer on a
  review task is kept as an ordinary annotation of the item: it counts like any annotator's label.
- A reviewer has one current decision per review task: the answer they changed last (``updated_at``). When they
  edit it, the decision changes and the ledger keeps the old version.
- A task is *disputed* when its reviewers chose different labels. A disputed task decides nothing: the item has
  no reviewer label from it and goes back to review at the next round, first in the queue.
- A skip decides nothing either: the item goes back to review at the next round, first in the queue.
- So does a task answered only by people who do not decide: Label Studio counts it done, nobody would be asked.
"""
from __future__ import annotations

from typing import Iterable

from connectors.records import ReviewAnswer

OUTCOMES = ("confirmed", "corrected", "skipped", "disputed")


def latest_per_reviewer(answers: Iterable[ReviewAnswer]) -> list[ReviewAnswer]:
    """One answer per (round, task, reviewer): the one changed last (ties: the higher annotation id)."""
    best: dict[tuple, ReviewAnswer] = {}
    for a in answers:
        key = (int(a.round), int(a.task_id), str(a.reviewer))
        if key not in best or _recency(a) > _recency(best[key]):
            best[key] = a
    return list(best.values())


def change_of(current: dict | None, answer: ReviewAnswer) -> str | None:
    """How ``answer`` differs from a reviewer's ``current`` decision row: "new", "changed" (another label or a
    skip undone/made), "edited" (saved again, same label) or None (nothing to record)."""
    if current is None:
        return "new"
    if current["label"] != answer.label or bool(current.get("flagged")) != bool(getattr(answer, "flagged", False)):
        return "changed"
    if (current["annotation_id"], current["answered_at"]) != (answer.annotation_id, answer.answered_at):
        return "edited"
    return None


def task_outcomes(rows: list[dict]) -> list[str]:
    """The outcome of each reviewer's decision on one task, given the label relabel suggested in
    ``row["previous_label"]``: "disputed" for every answered row when the reviewers' labels differ."""
    labels = {r["label"] for r in rows if r["label"] is not None}
    out = []
    for r in rows:
        if r["label"] is None:
            out.append("skipped")
        elif len(labels) > 1:
            out.append("disputed")
        elif r["label"] == r["previous_label"]:
            out.append("confirmed")
        else:
            out.append("corrected")
    return out


def requeue_note(rows: list[dict]) -> str:
    """Why an item goes back to review, from the decision rows of its latest answered task."""
    rnd = rows[0]["round"]
    if any(r["outcome"] == "disputed" for r in rows):
        said = "; ".join(f"{r['reviewer']}: {r['label']}" for r in rows if r["label"] is not None)
        return f"reviewers disagreed in round {rnd} ({said})"
    return f"skipped in round {rnd} by {', '.join(sorted({r['reviewer'] for r in rows}))}"


def _recency(a: ReviewAnswer) -> tuple:
    annotation = str(a.annotation_id or "")
    return (a.answered_at or "", int(annotation) if annotation.isdigit() else -1, annotation)
