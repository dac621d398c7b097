"""A labeling config that gains and reorders classes between rounds, against the real Label Studio.

Every round keeps the classes it was scored with, so an old round's report is exactly what it was before the
change (its matrices under the names they were computed for), and the new round uses the new classes.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from click.testing import CliRunner

from label_studio_helpers import CLASSES, annotation, choices_config, import_tasks, make_members, make_text
from relabel.cli import cli
from relabel.config import API_KEY_ENV
from relabel.loop.store import Store
from test_rounds import FakeLabelStudio, make_loop

NEW_CLASSES = ("tech", "business", "politics", "sport")   # reordered, and 'business' is new
BUSINESS_WORDS = "market shares profit bank merger revenue investor trade price company".split()


def relabel(*args):
    result = CliRunner().invoke(cli, list(args), obj={})
    assert result.exit_code == 0, result.output
    return result.output


def classes_section(page: str) -> str:
    """The report's class matrices (SVG) and their captions; the rest of a page also shows live review state."""
    found = re.search(r'<section id="classes">.*?</section>', page, re.DOTALL)
    assert found, "the report has no classes section"
    return found.group(0)


def tasks_labelled(members, classes, n, rng, confuse=None):
    """``n`` tasks, each labelled by every member; the last member gives ``confuse[label]`` where it has one."""
    tasks = []
    for i in range(n):
        label = classes[i % len(classes)]
        given = [label] * (len(members) - 1) + [(confuse or {}).get(label, label)]
        text = make_text(label, rng) if label in CLASSES else " ".join(rng.choice(BUSINESS_WORDS, 12))
        tasks.append({"data": {"text": text},
                      "annotations": [annotation(uid, g) for (uid, _), g in zip(members, given)]})
    return tasks


@pytest.mark.integration
@pytest.mark.slow
def test_old_rounds_reports_keep_their_class_names_after_a_class_is_added_and_reordered(
        tmp_path, monkeypatch, label_studio, ls_admin):
    # the data of Label Studio (every user's token) is readable by its owner only
    assert oct(label_studio.data_dir.stat().st_mode & 0o777) == "0o700"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(API_KEY_ENV, label_studio.api_key)
    rng = np.random.default_rng(12)
    members = make_members(ls_admin, f"classes-{rng.integers(10**9)}-", 3)
    project = ls_admin.projects.create(title="relabel class changes", label_config=choices_config(CLASSES))
    # the third annotator calls every sport item tech: a confusion the matrices must keep under the right names
    import_tasks(ls_admin, project.id, tasks_labelled(members, CLASSES, 45, rng, confuse={"sport": "tech"}))
    relabel("init", "--url", label_studio.url, "--project", str(project.id), "--featurizer", "tfidf")
    relabel("round", "--budget", "5")
    relabel("report", "--round", "1", "--out", "before.html")

    ls_admin.projects.update(id=project.id, label_config=choices_config(NEW_CLASSES))
    import_tasks(ls_admin, project.id, tasks_labelled(members, ("business",), 9, rng))
    relabel("round", "--budget", "5")
    relabel("report", "--round", "1", "--out", "round1.html")
    relabel("report", "--round", "2", "--out", "round2.html")

    with Store("relabel.db") as store:
        assert store.classes == NEW_CLASSES
        assert store.round_classes(1) == CLASSES and store.round_classes(2) == NEW_CLASSES
        assert len(store.class_stats(1)["annotator_confusion"]) == 3
        assert len(store.class_stats(2)["annotator_confusion"]) == 4
    before = (tmp_path / "before.html").read_text()
    round1 = (tmp_path / "round1.html").read_text()
    round2 = (tmp_path / "round2.html").read_text()
    assert "Classes when round 1 was scored: sport, politics, tech." in round1
    assert "Classes when round 2 was scored: tech, business, politics, sport." in round2
    # round 1's matrices, drawn and named, are the ones its report showed before the labeling config changed
    assert classes_section(round1) == classes_section(before)
    assert classes_section(round2) != classes_section(round1)
    assert "4 classes" in round2 and "3 classes" in round1


def test_a_round_scored_before_the_classes_changed_is_still_selected_and_pushed_by_class_name(tmp_path):
    # Selection reads labels by name against the current classes, which still hold every class the round used
    # (Label Studio refuses to drop a class that annotations use), so additions and reorders are safe.
    fake = FakeLabelStudio()
    loop = make_loop(tmp_path, fake)
    loop.pull()
    loop.score()
    by_item = {r["item_id"]: r for r in loop.store.scores(1)}
    fake.classes = NEW_CLASSES          # the labeling config changes between `relabel score` and `relabel push`
    loop.pull()
    assert loop.store.classes == NEW_CLASSES and loop.store.round_classes(1) == CLASSES
    pushed = loop.push(budget=8)
    assert pushed.new == 8
    for row in loop.store.selection(1):
        scored = by_item[row["item_id"]]
        assert row["suggested"] in CLASSES and row["suggested"] in (scored["consensus_label"], scored["model_label"])
        # the reason quotes the votes under their own names (e.g. "annotators split 2-1: 'sport' ...")
        named = {c for c in CLASSES if f"'{c}'" in row["reason"]}
        labels = {label for _, label in loop.store.labels_of([row["item_id"]])[row["item_id"]]}
        assert named <= labels | {scored["model_label"], scored["consensus_label"]}, row["reason"]
    loop.close()
