"""Data issues against the real Label Studio the suite starts (issue 25, acceptance 4): a planted duplicate pair
with conflicting labels and an out-of-domain text reach the review project with their reasons; the reviewer's
"flag the item" takes the item out of scoring in round 2, and the export shows the flag."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from label_studio_helpers import CLASSES, annotation, import_tasks, make_members, make_project, make_text
from connectors.review_config import FLAG_CHOICE, FLAG_TAG
from relabel.cli import cli
from relabel.config import API_KEY_ENV
from relabel.loop.store import Store

pytestmark = [pytest.mark.integration, pytest.mark.slow]
OUT_OF_DOMAIN = ("Lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut "
                 "labore et dolore magna aliqua quis nostrud exercitation ullamco laboris nisi aliquip")


def relabel(*args):
    result = CliRunner().invoke(cli, list(args), obj={}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_planted_data_issues_reach_review_and_a_flag_takes_the_item_out(tmp_path, monkeypatch, label_studio,
                                                                         ls_admin):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(API_KEY_ENV, label_studio.api_key)
    rng = np.random.default_rng(5)
    members = make_members(ls_admin, f"data-issues-{os.getpid()}-{rng.integers(10**9)}-", 2)
    tasks = []
    for i in range(36):
        label = CLASSES[i % 3]
        tasks.append({"data": {"text": make_text(label, rng)},
                      "annotations": [annotation(uid, label) for uid, _ in members]})
    original = tasks[4]["data"]["text"]
    other = next(c for c in CLASSES if c != CLASSES[4 % 3])
    tasks.append({"data": {"text": "  " + original.upper()},                  # the same text, imported twice
                  "annotations": [annotation(uid, other) for uid, _ in members]})
    tasks.append({"data": {"text": OUT_OF_DOMAIN}, "annotations": [annotation(uid, CLASSES[0]) for uid, _ in members]})
    project_id = make_project(ls_admin, "relabel data issues")
    ids = import_tasks(ls_admin, project_id, tasks)
    original_id, duplicate_id, ood_id = str(ids[4]), str(ids[-2]), str(ids[-1])

    relabel("init", "--url", label_studio.url, "--project", str(project_id), "--featurizer", "tfidf")
    config = Path("relabel.toml")
    config.write_text(config.read_text().replace("[review]\n", "[review]\nmin_expected_errors = 0\n"))
    relabel("round", "--budget", "6")
    with Store(tmp_path / "relabel.db") as store:
        pushed = {t["item_id"]: t for t in store.review_tasks(1)}
    pair = {original_id, duplicate_id}
    # the pair's data-issue task (its partner may also be in the batch on its own label issue)
    dup_item = next(i for i in sorted(pair & set(pushed)) if "possible duplicate of task" in pushed[i]["reason"])
    partner = (pair - {dup_item}).pop()
    assert f"possible duplicate of task {partner}, labelled" in pushed[dup_item]["reason"]
    assert "unlike any other item in the project" in pushed[ood_id]["reason"]
    review = {t.id: t for t in ls_admin.tasks.list(project=pushed[ood_id]["target_project"], fields="all")}
    assert review[pushed[ood_id]["task_id"]].data["relabel_reason"] == pushed[ood_id]["reason"]

    reviewer = members[0][0]
    ls_admin.annotations.create(id=pushed[ood_id]["task_id"], completed_by=reviewer, ground_truth=False,
                                result=[{"from_name": "topic", "to_name": "body", "type": "choices",
                                         "value": {"choices": [CLASSES[0]]}},
                                        {"from_name": FLAG_TAG, "to_name": "body", "type": "choices",
                                         "value": {"choices": [FLAG_CHOICE]}}],
                                request_options={"max_retries": 0})
    relabel("round", "--budget", "6")
    with Store(tmp_path / "relabel.db") as store:
        assert store.flagged_items() == {ood_id}
        assert ood_id not in {r["item_id"] for r in store.scores(2)}
    relabel("export", "--format", "csv", "--out", "export.csv")
    with open("export.csv", newline="") as f:
        rows = {r["item_id"]: r for r in csv.DictReader(f)}
    assert rows[ood_id]["flagged"] in ("True", "true", "1") and rows[ood_id]["final_label"] == ""
    assert rows[dup_item]["conflicting_duplicate"] in ("True", "true", "1")
