"""The multi-label loop (issue 24) against an in-memory fake of Label Studio (fast; the real server is in
test_multilabel_integration.py): sets stored, a round with the model, reviewers' sets as gold, export, writeback."""
from __future__ import annotations

import json

import numpy as np
import pytest

from connectors.label_studio_common import encode_label_set
from connectors.records import AnnotationRecord, Item, ProjectInfo, Pull, PushedTask, ReviewAnswer
from relabel.config import ReviewSettings
from relabel.loop.rounds import Loop
from relabel.loop.store import Store

TAGS = ("sports", "politics", "tech")
WORDS = {"sports": "match goal team player coach league".split(), "politics": "election vote minister party".split(),
         "tech": "software chip startup cloud code robot".split()}
ANNOTATORS = ("ann@x", "bob@x", "cy@x", "dee@x")


class FakeMultiLabelStudio:
    """One multi-label source project; review tasks answered by tests with a set (or None: a skip)."""

    def __init__(self, n_items=60, seed=0):
        rng = np.random.default_rng(seed)
        self.items, self.annotations, self.truth = [], [], {}
        for i in range(n_items):
            iid = str(1000 + i)
            truth = tuple(t for t in TAGS if rng.random() < 0.4) if i % 5 else ()
            self.truth[iid] = truth
            words = [str(rng.choice(WORDS[t])) for t in truth for _ in range(4)] + ["the"] * 3
            text = " ".join(rng.permutation(words))
            self.items.append(Item(item_id=iid, data={"text": text}, text=text, updated_at="2026-01-01T00:00:00"))
            for a in rng.choice(len(ANNOTATORS), size=3, replace=False):
                given = [t for t in TAGS if (t in truth and rng.random() < 0.85) or (t not in truth and rng.random() < 0.05)]
                self.annotations.append(AnnotationRecord(
                    annotation_id=str(len(self.annotations) + 1), item_id=iid, annotator_id=ANNOTATORS[a],
                    label=encode_label_set(given), created_at="2026-01-01", updated_at="2026-01-01T00:00:00"))
        # one skipped task: no answer, not "none apply"
        self.annotations.append(AnnotationRecord(annotation_id="skip-1", item_id="1001", annotator_id="dee@x",
                                                 label=None, created_at="2026-01-01",
                                                 updated_at="2026-01-01T00:00:00", skipped=True))
        self.review_tasks, self.answers, self.requests = {}, {}, []

    def describe(self):
        return ProjectInfo(project_id=7, title="Tags", classes=TAGS, label_tag="tags", text_field="text",
                           n_tasks=len(self.items), n_annotations=len(self.annotations), multi_label=True)

    def pull(self, since=None, reconcile=False):
        return Pull(items=self.items, annotations=self.annotations, cursor="2026-01-01T00:00:00",
                    all_annotation_ids={a.annotation_id for a in self.annotations},
                    all_item_ids={it.item_id for it in self.items})

    def push(self, requests, *, mode="project", show_suggestion=True, preselect=False, unsure_since=None):
        self.requests += list(requests)
        out = []
        for r in requests:
            self.review_tasks.setdefault((r.round, r.item_id), 5000 + len(self.review_tasks))
            out.append(PushedTask(item_id=r.item_id, round=r.round, target_project=99,
                                  task_id=self.review_tasks[(r.round, r.item_id)], mode=mode))
        return out

    def collect(self, pushed):
        return [ReviewAnswer(item_id=t.item_id, round=t.round, task_id=t.task_id, reviewer="rev@x", label=label,
                             answered_at=at, annotation_id=f"r{t.task_id}")
                for t in pushed for label, at in [self.answers.get(t.task_id, (0, 0))] if at]

    def answer(self, task_id, labels, at="2026-02-01T00:00:00"):
        self.answers[task_id] = (None if labels is None else encode_label_set(labels), at)

    def write_task_field(self, values):
        self.written = dict(values)
        return {"written": len(values), "updated": 0, "removed": 0, "unchanged": 0, "missing": 0}


@pytest.fixture
def loop(tmp_path):
    fake = FakeMultiLabelStudio()
    store = Store(tmp_path / "relabel.db")
    store.bind_project(fake.describe())
    return Loop(store, fake, model={"featurizer": "tfidf", "n_folds": 3}, review=ReviewSettings(budget=5))


def test_round_scores_sets_with_the_model_and_pushes_each_annotators_tags(loop):
    fake = loop.connector
    assert loop.store.is_multilabel
    summary = loop.round()
    assert summary.score.method == "multilabel-consensus with model"
    assert summary.push.new == 5
    rows = loop.store.multilabel_scores(summary.round)
    assert len(rows) == 60 and all(json.loads(r["labels"]) == [t for t in TAGS if t in json.loads(r["labels"])]
                                   for r in rows)
    exact = np.mean([tuple(json.loads(r["labels"])) == fake.truth[r["item_id"]] for r in rows])
    assert exact >= 0.8, exact
    request = fake.requests[0]
    assert len(request.annotators) == 3 and request.suggested_labels is not None
    assert "annotator" in request.reason and "the model says" in request.reason
    # the sets pushed are the lowest-quality ones
    pushed = {r.item_id for r in fake.requests}
    quality = sorted(r["quality"] for r in rows)
    assert max(r["quality"] for r in rows if r["item_id"] in pushed) <= quality[4] + 1e-12
    # the skipped task is no annotation of item 1001; its three sets are
    assert next(r for r in rows if r["item_id"] == "1001")["num_annotations"] == 3


def test_reviewers_set_is_gold_and_an_edit_is_a_new_decision_version(loop):
    fake = loop.connector
    first = loop.round()
    request = fake.requests[0]
    task = fake.review_tasks[(first.round, request.item_id)]
    corrected = ["politics"] if request.suggested_labels != ("politics",) else ["tech"]
    fake.answer(task, corrected)
    second = loop.round()
    assert second.collect.corrected == 1
    row = next(r for r in loop.store.multilabel_scores(second.round) if r["item_id"] == request.item_id)
    assert json.loads(row["labels"]) == corrected and row["reviewed"] == 1
    fake.answer(task, [], at="2026-02-02T00:00:00")        # edited: "none apply"
    third = loop.round()
    assert third.collect.changed == 1
    assert len(loop.store.decision_log(request.item_id)) == 2
    exported = {r["item_id"]: r for r in loop.export_rows()}
    assert exported[request.item_id]["final_labels"] == [] and exported[request.item_id]["source"] == "reviewer"
    loop.writeback()
    assert fake.written[request.item_id] == []
    assert all(isinstance(v, list) for v in fake.written.values())


def test_a_skip_decides_nothing_and_the_item_comes_back_first(loop):
    fake = loop.connector
    first = loop.round()
    item = fake.requests[-1].item_id
    fake.answer(fake.review_tasks[(first.round, item)], None)
    second = loop.round()
    assert second.collect.skipped == 1
    assert loop.store.selection(second.round)[0]["item_id"] == item
    assert "skipped in round" in loop.store.selection(second.round)[0]["reason"]


def test_export_and_annotators_carry_sets(loop, tmp_path):
    loop.round()
    out = tmp_path / "labels.csv"
    assert loop.export("csv", out) == 60
    assert '"[""' in out.read_text() or "[]" in out.read_text()
    stats = loop.annotators()
    assert {s["annotator"] for s in stats} == set(ANNOTATORS) and all(0 < s["quality"] <= 1 for s in stats)
    per_class = loop.store.multilabel_annotator_classes(loop.store.latest_round()["round"])
    assert len(per_class) == len(ANNOTATORS) * len(TAGS)


def test_report_shows_per_class_kappa_annotators_per_class_and_most_missed(loop, tmp_path):
    from relabel.report.page import write_report
    loop.round()
    out = tmp_path / "report.html"
    summary = write_report(loop.store, out)
    page = out.read_text()
    assert summary.items_listed > 0
    assert "Per-class agreement" in page and "Most often missed" in page and "kappa" in page
    assert all(a in page for a in ANNOTATORS) and "Sensitivity" in page
    status = loop.status()
    assert status["rounds"][0]["pushed"] == 5


def test_a_config_switched_to_single_choice_is_refused_with_one_line(loop):
    from dataclasses import replace
    from relabel.errors import StoreError
    loop.pull()
    with pytest.raises(StoreError, match=r"now takes one choice per task, but the store .* holds labels made with "
                                         r"several choices per task"):
        loop.store.bind_project(replace(loop.connector.describe(), multi_label=False))


def test_unknown_tags_and_skips_are_read_as_the_issue_says():
    from connectors.label_config import parse_label_config
    from connectors.label_studio_common import choice_set_label
    config = parse_label_config('<View><Text name="t" value="$text"/><Choices name="tags" toName="t" '
                                'choice="multiple"><Choice value="a"/><Choice value="b"/></Choices></View>')
    region = lambda *c: [{"from_name": "tags", "value": {"choices": list(c)}}]  # noqa: E731
    assert choice_set_label({"result": region("b", "a")}, config) == ('["a", "b"]', True, None)
    assert choice_set_label({"result": []}, config) == ("[]", True, None)
    assert choice_set_label({"result": [], "was_cancelled": True}, config) == (None, True, None)
    label, valid, problem = choice_set_label({"result": region("a", "zz")}, config)
    assert label is None and not valid and problem == "chose 'zz', not classes of the labeling config"


def test_preselect_puts_the_consensus_set_in_the_prediction_and_checks_its_tags():
    from connectors.label_config import parse_label_config
    from connectors.label_studio import _check_requests
    from connectors.label_studio_common import prediction
    from connectors.records import ReviewRequest
    from relabel.errors import InputError
    config = parse_label_config('<View><Text name="t" value="$text"/><Choices name="tags" toName="t" '
                                'choice="multiple"><Choice value="a"/><Choice value="b"/></Choices></View>')
    request = ReviewRequest(item_id="1", round=2, data={}, quality=0.3, reason="r", suggested_label="b, a",
                            suggested_labels=("b", "a"))
    assert prediction(request, config, preselect=True)["result"][0]["value"]["choices"] == ["a", "b"]
    assert prediction(request, config, preselect=False)["result"] == []
    with pytest.raises(InputError, match="items '9' suggest a label"):
        _check_requests([ReviewRequest(item_id="9", round=2, data={}, quality=0.3, reason="r", suggested_label="c",
                                       suggested_labels=("c",))], config, "project")
