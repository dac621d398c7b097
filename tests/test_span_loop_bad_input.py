"""Bad input inside a span round (issue 23, acceptance 5): one annotator's overlapping regions in one control, a
region past the end of the text, a region with an empty label list, a text changed after annotation. Each gives
one line naming the task and the fix in the round's notes, the raw annotation stays in the store, the round goes
on with the rest, and a round that fails half way leaves the store as it was. Runs the real round
(relabel/loop/span_round.py) over a connector that serves tasks from memory instead of Label Studio."""
from __future__ import annotations

import copy
import json

import pytest

from connectors.label_config import parse_span_config
from connectors.label_studio_spans import SpanConnector
from relabel.config import ReviewSettings
from relabel.loop.rounds import Loop
from relabel.loop.store import Store

CONFIG = """<View><Text name="text" value="$body"/>
  <Labels name="entity" toName="text"><Label value="PER"/><Label value="ORG"/></Labels>
  <Labels name="phi" toName="text" choice="multiple"><Label value="NAME"/><Label value="ID"/></Labels></View>"""
TEXTS = ["Alice joined Acme today.", "Bob left Initech.", "Carol met Dave.", "Eve saw Acme."]
GOOD = [[(0, 5, "PER"), (13, 17, "ORG")], [(0, 3, "PER"), (9, 16, "ORG")], [(0, 5, "PER"), (10, 14, "PER")],
        [(0, 3, "PER"), (8, 12, "ORG")]]


def region(text, start, end, labels, control="entity", shown=None):
    return {"from_name": control, "to_name": "text", "type": "labels",
            "value": {"start": start, "end": end, "text": shown if shown is not None else text[start:end],
                      "labels": labels}}


class MemorySpans(SpanConnector):
    """The span connector's reads and writes, served from memory."""

    def __init__(self, tasks):
        self.tasks = tasks
        self.project_id = 1
        self.pushed = {}

    def span_config(self):
        return parse_span_config(CONFIG)

    def source_tasks(self):
        return copy.deepcopy(self.tasks)

    def span_review_tasks(self):
        return []

    def push_span_reviews(self, payloads, round_number, *, preselect):
        self.pushed.update({item: 1000 + len(self.pushed) + k for k, item in enumerate(payloads)})
        return 99, {item: self.pushed[item] for item in payloads}


def make_tasks():
    tasks = []
    for k, (text, spans) in enumerate(zip(TEXTS, GOOD)):
        annotations = [{"id": 100 * (k + 1) + j, "completed_by": {"email": who}, "updated_at": "2026-01-01",
                        "result": [region(text, s, e, [label]) for s, e, label in spans]}
                       for j, who in enumerate(("a@x", "b@x", "c@x"))]
        tasks.append({"id": k + 1, "data": {"body": text}, "annotations": annotations})
    return tasks


@pytest.fixture
def loop(tmp_path):
    def make(tasks):
        store = Store(tmp_path / "relabel.db")
        store.set_meta("project_kind", "spans")
        store.set_meta("project_id", "1")
        store.set_meta("text_field", "body")
        return Loop(store, MemorySpans(tasks), model={"span_model": "none"}, review=ReviewSettings(budget=2))
    return make


def bad_round(loop, change):
    """Round 1 on good tasks, then ``change`` the tasks and run round 2 (forced); returns (notes, store)."""
    tasks = make_tasks()
    lp = loop(tasks)
    lp.round()
    before = list(lp.store.db.query("select * from span_consensus where round = 1 order by item_id, start"))
    change(tasks)
    summary = lp.round(force=True)
    after = list(lp.store.db.query("select * from span_consensus where round = 1 order by item_id, start"))
    assert after == before                                  # the earlier round is untouched
    assert summary.round == 2
    return summary.notes, lp.store


def the_line(notes, *words):
    lines = [n for n in notes if all(w in n for w in words)]
    assert len(lines) == 1, notes
    assert "\n" not in lines[0]
    return lines[0]


def raw_regions(store, annotation_id):
    row = next(iter(store.db.query("select result from span_annotations where annotation_id = ?",
                                   [str(annotation_id)])))
    return json.loads(row["result"])


def test_overlapping_regions_of_one_annotator(loop):
    def change(tasks):
        text = TEXTS[0]
        tasks[0]["annotations"][0]["result"].append(region(text, 0, 12, ["PER"]))     # "Alice joined" over "Alice"
    notes, store = bad_round(loop, change)
    line = the_line(notes, "task 1,", "overlap")
    assert "'a@x'" in line and "delete or fix one of them" in line and "union" in line
    assert len(raw_regions(store, 100)) == 3
    assert store.count("spans", "annotation_id = '100'") == 3                        # both kept, scored merged


def test_region_past_the_end_of_the_text(loop):
    def change(tasks):
        tasks[1]["annotations"][1]["result"].append(region(TEXTS[1], 10, 40, ["ORG"], shown="Initech and more"))
    notes, store = bad_round(loop, change)
    line = the_line(notes, "task 2,", "past the end")
    assert "'b@x'" in line and "re-annotate the task" in line
    assert len(raw_regions(store, 201)) == 3                                          # kept as Label Studio gave it
    assert store.count("spans", "annotation_id = '201'") == 2                          # the rest is scored
    assert store.count("span_consensus", "round = 2 and item_id = '2'") == 2


def test_region_with_an_empty_label_list(loop):
    def change(tasks):
        tasks[2]["annotations"][2]["result"].append(region(TEXTS[2], 6, 9, []))
    notes, store = bad_round(loop, change)
    line = the_line(notes, "task 3,", "empty label list")
    assert "'c@x'" in line and "give it a label" in line
    assert len(raw_regions(store, 302)) == 3 and store.count("spans", "annotation_id = '302'") == 2


def test_text_changed_after_annotation(loop):
    def change(tasks):
        tasks[3]["data"]["body"] = "Eve saw Acme Corp."       # the annotations' region texts are of the old text
        tasks[3]["annotations"][0]["result"][1]["value"]["text"] = "Acm"
    notes, store = bad_round(loop, change)
    line = the_line(notes, "task 4,", "text changed after annotation")
    assert "'a@x'" in line and "re-annotate the task" in line
    assert len(raw_regions(store, 400)) == 2 and store.count("spans", "annotation_id = '400'") == 1


def test_a_round_that_fails_while_scoring_leaves_the_store_as_it_was(loop, monkeypatch):
    tasks = make_tasks()
    lp = loop(tasks)
    lp.round()
    tables = ("rounds", "span_consensus", "span_item_scores", "span_annotator_scores", "review_tasks")
    before = {t: list(lp.store.db.query(f"select * from {t}")) for t in tables}
    import relabel.models.spans as model_spans

    def boom(*args, **kwargs):
        raise RuntimeError("killed while scoring")
    monkeypatch.setattr(model_spans, "span_consensus", boom)
    tasks[0]["annotations"][0]["result"].pop()
    with pytest.raises(RuntimeError):
        lp.round()
    assert {t: list(lp.store.db.query(f"select * from {t}")) for t in tables} == before
