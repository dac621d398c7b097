"""Issue 20 against a real Label Studio: overrides are earned, and the review queue tops up.

1. One annotator on 6 items: 0 overrides, the annotator's labels are the final labels (a model trained on 6
   items has earned nothing). 300 items whose texts are shuffled (a model at chance): the final labels are the
   annotation-only consensus.
4. `[review] budget` is the number of open review tasks to keep: budget 20, 10 answered, `relabel round` leaves
   20 open, not 30.
"""
from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from click.testing import CliRunner

from label_studio_helpers import CLASSES, annotation, answer_task, make_members, make_project, make_text
from relabel import consensus
from relabel.cli import cli
from relabel.loop.store import Store

pytestmark = [pytest.mark.integration, pytest.mark.slow]



def relabel(*args):
    result = CliRunner().invoke(cli, list(args), obj={}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _project(ls_admin, title, n_items, accuracies, seed, shuffle_texts=False):
    """``n_items`` tasks; annotator j labels every item, right with probability accuracies[j]."""
    rng = np.random.default_rng(seed)
    members = make_members(ls_admin, f"i20-{uuid.uuid4().hex[:8]}-", len(accuracies))
    truth = [CLASSES[i % len(CLASSES)] for i in range(n_items)]
    texts = [make_text(t, rng) for t in truth]
    if shuffle_texts:                      # the texts say nothing about the labels: a model at chance
        texts = [texts[i] for i in rng.permutation(n_items)]
    tasks, given = [], {}
    for i in range(n_items):
        anns = []
        for (uid, _), acc in zip(members, accuracies):
            label = truth[i] if rng.random() < acc else str(rng.choice([c for c in CLASSES if c != truth[i]]))
            anns.append(annotation(uid, label))
            given.setdefault(i, []).append(label)
        tasks.append({"data": {"text": texts[i]}, "annotations": anns})
    return make_project(ls_admin, title, tasks=tasks), given


def test_one_annotator_on_six_items_keeps_the_annotators_labels(workdir, label_studio, ls_admin):
    project, given = _project(ls_admin, "i20 six items", 6, (0.8,), seed=20)
    relabel("init", "--url", label_studio.url, "--project", str(project), "--featurizer", "tfidf")
    out = relabel("round", "--budget", "3")
    assert "Overrides off (too little evidence)" in out, out
    with Store(workdir / "relabel.db") as store:
        scores = [r for r in store.scores(1) if r["labelled"]]
        table, _ = store.scoring_table()
    assert len(scores) == 6 and sum(r["override"] for r in scores) == 0
    mine = {str(i): labels[0] for i, labels in given.items()}
    by_text_order = sorted(scores, key=lambda r: int(r["item_id"]))
    assert [r["consensus_label"] for r in by_text_order] == [mine[str(i)] for i in range(6)]
    assert all(r["final_label"] == r["consensus_label"] for r in scores)
    status = json.loads(relabel("status", "--json"))
    assert status["rounds"][0]["overrides"]["regime"] == "too little evidence"


def test_a_model_at_chance_leaves_the_annotation_only_consensus(workdir, label_studio, ls_admin):
    project, _ = _project(ls_admin, "i20 shuffled texts", 300, (0.91, 0.71, 0.62), seed=21, shuffle_texts=True)
    relabel("init", "--url", label_studio.url, "--project", str(project), "--featurizer", "tfidf")
    out = relabel("round", "--budget", "20")
    assert "Overrides off (not earned)" in out, out
    with Store(workdir / "relabel.db") as store:
        table, _ = store.scoring_table()
        scores = {r["item_id"]: r for r in store.scores(1) if r["labelled"]}
    alone = consensus(table)
    expected = dict(zip((str(i) for i in table.item_ids), (table.classes[c] for c in alone.consensus_label)))
    assert {i: r["consensus_label"] for i, r in scores.items()} == expected
    assert sum(r["override"] for r in scores.values()) == 0


def test_the_queue_tops_up_to_the_budget(workdir, label_studio, ls_admin):
    project, _ = _project(ls_admin, "i20 top-up", 120, (0.9, 0.7, 0.6), seed=22)
    reviewer = make_members(ls_admin, f"i20-reviewer-{uuid.uuid4().hex[:8]}-", 1)[0][0]
    relabel("init", "--url", label_studio.url, "--project", str(project), "--featurizer", "tfidf",
            "--budget", "20")
    # Audits (on by default) come on top of the budget; off here so that the queue is exactly what the top-up counts.
    config = workdir / "relabel.toml"
    config.write_text(config.read_text().replace("[review]\n", "[review]\naudit = 0\n"))
    relabel("round")
    with Store(workdir / "relabel.db") as store:
        pushed = store.review_tasks(1)
    assert len(pushed) == 20
    for task in pushed[:10]:                                     # 10 answered, 10 still open
        answer_task(ls_admin, task["task_id"], CLASSES[0], reviewer)
    out = relabel("round", "--force")
    assert "10 new review tasks" in out and "20 open" in out, out
    with Store(workdir / "relabel.db") as store:
        assert len(store.waiting_item_ids()) == 20
        assert len(store.review_tasks(2)) == 10
    # --add pushes that many more whatever is open
    out = relabel("round", "--force", "--add", "5")
    with Store(workdir / "relabel.db") as store:
        assert len(store.waiting_item_ids()) == 25, out
