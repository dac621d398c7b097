"""The audit in the loop: draw the random items a batch carries, and estimate the wrong labels left from the
audited ones (relabel/scoring/audit.py does the statistics; this module reads and writes the store's records).

Audit items are added on top of the budget: the ranked part is what the budget buys, the audit is what measuring
costs ([review] audit, 10% of the budget by default, at least MIN_AUDIT_ITEMS). They are drawn from the labelled
items not yet reviewed, not waiting in review and not in the ranked part, and recorded in ``selections`` with
audit = 1, their inclusion probability and their P(wrong) when drawn. Reviewers see them like any other review
task: the same fields, the same kind of reason, shuffled into the batch.
"""
from __future__ import annotations

import numpy as np

from relabel.scoring.audit import AuditEstimate, draw_audit, estimate_wrong_labels
from relabel.scoring.error_estimate import format_expected


def draw_audit_items(p_wrong: np.ndarray, eligible: np.ndarray, size: int,
                     rng=None) -> tuple[np.ndarray, np.ndarray]:
    """Positions (into the scored items) of this batch's audit sample of ``size`` items (the room the audit queue
    has: scoring.audit.audit_size of the budget, less the audit items still open) and their inclusion
    probabilities.

    ``eligible``: labelled, not reviewed, not waiting, not in the ranked part, with a finite P(wrong)."""
    frame = np.flatnonzero(eligible & np.isfinite(p_wrong))
    if size <= 0 or frame.size == 0:
        return np.zeros(0, np.intp), np.zeros(0)
    # Fresh randomness on purpose: nobody, reviewers included, can tell in advance which items are audited. The
    # selection is stored once made, so pushing again sends the same items.
    pos, inclusion = draw_audit(p_wrong[frame], size, rng if rng is not None else np.random.default_rng())
    return frame[pos], inclusion


def audited_estimate(store, p_wrong: dict[str, float], before_round: int | None = None) -> AuditEstimate | None:
    """Wrong labels among the target items (``p_wrong``: item -> current P(wrong)), from the decided audit items
    (of rounds before ``before_round``, or all); items a reviewer decided are dropped from the target (their final
    label is the reviewer's). None when no audit item has been decided yet."""
    outcomes = [o for o in store.audit_outcomes() if before_round is None or o[1] < before_round]
    if not outcomes:
        return None
    decided = store.decided_item_ids() if before_round is None else set()
    target = np.array([p for item, p in p_wrong.items() if item not in decided and p is not None], dtype=float)
    _, rounds, ap, pi, wrong = zip(*outcomes)
    return estimate_wrong_labels(target, np.array(ap), np.array(pi), np.array(wrong, dtype=bool),
                                 audit_round=np.array(rounds))


def wrong_labels_left(store, round_row: dict | None = None) -> dict:
    """What `relabel status`, the round output and the export say about the wrong labels left: the audited
    estimate once audit items were decided, else the posterior's, labelled as a model estimate."""
    row = round_row or store.latest_round()
    if row is None:
        return {"source": None, "text": "no round scored yet"}
    scores = store.score_columns(row["round"], ("item_id", "p_wrong"))
    est = audited_estimate(store, dict(zip(scores["item_id"], scores["p_wrong"])))
    model = {"expected": row["expected_remaining_errors"], "low": row["expected_low"], "high": row["expected_high"]}
    if est is None:
        return {"source": "model", **model,
                "text": f"{format_expected(model['expected'], model['low'], model['high'])} wrong labels left "
                        "(a model estimate: no audited items decided yet)",
                "audited": 0}
    return {**est.as_dict(), "model": model}
