"""`relabel export`: every item with its final label and everything a team needs to trust or check it.

One row per live item: the final label (the reviewer's where a reviewer decided, the consensus elsewhere), who
labelled it what, the review (reviewer, decision, reason), the scores, a link to the task in Label Studio and a
flag for items nobody labelled. JSON Lines keeps ``annotations`` as an object; CSV writes it as JSON text.
"""
from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path
from typing import Iterable, Iterator

from relabel.atomic_files import atomic_write
from relabel.errors import ConfigError, StoreError
from relabel.redaction import url_without_userinfo
from relabel.loop.audit_step import wrong_labels_left
from relabel.loop.store import Store

EXPORT_FORMATS = ("csv", "jsonl")
# Items whose labels are read in one query while exporting.
_CHUNK = 1000


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
    return list(iter_export_rows(store))


def iter_export_rows(store: Store) -> Iterator[dict]:
    """``export_rows`` one row at a time: items and scores are read from the store as rows are written, the
    labels ``_CHUNK`` items at a time, so memory stays flat whatever the project size (only reviewed items and
    review tasks, a round's budget each, are held whole)."""
    latest = store.latest_round()
    if latest is None:
        raise StoreError("No round has been scored yet; run `relabel round` first.")
    reviewer_label = store.final_labels()
    review = _latest_review(store)
    reasons = {t["item_id"]: t["reason"] for t in store.review_tasks()}  # in round order: the latest wins
    base_url, project = store.get_meta("label_studio_url"), store.project_id
    flagged = store.flagged_items()
    rows = store.export_items(latest["round"])
    while chunk := list(itertools.islice(rows, _CHUNK)):
        labels = store.labels_of(r[0] for r in chunk)
        for (iid, text, consensus_label, quality, label_issue, override, outlier_score, outlier, duplicate_of,
             conflicting) in chunk:
            bad = iid in flagged
            consensus_label = None if bad else consensus_label
            reviewed = iid in reviewer_label
            given = labels.get(iid, [])
            decision = review.get(iid, {})
            yield {
                "item_id": iid,
                "final_label": reviewer_label[iid] if reviewed else consensus_label,
                "source": "flagged" if bad else ("reviewer" if reviewed else ("consensus" if consensus_label else None)),
                "consensus_label": consensus_label, "quality": quality,
                "num_annotations": len(given), "annotations": _by_annotator(given),
                "unlabelled": not given, "reviewed": reviewed,
                "reviewer": decision.get("reviewer"), "decision": decision.get("outcome"),
                "reason": reasons.get(iid), "label_issue": bool(label_issue), "override": bool(override),
                "round": latest["round"],
                # data issues (relabel/loop/data_review.py); a flagged item is bad data: no final label
                "flagged": bad, "outlier_score": outlier_score,
                "outlier": None if outlier is None else bool(outlier),
                "duplicate_of": ";".join(json.loads(duplicate_of)) if duplicate_of else None,
                "conflicting_duplicate": None if conflicting is None else bool(conflicting),
                "label_studio_url": task_link(base_url, project, iid), "text": text}


def write_export(rows: Iterable[dict], fmt: str, out: str | Path) -> int:
    """Write rows as CSV or JSON Lines as they come, aside then renamed (never a half-written file under the real
    name); returns how many were written."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"The export format must be one of {', '.join(EXPORT_FORMATS)}. Got {fmt!r}.")
    rows = iter(rows)
    first = next(rows, None)
    written = 0
    # atomic_write: O_EXCL temp file in the target folder, then os.replace (a planted .partial symlink is never followed).
    with atomic_write(out, what="the export", newline="") as f:
        if first is None:
            if fmt == "csv":
                csv.DictWriter(f, fieldnames=["item_id"]).writeheader()
            return 0
        if fmt == "csv":
            writer = csv.DictWriter(f, fieldnames=list(first))
            writer.writeheader()
            for r in itertools.chain([first], rows):
                writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v
                                 for k, v in r.items()})
                written += 1
        else:
            for r in itertools.chain([first], rows):
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
                written += 1
    return written


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


def write_export_metadata(store: Store, out: str | Path, items: int) -> Path:
    """``<out>.meta.json``: the round exported and the wrong labels its final labels are estimated to hold (the
    audited estimate with its interval and the number of audited items, or the model's estimate, so labelled)."""
    latest = store.latest_round()
    path = Path(str(out) + ".meta.json")
    with atomic_write(path, what="the export's metadata") as f:
        json.dump({"round": latest["round"] if latest else None, "items": items,
                   "wrong_labels_left": wrong_labels_left(store, latest)}, f, ensure_ascii=False, indent=1)
    return path
