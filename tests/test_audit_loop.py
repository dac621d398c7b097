"""Audit items in the loop (relabel/loop/audit_step.py) with the recorded stand-in for Label Studio: drawn on top of
the budget, recorded with their inclusion probabilities, shown like the ranked items, and estimated from once
reviewers answer. The same against a real Label Studio: tests/test_loop_integration.py."""
import re

import pytest

from relabel.config import parse_config
from relabel.errors import ConfigError
from relabel.loop.rounds import Loop
from relabel.loop.store import Store
from relabel.config import ReviewSettings
from relabel.scoring.audit import MIN_AUDIT_ITEMS
from test_rounds import MODEL, FakeLabelStudio

REVIEWER = "lead@x"


def make_loop(tmp_path, fake, **review):
    return Loop(Store(tmp_path / "relabel.db"), fake, model=MODEL,
                review=ReviewSettings(**{"budget": 10, "min_expected_errors": 0.0, "data_issues": (), "audit": 0.1,
                                         **review}))


def answer_everything(loop, fake, rnd):
    """The truthful reviewer answers every review task of round ``rnd``."""
    for t in loop.store.review_tasks(rnd):
        fake.answer(t["task_id"], REVIEWER, fake.truth[t["item_id"]])
    loop.collect()


# The one reason format of relabel.scoring.selection, whichever way the item was chosen.
REASON = re.compile(r"^(annotators split [\d-]+ \(.+\)|all \d+ annotators say '.+'|one annotator says '.+'); "
                    r"model says '.+' [\d.]+; (flagged by confident learning; )?quality [\d.]+$")


def test_a_batch_carries_audit_items_on_top_of_the_budget_recorded_with_inclusion_probabilities(tmp_path):
    fake = FakeLabelStudio(n_items=120)
    loop = make_loop(tmp_path, fake)
    push = loop.round().push
    selection = loop.store.selection(1)
    audit = [r for r in selection if r["audit"]]
    ranked = [r for r in selection if not r["audit"]]
    assert len(ranked) == 10 and len(audit) == MIN_AUDIT_ITEMS and push.audit == MIN_AUDIT_ITEMS
    assert len(loop.store.review_tasks(1)) == 20
    assert all(0 < r["inclusion"] <= 1 and 0 <= r["p_wrong"] <= 1 for r in audit)
    # Drawn from the items outside the ranked part, which are all of lower quality than any audit item.
    assert max(r["quality"] for r in ranked) <= min(r["quality"] for r in audit)
    # The same fields and the same kind of reason as the ranked items, shuffled into the push order.
    requests = {r.item_id: r for r in fake.last_requests}
    for r in selection:
        req = requests[r["item_id"]]
        assert req.reason and req.suggested_label and len(req.annotators) >= 1 and req.model_top
        assert REASON.match(r["reason"]), r["reason"]
    order = [r["audit"] for r in selection]          # selection() is in push (rank) order
    assert order != sorted(order)


def test_status_says_model_estimate_until_audits_are_decided_then_the_audited_one(tmp_path):
    fake = FakeLabelStudio(n_items=120)
    loop = make_loop(tmp_path, fake)
    loop.round()
    left = loop.status()["wrong_labels_left"]
    assert left["source"] == "model" and "a model estimate" in left["text"] and left["audited"] == 0
    answer_everything(loop, fake, 1)
    audit_items = {r["item_id"] for r in loop.store.selection(1) if r["audit"]}
    corrected = sum(d["outcome"] == "corrected" for d in loop.store.decisions() if d["item_id"] in audit_items)
    s = loop.round()
    left = loop.status()["wrong_labels_left"]
    assert left["source"] == "audit" and left["audited"] == len(audit_items) and left["found"] == corrected
    assert left["low"] <= left["expected"] <= left["high"]
    assert left["text"].endswith(f"from {len(audit_items)} audited items")
    assert "audited items" in s.push.left
    # Round 2's batch: its own audit, drawn from items nobody has reviewed.
    decided = {d["item_id"] for d in loop.store.decisions()}
    assert not decided & {r["item_id"] for r in loop.store.selection(2) if r["audit"]}


def test_the_stop_signal_uses_the_audited_interval_once_audits_exist(tmp_path):
    fake = FakeLabelStudio(n_items=120)
    loop = make_loop(tmp_path, fake, min_expected_errors=1000.0)
    loop.round()                                       # round 1 always pushes
    answer_everything(loop, fake, 1)
    s = loop.round()
    assert s.push.stop_reason and "audited items" in s.push.stop_reason
    assert "min_expected_errors = 1000" in s.push.stop_reason
    assert loop.store.latest_round()["batch_evidence"].startswith("from 10 audited items")


def test_audit_off_sends_exactly_the_budget(tmp_path):
    fake = FakeLabelStudio(n_items=120)
    loop = make_loop(tmp_path, fake, audit=0.0)
    loop.round()
    assert len(loop.store.review_tasks(1)) == 10 and not any(r["audit"] for r in loop.store.selection(1))


@pytest.mark.parametrize("value,size", [(0, 0), (0.1, 10), (0.5, 25), (3, 3), (15.0, 15)])
def test_audit_setting(value, size):
    from relabel.scoring.audit import audit_size
    cfg = parse_config({"label_studio": {"url": "http://x", "project": 1}, "review": {"audit": value, "budget": 50}})
    assert audit_size(cfg.review.budget, cfg.review.audit) == size


@pytest.mark.parametrize("value", [-0.1, 1.5, True, "10%", None])
def test_bad_audit_setting(value):
    with pytest.raises(ConfigError, match=r"'audit' setting in \[review\]"):
        parse_config({"label_studio": {"url": "http://x", "project": 1}, "review": {"audit": value}})


def test_report_and_export_show_the_audited_estimate(tmp_path):
    from relabel.report.page import render_report
    import json

    fake = FakeLabelStudio(n_items=120)
    loop = make_loop(tmp_path, fake)
    loop.round()
    answer_everything(loop, fake, 1)
    loop.round()
    page = render_report(loop.store)
    assert "Wrong labels left: audited" in page and "Precision of the review queue" in page
    assert "from 10 audited items" in page
    loop.export("jsonl", tmp_path / "labels.jsonl")
    meta = json.loads((tmp_path / "labels.jsonl.meta.json").read_text())
    assert meta["wrong_labels_left"]["source"] == "audit" and meta["wrong_labels_left"]["audited"] == 10
    assert meta["items"] == 120


def test_the_demos_queue_precision_counts_the_ranked_items_only(tmp_path):
    # The demo's "really wrong" column is the review queue's precision: the random audit items are not the queue.
    from relabel.demo import _queue_precision
    fake = FakeLabelStudio(n_items=120)
    loop = make_loop(tmp_path, fake)
    loop.round()
    answer_everything(loop, fake, 1)
    ranked = {r["item_id"] for r in loop.store.selection(1) if not r["audit"]}
    decided = [d for d in loop.store.decisions() if d["item_id"] in ranked]
    truth = fake.truth
    wrong = sum(d["previous_label"] != truth[d["item_id"]] for d in decided)
    assert len(decided) == 10 and _queue_precision(loop.store, truth)[1] == (10, wrong)
