"""`relabel export`: every item with its final label and everything a team needs to trust or check it.

One row per live item: the final label (the reviewer's where a reviewer decided, the consensus elsewhere), who
labelled it what, the review (reviewer, decision, reason), the scores, a link to the task in Label Studio and a
flag for items nobody labelled. JSON Lines keeps ``annotations`` as an object; CSV writes it as JSON text.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from .atomic_files import atomic_write
from .errors import ConfigError, StoreError
from .redaction import url_without_userinfo
from .store import Store

EXPORT_FORMATS = ("csv", "jsonl")


def task_link(base_url: str | None, project_id: int | None, item_id: str) -> str | None:
    """The item's task in Label Studio's Data Manager, when the item is a Label Studio task."""
    if not base_url or project_id is None or not str(item_id).isdigit():
        return None
    base_url = url_without_userinfo(base_url)
    if not base_url.startswith(("http://", "https://")):
        return None
    return f"{base_url.rstrip('/')}/projects/{project_id}/data?task={item_id}"


def export_rows(store: Store) -> list[dict]:
    """Every live item with its final label, per-annotator labels, review, scores and Label Studio link."""
    latest = store.latest_round()
    if latest is None:
        raise StoreError("No round has been scored yet; run `relabel round` first.")
    scores = {r["item_id"]: r for r in store.scores(latest["round"])}
    reviewer_label = store.final_labels()
    items = store.items()
    labels = store.labels_of(it["item_id"] for it in items)
    review = _latest_review(store)
    reasons = {t["item_id"]: t["reason"] for t in store.review_tasks()}  # in round order: the latest wins
    base_url, project = store.get_meta("label_studio_url"), store.project_id
    rows = []
    for item in items:
        iid = item["item_id"]
        s = scores.get(iid, {})
        reviewed = iid in reviewer_label
        given = labels.get(iid, [])
        decision = review.get(iid, {})
        rows.append({
            "item_id": iid,
            "final_label": reviewer_label[iid] if reviewed else s.get("consensus_label"),
            "source": "reviewer" if reviewed else ("consensus" if s.get("consensus_label") else None),
            "consensus_label": s.get("consensus_label"), "quality": s.get("quality"),
            "num_annotations": len(given), "annotations": _by_annotator(given),
            "unlabelled": not given, "reviewed": reviewed,
            "reviewer": decision.get("reviewer"), "decision": decision.get("outcome"),
            "reason": reasons.get(iid), "label_issue": bool(s.get("label_issue")), "round": latest["round"],
            "label_studio_url": task_link(base_url, project, iid), "text": item["text"]})
    return rows


def write_export(rows: list[dict], fmt: str, out: str | Path) -> int:
    """Write rows as CSV or JSON Lines, aside then renamed (never a half-written file under the real name)."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"The export format must be one of {', '.join(EXPORT_FORMATS)}. Got {fmt!r}.")
    # atomic_write: O_EXCL temp file in the target folder, then os.replace (a planted .partial symlink is never followed).
    with atomic_write(out, what="the export", newline="") as f:
        if fmt == "csv":
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["item_id"])
            writer.writeheader()
            writer.writerows({k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else v
                              for k, v in r.items()} for r in rows)
        else:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return len(rows)


def _by_annotator(given: list[tuple[str, str]]) -> dict[str, str]:
    """{annotator: label}; an annotator who labelled an item twice shows both labels, joined by ' / '."""
    out: dict[str, str] = {}
    for annotator, label in given:
        out[annotator] = f"{out[annotator]} / {label}" if annotator in out else label
    return out


def _latest_review(store: Store) -> dict[str, dict]:
    """Per item, the review that stands: its latest answered task's reviewers (joined) and outcome."""
    out = {}
    for item, rows in store.latest_task_decisions().items():
        outcomes = {r["outcome"] for r in rows}
        # One task, several reviewers: "disputed" if any row is; else the answered outcome over a skip.
        outcome = next((o for o in ("disputed", "corrected", "confirmed", "skipped") if o in outcomes), None)
        out[item] = {"reviewer": ", ".join(sorted({r["reviewer"] for r in rows})), "outcome": outcome}
    return out
