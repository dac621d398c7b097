"""A relabel round for a span project (issue 23): collect reviewers' span answers -> pull -> score
(relabel.span_consensus with relabel's token model, reviewers' spans as gold) -> select -> push span review tasks;
and the span project's writeback, export and annotator table.

``Loop`` (relabel/loop/rounds.py) calls these when the store's project is a span project (`relabel init` found
``<Labels>`` on a ``<Text>`` in the labeling config). Bad input inside a round (a region past the end of the
text, a region with no label, a region whose text no longer matches the task's text, one annotator's
overlapping regions in one control) is one line each in the round's notes naming the task and the fix; the
region's raw result stays in the store (span_annotations.result) and the round goes on without it (overlaps are
scored: same-label ones as their union, different labels as nested spans).
"""
from __future__ import annotations

import json
import warnings

import pandas as pd

from connectors.label_config import SpanConfig
from connectors.label_studio_spans import SpanConnector
from connectors.span_records import consensus_regions, span_table
from connectors.span_review import (regions_by_annotator, span_review_task, writeback_predictions,
                                    writeback_version)
from relabel.config import positive_budget
from relabel.errors import ConfigError, StoreError, preview
from relabel.loop.store_schema import now
from relabel.loop.store_spans import (apply_span_pull, item_data, record_span_answers, record_span_push,
                                      record_span_round, skipped_items, span_gold, span_inputs, span_signature)
from relabel.loop.summaries import RoundSummary

# Bad-input lines printed in a round's output; the rest are in the events log (`relabel log --step pull`).
MAX_PROBLEM_LINES = 20
SPAN_EXPORT_FORMATS = ("jsonl", "conll")


def span_connector(loop) -> SpanConnector:
    return SpanConnector.of(loop.connector)


def span_round(loop, budget: int | None = None, force: bool = False, add: int | None = None) -> RoundSummary:
    """collect -> pull -> score -> select -> push for a span project; see the module docstring."""
    if budget is not None:
        positive_budget(budget)
    store = loop.store
    conn = span_connector(loop)
    config = conn.span_config()
    latest = store.latest_round()
    notes: list[str] = []
    if latest is not None and latest["status"] == "scored":      # died before its push was recorded: resume
        loop.working_on(latest["round"])
        notes += _push(loop, conn, config, latest["round"], budget, add)
        return RoundSummary(round=latest["round"], resumed=True, steps=("push",), notes=tuple(notes))
    rnd = latest["round"] + 1 if latest else 1
    loop.working_on(rnd)
    steps = []
    if store.count("review_tasks"):
        notes.append(_collect(loop, conn, config))
        steps.append("collect")
    pull_line, problems = _pull(store, conn, config)
    notes.append(pull_line)
    notes += problems[:MAX_PROBLEM_LINES]
    if len(problems) > MAX_PROBLEM_LINES:
        notes.append(f"... and {len(problems) - MAX_PROBLEM_LINES} more such lines: relabel log --step pull")
    if config.unscored:
        notes.append(f"kept but not scored: {', '.join(config.unscored)} (relabel scores <Labels> spans only).")
    steps.append("pull")
    signature = span_signature(store)
    if latest is not None and latest.get("inputs") == signature and not force:
        reason = f"nothing changed since round {latest['round']}"
        store.log_event("round", reason, round=latest["round"])
        return RoundSummary(round=latest["round"], resumed=False, steps=tuple(steps), unchanged_reason=reason,
                            notes=tuple(notes))
    notes += _score(loop, rnd, signature)
    notes += _push(loop, conn, config, rnd, budget, add)
    return RoundSummary(round=rnd, resumed=False, steps=tuple(steps + ["score", "select", "push"]),
                        notes=tuple(notes))


# ---- collect ----------------------------------------------------------------------------------------------
def _collect(loop, conn: SpanConnector, config: SpanConfig) -> str:
    """Reviewers' answers on the span review tasks, as span sets; an edited answer is a new version."""
    store = loop.store
    pushed = {(r["target_project"], r["task_id"]): r for r in store.db.query("select * from review_tasks")}
    answers, problems = [], []
    for task in conn.span_review_tasks():
        data = task.get("data") or {}
        item, rnd = data.get("relabel_item"), data.get("relabel_round")
        if item is None or rnd is None:
            continue
        text = data.get(config.text_field)
        for annotation in task.get("annotations") or []:
            if annotation.get("was_cancelled"):      # a skip: no decision; the item goes back to the queue
                who = (annotation.get("completed_by") or {}).get("email", "unknown")
                answers.append({"annotation_id": str(annotation["id"]), "round": int(rnd), "task_id": int(task["id"]),
                                "item_id": str(item), "reviewer": who, "decides": int(loop.review.decides(who)),
                                "updated_at": annotation.get("updated_at"), "spans": None})
                continue
            table = span_table([{"id": task["id"], "data": {config.text_field: text}, "annotations": [annotation]}],
                               config)
            problems += [f"review {p}" for p in table.problems]
            reviewer = table.answered["annotator"].iloc[0] if len(table.answered) else "unknown"
            spans = sorted({(r.control, int(r.start), int(r.end), r.label) for r in table.spans.itertuples()})
            answers.append({"annotation_id": str(annotation["id"]), "round": int(rnd), "task_id": int(task["id"]),
                            "item_id": str(item), "reviewer": reviewer, "decides": int(loop.review.decides(reviewer)),
                            "updated_at": annotation.get("updated_at"), "spans": json.dumps(spans)})
    counts = record_span_answers(store, answers)
    line = (f"collect: {len(answers)} reviewer answers ({counts['new']} new, {counts['edited']} edited) on "
            f"{len(pushed)} span review tasks")
    store.log_event("collect", line, details={"problems": problems[:100]})
    return line + (f"; {len(problems)} answers have regions relabel cannot score: {preview(problems, 2)}"
                   if problems else "")


# ---- pull -------------------------------------------------------------------------------------------------
def _pull(store, conn: SpanConnector, config: SpanConfig) -> tuple[str, list[str]]:
    tasks = conn.source_tasks()
    table = span_table(tasks, config)
    items, annotations = [], []
    for task in tasks:
        data = task.get("data") or {}
        text = data.get(config.text_field)
        if not isinstance(text, str):
            continue
        items.append((str(task["id"]), data, text))
        mine = [p for p in table.problems if p.startswith(f"task {task['id']},")]
        for annotation in task.get("annotations") or []:
            who = (annotation.get("completed_by") or {}).get("email", "unknown")
            annotations.append({"annotation_id": str(annotation["id"]), "item_id": str(task["id"]),
                                "annotator_id": who, "updated_at": annotation.get("updated_at"),
                                "cancelled": int(bool(annotation.get("was_cancelled"))),
                                "result": json.dumps(annotation.get("result") or []),
                                "problems": "\n".join(p for p in mine if f"annotator {who!r}" in p) or None})
    counts = apply_span_pull(store, items, annotations, table.spans, config.text_field)
    line = (f"pull: {counts['items']} tasks, {len(annotations)} annotations ({counts['new']} new, "
            f"{counts['changed']} changed, {counts['deleted']} deleted), {len(table.spans)} span labels")
    store.log_event("pull", line, details={"problems": list(table.problems)})
    return line, list(table.problems)


# ---- score ------------------------------------------------------------------------------------------------
def _model(loop):
    """relabel's token model unless the config's [model] says ``span_model = "none"``."""
    settings = loop.model if isinstance(loop.model, dict) else {}
    return None if str(settings.get("span_model", "relabel")).lower() == "none" else "relabel"


def _score(loop, rnd: int, signature: str) -> list[str]:
    from relabel.models.spans import span_consensus
    from relabel.scoring.span_agreement import label_span_agreement
    from relabel.scoring.span_input import SpanOverlapWarning

    store = loop.store
    ids, texts, spans, answered = span_inputs(store)
    if not ids or answered.empty:
        raise StoreError("The span project has no annotated task to score yet; annotate some tasks in Label "
                         "Studio, then run `relabel round` again.")
    index = {item: i for i, item in enumerate(ids)}
    gold_map, disputed = span_gold(store)
    gold_map = {item: s for item, s in gold_map.items() if item in index}
    gold = pd.DataFrame([(index[item], c, s, e, label) for item, rows in gold_map.items() for c, s, e, label in rows],
                        columns=["item", "control", "start", "end", "label"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpanOverlapWarning)     # named per task in the pull's lines already
        result = span_consensus(texts, spans, answered=answered, model=_model(loop), gold=gold,
                                gold_items=[index[i] for i in gold_map])
    cons = result.spans
    reason = {}
    for row in result.issues[result.issues["reason"] != ""].itertuples():
        reason.setdefault(int(row.item), row.reason)
    by_label = label_span_agreement(texts, spans, answered, cons)
    overall = result.annotators
    annotator_rows = [{"annotator_id": str(r.annotator), "control": "", "label": "", "n_items": int(r.n_items),
                       "n_spans": int(r.n_spans), "n_consensus": None,
                       **{f"{k}_{m}": _num(getattr(r, f"{k}_{m}")) for k in ("exact", "relaxed")
                          for m in ("precision", "recall", "f1")}} for r in overall.itertuples()]
    annotator_rows += [{"annotator_id": str(r.annotator), "control": r.control, "label": r.label, "n_items": None,
                        "n_spans": int(r.n_spans), "n_consensus": int(r.n_consensus),
                        **{f"{k}_{m}": _num(getattr(r, f"{k}_{m}")) for k in ("exact", "relaxed")
                           for m in ("precision", "recall", "f1")}} for r in by_label.itertuples()]
    pairwise = [{"annotator_a": str(r.annotator_a), "annotator_b": str(r.annotator_b),
                 "shared_items": int(r.shared_items), "spans": int(r.spans), "exact_f1": _num(r.exact_f1),
                 "relaxed_f1": _num(r.relaxed_f1)} for r in result.pairwise.itertuples()]
    items = [{"item_id": ids[int(r.item)], "quality": float(r.quality), "n_annotators": int(r.n_annotators),
              "n_spans": int(r.n_spans), "reviewed": int(r.reviewed), "reason": reason.get(int(r.item))}
             for r in result.items.itertuples()]
    consensus = [{"item_id": ids[int(r.item)], "control": r.control, "start": int(r.start), "end": int(r.end),
                  "label": r.label} for r in cons.itertuples()]
    round_row = {"status": "scored", "method": "spans" + (" + model" if result.model_used else ""),
                 "items": len(ids), "labelled_items": int(answered["item"].nunique()),
                 "annotations": int(len(answered)), "annotators": int(answered["annotator"].nunique()),
                 "scored_at": now(), "inputs": signature, "mode": loop.review.mode}
    record_span_round(store, rnd, round_row, consensus, items, annotator_rows, pairwise)
    line = (f"score: {len(ids)} items, {len(consensus)} consensus spans, {len(gold_map)} decided by reviewers"
            f"{', model used' if result.model_used else ''}; {sum(1 for i in items if i['reason'])} items with "
            "disagreement")
    store.log_event("score", line, round=rnd)
    return [line] + ([f"{len(disputed)} items have disputed reviews (reviewers gave different spans) and stay "
                      f"undecided: {preview(disputed)}"] if disputed else [])


def _num(value):
    return None if value is None or pd.isna(value) else float(value)


# ---- select + push ----------------------------------------------------------------------------------------
def _push(loop, conn: SpanConnector, config: SpanConfig, rnd: int, budget, add) -> list[str]:
    store = loop.store
    if loop.review.mode != "project":
        raise ConfigError("Span projects are reviewed in a review project; set [review] mode = \"project\".")
    gold, disputed = span_gold(store)
    # Open: pushed and not answered by a reviewer in its latest review round. A skip or a dispute sends the item
    # back to the queue, ahead of the rest (as for classification).
    back = set(disputed) | skipped_items(store)
    answered = {r["item_id"] for r in store.db.query(
        "select a.item_id from span_review_answers a where a.decides = 1 and a.round = "
        "(select max(t.round) from review_tasks t where t.item_id = a.item_id)")}
    waiting = {r["item_id"] for r in store.db.query("select item_id from review_tasks")} - set(gold) - back - answered
    mine = {r["item_id"] for r in store.db.query("select item_id from review_tasks where round = ?", [rnd])}
    budget = loop.review.budget if budget is None else budget
    room = add if add is not None else max(budget - len(waiting - mine), 0)
    candidates = [r for r in store.db.query(
        "select item_id, quality, reason from span_item_scores where round = ? and reviewed = 0 "
        "order by quality, item_id", [rnd])
        if (r["reason"] is not None or r["item_id"] in back) and (r["item_id"] not in waiting or r["item_id"] in mine)]
    candidates.sort(key=lambda r: r["item_id"] not in back)     # stable: quality order within each group
    chosen = [r for r in candidates if r["item_id"] in mine]
    chosen += [r for r in candidates if r["item_id"] not in mine][:max(room - len(chosen), 0)]
    if not chosen:
        store.db["rounds"].upsert({"round": rnd, "status": "pushed", "pushed_at": now()}, pk="round")
        return [f"push: nothing to review ({len(waiting)} review tasks still open)"]
    ids, texts, spans, answered = span_inputs(store)
    index = {item: i for i, item in enumerate(ids)}
    long = spans.assign(task=[ids[i] for i in spans["item"]])
    said = answered.assign(task=[ids[i] for i in answered["item"]])
    consensus = pd.DataFrame(list(store.db.query(
        "select item_id as task, control, start, end, label from span_consensus where round = ?", [rnd])),
        columns=["task", "control", "start", "end", "label"])
    texts_by_task = {item: texts[index[item]] for item in ids}
    regions = consensus_regions(consensus, texts_by_task, config) if len(consensus) else {}
    payloads = {}
    for r in chosen:
        item = r["item_id"]
        reason = r["reason"] or "annotators agree, but the last review was skipped or disputed"
        if item in back and r["reason"]:
            reason = f"{reason}; the last review was skipped or disputed"
        r["reason"] = reason
        payloads[item] = span_review_task(
            item, item_data(store, item), regions_by_annotator(long, item, texts_by_task[item], config, said),
            regions.get(item, []), reason=reason, quality=r["quality"], round_number=rnd,
            preselect=loop.review.preselect)
    target, pushed = conn.push_span_reviews(payloads, rnd, preselect=loop.review.preselect)
    record_span_push(store, rnd, target, pushed, {r["item_id"]: r["reason"] for r in chosen},
                     {r["item_id"]: r["quality"] for r in chosen}, "project")
    line = f"push: {len(pushed)} span review tasks in review project {target}"
    store.log_event("push", line, round=rnd)
    return [line]


# ---- writeback, export, annotators -------------------------------------------------------------------------
def _latest(store) -> int:
    latest = store.latest_round()
    if latest is None:
        raise StoreError("No round has been scored yet; run `relabel round` first.")
    return latest["round"]


def latest_consensus(store):
    """(item ids, texts, consensus with item indexes) of the latest scored round, live items only."""
    rnd = _latest(store)
    ids, texts, _, _ = span_inputs(store)
    index = {item: i for i, item in enumerate(ids)}
    rows = [r for r in store.db.query("select item_id, control, start, end, label from span_consensus where round = ?",
                                      [rnd]) if r["item_id"] in index]
    consensus = pd.DataFrame({"item": [index[r["item_id"]] for r in rows], "control": [r["control"] for r in rows],
                              "start": [r["start"] for r in rows], "end": [r["end"] for r in rows],
                              "label": [r["label"] for r in rows]},
                             columns=["item", "control", "start", "end", "label"])
    return rnd, ids, texts, consensus.astype({"item": "int64", "start": "int64", "end": "int64"})


def span_writeback(loop):
    """The latest round's consensus (reviewers' spans where decided) as predictions on the source tasks, model
    version relabel-consensus-r<round>; earlier write-backs are replaced."""
    from relabel.loop.writeback import WritebackSummary

    store = loop.store
    conn = span_connector(loop)
    config = conn.span_config()
    rnd, ids, texts, consensus = latest_consensus(store)
    frame = consensus.assign(task=[int(ids[i]) for i in consensus["item"]])
    regions = consensus_regions(frame, {int(i): t for i, t in zip(ids, texts)}, config) if len(frame) else {}
    quality = {int(r["item_id"]): r["quality"] for r in
               store.db.query("select item_id, quality from span_item_scores where round = ?", [rnd])}
    predictions = writeback_predictions({int(i): regions.get(int(i), []) for i in ids}, quality, rnd)
    written, removed, unchanged = conn.write_span_predictions(predictions, writeback_version(rnd))
    store.log_event("writeback", f"consensus spans of round {rnd}: {written} tasks written, {removed} earlier "
                                 f"write-backs removed, {unchanged} unchanged", round=rnd)
    return WritebackSummary(written=written, updated=0, removed=removed, unchanged=unchanged, missing=0)


def span_export(store, fmt: str, out) -> int:
    from relabel.loop.span_export import write_conll, write_jsonl

    if fmt not in SPAN_EXPORT_FORMATS:
        raise ConfigError(f"A span project exports as {' or '.join(SPAN_EXPORT_FORMATS)}. Got {fmt!r}.")
    _, ids, texts, consensus = latest_consensus(store)
    if fmt == "jsonl":
        write_jsonl(out, ids, texts, consensus)
    else:
        write_conll(out, ids, texts, consensus)
    return len(ids)


def span_annotator_rows(store) -> list[dict]:
    """Per annotator (control and label "": all of them) and per (annotator, control, label): span counts and
    exact and relaxed P/R/F1 against the consensus of the latest round."""
    rnd = _latest(store)
    return [{k: v for k, v in r.items() if k != "round"} for r in store.db.query(
        "select * from span_annotator_scores where round = ? order by annotator_id, control, label", [rnd])]


def span_pairwise_rows(store, rnd: int) -> list[dict]:
    return list(store.db.query("select annotator_a, annotator_b, shared_items, spans, exact_f1, relaxed_f1 from "
                               "span_pairwise where round = ? order by annotator_a, annotator_b", [rnd]))
