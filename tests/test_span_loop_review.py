"""Reviewers' answers on span review tasks through the real span round (relabel/loop/span_round.py), with Label
Studio served from memory: an answer is gold for its item, an edited answer is a new decision version, a skipped
or disputed review sends the item back to the queue first, and nothing is pre-filled unless [review] preselect."""
from __future__ import annotations

import copy

import pytest

from connectors.label_config import parse_span_config
from connectors.label_studio_spans import SpanConnector
from relabel.config import ReviewSettings
from relabel.loop.rounds import Loop
from relabel.loop.store import Store

CONFIG = """<View><Text name="text" value="$body"/>
  <Labels name="entity" toName="text"><Label value="PER"/><Label value="ORG"/></Labels></View>"""
TEXTS = ["Alice joined Acme today.", "Bob left Initech.", "Carol met Dave.", "Eve saw Acme."]
TRUTH = [[(0, 5, "PER"), (13, 17, "ORG")], [(0, 3, "PER"), (9, 16, "ORG")], [(0, 5, "PER"), (10, 14, "PER")],
         [(0, 3, "PER"), (8, 12, "ORG")]]


def region(text, start, end, label):
    return {"from_name": "entity", "to_name": "text", "type": "labels",
            "value": {"start": start, "end": end, "text": text[start:end], "labels": [label]}}


class MemoryLabelStudio(SpanConnector):
    def __init__(self):
        self.project_id = 1
        self.tasks = []
        for k, (text, spans) in enumerate(zip(TEXTS, TRUTH)):
            noisy = [(s, e, "ORG" if label == "PER" else "PER") for s, e, label in spans]   # c swaps every label
            self.tasks.append({"id": k + 1, "data": {"body": text}, "annotations": [
                {"id": 10 * (k + 1) + j, "completed_by": {"email": who}, "updated_at": "t0",
                 "result": [region(text, s, e, lab) for s, e, lab in (noisy if who == "c@x" else spans)]}
                for j, who in enumerate(("a@x", "b@x", "c@x"))]})
        self.review = {}            # (item, round) -> review task
        self.preselected = None

    def span_config(self):
        return parse_span_config(CONFIG)

    def source_tasks(self):
        return copy.deepcopy(self.tasks)

    def span_review_tasks(self):
        return copy.deepcopy(list(self.review.values()))

    def push_span_reviews(self, payloads, round_number, *, preselect):
        self.preselected = preselect
        for item, payload in payloads.items():
            key = (str(item), round_number)
            if key not in self.review:
                self.review[key] = {**payload, "id": 500 + len(self.review), "annotations": []}
        return 99, {item: self.review[(str(item), round_number)]["id"] for item in payloads}

    def answer(self, item, rnd, who, spans, *, answer_id, skip=False, updated="t1"):
        task = self.review[(str(item), rnd)]
        text = task["data"]["body"]
        task["annotations"] = [a for a in task["annotations"] if a["id"] != answer_id] + [
            {"id": answer_id, "completed_by": {"email": who}, "updated_at": updated, "was_cancelled": skip,
             "result": [] if skip else [region(text, s, e, lab) for s, e, lab in spans]}]


@pytest.fixture
def setup(tmp_path):
    store = Store(tmp_path / "relabel.db")
    for key, value in (("project_kind", "spans"), ("project_id", "1"), ("text_field", "body")):
        store.set_meta(key, value)
    ls = MemoryLabelStudio()
    loop = Loop(store, ls, model={"span_model": "none"},
                review=ReviewSettings(budget=2, reviewers=("r1@x", "r2@x")))
    return loop, ls


def consensus(loop, rnd, item):
    return sorted((r["start"], r["end"], r["label"]) for r in loop.store.db.query(
        "select * from span_consensus where round = ? and item_id = ?", [rnd, str(item)]))


def pushed(loop, rnd):
    return [r["item_id"] for r in loop.store.db.query("select item_id from review_tasks where round = ? "
                                                      "order by quality", [rnd])]


def test_answers_are_gold_edits_are_versions_and_skips_and_disputes_come_back(setup):
    loop, ls = setup
    loop.round()
    first = pushed(loop, 1)
    assert len(first) == 2 and ls.preselected is False
    task = ls.review[(first[0], 1)]
    versions = sorted(p["model_version"] for p in task["predictions"])
    assert versions == ["annotator a@x", "annotator b@x", "annotator c@x", "relabel consensus"]
    skipped, decided = first
    word = TEXTS[int(decided) - 1].index(" ")
    wanted = [(0, word, "ORG")]                               # the reviewer's spans: one span where all had two
    ls.answer(decided, 1, "r1@x", wanted, answer_id=900)
    ls.answer(skipped, 1, "r1@x", [], answer_id=901, skip=True)
    summary = loop.round()
    assert consensus(loop, 2, decided) == wanted
    assert skipped in pushed(loop, 2)                         # the skip sends the item back
    reason = ls.review[(skipped, 2)]["data"]["relabel_reason"]
    assert "skipped or disputed" in reason, summary.notes

    # an edit is a new version, and the latest counts
    edited = [(0, word, "PER")]
    ls.answer(decided, 1, "r1@x", edited, answer_id=900, updated="t2")
    loop.round()
    log = [r["change"] for r in loop.store.db.query("select change from span_decision_log where annotation_id = '900' "
                                                    "order by id")]
    assert log == ["new", "edited"] and consensus(loop, 3, decided) == edited

    # two reviewers who disagree: disputed, undecided, back in the queue
    ls.answer(skipped, 2, "r1@x", [(0, 5, "PER")], answer_id=902)
    ls.answer(skipped, 2, "r2@x", [(0, 5, "ORG")], answer_id=903)
    summary = loop.round()
    assert any("disputed" in note and skipped in note for note in summary.notes), summary.notes
    reviewed = next(iter(loop.store.db.query("select reviewed from span_item_scores where round = 4 and item_id = ?",
                                             [skipped])))["reviewed"]
    assert reviewed == 0 and skipped in pushed(loop, 4)

    # an answer by someone who is not a reviewer decides nothing
    rnd = 4
    ls.answer(skipped, rnd, "someone@x", [(0, 5, "ORG")], answer_id=904)
    loop.round()
    assert next(iter(loop.store.db.query("select decides from span_review_answers where annotation_id = '904'"))
                )["decides"] == 0


def test_preselect_is_passed_to_the_review_project(tmp_path):
    store = Store(tmp_path / "relabel.db")
    for key, value in (("project_kind", "spans"), ("project_id", "1"), ("text_field", "body")):
        store.set_meta(key, value)
    ls = MemoryLabelStudio()
    loop = Loop(store, ls, model={"span_model": "none"}, review=ReviewSettings(budget=1, preselect=True))
    loop.round()
    (task,) = ls.review.values()
    assert ls.preselected is True and task["predictions"][0]["model_version"] == "relabel consensus"
