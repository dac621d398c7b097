"""The relabel loop end to end: the CLI against a real private Label Studio (issue 4 acceptance).

Uses the tfidf featurizer (fast). Each test builds its own project (the acceptance
scenario of label_studio_helpers), because other tests push review tasks for the session's shared one.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from label_studio_helpers import (CLASSES, answer_task, build_acceptance_project, choices_config, make_members)
from relabel.cli import cli
from relabel.config import API_KEY_ENV
from relabel.server import free_port
from relabel.loop.store import Store

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]



def relabel(*args, obj=None):
    result = CliRunner().invoke(cli, list(args), obj=obj if obj is not None else {}, catch_exceptions=False)
    return result


def init(url, project_id, *extra, audit=0):
    """``relabel init``; audits off unless a test is about them (a batch is then exactly the budget)."""
    result = relabel("init", "--url", url, "--project", str(project_id), "--featurizer", "tfidf", *extra)
    assert result.exit_code == 0, result.output
    if audit is not None and "--config" not in extra:
        toml = Path("relabel.toml")
        toml.write_text(toml.read_text().replace("[review]\n", f"[review]\naudit = {audit}\n", 1))
    return result


def review_project_tasks(ls_admin, source_project_id):
    from connectors.label_studio import REVIEW_MARKER
    marker = f"{REVIEW_MARKER}{source_project_id}"
    projects = [p for p in ls_admin.projects.list() if marker in (p.description or "").split()]
    assert len(projects) == 1
    return projects[0].id, list(ls_admin.tasks.list(project=projects[0].id, fields="all"))


def test_acceptance_two_rounds_in_a_review_project(workdir, label_studio, ls_admin):
    # The acceptance scenario, built fresh: the session's shared copy gets review tasks from other tests.
    proj = build_acceptance_project(ls_admin, title="relabel loop acceptance", seed=4, email_prefix="loop-acc-")
    out = init(label_studio.url, proj.project_id).output       # the default stop signal ([review] min_expected_errors)
    assert f"tasks: {len(proj.task_ids)}" in out and "classes (topic): sport, politics, tech" in out

    # 1. first round: the store holds exactly Label Studio's annotations; 20 review tasks with fields and predictions
    r1 = relabel("round", "--budget", "20")
    assert r1.exit_code == 0, r1.output
    with Store(workdir / "relabel.db") as store:
        assert store.annotation_counts() == proj.counts_per_annotator()
        assert len(store.rounds()) == 1
        # labelled = at least one non-skipped label (some tasks have only skipped annotations)
        labelled = {str(t) for t, pairs in proj.labels.items() if pairs}
        scores = store.scores(1)
        assert {r["item_id"] for r in scores if r["labelled"]} == labelled
        assert all(r["quality"] is not None for r in scores if r["labelled"])
        assert {r["annotator_id"] for r in store.annotator_scores(1)} == set(proj.annotators)
        pushed = store.review_tasks(1)
    review_id, tasks = review_project_tasks(ls_admin, proj.project_id)
    assert len(tasks) == 20 == len(pushed)
    for t in tasks:
        assert {"text", "relabel_item", "relabel_round", "relabel_quality", "relabel_reason",
                "relabel_suggested"} <= set(t.data)
        # Nothing pre-selected by default ([review] preselect = false): the panel fields say why instead.
        assert not t.predictions and t.data["relabel_item"] in labelled
        assert {"relabel_annotators", "relabel_model"} <= set(t.data)
    again = relabel("push")
    assert again.exit_code == 0 and "0 new review tasks" in again.output
    assert len(review_project_tasks(ls_admin, proj.project_id)[1]) == 20
    # relabel's own review project is refused as a source, naming the project to use instead
    refused = relabel("init", "--url", label_studio.url, "--project", str(review_id), "--config", "review.toml")
    assert refused.exit_code == 1 and refused.output.count("\n") == 1, refused.output
    assert f"relabel's own review project for project {proj.project_id}" in refused.output
    assert not (workdir / "review.toml").exists()

    # 2. a fifth user answers 10 review tasks, half agreeing with the suggestion
    ((reviewer_id, reviewer_email),) = make_members(ls_admin, f"reviewer-{os.getpid()}-", 1)
    answered = {}
    for n, t in enumerate(sorted(tasks, key=lambda t: t.id)[:10]):
        suggested = t.data["relabel_suggested"]
        label = suggested if n % 2 == 0 else next(c for c in CLASSES if c != suggested)
        answer_task(ls_admin, t.id, label, reviewer_id)
        answered[t.data["relabel_item"]] = (suggested, label)
    r2 = relabel("round", "--budget", "20")
    assert r2.exit_code == 0, r2.output
    # reviewers corrected 5 of 10: the stop signal lets round 2 push, and says what its batch holds
    assert "nothing pushed" not in r2.output and "reviewers corrected 5 of 10 items in round 1" in r2.output
    with Store(workdir / "relabel.db") as store:
        decisions = store.decisions()
        assert len(decisions) == 10
        assert {d["item_id"]: (d["previous_label"], d["label"]) for d in decisions} == answered
        assert all(d["reviewer"] == reviewer_email for d in decisions)
        assert [r["round"] for r in store.rounds()] == [1, 2]
        round2 = {t["item_id"] for t in store.review_tasks(2)}
        # [review] budget is the open tasks to keep: 10 of round 1's 20 are still open, so round 2 adds 10
        assert len(round2) == 10 and not round2 & {t["item_id"] for t in pushed}, r2.output
    status = json.loads(relabel("status", "--json").output)["rounds"]
    assert [(r["round"], r["pushed"], r["reviewed"], r["corrected"]) for r in status] == [(1, 20, 10, 5), (2, 10, 0, 0)]
    # This reviewer corrected 5 of 10 (at random), far more than the posterior expected among them: the estimates
    # learn it. The batch holds at least the reviewers' rate (Jeffreys mean 5.5/11 of 20), and the posterior,
    # recalibrated on those decisions, expects more wrong labels among the items still open than round 1's
    # posterior expected among the same items (the totals are not comparable: the reviewed items left the count).
    with Store(workdir / "relabel.db") as store:
        first = store.scores(1)
        expected_among_reviewed = sum(1 - r["posterior"] for r in first if r["item_id"] in answered)
        # round 1's estimate over the items still unreviewed in round 2 (the 10 reviewed ones are final now)
        expected_still_open = sum(1 - r["posterior"] for r in first if r["labelled"] and r["item_id"] not in answered)
    assert expected_among_reviewed < 5
    assert status[1]["batch_expected"] >= 10 * 5.5 / 11 - 1e-9 and "5 of 10" in status[1]["batch_evidence"]
    assert status[1]["expected_remaining_errors"] > expected_still_open

    exported = relabel("export", "--format", "jsonl", "--out", "labels.jsonl")
    assert exported.exit_code == 0
    rows = {r["item_id"]: r for r in map(json.loads, (workdir / "labels.jsonl").read_text().splitlines())}
    assert len(rows) == len(proj.task_ids)
    for item, (_, label) in answered.items():
        assert rows[item]["final_label"] == label and rows[item]["reviewed"] is True
    annotators = json.loads(relabel("annotators", "--json").output)["annotators"]
    assert {a["annotator"] for a in annotators} == set(proj.annotators)
    # the careless annotator (planted accuracy 0.55) is ranked lowest
    worst = min(proj.accuracy, key=proj.accuracy.get)
    assert annotators[0]["annotator"] == worst


def test_in_place_mode_prediction_overlap_view_idempotent(workdir, label_studio, ls_admin):
    proj = build_acceptance_project(ls_admin, title="relabel in place", n_tasks=60, n_unlabelled=3, seed=11)
    init(label_studio.url, proj.project_id, "--mode", "in_place")
    before = {t.id: t.overlap for t in ls_admin.tasks.list(project=proj.project_id, fields="all")}
    r1 = relabel("round", "--budget", "8")
    assert r1.exit_code == 0, r1.output

    def state():
        tasks = {t.id: t for t in ls_admin.tasks.list(project=proj.project_id, fields="all")}
        views = [v for v in ls_admin.views.list(project=proj.project_id) if v.data.get("title") == "relabel round 1"]
        return tasks, views
    tasks, views = state()
    with Store(workdir / "relabel.db") as store:
        pushed = {int(t["item_id"]) for t in store.review_tasks(1)}
    assert len(pushed) == 8 and len(views) == 1
    for tid in pushed:
        task = tasks[tid]
        assert [p for p in task.predictions if (p.model_version if hasattr(p, "model_version") else p["model_version"])
                == "relabel-round-1;"]
        # one more annotator than the distinct authors of its finished (non-skipped) annotations
        assert task.overlap == max(before[tid], len({who for who, _ in proj.labels[tid]}) + 1)
        assert task.overlap > before[tid] or before[tid] > len(proj.labels[tid])
    again = relabel("push")
    assert again.exit_code == 0 and "0 new review tasks" in again.output
    tasks2, views2 = state()
    assert len(views2) == 1
    assert {tid: (len(tasks2[tid].predictions), tasks2[tid].overlap) for tid in pushed} == \
        {tid: (len(tasks[tid].predictions), tasks[tid].overlap) for tid in pushed}


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from connectors.label_studio import LabelStudioConnector
    from relabel.cli import cli
    url, key, project = sys.argv[1], os.environ["LABEL_STUDIO_API_KEY"], int(sys.argv[2])
    # The process dies right after Label Studio imported the review tasks, before relabel recorded them.
    connector = LabelStudioConnector(url, key, project, after_import=lambda: os.kill(os.getpid(), signal.SIGKILL))
    cli(["round", "--budget", "10"], obj={"connector": connector})
""")


def test_killed_after_import_then_push_does_not_duplicate(workdir, label_studio, ls_admin):
    proj = build_acceptance_project(ls_admin, title="relabel kill", n_tasks=60, n_unlabelled=0, seed=12)
    init(label_studio.url, proj.project_id)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    died = subprocess.run([sys.executable, "-c", KILL_SCRIPT, label_studio.url, str(proj.project_id)],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert died.returncode == -9, died.stderr
    assert len(review_project_tasks(ls_admin, proj.project_id)[1]) == 10
    with Store(workdir / "relabel.db") as store:
        assert store.review_tasks() == [] and store.latest_round()["status"] == "selected"
    resumed = relabel("push")
    assert resumed.exit_code == 0, resumed.output
    assert "10 in total" in resumed.output
    assert len(review_project_tasks(ls_admin, proj.project_id)[1]) == 10
    with Store(workdir / "relabel.db") as store:
        assert len(store.review_tasks(1)) == 10 and store.latest_round()["status"] == "pushed"


def _assert_clean_failure(result, *needles, workdir):
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not (workdir / "relabel.toml").exists() and not (workdir / "relabel.db").exists()


def test_init_errors_are_one_line_and_write_nothing(workdir, label_studio, ls_admin, monkeypatch):
    dead = f"http://127.0.0.1:{free_port()}"
    _assert_clean_failure(relabel("init", "--url", dead, "--project", "1"), dead, workdir=workdir)

    proj_id = ls_admin.projects.create(title="relabel errors", label_config=choices_config()).id
    monkeypatch.setenv(API_KEY_ENV, "0" * 40)
    _assert_clean_failure(relabel("init", "--url", label_studio.url, "--project", str(proj_id)), API_KEY_ENV,
                          workdir=workdir)
    monkeypatch.setenv(API_KEY_ENV, label_studio.api_key)

    _assert_clean_failure(relabel("init", "--url", label_studio.url, "--project", "987654"), "987654",
                          workdir=workdir)

    no_choices = ls_admin.projects.create(
        title="no choices", label_config='<View><Text name="body" value="$text"/>'
                                         '<TextArea name="note" toName="body"/></View>').id
    _assert_clean_failure(relabel("init", "--url", label_studio.url, "--project", str(no_choices)), "no <Choices> tag",
                          workdir=workdir)

    two = ls_admin.projects.create(title="two choices", label_config=choices_config(
        extra='<Choices name="sentiment" toName="body"><Choice value="pos"/><Choice value="neg"/></Choices>')).id
    _assert_clean_failure(relabel("init", "--url", label_studio.url, "--project", str(two)), "'topic'", "'sentiment'",
                          "label_tag",
                          workdir=workdir)
    ok = relabel("init", "--url", label_studio.url, "--project", str(two), "--label-tag", "sentiment",
                 "--featurizer", "tfidf")
    assert ok.exit_code == 0 and "pos, neg" in ok.output


def test_empty_project_round_is_a_clear_error(workdir, label_studio, ls_admin):
    empty = ls_admin.projects.create(title="relabel empty", label_config=choices_config()).id
    init(label_studio.url, empty)
    result = relabel("round", "--budget", "5")
    assert result.exit_code == 1
    # the steps that ran said so as they went; the error is one line, the last
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("Error: ") and "has no labelled tasks" in lines[-1]
    assert sum(line.startswith("Error") for line in lines) == 1
    with Store(workdir / "relabel.db") as store:
        assert store.rounds() == [] and store.count("scores") == 0 and store.review_tasks() == []


def test_stop_signal_against_label_studio_pushes_nothing_and_says_why(workdir, label_studio, ls_admin):
    """Issue 10 acceptance 4: annotators who all agree leave nothing worth reviewing. Round 1 pushes (no reviewer
    has judged the posterior yet); its reviewer confirms all 10 items, so round 2 stops, and says why."""
    from connectors.label_studio import REVIEW_MARKER
    proj = build_acceptance_project(ls_admin, title="relabel stop signal", n_tasks=60, n_unlabelled=0, p_skip=0.0,
                                    accuracy=(1.0, 1.0, 1.0), seed=11, email_prefix="stop-")
    init(label_studio.url, proj.project_id)            # the default [review] min_expected_errors
    first = relabel("round", "--budget", "10")
    assert first.exit_code == 0 and "10 new review tasks" in first.output, first.output
    assert "no reviewer decisions yet" in first.output
    review_id, tasks = review_project_tasks(ls_admin, proj.project_id)
    ((reviewer_id, _),) = make_members(ls_admin, f"stop-reviewer-{os.getpid()}-", 1)
    for t in tasks:
        answer_task(ls_admin, t.id, t.data["relabel_suggested"], reviewer_id)
    result = relabel("round", "--budget", "10")
    assert result.exit_code == 0, result.output
    assert "nothing pushed" in result.output and "min_expected_errors = 0.5" in result.output
    assert "reviewers corrected 0 of 10 items in round 1" in result.output
    assert "set [review] min_expected_errors = 0 to push anyway" in result.output
    with Store(workdir / "relabel.db") as store:
        assert store.review_tasks(2) == [] and store.latest_round()["status"] == "stopped"
        assert "min_expected_errors" in store.latest_round()["stop_reason"]
        assert store.latest_round()["batch_expected"] < 0.5
    marker = f"{REVIEW_MARKER}{proj.project_id}"
    assert [p.id for p in ls_admin.projects.list() if marker in (p.description or "").split()] == [review_id]
    assert len(list(ls_admin.tasks.list(project=review_id))) == 10       # round 2 added no task
    assert all(not t.predictions for t in ls_admin.tasks.list(project=proj.project_id, fields="all"))
    status = relabel("status")
    assert "stopped" in status.output and "90% interval" in status.output


def test_audit_items_two_rounds_against_label_studio(workdir, label_studio, ls_admin):
    """Issue 22: each batch carries audit items, indistinguishable in the review project, and `relabel status
    --json` reports the audited estimate of the wrong labels left once reviewers answered them."""
    # No "audit" in any name or title: the test looks for the word in what reviewers see.
    proj = build_acceptance_project(ls_admin, title="relabel issue 22", seed=6, email_prefix="i22-")
    init(label_studio.url, proj.project_id, audit=0.1)             # 10% of the budget, at least 10 items
    r1 = relabel("round", "--budget", "20")
    assert r1.exit_code == 0 and "10 of them are audit items" in r1.output, r1.output
    assert "a model estimate" in json.loads(relabel("status", "--json").output)["wrong_labels_left"]["text"]
    with Store(workdir / "relabel.db") as store:
        audit = {r["item_id"] for r in store.selection(1) if r["audit"]}
        ranked = {r["item_id"] for r in store.selection(1) if not r["audit"]}
    assert len(audit) == 10 and len(ranked) == 20
    review_id, tasks = review_project_tasks(ls_admin, proj.project_id)
    assert len(tasks) == 30
    # Indistinguishable: every review task has the same data fields, one label config for all, and nothing in
    # the task says which part of the batch it came from.
    keys = {frozenset(t.data) for t in tasks}
    assert len(keys) == 1 and not any("audit" in k for k in next(iter(keys)))
    assert {t.data["relabel_item"] for t in tasks} == audit | ranked
    assert not any("audit" in str(v).lower() for t in tasks for k, v in t.data.items() if k != "text")
    config = ls_admin.projects.get(id=review_id).label_config
    assert "audit" not in config.lower()

    # A truthful simulated reviewer answers every task of round 1.
    ((reviewer_id, _),) = make_members(ls_admin, f"i22-reviewer-{os.getpid()}-", 1)
    truth = {str(t): label for t, label in proj.true_labels.items()}
    for t in tasks:
        answer_task(ls_admin, t.id, truth[t.data["relabel_item"]], reviewer_id)
    r2 = relabel("round", "--budget", "20")
    assert r2.exit_code == 0, r2.output
    left = json.loads(relabel("status", "--json").output)["wrong_labels_left"]
    assert left["source"] == "audit" and left["audited"] == 10
    assert left["low"] <= left["expected"] <= left["high"]
    assert left["text"].startswith("≈ ") and left["text"].endswith("from 10 audited items")
    assert "from 10 audited items" in relabel("status").output
    with Store(workdir / "relabel.db") as store:
        corrected = {d["item_id"] for d in store.decisions() if d["outcome"] == "corrected"}
        round2 = store.selection(2)
    assert left["found"] == len(corrected & audit)
    # round 2 (if the stop signal let it push) audits items nobody reviewed
    assert not {r["item_id"] for r in round2 if r["audit"]} & (audit | ranked)
