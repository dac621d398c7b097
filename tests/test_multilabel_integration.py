"""A multi-label project end to end against the real Label Studio the suite starts (issue 24, acceptance 3):
a round, review tasks showing each annotator's tags and the reason, a reviewer's corrected set collected as gold,
an edit as a new decision version, round 2 using it, and writeback visible in Label Studio's own export.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner

from connectors.label_studio import FINAL_FIELD, REVIEW_MARKER
from label_studio_helpers import import_tasks, make_members
from relabel.cli import cli
from relabel.loop.store import Store

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TAGS = ("sports", "politics", "tech", "music")
WORDS = {"sports": "match goal team player coach league".split(), "politics": "election vote minister party senate".split(),
         "tech": "software chip startup cloud code robot".split(), "music": "song album guitar concert band".split()}
CONFIG = ('<View><Text name="body" value="$text"/><Choices name="tags" toName="body" choice="multiple">'
          + "".join(f'<Choice value="{t}"/>' for t in TAGS) + "</Choices></View>")


def relabel(*args):
    return CliRunner().invoke(cli, list(args), obj={}, catch_exceptions=False)


def ok(*args):
    result = relabel(*args)
    assert result.exit_code == 0, result.output
    return result


def region(labels):
    return [{"from_name": "tags", "to_name": "body", "type": "choices", "value": {"choices": list(labels)}}]


def build_project(ls_admin, n_tasks=40, seed=24):
    """Tasks whose true tag sets are known; three annotators who miss tags now and then; one task with a skip, one
    annotation naming a tag the config does not have."""
    rng = np.random.default_rng(seed)
    members = make_members(ls_admin, f"ml-{os.getpid()}-{rng.integers(10**9)}-", 4)
    tasks, truth = [], []
    for i in range(n_tasks):
        true = [t for t in TAGS if rng.random() < 0.35] if i % 6 else []     # every sixth: none apply
        truth.append(true)
        words = [str(rng.choice(WORDS[t])) for t in true for _ in range(5)] + ["today", "the", "news"]
        annotations = []
        for uid, _ in members[:3]:
            given = [t for t in true if rng.random() < 0.85] + [t for t in TAGS if t not in true and rng.random() < 0.04]
            annotations.append({"result": region([t for t in TAGS if t in given]), "completed_by": uid,
                                "ground_truth": False})
        tasks.append({"data": {"text": " ".join(rng.permutation(words))}, "annotations": annotations})
    skipper = members[3][0]
    tasks[1]["annotations"].append({"result": [], "was_cancelled": True, "completed_by": skipper,
                                    "ground_truth": False})
    tasks[2]["annotations"].append({"result": region(["weather"]), "completed_by": skipper, "ground_truth": False})
    project = ls_admin.projects.create(title="relabel multi-label", label_config=CONFIG)
    ids = import_tasks(ls_admin, project.id, tasks)
    return project.id, ids, dict(zip(ids, truth))


def test_multilabel_project_end_to_end(workdir, label_studio, ls_admin):
    project_id, task_ids, truth = build_project(ls_admin)
    init = ok("init", "--url", label_studio.url, "--project", str(project_id), "--featurizer", "tfidf")
    assert "classes (tags, multi-label: a set of classes per task): sports, politics, tech, music" in init.output
    pulled = relabel("pull")
    said = pulled.output + (getattr(pulled, "stderr", "") or "")
    # the unknown tag: one line naming the annotation and the task, stored but not scored
    assert f"on task {task_ids[2]} chose 'weather', not classes of the labeling config" in said
    first = ok("round", "--budget", "4", "--force")
    assert "multilabel-consensus with model" in first.output, first.output

    with Store(workdir / "relabel.db") as store:
        assert store.is_multilabel
        rows = {r["item_id"]: r for r in store.multilabel_scores(1)}
        # the skip is no answer (3 sets on task 1), the empty sets are answers ("none apply")
        assert rows[str(task_ids[1])]["num_annotations"] == 3
        assert rows[str(task_ids[2])]["num_annotations"] == 3
        assert json.loads(rows[str(task_ids[0])]["labels"]) == []
        exact = np.mean([json.loads(rows[str(t)]["labels"]) == truth[t] for t in task_ids])
        assert exact >= 0.8, exact
        pushed = store.review_tasks(1)
        assert len(pushed) == 4
        given = store.labels_of([t["item_id"] for t in pushed])

    # The review project: a choice="multiple" Choices, not required (an empty set is an answer), nothing preselected
    (review,) = [p for p in ls_admin.projects.list() if f"{REVIEW_MARKER}{project_id}" in (p.description or "").split()]
    assert 'choice="multiple"' in review.label_config and 'required="true"' not in review.label_config.split(
        'name="tags"')[1].split(">")[0]
    review_tasks = {t.id: t for t in ls_admin.tasks.list(project=review.id, fields="all")}
    for t in pushed:
        task = review_tasks[t["task_id"]]
        assert not task.predictions                              # no preselect by default
        panel = task.data["relabel_annotators"]
        for who, label in given[t["item_id"]]:
            assert f"{who}: {', '.join(json.loads(label)) or '(none apply)'}" in panel
        assert "annotators tagged" in task.data["relabel_reason"] and "the model says" in task.data["relabel_reason"]

    # A reviewer corrects one set, answers "none apply" on another, skips a third.
    ((reviewer, _),) = make_members(ls_admin, f"ml-rev-{os.getpid()}-", 1)
    fix, empty, skip = pushed[0], pushed[1], pushed[2]
    suggested = json.loads(fix["suggested"])
    corrected = [t for t in TAGS if t != (suggested[0] if suggested else "")][:2]
    edited = ls_admin.annotations.create(id=fix["task_id"], result=region(corrected), completed_by=reviewer,
                                         ground_truth=False, request_options={"max_retries": 0}).id
    ls_admin.annotations.create(id=empty["task_id"], result=[], completed_by=reviewer, ground_truth=False,
                                request_options={"max_retries": 0})
    ls_admin.annotations.create(id=skip["task_id"], result=[], was_cancelled=True, completed_by=reviewer,
                                request_options={"max_retries": 0})
    second = ok("round", "--budget", "4")
    assert "1 skipped" in second.output and "Round 2 scored" in second.output, second.output
    with Store(workdir / "relabel.db") as store:
        rows = {r["item_id"]: r for r in store.multilabel_scores(2)}
        assert json.loads(rows[fix["item_id"]]["labels"]) == corrected and rows[fix["item_id"]]["reviewed"]
        assert json.loads(rows[empty["item_id"]]["labels"]) == [] and rows[empty["item_id"]]["reviewed"]
        assert not rows[skip["item_id"]]["reviewed"]
        # the skipped item goes back to review first; reviewed items never do
        assert store.selection(2)[0]["item_id"] == skip["item_id"]
        assert {fix["item_id"], empty["item_id"]}.isdisjoint(t["item_id"] for t in store.review_tasks(2))

    # The reviewer edits the corrected set: a new decision version; the next round uses it.
    final = [corrected[0]]
    ls_admin.annotations.update(id=edited, result=region(final), request_options={"max_retries": 0})
    third = ok("round", "--budget", "4")
    assert "1 changed" in third.output, third.output
    with Store(workdir / "relabel.db") as store:
        assert [d["label"] for d in store.decision_log(fix["item_id"])] == [json.dumps(corrected), json.dumps(final)]
        assert json.loads(store.multilabel_scores(3, [fix["item_id"]])[0]["labels"]) == final

    # Writeback: every labelled task gets its final set; Label Studio's own export carries it.
    first_wb = ok("writeback")
    assert f"{len(task_ids)} written" in first_wb.output
    assert "0 written, 0 updated, 0 removed" in ok("writeback").output
    ok("export", "--format", "jsonl", "--out", "labels.jsonl")
    exported = {r["item_id"]: r for r in map(json.loads, Path("labels.jsonl").read_text().splitlines())}
    assert exported[fix["item_id"]]["final_labels"] == final and exported[fix["item_id"]]["source"] == "reviewer"
    assert exported[empty["item_id"]]["final_labels"] == []
    export = httpx.get(f"{label_studio.url}/api/projects/{project_id}/export", params={"exportType": "JSON"},
                       headers={"Authorization": f"Token {label_studio.api_key}"}, timeout=120).json()
    in_ls = {str(t["id"]): t["data"].get(FINAL_FIELD) for t in export}
    assert in_ls[fix["item_id"]] == final and in_ls[empty["item_id"]] == []
    assert all(in_ls[i] == r["final_labels"] for i, r in exported.items())
    # The report: per-class kappa, annotators per class, the most-missed classes
    ok("report", "--out", "report.html")
    page = Path("report.html").read_text()
    assert "Most often missed" in page and "Per-class agreement" in page
