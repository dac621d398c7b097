"""The store's span tables (relabel/loop/span_schema.py): writing a span pull, a scored span round and reviewers'
span answers, and reading them back as the long tables relabel.span_consensus takes.

Part of the store (the only modules that touch SQLite); functions over a relabel.loop.store.Store. Every write
runs in one transaction, so a failure half way leaves the store as it was.
"""
from __future__ import annotations

import hashlib
import json

import pandas as pd

from relabel.loop.store_schema import item_row, now, task_data_of

SPAN_KIND = "spans"


def is_span_store(store) -> bool:
    return store.get_meta("project_kind") == SPAN_KIND


def apply_span_pull(store, items: list[tuple], annotations: list[dict], spans: pd.DataFrame,
                    text_field: str) -> dict:
    """Write a full pull: ``items`` [(item_id, data, text)], ``annotations`` span_annotations rows (submitted and
    cancelled), ``spans`` the long table (annotation, task, annotator, control, start, end, label, text).
    Items and annotations no longer in the project are marked deleted (kept); each annotation's spans are
    replaced by what this pull read. Returns counts: items, new, changed, deleted annotations."""
    db = store.db
    before = {r["annotation_id"]: (r["updated_at"], r["deleted"]) for r in
              db.query("select annotation_id, updated_at, deleted from span_annotations")}
    seen = {str(a["annotation_id"]) for a in annotations}
    new = sum(str(a["annotation_id"]) not in before for a in annotations)
    changed = sum(str(a["annotation_id"]) in before and (before[str(a["annotation_id"])][0] != a["updated_at"]
                                                         or before[str(a["annotation_id"])][1])
                  for a in annotations)
    gone = [k for k, (_, deleted) in before.items() if k not in seen and not deleted]
    span_rows = [{"annotation_id": str(r.annotation), "item_id": str(r.task), "annotator_id": str(r.annotator),
                  "control": r.control, "start": int(r.start), "end": int(r.end), "label": r.label, "text": r.text}
                 for r in spans.itertuples(index=False)]
    with db.atomic():
        # every item is marked deleted, then the pulled ones written live again (no id list in one statement)
        db.execute("update items set deleted = 1")
        db["items"].upsert_all([item_row(i, data, text, text_field) for i, data, text in items], pk="item_id")
        db["span_annotations"].upsert_all([{**a, "annotation_id": str(a["annotation_id"]), "deleted": 0}
                                           for a in annotations], pk="annotation_id")
        for key in gone:
            db.execute("update span_annotations set deleted = 1 where annotation_id = ?", [key])
        db.execute("delete from spans")
        if span_rows:
            db["spans"].insert_all(span_rows, pk=("annotation_id", "control", "start", "end", "label"))
    return {"items": len(items), "new": new, "changed": changed, "deleted": len(gone)}


def span_inputs(store) -> tuple[list, list, pd.DataFrame, pd.DataFrame]:
    """(item ids, texts, spans, answered) of the live items, items in task-id order; spans and answered carry
    ``item`` as the index into texts (spans: item, annotator, control, start, end, label)."""
    rows = list(store.db.query("select item_id, text from items where deleted = 0"))
    rows.sort(key=lambda r: (len(r["item_id"]), r["item_id"]))
    ids = [r["item_id"] for r in rows]
    index = {item: i for i, item in enumerate(ids)}
    live = ("a.deleted = 0 and a.cancelled = 0 and a.item_id in (select item_id from items where deleted = 0)")
    answered = pd.DataFrame(list(store.db.query(f"select distinct a.item_id, a.annotator_id from span_annotations a "
                                                f"where {live}")), columns=["item_id", "annotator_id"])
    spans = pd.DataFrame(list(store.db.query(f"select s.item_id, s.annotator_id, s.control, s.start, s.end, s.label "
                                             f"from spans s join span_annotations a using (annotation_id) "
                                             f"where {live}")),
                         columns=["item_id", "annotator_id", "control", "start", "end", "label"])
    spans = spans.drop_duplicates(["item_id", "annotator_id", "control", "start", "end", "label"])
    answered = pd.DataFrame({"item": answered["item_id"].map(index).astype("int64"),
                             "annotator": answered["annotator_id"].astype(object)})
    spans = pd.DataFrame({"item": spans["item_id"].map(index).astype("int64"), "annotator": spans["annotator_id"],
                          "control": spans["control"], "start": spans["start"].astype("int64"),
                          "end": spans["end"].astype("int64"), "label": spans["label"]})
    return ids, [r["text"] or "" for r in rows], spans, answered


def item_data(store, item_id: str) -> dict:
    row = next(iter(store.db.query("select data, text from items where item_id = ?", [item_id])))
    return task_data_of(row["data"], row["text"], store.get_meta("text_field"))


def span_signature(store) -> str:
    """What a span round rests on: the annotations (ids, versions, results, deletions), the items' texts and the
    reviewers' answers."""
    h = hashlib.sha256()
    for row in store.db.execute("select annotation_id, updated_at, deleted, cancelled, result from span_annotations "
                                "order by annotation_id"):
        h.update(repr(row).encode())
    for row in store.db.execute("select annotation_id, updated_at, spans, decides from span_review_answers "
                                "order by annotation_id"):
        h.update(repr(row).encode())
    for row in store.db.execute("select item_id, deleted, text from items order by item_id"):
        h.update(repr(row).encode())
    return h.hexdigest()


def record_span_answers(store, answers: list[dict]) -> dict:
    """Upsert reviewers' answers (span_review_answers rows; ``spans`` None for a skip); a new or edited answer
    adds a version to the ledger. Returns counts: new, edited, unchanged."""
    db = store.db
    before = {r["annotation_id"]: r for r in db.query("select * from span_review_answers")}
    counts = {"new": 0, "edited": 0, "unchanged": 0}
    stamp = now()
    with db.atomic():
        for answer in answers:
            old = before.get(answer["annotation_id"])
            change = "new" if old is None else ("edited" if (old["spans"], old["updated_at"]) !=
                                                (answer["spans"], answer["updated_at"]) else None)
            if change is None:
                counts["unchanged"] += 1
                continue
            counts[change] += 1
            db["span_review_answers"].upsert({**answer, "collected_at": stamp}, pk="annotation_id")
            db["span_decision_log"].insert({k: answer[k] for k in ("annotation_id", "round", "task_id", "item_id",
                                                                   "reviewer", "spans", "updated_at")}
                                           | {"change": change, "collected_at": stamp})
    return counts


def span_gold(store) -> tuple[dict, list]:
    """{item_id: [(control, start, end, label), ...]} of every item reviewers decided, and the disputed items.

    An item's decision is its latest reviewed round's deciding answers: when they all give the same spans, those
    are gold; when they differ, the item is disputed and stays undecided (as for classification)."""
    rows = list(store.db.query("select item_id, round, reviewer, spans from span_review_answers where decides = 1 "
                               "and spans is not null"))
    latest: dict = {}
    for r in rows:
        latest[r["item_id"]] = max(latest.get(r["item_id"], 0), r["round"])
    answers: dict = {}
    for r in rows:
        if r["round"] == latest[r["item_id"]]:
            answers.setdefault(r["item_id"], set()).add(r["spans"])
    gold, disputed = {}, []
    for item, versions in answers.items():
        if len(versions) == 1:
            gold[item] = [tuple(s) for s in json.loads(next(iter(versions)))]
        else:
            disputed.append(item)
    return gold, sorted(disputed)


def skipped_items(store) -> set:
    """Items whose latest review round has deciding answers that are all skips (no spans)."""
    rows = list(store.db.query(
        "select item_id, spans from span_review_answers a where decides = 1 and round = "
        "(select max(round) from span_review_answers b where b.item_id = a.item_id and b.decides = 1)"))
    items: dict = {}
    for r in rows:
        items.setdefault(r["item_id"], []).append(r["spans"])
    return {item for item, spans in items.items() if all(s is None for s in spans)}


def record_span_round(store, rnd: int, round_row: dict, consensus: list[dict], items: list[dict],
                      annotators: list[dict], pairwise: list[dict]) -> None:
    """A scored span round, all in one transaction."""
    db = store.db
    with db.atomic():
        for table in ("span_consensus", "span_item_scores", "span_annotator_scores", "span_pairwise"):
            db.execute(f"delete from {table} where round = ?", [rnd])
        db["rounds"].upsert({"round": rnd, **round_row}, pk="round")
        for table, rows in (("span_consensus", consensus), ("span_item_scores", items),
                            ("span_annotator_scores", annotators), ("span_pairwise", pairwise)):
            if rows:
                db[table].insert_all([{"round": rnd, **r} for r in rows])


def record_span_push(store, rnd: int, target: int, pushed: dict, reasons: dict, qualities: dict, mode: str) -> None:
    db = store.db
    stamp = now()
    with db.atomic():
        for item, task_id in pushed.items():
            db["review_tasks"].upsert({"round": rnd, "item_id": str(item), "mode": mode, "target_project": target,
                                       "task_id": int(task_id), "reason": reasons.get(item),
                                       "quality": qualities.get(item), "suggested": None, "pushed_at": stamp},
                                      pk=("round", "item_id"))
        db["rounds"].upsert({"round": rnd, "status": "pushed", "pushed_at": stamp}, pk="round")
