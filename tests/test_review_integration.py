"""The review workflow against the real Label Studio the suite starts (issue 13, acceptance 1-4).

Each test builds its own small project (never the shared acceptance project) and drives the CLI with CliRunner.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from label_studio_helpers import (CLASSES, annotation, answer_task, build_acceptance_project, choice_result,
                                  import_tasks, make_members, make_project, make_text)
from connectors.label_studio import FINAL_FIELD, REVIEW_MARKER, LabelStudioConnector
from connectors.records import ReviewRequest
from relabel.cli import cli
from relabel.loop.store import Store

import numpy as np

pytestmark = [pytest.mark.integration, pytest.mark.slow]
# A source config with controls the review must not show: a second Choices and a comment box.
EXTRA = ('<Choices name="tone" toName="body"><Choice value="calm"/><Choice value="angry"/></Choices>'
         '<TextArea name="comment" toName="body"/>')



def relabel(*args):
    return CliRunner().invoke(cli, list(args), obj={}, catch_exceptions=False)


def init(url, project_id, *extra, review: str = ""):
    result = relabel("init", "--url", url, "--project", str(project_id), "--featurizer", "tfidf", *extra)
    assert result.exit_code == 0, result.output
    # Settings init has no option for, written into [review]. The stop signal keeps its default: round 1 always
    # pushes, and each later round here follows a round whose reviewers corrected what they decided (or decided
    # nothing), so it pushes too (test_loop_integration tests the stop signal).
    # Audit items (on by default) are off unless a test asks: a batch is then exactly the budget these tests count
    # (audits against a real Label Studio: test_loop_integration.test_audit_items_two_rounds_against_label_studio).
    review = review if "audit" in review else "\n".join(filter(None, [review, "audit = 0"]))
    config = Path("relabel.toml")
    config.write_text(config.read_text().replace("[review]\n", f"[review]\n{review}\n"))
    return result


def ok(*args):
    result = relabel(*args)
    assert result.exit_code == 0, result.output
    return result


def review_project(ls_admin, source_id):
    marker = f"{REVIEW_MARKER}{source_id}"
    (project,) = [p for p in ls_admin.projects.list() if marker in (p.description or "").split()]
    return project, {t.id: t for t in ls_admin.tasks.list(project=project.id, fields="all")}


def two_choices_project(ls_admin, title, n_tasks=30, seed=1):
    """A project whose config has the scored 'topic' Choices plus a 'tone' Choices and a comment box."""
    rng = np.random.default_rng(seed)
    members = make_members(ls_admin, f"{title.replace(' ', '-')}-{os.getpid()}-{rng.integers(10**9)}-", 3)
    tasks = []
    for i in range(n_tasks):
        label = CLASSES[i % 3]
        given = [label, label, CLASSES[(i + 1) % 3] if i % 4 == 0 else label]
        tasks.append({"data": {"text": make_text(label, rng)},
                      "annotations": [annotation(uid, g) for (uid, _), g in zip(members, given)]})
    project_id = make_project(ls_admin, title, extra_config=EXTRA)
    import_tasks(ls_admin, project_id, tasks)
    return project_id, [email for _, email in members]


# ---------------------------------------------------------------------------------------------- 1 and 3
def test_review_tasks_show_the_panel_preselect_nothing_and_an_unchanged_round_is_not_started(
        workdir, label_studio, ls_admin):
    project_id, emails = two_choices_project(ls_admin, "relabel panel")
    init(label_studio.url, project_id, "--label-tag", "topic")
    ok("round", "--budget", "6")
    review, tasks = review_project(ls_admin, project_id)
    config = review.label_config
    # The item, the reviewed Choices and the panel; the unrelated controls are gone.
    for field in ("$text", "$relabel_reason", "$relabel_annotators", "$relabel_model"):
        assert f'value="{field}"' in config
    assert 'name="topic"' in config and 'name="tone"' not in config and "TextArea" not in config
    with Store(workdir / "relabel.db") as store:
        pushed = {t["task_id"]: t for t in store.review_tasks(1)}
        labels = store.labels_of(t["item_id"] for t in pushed.values())
        model = store.model_top(1, [t["item_id"] for t in pushed.values()])
    assert set(tasks) == set(pushed) and len(tasks) == 6
    for task_id, task in tasks.items():
        item = pushed[task_id]["item_id"]
        assert task.data["relabel_reason"] == pushed[task_id]["reason"]
        lines = task.data["relabel_annotators"].splitlines()
        assert lines == [f"{who}: {label}" for who, label in labels[item]] and len(lines) == 3
        assert {line.split(": ")[0] for line in lines} == set(emails)
        assert task.data["relabel_model"].splitlines() == [f"{c} {p:.2f}" for c, p in model[item]]
        assert not task.predictions                       # nothing pre-selected by default
    # Label Studio accepted the generated config (it validates on create) and serves it for the labeling UI.
    served = httpx.get(f"{label_studio.url}/api/projects/{review.id}",
                       headers={"Authorization": f"Token {label_studio.api_key}"}).json()
    assert served["label_config"] == config and served["parsed_label_config"]["topic"]["to_name"] == ["body"]

    # 3. Run again with nothing new: no round, says why, exit 0; --force starts one.
    again = ok("round", "--budget", "6")
    assert "Nothing changed since round 1; 6 review tasks still open; no new round" in again.output
    with Store(workdir / "relabel.db") as store:
        assert len(store.rounds()) == 1
    assert len(review_project(ls_admin, project_id)[1]) == 6
    forced = ok("round", "--budget", "6", "--force")
    assert "Round 2 scored" in forced.output


def test_preselect_puts_the_suggestion_as_a_prediction(label_studio, ls_admin):
    project_id, _ = two_choices_project(ls_admin, "relabel preselect", n_tasks=6)
    connector = LabelStudioConnector(label_studio.url, label_studio.api_key, project_id, label_tag="topic")
    task_ids = [t["id"] for t in connector._iter_tasks(project_id)][:3]
    requests = [ReviewRequest(item_id=str(t), round=1, data={"text": "x"}, quality=0.2, reason="r",
                              suggested_label="tech") for t in task_ids]
    pushed = connector.push(requests, preselect=True)
    for task in connector._iter_tasks(pushed[0].target_project):
        (prediction,) = task["predictions"]
        assert prediction["result"] == [choice_result("tech")[0]]


# ---------------------------------------------------------------------------------------------- 2
def test_reviewers_decide_edits_are_kept_and_disagreement_is_disputed(workdir, label_studio, ls_admin):
    project_id, emails = two_choices_project(ls_admin, "relabel reviewers")
    (r1, r1_email), (r2, r2_email) = make_members(ls_admin, f"reviewer-{os.getpid()}-{id(workdir)}-", 2)
    outsider_email = emails[0]
    outsider = next(u.id for u in ls_admin.users.list() if u.email == outsider_email)
    init(label_studio.url, project_id, "--label-tag", "topic", review=f'reviewers = ["{r1_email}", "{r2_email}"]')
    ok("round", "--budget", "4")
    with Store(workdir / "relabel.db") as store:
        t_out, t_dispute, t_edit, _ = store.review_tasks(1)

    def other(label):
        return next(c for c in CLASSES if c != label)
    answer_task(ls_admin, t_out["task_id"], other(t_out["suggested"]), outsider)     # not a reviewer
    answer_task(ls_admin, t_dispute["task_id"], t_dispute["suggested"], r1)
    answer_task(ls_admin, t_dispute["task_id"], other(t_dispute["suggested"]), r2)   # disagrees with r1
    edited = answer_task(ls_admin, t_edit["task_id"], t_edit["suggested"], r1)
    first = ok("collect")
    assert "Collected 3 decisions (1 confirmed, 0 corrected, 0 skipped, 2 disputed)" in first.output
    assert "1 answers by non-reviewers kept as annotations" in first.output
    # The reviewer changes their mind in Label Studio after the collect.
    ls_admin.annotations.update(id=edited, result=choice_result(other(t_edit["suggested"])),
                                request_options={"max_retries": 0})
    second = ok("collect")
    assert "Collected 0 new and 1 changed decisions" in second.output
    with Store(workdir / "relabel.db") as store:
        decisions = {(d["item_id"], d["reviewer"]): d for d in store.decisions()}
        assert (t_out["item_id"], outsider_email) not in decisions                  # an annotation, not a decision
        assert (outsider_email, other(t_out["suggested"])) in store.labels_of([t_out["item_id"]])[t_out["item_id"]]
        assert {decisions[(t_dispute["item_id"], who)]["outcome"] for who in (r1_email, r2_email)} == {"disputed"}
        assert t_dispute["item_id"] not in store.final_labels()
        assert decisions[(t_edit["item_id"], r1_email)]["label"] == other(t_edit["suggested"])
        assert [(v["label"], v["change"]) for v in store.decision_log(t_edit["item_id"])] == [
            (t_edit["suggested"], "new"), (other(t_edit["suggested"]), "changed")]
        assert store.final_labels()[t_edit["item_id"]] == other(t_edit["suggested"])
        # Community has no assignment API: said, not failed.
        (assigned,) = store.events("assign")
        assert "not assigned: this Label Studio has no task assignment (HTTP 404" in assigned["message"]
    # The disputed item and the one only a non-reviewer answered go back to review first in the next round.
    ok("round", "--budget", "4")
    with Store(workdir / "relabel.db") as store:
        first = {r["item_id"]: r["reason"] for r in store.selection(2)[:2]}
    assert set(first) == {t_dispute["item_id"], t_out["item_id"]}
    assert first[t_dispute["item_id"]].startswith("reviewers disagreed in round 1")
    assert first[t_out["item_id"]].startswith(f"answered in round 1 only by non-reviewers ({outsider_email})")


def test_in_place_answers_by_non_reviewers_stay_annotations(workdir, label_studio, ls_admin):
    proj = build_acceptance_project(ls_admin, title="relabel in place reviewers", n_tasks=30, n_unlabelled=0, seed=21)
    ((reviewer, reviewer_email), (newcomer, _)) = make_members(ls_admin, f"inplace-rv-{os.getpid()}-", 2)
    init(label_studio.url, proj.project_id, "--mode", "in_place", review=f'reviewers = ["{reviewer_email}"]')
    ok("round", "--budget", "3")
    with Store(workdir / "relabel.db") as store:
        a, b, _ = store.review_tasks(1)
    for task in (a, b):
        (prediction,) = [p for p in ls_admin.tasks.get(str(task["task_id"])).predictions
                         if (p["model_version"] if isinstance(p, dict) else p.model_version) == "relabel-round-1;"]
        assert (prediction["result"] if isinstance(prediction, dict) else prediction.result) == []  # no preselect
    answer_task(ls_admin, a["task_id"], a["suggested"], reviewer)
    answer_task(ls_admin, b["task_id"], b["suggested"], newcomer)
    ok("round", "--budget", "3")
    with Store(workdir / "relabel.db") as store:
        assert [(d["item_id"], d["reviewer"]) for d in store.decisions()] == [(a["item_id"], reviewer_email)]
        assert len(store.labels_of([b["item_id"]])[b["item_id"]]) == len(proj.labels[b["task_id"]]) + 1
        # Label Studio counts b done, so relabel asks again in round 2 (one more annotation, again).
        assert b["item_id"] in {t["item_id"] for t in store.review_tasks(2)}
    assert ls_admin.tasks.get(str(b["task_id"])).is_labeled is False


# ---------------------------------------------------------------------------------------------- 4
def test_writeback_twice_leaves_one_final_label_per_task_and_follows_reviewers(workdir, label_studio, ls_admin):
    proj = build_acceptance_project(ls_admin, title="relabel writeback", n_tasks=30, n_unlabelled=3, seed=22)
    ((reviewer, _),) = make_members(ls_admin, f"wb-{os.getpid()}-", 1)
    init(label_studio.url, proj.project_id)
    ok("round", "--budget", "3")

    def source_fields():
        tasks = ls_admin.tasks.list(project=proj.project_id, fields="all")
        return {str(t.id): {k: v for k, v in t.data.items() if k.startswith("relabel")} for t in tasks}

    def exported():
        ok("export", "--format", "jsonl", "--out", "labels.jsonl")
        return {r["item_id"]: r for r in map(json.loads, Path("labels.jsonl").read_text().splitlines())}
    first = ok("writeback")
    labelled = sum(1 for pairs in proj.labels.values() if pairs)
    assert f"{labelled} written, 0 updated, 0 removed" in first.output
    second = ok("writeback")
    assert f"0 written, 0 updated, 0 removed, {len(proj.task_ids)} unchanged" in second.output
    rows, fields = exported(), source_fields()
    for item, row in rows.items():
        expected = {FINAL_FIELD: row["final_label"]} if row["final_label"] is not None else {}
        assert fields[item] == expected, item          # exactly one relabel label, equal to the export's
    # A reviewer corrects an item; the next writeback updates exactly that task.
    with Store(workdir / "relabel.db") as store:
        # an item that had a final label (an unlabelled outlier can be in the batch too: its label is written new)
        task = next(t for t in store.review_tasks(1) if rows[t["item_id"]]["final_label"] is not None)
    new_label = next(c for c in CLASSES if c != rows[task["item_id"]]["final_label"])
    answer_task(ls_admin, task["task_id"], new_label, reviewer)
    ok("collect")
    third = ok("writeback")
    assert "0 written, 1 updated, 0 removed" in third.output
    assert source_fields()[task["item_id"]] == {FINAL_FIELD: new_label} == {FINAL_FIELD: exported()[task["item_id"]]["final_label"]}
    # Label Studio's own export carries it; relabel's next review tasks do not copy it (no anchoring).
    export = httpx.get(f"{label_studio.url}/api/projects/{proj.project_id}/export", params={"exportType": "JSON"},
                       headers={"Authorization": f"Token {label_studio.api_key}"}, timeout=120).json()
    assert {str(t["id"]): t["data"].get(FINAL_FIELD) for t in export}[task["item_id"]] == new_label
    ok("round", "--budget", "3")
    _, review_tasks = review_project(ls_admin, proj.project_id)
    assert review_tasks and all(FINAL_FIELD not in t.data for t in review_tasks.values())


def test_label_studio_renders_the_review_panel_in_a_browser(label_studio, ls_admin, tmp_path):
    """Label Studio's own labeling UI (headless Chromium, logged in as the admin) shows the item, the reviewed
    choices and the panel, and not the source's other controls. A screenshot is saved in test-artifacts/."""
    import base64

    from relabel.server import _form_session, _post_form
    from test_report import ARTIFACTS, DevTools

    project_id, _ = two_choices_project(ls_admin, "relabel render", n_tasks=4)
    connector = LabelStudioConnector(label_studio.url, label_studio.api_key, project_id, label_tag="topic")
    (task_id, *_) = [t["id"] for t in connector._iter_tasks(project_id)]
    request = ReviewRequest(item_id=str(task_id), round=1, data={"text": "the referee stopped the match"},
                            quality=0.21, reason="annotators split 2-1 (sport, tech); quality 0.21",
                            suggested_label="sport", annotators=(("ann@example.com", "sport"),
                                                                 ("bob@example.com", "tech")),
                            model_top=(("sport", 0.71), ("tech", 0.2), ("politics", 0.09)))
    (pushed,) = connector.push([request])
    with _form_session(label_studio.url) as session:
        login = _post_form(session, "/user/login/", {"email": label_studio.username,
                                                     "password": label_studio.password})
        assert login.status_code == 302
        cookies = [{"name": k, "value": v, "url": label_studio.url} for k, v in session.cookies.items()]
    chrome = DevTools(tmp_path / "chromium-profile")
    try:
        for domain in ("Page", "Runtime", "Network"):
            chrome.send(f"{domain}.enable")
        chrome.send("Network.setCookies", cookies=cookies)
        chrome.send("Emulation.setDeviceMetricsOverride", width=1400, height=900, deviceScaleFactor=1, mobile=False)
        chrome.send("Page.navigate", url=f"{label_studio.url}/projects/{pushed.target_project}/data"
                                         f"?task={pushed.task_id}")
        chrome.wait_for("Page.loadEventFired")
        text, deadline = "", time.monotonic() + 90
        while "Why relabel asks" not in text and time.monotonic() < deadline:  # the labeling UI renders late
            time.sleep(1)
            text = chrome.evaluate("document.body.innerText")
        textareas = chrome.evaluate("document.querySelectorAll('textarea').length")
        shot = chrome.send("Page.captureScreenshot", format="png")
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "review-task.png").write_bytes(base64.b64decode(shot["data"]))
    finally:
        chrome.close()
    for shown in ("the referee stopped the match", "Why relabel asks", request.reason, "Who said what",
                  "ann@example.com: sport", "bob@example.com: tech", "The model's top classes", "sport 0.71",
                  "tech 0.20", "politics 0.09", "relabel's suggestion", "Submit"):
        assert shown in text, shown
    assert "calm" not in text and "angry" not in text           # the source's other Choices is not there
    assert textareas == 0                                       # nor its comment box
