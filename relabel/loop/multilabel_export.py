"""`relabel export` and `relabel writeback` for a multi-label project (issue 24): sets, not single labels.

One row per live item: ``final_labels`` (the reviewer's set where a reviewer decided, the consensus set elsewhere;
``[]`` is "none apply", None for an item nobody labelled or a flagged item), ``consensus_labels``, the per-class
probabilities, each annotator's set, the review and the reason. Writeback writes ``final_labels`` (a list of
class names) into the task data field ``relabel_final``, so Label Studio's own exports carry it.
"""
from __future__ import annotations

import json
from typing import Iterator

from connectors.label_studio_common import decode_label_set
from relabel.errors import StoreError
from relabel.loop.export import _latest_review, task_link
from relabel.loop.store import Store


def multilabel_export_rows(store: Store) -> Iterator[dict]:
    """Every live item of the latest round with its final set (see the module docstring)."""
    latest = store.latest_round()
    if latest is None:
        raise StoreError("No round has been scored yet; run `relabel round` first.")
    classes = json.loads(latest["classes"] or "[]") or list(store.classes)
    reviewer_sets = store.final_labels()
    review = _latest_review(store)
    reasons = {t["item_id"]: t["reason"] for t in store.review_tasks()}
    base_url, project = store.get_meta("label_studio_url"), store.project_id
    flagged = store.flagged_items()
    scores = {r["item_id"]: r for r in store.multilabel_scores(latest["round"])}
    items = store.items(with_data=False)
    given = store.labels_of(r["item_id"] for r in items)
    for item in items:
        iid = item["item_id"]
        row = scores.get(iid, {})
        bad = iid in flagged
        consensus = None if bad or not row.get("labelled") else list(decode_label_set(row["labels"]))
        reviewed = iid in reviewer_sets and not bad
        final = list(decode_label_set(reviewer_sets[iid])) if reviewed else consensus
        probabilities = json.loads(row["probabilities"]) if row.get("probabilities") else None
        decision = review.get(iid, {})
        annotations = {who: list(decode_label_set(label)) for who, label in given.get(iid, [])}
        yield {"item_id": iid, "final_labels": final,
               "source": "flagged" if bad else ("reviewer" if reviewed else ("consensus" if consensus is not None
                                                                             else None)),
               "consensus_labels": consensus, "quality": row.get("quality"),
               "probabilities": None if probabilities is None else dict(zip(classes, probabilities)),
               "num_annotations": len(annotations), "annotations": annotations, "unlabelled": not annotations,
               "reviewed": reviewed, "reviewer": decision.get("reviewer"), "decision": decision.get("outcome"),
               "reason": reasons.get(iid), "round": latest["round"], "flagged": bad,
               "label_studio_url": task_link(base_url, project, iid), "text": item["text"]}
