"""A multi-label project's round (issue 24): collect -> pull -> score -> select -> push, as for classification,
with sets of classes instead of one class per item.

An annotation is a set (an empty set is the answer "none apply"; a skipped task is no answer); the store keeps
it as JSON text of the class names in config order (connectors.label_studio_common.encode_label_set), in the same
columns a classification project uses, so pulling, collecting reviewers' answers, the decision ledger (an edited
answer is a new decision version) and the review-task bookkeeping are the classification loop's own steps. What
differs lives here: the score step runs relabel.scoring.multilabel's consensus with the out-of-fold one-vs-rest
model (relabel.models.multilabel) and reviewers' sets as gold; the select step sends the items whose whole set is
least likely right, each with its reason ("2 of 3 annotators tagged sports, the model says 0.04"); the push asks
for a set (the review project's <Choices choice="multiple">, nothing preselected unless [review] preselect).
"""
from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd

from connectors.label_studio_common import decode_label_set, encode_label_set
from connectors.records import ReviewRequest
from relabel.config import positive_budget, review_mode
from relabel.errors import ConnectorError, StoreError, preview
from relabel.loop.loop_state import LoopState
from relabel.loop.queue import TopUp
from relabel.loop.store_schema import now
from relabel.loop.summaries import PushSummary, ScoreSummary
from relabel.scoring.multilabel import class_summary, fit_multilabel_consensus, review_reason

METHOD = "multilabel-consensus"
# The review panel lists the model's classes down to this probability (at least the top one), most likely first.
PANEL_MODEL_FLOOR = 0.05
# An item whose consensus set is less likely right than not counts as a label issue in the round's summary.
ISSUE_QUALITY = 0.5
NONE_APPLY = "(none apply)"


def describe_set(labels) -> str:
    """A set as people read it: "sports, politics" or "(none apply)"."""
    return ", ".join(labels) if labels else NONE_APPLY


# ---- score ------------------------------------------------------------------------------------------------------
def score_multilabel(loop: LoopState) -> ScoreSummary:
    """Loop.score for a multi-label project: every item's consensus set into a new round (or the open one)."""
    store = loop.store
    latest = store.latest_round()
    if latest is not None and latest["status"] == "selected":
        raise StoreError(f"Round {latest['round']}'s review tasks were selected and may already be partly in "
                         "Label Studio; run `relabel push` (or `relabel round`) to finish that round first.")
    rnd = latest["round"] if latest is not None and latest["status"] == "scored" else (
        (latest["round"] + 1) if latest else 1)
    loop.working_on(rnd)
    classes = list(store.classes)
    position = {c: k for k, c in enumerate(classes)}
    flagged = store.flagged_items()
    item_ids, texts = store.item_texts()
    keep = [n for n, iid in enumerate(item_ids) if iid not in flagged]
    item_ids, texts = [item_ids[n] for n in keep], [texts[n] for n in keep]
    index = {iid: n for n, iid in enumerate(item_ids)}
    notes: list[str] = []
    frame, unknown = _annotation_frame(store._scorable_rows(), index, position)
    if unknown:
        notes.append(f"{len(unknown)} annotations name classes the labeling config no longer has "
                     f"({preview(unknown)}); they are left out.")
    if frame.empty:
        raise StoreError("No item has a multi-label annotation yet; annotate in Label Studio, then run a round.")
    gold_items, gold = _gold(store.final_labels(), index, position, len(classes))
    probs, model_note = _model_probs(loop, item_ids, texts, frame, gold_items, gold, len(classes))
    if model_note:
        notes.append(model_note)
    result = fit_multilabel_consensus(frame, len(classes), pred_probs=probs, n_items=len(item_ids),
                                      gold_items=gold_items, gold_labels=gold)
    reviewed = np.zeros(len(item_ids), dtype=bool)
    reviewed[gold_items] = True
    labelled = (result.n_annotations > 0) | reviewed
    item_rows = _item_rows(result, item_ids, classes, labelled, reviewed)
    annotator_rows, class_rows = _annotator_rows(result, frame, classes)
    summary = class_summary(frame, result, classes)
    open_items = labelled & ~reviewed
    expected = float((1 - result.quality[open_items]).sum())
    issues = int((result.quality[open_items] < ISSUE_QUALITY).sum())
    method = METHOD + (" with model" if probs is not None else "")
    round_row = {"round": rnd, "status": "scored", "method": method, "note": " ".join(notes),
                 "items": len(item_ids), "labelled_items": int(labelled.sum()), "annotations": len(frame),
                 "annotators": int(result.annotator_ids.size), "expected_remaining_errors": expected,
                 "expected_low": None, "expected_high": None, "stop_reason": None, "label_issues": issues,
                 "model_weight": None, "scored_at": now(), "selected_at": None, "pushed_at": None, "budget": None,
                 "mode": None, "classes": json.dumps(classes), "inputs": store.inputs_signature(),
                 "class_stats": json.dumps({"multilabel_classes": _records(summary),
                                            "pool_strength": [float(x) for x in result.pool_strength],
                                            "iterations": int(result.n_iter), "converged": bool(result.converged)}),
                 "model_report": None}
    store.save_multilabel_round(round_row, item_rows, annotator_rows, class_rows)
    store.log_event("score", f"round {rnd} scored with {method}", round=rnd, details={"notes": notes})
    return ScoreSummary(round=rnd, method=method, items=len(item_ids), labelled_items=int(labelled.sum()),
                        annotations=len(frame), annotators=int(result.annotator_ids.size), label_issues=issues,
                        expected_remaining_errors=expected, notes=tuple(notes),
                        model="one-vs-rest logistic regression, out-of-fold" if probs is not None else None)


def _annotation_frame(rows, index: dict[str, int], position: dict[str, int]) -> tuple[pd.DataFrame, list[str]]:
    """The long table multilabel_consensus reads, from the store's scorable (annotation, item, annotator, set)."""
    items, annotators, labels, unknown = [], [], [], []
    for _aid, item_id, annotator, label in rows:
        if item_id not in index:
            continue
        names = decode_label_set(label)
        missing = [c for c in names if c not in position]
        if missing:
            unknown.extend(missing)
            continue
        items.append(index[item_id])
        annotators.append(annotator)
        labels.append([position[c] for c in names])
    return pd.DataFrame({"item": items, "annotator": annotators, "labels": labels}), sorted(set(unknown))


def _gold(final: dict[str, str], index, position, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Reviewers' sets (the latest undisputed decision of each item) as gold rows."""
    pairs = [(index[item], decode_label_set(label)) for item, label in final.items() if item in index]
    gold = np.zeros((len(pairs), k), dtype=np.float64)
    for row, (_, names) in enumerate(pairs):
        gold[row, [position[c] for c in names if c in position]] = 1
    return np.array([p[0] for p in pairs], dtype=np.intp), gold


def _model_probs(loop: LoopState, item_ids, texts, frame: pd.DataFrame, gold_items, gold, k: int):
    """The out-of-fold one-vs-rest probabilities, or (None, why not). Targets: per-class majority vote of the
    annotators, a reviewer's set where one decided."""
    from relabel.models.fit import ModelSettings
    from relabel.models.multilabel import multilabel_pred_probs
    settings = loop.model if isinstance(loop.model, ModelSettings) else ModelSettings.from_dict(loop.model or {})
    if settings.pred_probs_path:
        return None, "pred_probs_path is not read for multi-label projects yet; scored from the annotations alone."
    if any(t is None for t in texts):
        return None, "some items have no text, so no model was fitted; scored from the annotations alone."
    n = len(item_ids)
    votes = np.zeros((n, k))
    counts = np.bincount(frame["item"], minlength=n)
    lengths = frame["labels"].map(len).to_numpy()
    if lengths.sum():
        tags = np.fromiter(itertools.chain.from_iterable(frame["labels"]), dtype=np.intp, count=int(lengths.sum()))
        np.add.at(votes, (np.repeat(frame["item"].to_numpy(), lengths), tags), 1)
    targets = votes * 2 > counts[:, None]
    labelled = counts > 0
    targets[gold_items] = gold > 0
    labelled[gold_items] = True
    features = settings.make_featurizer(cache=loop.store).fit_transform(texts, item_ids)
    probs = multilabel_pred_probs(features, targets, labelled, n_folds=settings.n_folds, seed=settings.seed)
    if probs is None:
        return None, (f"only {int(labelled.sum())} labelled items, too few for {settings.n_folds} folds: no model "
                      "this round; scored from the annotations alone.")
    return probs, None


def _item_rows(result, item_ids, classes, labelled, reviewed) -> list[dict]:
    rows = []
    model = result.model_probabilities
    for n, iid in enumerate(item_ids):
        names = [classes[k] for k in np.flatnonzero(result.labels[n])]
        rows.append({"item_id": iid, "labelled": int(labelled[n]), "labels": encode_label_set(names),
                     "probabilities": json.dumps([round(float(p), 4) for p in result.probabilities[n]]),
                     "model": None if model is None else json.dumps([round(float(p), 4) for p in model[n]]),
                     "quality": float(result.quality[n]),
                     "agreement": None if np.isnan(result.agreement[n]) else float(result.agreement[n]),
                     "num_annotations": int(result.n_annotations[n]), "reviewed": int(reviewed[n]),
                     # a reviewer's set is gold: the consensus is clamped to it, so labels == the reviewer's set
                     "final_labels": encode_label_set(names) if labelled[n] else None,
                     "reason": review_reason(result, n, classes) if result.n_annotations[n] else None})
    return rows


def _annotator_rows(result, frame: pd.DataFrame, classes) -> tuple[list[dict], list[dict]]:
    """annotator_scores rows (`relabel annotators`: quality = mean of sensitivity and specificity over classes,
    agreement = share of their sets equal to the consensus set, worst class = most missed) and per-class rows."""
    same = np.array([sorted(l) == list(np.flatnonzero(result.labels[i]))
                     for i, l in zip(frame["item"], frame["labels"])], dtype=float)
    agreement = pd.Series(same).groupby(frame["annotator"].to_numpy()).mean()
    rows, per_class = [], []
    for j, who in enumerate(result.annotator_ids):
        se, sp = result.sensitivity[j], result.specificity[j]
        rows.append({"annotator_id": str(who), "quality": float((se.mean() + sp.mean()) / 2),
                     "agreement": float(agreement.get(who, np.nan)), "worst_class": classes[int(se.argmin())],
                     "num_labels": int(result.n_annotations_per_annotator[j]), "weight": None})
        per_class += [{"annotator_id": str(who), "class": c, "sensitivity": float(se[k]),
                       "specificity": float(sp[k]), "num_labels": int(result.n_annotations_per_annotator[j])}
                      for k, c in enumerate(classes)]
    return rows, per_class


def _records(summary: pd.DataFrame) -> list[dict]:
    return [{k: (None if isinstance(v, float) and np.isnan(v) else (float(v) if isinstance(v, (float, np.floating))
                                                                   else v)) for k, v in r.items()}
            for r in summary.to_dict("records")]


# ---- select + push -----------------------------------------------------------------------------------------------
def push_multilabel(loop: LoopState, budget: int | None = None, add: int | None = None) -> PushSummary:
    """Loop.push for a multi-label project: select the latest round's items once, push their review tasks."""
    store = loop.store
    latest = store.latest_round()
    if latest is None:
        raise StoreError("No scored round yet; run `relabel score` (or `relabel round`) first.")
    rnd = latest["round"]
    loop.working_on(rnd)
    top_up = None
    if latest["status"] == "scored":
        top_up = TopUp(budget=positive_budget(budget if budget is not None else loop.review.budget),
                       open=len(store.waiting_item_ids()), add=add)
        _select(loop, rnd, top_up.to_push)
        latest = store.latest_round()
    selection = store.selection(rnd)
    mode = latest["mode"] or loop.review.mode
    done = {r["item_id"] for r in store.review_tasks(rnd)}
    todo = [r for r in selection if r["item_id"] not in done]
    new = 0
    if todo:
        requests = _review_requests(loop, rnd, todo)
        unsure_since = store.push_started(rnd)
        pushed = loop.connector.push(requests, mode=mode, show_suggestion=loop.review.show_suggestion,
                                     preselect=loop.review.preselect, unsure_since=unsure_since)
        missing = sorted({r.item_id for r in requests} - {str(t.item_id) for t in pushed})
        new = store.record_pushed(rnd, pushed, selection, mark_pushed=not missing)
        if missing:
            raise ConnectorError(f"Label Studio did not return review tasks for items {preview(missing)} of "
                                 f"round {rnd}; run `relabel push` again to finish the round.")
    elif latest["status"] != "pushed":
        store.record_pushed(rnd, [], selection, mark_pushed=True)
    tasks = len(store.review_tasks(rnd))
    store.log_event("push", f"round {rnd}: {new} new review tasks, {tasks} in total ({mode})", round=rnd)
    return PushSummary(round=rnd, mode=mode, selected=len(selection), new=new, total=tasks, top_up=top_up)


def _select(loop: LoopState, rnd: int, budget: int) -> None:
    """Items back from a skip or dispute first (with their history), then the least likely right sets."""
    store = loop.store
    waiting, requeued = store.waiting_item_ids(), store.requeued_items()
    rows = [r for r in store.multilabel_scores(rnd)
            if r["labelled"] and not r["reviewed"] and r["item_id"] not in waiting and r["num_annotations"]]
    rows.sort(key=lambda r: (r["item_id"] not in requeued, r["quality"]))
    chosen = []
    for n, r in enumerate(rows[:budget]):
        reason = r["reason"] or "no annotator tagged it"
        if r["item_id"] in requeued:
            reason = f"{requeued[r['item_id']]}; {reason}"
        chosen.append({"item_id": r["item_id"], "rank": n, "quality": float(r["quality"]), "reason": reason,
                       "suggested": r["labels"], "kind": "label", "audit": 0})
    store.save_selection(rnd, chosen, budget=budget, mode=review_mode(loop.review.mode))
    store.log_event("select", f"round {rnd}: {len(chosen)} items selected (budget {budget})", round=rnd)


def _review_requests(loop: LoopState, rnd: int, selection: list[dict]) -> list[ReviewRequest]:
    """Review requests with the panel: each annotator's tags, the reason, the model's likeliest classes."""
    store = loop.store
    ids = [r["item_id"] for r in selection]
    data = store.item_data(ids)
    given = store.labels_of(ids)
    classes = store.round_classes(rnd) or store.classes
    scores = {r["item_id"]: r for r in store.multilabel_scores(rnd, ids)}
    out = []
    for r in selection:
        suggested = decode_label_set(r["suggested"]) or ()
        model = json.loads(scores[r["item_id"]]["model"] or "null")
        top = ()
        if model is not None:
            order = np.argsort(model)[::-1]
            top = tuple((classes[k], float(model[k])) for n, k in enumerate(order)
                        if n == 0 or model[k] >= PANEL_MODEL_FLOOR)
        out.append(ReviewRequest(
            item_id=r["item_id"], round=rnd, data=data.get(r["item_id"], {}), quality=float(r["quality"]),
            reason=r["reason"], suggested_label=describe_set(suggested), suggested_labels=tuple(suggested),
            annotators=tuple((who, describe_set(decode_label_set(label))) for who, label in given.get(r["item_id"], ())),
            model_top=top))
    return out
