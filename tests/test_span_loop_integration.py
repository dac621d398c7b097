"""A span project through the whole loop against a real Label Studio (issue 23, acceptance 3): `relabel init` on
a config with two <Labels> controls (one choice="multiple"), `relabel round`, review tasks that show each
annotator's spans and the consensus as predictions (nothing preselected), a reviewer's correction collected as
gold, round 2 using it, an edited answer collected as a new decision version, `relabel writeback` visible in
Label Studio's own export, `relabel export` (JSONL, CoNLL), `relabel annotators` and the report's span agreement.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

import test_span_integration as span_integration
from label_studio_helpers import import_tasks, make_members
from relabel.cli import cli
from relabel.loop.store import Store

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The same two-control config (one with choice="multiple") and sentences as the SDK span test, once each.
CONFIG = span_integration.CONFIG
SENTENCES = span_integration.SENTENCES[:4]


def relabel(*args):
    result = CliRunner().invoke(cli, list(args), obj={}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def result_of(text, spans):
    grouped = {}
    for control, start, end, label in spans:
        grouped.setdefault((control, start, end), []).append(label)
    return [{"from_name": c, "to_name": "text", "type": "labels",
             "value": {"start": s, "end": e, "text": text[s:e], "labels": labels}}
            for (c, s, e), labels in grouped.items()]


def spans_of(regions):
    return sorted((r["from_name"], r["value"]["start"], r["value"]["end"], label)
                  for r in regions for label in r["value"]["labels"])


def test_span_project_through_the_loop(workdir, label_studio, ls_admin):
    client = ls_admin
    members = make_members(client, f"spanloop-{uuid.uuid4().hex[:8]}-", 4)
    (a, a_mail), (b, b_mail), (c, c_mail), (reviewer, reviewer_mail) = members
    tasks, truth = [], {}
    for copy in range(3):
        for i, (text, spans) in enumerate(SENTENCES):
            text = text if copy == 0 else f"{text} Note {copy}."
            noisy = list(spans)
            if i == 2:   # c calls Dave an ORG: a label disagreement
                noisy = [(ct, s, e, "ORG" if (s, e) == (10, 14) else lab) for ct, s, e, lab in spans]
            if i == 0:   # c also gives Alice both phi labels (choice="multiple")
                noisy = spans + [("phi", 0, 5, "ID")]
            truth[text] = sorted(spans)
            tasks.append({"data": {"body": text}, "annotations": [
                {"result": result_of(text, spans), "completed_by": a, "ground_truth": False},
                {"result": result_of(text, spans if (i + copy) % 3 else spans[:-1]), "completed_by": b,
                 "ground_truth": False},
                {"result": result_of(text, noisy), "completed_by": c, "ground_truth": False}]})
    # bad input inside the round: b's region past the end of the last task's text (named, kept, not scored)
    last = tasks[-1]
    last["annotations"][1]["result"].append({"from_name": "entity", "to_name": "text", "type": "labels", "value": {
        "start": 10, "end": 400, "text": "x", "labels": ["ORG"]}})
    project = client.projects.create(title="relabel span loop", label_config=CONFIG)
    task_ids = import_tasks(client, project.id, tasks)

    # init: a span project, detected from the config
    out = relabel("init", "--url", label_studio.url, "--project", str(project.id), "--budget", "3")
    assert "classes (entity,phi): PER, ORG, LOC, NAME, ID" in out, out
    toml = Path("relabel.toml")
    toml.write_text(toml.read_text().replace("[review]\n", f"[review]\nreviewers = [\"{reviewer_mail}\"]\n", 1))

    # round 1: pull, score, push 3 review tasks
    out = relabel("round")
    assert "pull: 12 tasks, 36 annotations" in out and "push: 3 span review tasks" in out, out
    bad = [line for line in out.splitlines() if f"task {task_ids[-1]}, annotator '{b_mail}'" in line]
    assert len(bad) == 1 and "ends past the end of the task's text" in bad[0] and "re-annotate" in bad[0], out
    with Store("relabel.db") as store:
        assert store.count("spans") > 0 and store.count("span_annotations") == 36
        raw = [json.loads(r["result"]) for r in store.db.query(
            "select result from span_annotations where item_id = ? and annotator_id = ?", [str(task_ids[-1]), b_mail])]
        assert any(region["value"]["end"] == 400 for region in raw[0])          # kept in the store as given
        target = next(iter(store.db.query("select target_project from review_tasks")))["target_project"]
        pushed = {r["task_id"]: r for r in store.db.query("select * from review_tasks where round = 1")}
    review = client.projects.get(id=target)
    assert review.show_collab_predictions is False                 # nothing preselected
    review_tasks = [t for t in client.tasks.list(project=target, fields="all")]
    assert len(review_tasks) == 3 and {t.id for t in review_tasks} == set(pushed)
    for task in review_tasks:
        versions = sorted(p["model_version"] if isinstance(p, dict) else p.model_version for p in task.predictions)
        assert versions == sorted(["relabel consensus"] + [f"annotator {m}" for m in (a_mail, b_mail, c_mail)])
        assert task.annotations == [] and task.data["relabel_reason"] and task.data["body"] in truth

    # a reviewer corrects one item: their spans differ from every annotator's (Dave as LOC)
    task = review_tasks[0]
    text = task.data["body"]
    corrected = [(ct, s, e, "LOC" if lab == "PER" and ct == "entity" else lab) for ct, s, e, lab in truth[text]]
    answer = client.annotations.create(id=task.id, result=result_of(text, corrected), completed_by=reviewer,
                                       ground_truth=False, request_options={"max_retries": 0})
    item = str(task.data["relabel_item"])

    # round 2: the answer is collected as gold and the item's consensus is the reviewer's spans
    out = relabel("round")
    assert "collect: 1 reviewer answers (1 new, 0 edited)" in out, out
    with Store("relabel.db") as store:
        got = sorted((r["control"], r["start"], r["end"], r["label"]) for r in store.db.query(
            "select * from span_consensus where round = 2 and item_id = ?", [item]))
        assert got == sorted(corrected)
        assert next(iter(store.db.query("select reviewed from span_item_scores where round = 2 and item_id = ?",
                                        [item])))["reviewed"] == 1

    # the reviewer edits the answer: a new decision version, used by round 3
    edited = sorted(truth[text])
    client.annotations.update(id=answer.id, result=result_of(text, edited), request_options={"max_retries": 0})
    out = relabel("round")
    assert "(0 new, 1 edited)" in out, out
    with Store("relabel.db") as store:
        log = list(store.db.query("select change from span_decision_log where item_id = ? order by id", [item]))
        assert [r["change"] for r in log] == ["new", "edited"]
        got = sorted((r["control"], r["start"], r["end"], r["label"]) for r in store.db.query(
            "select * from span_consensus where round = 3 and item_id = ?", [item]))
        assert got == edited

    # writeback: the consensus as predictions, in Label Studio's own export
    out = relabel("writeback")
    assert "12 written" in out, out
    http = httpx.Client(base_url=label_studio.url, headers={"Authorization": f"Token {label_studio.api_key}"},
                        timeout=120)
    made = http.post(f"/api/projects/{project.id}/exports/",
                     json={"title": "check", "serialization_options": {"predictions": {"only_id": False}}})
    made.raise_for_status()
    exported = http.get(f"/api/projects/{project.id}/exports/{made.json()['id']}/download",
                        params={"exportType": "JSON"})
    exported.raise_for_status()
    by_text = {t["data"]["body"]: t for t in exported.json()}
    for body, want in truth.items():
        predictions = [p for p in by_text[body]["predictions"] if p["model_version"] == "relabel-consensus-r3"]
        assert len(predictions) == 1
        if body == text:
            assert spans_of(predictions[0]["result"]) == edited
    assert relabel("writeback").count("0 written") == 1          # twice changes nothing
    # the plain export lists predictions by id only (why the README points at a snapshot or `relabel export`)
    plain = http.get(f"/api/projects/{project.id}/export", params={"exportType": "JSON"})
    plain.raise_for_status()
    assert all(isinstance(p, int) for t in plain.json() for p in t["predictions"]), plain.json()[0]["predictions"]

    # export from the store: JSONL and CoNLL BIO
    relabel("export", "--format", "jsonl", "--out", "spans.jsonl")
    lines = [json.loads(line) for line in Path("spans.jsonl").read_text().splitlines()]
    mine = next(line for line in lines if line["text"] == text)
    assert sorted((s["control"], s["start"], s["end"], s["label"]) for s in mine["spans"]) == edited
    relabel("export", "--format", "conll", "--out", "spans.conll")
    conll = Path("spans.conll").read_text()
    assert "Alice\tB-PER\tB-NAME" in conll, conll[:400]

    # annotators and the report's span agreement
    out = relabel("annotators")
    assert a_mail in out and "exact_f1" in out and "relaxed_f1" in out
    relabel("report", "--out", "report.html")
    page = Path("report.html").read_text()
    assert "Span agreement" in page and "Pairwise agreement" in page and c_mail in page
