"""The select and push steps of a round: choose the items to review once (relabel/scoring/selection.py), check the
stop signal (relabel/scoring/stop_signal.py), and push their review tasks, recording each only after Label Studio
returned it, so pushing again creates nothing new."""
from __future__ import annotations

import functools

import numpy as np

from connectors.records import PushedTask, ReviewRequest
from relabel.config import positive_budget, review_mode
from relabel.errors import ConnectorError, StoreError, preview
from relabel.loop import data_review
from relabel.loop.audit_step import audited_estimate, draw_audit_items, wrong_labels_left
from relabel.scoring.audit import audit_size
from relabel.loop.loop_state import LoopState
from relabel.loop.summaries import PushSummary
from relabel.scoring.selection import describe_items, select_for_review
from relabel.loop.queue import TopUp
from relabel.scoring.error_estimate import ExpectedErrors
from relabel.scoring.stop_signal import (BatchEstimate, Evidence, audited_stop_reason, batch_errors, stop_reason,
                                         total_with_batch)


def push_round(loop: LoopState, budget: int | None = None, add: int | None = None) -> PushSummary:
    """Loop.push: select the latest round's items (once) and push their review tasks; again creates nothing new.

    ``budget`` (default ``[review] budget``) is the number of open review tasks to keep: the round selects
    budget - open items (relabel/loop/queue.py); ``add`` selects that many whatever is open."""
    latest = loop.store.latest_round()
    if latest is None:
        raise StoreError("No scored round yet; run `relabel score` (or `relabel round`) first.")
    rnd = latest["round"]
    loop.working_on(rnd)
    if latest["status"] == "stopped":
        return PushSummary(round=rnd, mode=latest["mode"] or loop.review.mode, selected=0, new=0, total=0,
                           stop_reason=latest["stop_reason"])
    top_up = total = None
    if latest["status"] == "scored":
        top_up = TopUp(budget=positive_budget(budget if budget is not None else loop.review.budget),
                       open=len(loop.store.waiting_item_ids(audit=False)), add=add)
        if top_up.to_push == 0:
            # The queue is full: nothing is selected (the stop signal has nothing to judge) and the round is
            # recorded as pushed with no task, which says so.
            loop.store.save_selection(rnd, [], budget=0, mode=review_mode(loop.review.mode))
            loop.store.log_event("select", f"round {rnd}: {top_up.describe()}", round=rnd, details=top_up.as_dict())
            batch = audited = None
        else:
            # Audit items top up too: the queue keeps at most audit_size(budget) of them open, so unanswered audits
            # never stack up round after round (the ranked part is kept at the budget the same way).
            open_audits = len(loop.store.waiting_item_ids()) - top_up.open
            _select(loop, rnd, top_up.to_push,
                    audit_room=max(0, audit_size(top_up.budget, loop.review.audit) - open_audits))
            batch, total, audited = _batch_estimate(loop, rnd)
        latest = loop.store.latest_round()
        reason = None
        if batch is not None:
            reason = (stop_reason(batch, loop.review.min_expected_errors) if audited is None
                      else audited_stop_reason(audited, loop.review.min_expected_errors))
        if reason is not None:
            loop.store.mark_stopped(rnd, reason)
            loop.store.log_event("push", f"round {rnd}: nothing pushed. {reason}", round=rnd,
                                 details=batch.as_dict() if audited is None else audited.as_dict())
            return PushSummary(round=rnd, mode=latest["mode"], selected=0, new=0, total=0, stop_reason=reason,
                               batch=batch, top_up=top_up, expected_total=total)
    else:
        batch = None
    selection = loop.store.selection(rnd)
    mode = latest["mode"] or loop.review.mode
    done = {r["item_id"] for r in loop.store.review_tasks(rnd)}
    todo = [r for r in selection if r["item_id"] not in done]
    new = 0
    if todo:
        requests = _review_requests(loop, rnd, todo)
        # One bulk call; nothing is recorded until it returned, and the connector finds what an earlier,
        # killed push already created, so recording afterwards never duplicates. The in-flight mark is
        # written before anything is sent: a push killed with a request still on its way leaves it, and the
        # next push then lets that request land (or not) before it imports what is missing.
        unsure_since = loop.store.push_started(rnd)
        pushed = loop.connector.push(requests, mode=mode, show_suggestion=loop.review.show_suggestion,
                                     preselect=loop.review.preselect, unsure_since=unsure_since)
        missing = sorted({r.item_id for r in requests} - {str(t.item_id) for t in pushed})
        new = loop.store.record_pushed(rnd, pushed, selection, mark_pushed=not missing)
        if missing:
            raise ConnectorError(f"Label Studio did not return review tasks for items {preview(missing)} of "
                                 f"round {rnd}; run `relabel push` again to finish the round.")
        _assign(loop, rnd, pushed)
    elif latest["status"] != "pushed":
        loop.store.record_pushed(rnd, [], selection, mark_pushed=True)
    tasks = len(loop.store.review_tasks(rnd))
    loop.store.log_event("push", f"round {rnd}: {new} new review tasks, {tasks} in total ({mode})"
                         + (f"; {top_up.describe(new)}" if top_up is not None else ""), round=rnd)
    audit_items = sum(1 for r in selection if r.get("audit"))
    return PushSummary(round=rnd, mode=mode, selected=len(selection), new=new, total=tasks, batch=batch,
                       top_up=top_up, expected_total=total, audit=audit_items,
                       left=wrong_labels_left(loop.store)["text"])


def _batch_estimate(loop: LoopState, rnd: int) -> tuple[BatchEstimate, ExpectedErrors | None, object]:
    """The stop signal's figures for the ranked part of round ``rnd``'s selection (relabel/scoring/stop_signal.py):
    its items' recalibrated P(wrong), and what reviewers decided in the latest round before it; and, once audit
    items of earlier rounds were decided, the audited estimate for the same items (relabel/scoring/audit.py),
    which then decides. The one that decides is recorded in the round row.

    Without audits, when the reviewers' rate raised the batch's estimate above the posterior's, the round's total
    left is restated with it (stop_signal.total_with_batch) and returned; with audits, the total is raised only as
    far as the audited batch needs. Either way the batch never holds more than the total."""
    selected = {r["item_id"] for r in loop.store.selection(rnd) if not r.get("audit")}
    scores = loop.store.scores_of(rnd, selected)
    p_wrong = [r["p_wrong"] for r in scores.values() if r["p_wrong"] is not None]
    decided = loop.store.latest_decided_round(before=rnd)
    evidence = Evidence() if decided is None else Evidence(*decided)
    batch = batch_errors(p_wrong, evidence)
    audited = audited_estimate(loop.store, {i: r["p_wrong"] for i, r in scores.items()}, before_round=rnd)
    if audited is None:
        loop.store.save_batch_estimate(rnd, batch.expected, batch.low, batch.high, str(evidence))
    else:
        loop.store.save_batch_estimate(rnd, audited.expected, audited.low, audited.high,
                                       f"from {audited.audited} audited items ({audited.found} corrected)")
        row = next(r for r in loop.store.rounds() if r["round"] == rnd)
        if row["expected_remaining_errors"] is not None and (
                audited.expected > row["expected_remaining_errors"] or audited.low > row["expected_low"]
                or audited.high > row["expected_high"]):
            # The batch is part of the items left, so the round's total (the posterior's) is restated to hold at
            # least what the audits found among the batch's items: the whole never shows less than a part.
            total = ExpectedErrors(max(float(row["expected_remaining_errors"]), float(audited.expected)),
                                   max(int(row["expected_low"]), int(audited.low)),
                                   max(int(row["expected_high"]), int(audited.high)))
            loop.store.save_expected_total(rnd, total.expected, total.low, total.high)
            return batch, total, audited
        # The audits decide once there are any: the reviewers' rate on the ranked batch (the worst items, not a
        # sample) is not carried to the whole, which showed 3.8 wrong labels left beside an audited 0.1 (demo).
        return batch, None, audited
    if batch.source != "reviewers":
        return batch, None, audited
    columns = loop.store.score_columns(rnd, ("item_id", "p_wrong"))
    left = np.array([np.nan if p is None else p for p in columns["p_wrong"]], dtype=float)
    in_batch = np.array([i in selected for i in columns["item_id"]])
    # Reviewed items carry P(wrong) 0 (their label is the reviewer's): they add nothing either way.
    total = total_with_batch(left, in_batch, batch)
    loop.store.save_expected_total(rnd, total.expected, total.low, total.high)
    return batch, total, audited


def _review_requests(loop: LoopState, rnd: int, selection: list[dict]) -> list[ReviewRequest]:
    """The review requests of selected items, with what the review panel shows: who said what, the
    model's top classes."""
    ids = [r["item_id"] for r in selection]
    data = loop.store.item_data(ids)
    labels = loop.store.labels_of(ids)
    model = loop.store.model_top(rnd, ids)
    return [ReviewRequest(item_id=r["item_id"], round=rnd, data=data.get(r["item_id"], {}),
                          quality=float(r["quality"]), reason=r["reason"], suggested_label=r["suggested"],
                          annotators=tuple(labels.get(r["item_id"], ())),
                          model_top=tuple(model.get(r["item_id"], ())), kind=r.get("kind") or "label")
            for r in selection]


def _assign(loop: LoopState, rnd: int, pushed: list[PushedTask]) -> None:
    """Assign the new review tasks to the reviewers where the server allows it (Enterprise only)."""
    assign = getattr(loop.connector, "assign", None)
    if not loop.review.reviewers or assign is None:
        return
    outcome = assign(pushed, loop.review.reviewers)
    loop.store.log_event("assign", f"round {rnd}: {len(pushed)} review tasks {outcome}", round=rnd)


def _select(loop: LoopState, rnd: int, budget: int, audit_room: int = 0) -> None:
    classes = loop.store.classes
    position = {c: k for k, c in enumerate(classes)}
    # Columns, not one dict per item: at a million items the dicts were GBs (bench_scale, issue 15).
    scores = loop.store.score_columns(rnd, ("item_id", "labelled", "consensus_label", "model_label", "quality",
                                            "reviewed", "model_prob", "label_issue", "p_wrong"))
    ids = scores["item_id"]
    votes = np.zeros((len(ids), len(classes)), dtype=np.int64)
    consensus_idx = np.array([position.get(c, -1) if labelled else -1
                              for c, labelled in zip(scores["consensus_label"], scores["labelled"])], dtype=np.intp)
    model_label = np.array([position[c] for c in scores["model_label"]], dtype=np.intp)
    quality = np.array(scores["quality"], dtype=float)   # None (unlabelled) becomes NaN
    reviewed = np.array(scores["reviewed"], dtype=bool)
    waiting_ids = loop.store.waiting_item_ids()
    waiting = np.array([i in waiting_ids for i in ids])
    requeued = loop.store.requeued_items()
    # Data issues first (conflicting duplicates, then outliers up to their share); label issues fill the rest.
    # (items back from a skip or a dispute go first through the label path, with their history as reason)
    data_rows = _data_issue_rows(loop, rnd, budget, reviewed | waiting | np.array([i in requeued for i in ids]))
    taken = np.zeros(len(ids), dtype=bool)
    taken[[r["row"] for r in data_rows]] = True
    if len(data_rows) >= budget:
        _save_selection(loop, rnd, budget, [{k: v for k, v in r.items() if k != "row"} for r in data_rows])
        return
    select = functools.partial(select_for_review, quality, consensus_idx, votes, model_label,
                               np.array(scores["model_prob"], dtype=float), classes, budget - len(data_rows),
                               reviewed=reviewed, waiting=waiting | taken,
                               label_issue=np.array(scores["label_issue"], dtype=bool),
                               requeue=np.array([i in requeued for i in ids]))
    # The order never reads the votes; only the chosen items' reasons do. So the items are chosen first and
    # only their labels are read (not every annotation of the project again: at 1M items that re-read made
    # select grow faster than linearly, bench_scale), then the same selection is made with their votes.
    ranked = select().index
    eligible = (consensus_idx >= 0) & ~reviewed & ~waiting & ~taken
    eligible[ranked] = False
    p_wrong = np.array(scores["p_wrong"], dtype=float)
    audit_index, inclusion = draw_audit_items(p_wrong, eligible, audit_room)
    chosen = {ids[i]: i for i in np.r_[ranked, audit_index]}
    for item, label in loop.store.scorable_labels_of(chosen):
        if label in position:
            votes[chosen[item], position[label]] += 1
    sel = select()
    label_rows = [{"item_id": ids[i], "quality": float(q),
                   "reason": f"{requeued[ids[i]]}; {reason}" if ids[i] in requeued else reason,
                   "suggested": classes[int(s)], "kind": "label", "audit": 0}
                  for i, q, s, reason in zip(sel.index, sel.quality, sel.suggested, sel.reasons)]
    # Order: items back from a skip or dispute (promised first), then data issues, then the other label issues.
    back = [r for r in label_rows if r["item_id"] in requeued]
    rest = [r for r in label_rows if r["item_id"] not in requeued]
    data = [{**{k: v for k, v in r.items() if k not in ("row", "rank")}, "audit": 0} for r in data_rows]
    audit = describe_items(audit_index, quality, consensus_idx, votes, model_label,
                           np.array(scores["model_prob"], dtype=float), classes,
                           np.array(scores["label_issue"], dtype=bool))
    audit_rows = [{"item_id": ids[i], "quality": float(q), "reason": reason, "suggested": classes[int(s)],
                   "kind": "label", "audit": 1, "inclusion": float(pi), "p_wrong": float(p_wrong[i])}
                  for i, q, s, reason, pi in zip(audit.index, audit.quality, audit.suggested, audit.reasons,
                                                 inclusion)]
    rows_out = [{**r, "rank": n} for n, r in enumerate(_shuffled_in(back + data + rest, audit_rows))]
    _save_selection(loop, rnd, budget, rows_out)


def _shuffled_in(ranked: list[dict], audit: list[dict]) -> list[dict]:
    """The audit rows at random places among the ranked rows, whose order stays (promised items, then data
    issues, then label issues): reviewers work down the list, and audit items must not sit together at its end,
    where they could be told apart or left unanswered."""
    size = len(ranked) + len(audit)
    is_audit = np.zeros(size, dtype=bool)
    is_audit[np.random.default_rng().choice(size, size=len(audit), replace=False)] = True
    ranked_rows, audit_rows = iter(ranked), iter(audit)
    return [next(audit_rows) if slot else next(ranked_rows) for slot in is_audit]


def _save_selection(loop: LoopState, rnd: int, budget: int, rows_out: list[dict]) -> None:
    loop.store.save_selection(rnd, rows_out, budget=budget, mode=review_mode(loop.review.mode))
    kinds = {k: sum(r["kind"] == k and not r.get("audit") for r in rows_out) for k in {r["kind"] for r in rows_out}}
    audited = sum(bool(r.get("audit")) for r in rows_out)
    loop.store.log_event("select", f"round {rnd}: {len(rows_out) - audited} items selected (budget {budget}; "
                                   + ", ".join(f"{v} {k}" for k, v in sorted(kinds.items())) + ")"
                                   + f" and {audited} audit items drawn at random", round=rnd)


def _data_issue_rows(loop: LoopState, rnd: int, budget: int, exclude: np.ndarray) -> list[dict]:
    """Selection rows of the round's data-issue tasks ([review] data_issues), each with its item's row."""
    if not loop.review.data_issues:
        return []
    cols = loop.store.score_columns(rnd, ("item_id", "reviewed", "final_label", "majority_label", "model_label",
                                          *data_review.COLUMNS))
    ids = cols["item_id"]
    # the labels people gave (a reviewer's decision, else the annotators' majority), as the conflict was found on
    labels = [f if r else m for r, f, m in zip(cols["reviewed"], cols["final_label"], cols["majority_label"])]
    tasks = data_review.tasks_from_columns(cols, labels, budget, loop.review.data_issues,
                                           loop.review.outlier_share, set(np.flatnonzero(exclude).tolist()))
    out = []
    for n, (row, t) in enumerate(tasks):
        partner = ids[t.partner] if t.partner is not None else None
        out.append({"row": row, "item_id": ids[row], "rank": n, "quality": t.score, "kind": t.kind,
                    "reason": data_review.data_issue_reason(t.kind, t.score, partner,
                                                             labels[t.partner] if partner else None, labels[row]),
                    # an unlabelled item (an outlier nobody labelled yet) gets the model's label as the suggestion
                    "suggested": (labels[t.partner] if partner else labels[row]) or cols["model_label"][row]})
    return out
