"""The relabel loop against an in-memory fake of Label Studio (fast; the real server is in test_loop_integration)."""
from __future__ import annotations

import time

import numpy as np
import pytest

from connectors.records import AnnotationRecord, Item, ProjectInfo, Pull, PushedTask, ReviewAnswer
from relabel.config import DEFAULT_MIN_EXPECTED_ERRORS, ReviewSettings
from relabel.errors import AnnotationError, ConfigError, ConnectorError, StoreError
from relabel.loop.rounds import Loop
from relabel.loop.store import Store

CLASSES = ("sport", "politics", "tech")
WORDS = {
    "sport": "match goal team player coach league score season stadium referee".split(),
    "politics": "election vote minister parliament policy senate party campaign law debate".split(),
    "tech": "software chip startup data cloud phone network code robot algorithm".split(),
}
ANNOTATORS = ("ann@x", "bob@x", "cy@x", "dee@x")
MODEL = {"featurizer": "tfidf", "n_folds": 3}


class Killed(BaseException):
    """Stands for the process being killed (not an Exception, so nothing on the way catches it)."""


class FakeLabelStudio:
    """A recorded stand-in for connectors.label_studio: one source project, an idempotent review project."""

    def __init__(self, project_id=7, n_items=60, n_unlabelled=0, annotators=ANNOTATORS, per_item=3, noise=0.15,
                 seed=0, classes=CLASSES):
        rng = np.random.default_rng(seed)
        self.project_id = project_id
        self.classes = classes
        self.truth = {}
        self.items = []
        self.annotations = []
        for i in range(n_items + n_unlabelled):
            iid = str(1000 + i)
            label = classes[i % len(classes)]
            self.truth[iid] = label
            words = [str(rng.choice(WORDS[label])) if rng.random() < 0.7 else "the" for _ in range(10)]
            text = " ".join(words)
            self.items.append(Item(item_id=iid, data={"text": text}, text=text, updated_at="2026-01-01T00:00:00"))
            if i >= n_items:
                continue
            who = rng.choice(len(annotators), size=min(per_item, len(annotators)), replace=False)
            for a in who:
                given = label if rng.random() > noise else classes[(classes.index(label) + 1) % len(classes)]
                self.annotations.append(AnnotationRecord(
                    annotation_id=str(len(self.annotations) + 1), item_id=iid, annotator_id=annotators[a],
                    label=given, created_at="2026-01-01", updated_at="2026-01-01T00:00:00"))
        self.review_tasks = {}       # (round, item_id) -> task id
        self.answers = {}            # task id -> {reviewer: (label, answered_at, annotation id)}
        self.push_calls = []
        self.after_import = None
        self.describe_calls = 0

    # -- what tests do to "Label Studio" --
    def answer(self, task_id, reviewer, label, at="2026-02-01T00:00:00"):
        """``reviewer`` answers (or edits their answer: same annotation, later ``at``)."""
        self.answers.setdefault(task_id, {})[reviewer] = (label, at, f"r{task_id}-{reviewer}")

    def counts_per_annotator(self):
        out = {}
        for a in self.annotations:
            out[a.annotator_id] = out.get(a.annotator_id, 0) + 1
        return out

    # -- the Connector protocol --
    def describe(self):
        self.describe_calls += 1
        return ProjectInfo(project_id=self.project_id, title="News", classes=self.classes, label_tag="topic",
                           text_field="text", n_tasks=len(self.items), n_annotations=len(self.annotations))

    def pull(self, since=None, reconcile=False):
        anns = [a for a in self.annotations if since is None or a.updated_at > since]
        items = [it for it in self.items if since is None or it.updated_at > since
                 or any(a.item_id == it.item_id for a in anns)]
        cursor = max([a.updated_at for a in self.annotations] + [it.updated_at for it in self.items], default=since)
        return Pull(items=items, annotations=anns, cursor=cursor,
                    all_annotation_ids={a.annotation_id for a in self.annotations} if reconcile else None,
                    all_item_ids={it.item_id for it in self.items} if reconcile else None)

    def push(self, requests, *, mode="project", show_suggestion=True, preselect=False, unsure_since=None):
        self.last_requests = list(requests)
        self.push_kwargs = {"mode": mode, "show_suggestion": show_suggestion, "preselect": preselect}
        self.push_calls.append([r.item_id for r in requests])
        out = []
        for r in requests:
            key = (r.round, r.item_id)
            if key not in self.review_tasks:          # idempotent, like the real connector
                self.review_tasks[key] = 5000 + len(self.review_tasks)
            out.append(PushedTask(item_id=r.item_id, round=r.round, target_project=99, task_id=self.review_tasks[key],
                                  mode=mode))
        if self.after_import is not None:
            self.after_import()
        return out

    def collect(self, pushed):
        out = []
        for t in pushed:
            for reviewer, (label, at, annotation_id) in self.answers.get(t.task_id, {}).items():
                out.append(ReviewAnswer(item_id=t.item_id, round=t.round, task_id=t.task_id, reviewer=reviewer,
                                        label=label, answered_at=at, annotation_id=annotation_id))
        return out


def make_loop(tmp_path, fake, budget=10, name="relabel.db", min_expected_errors=DEFAULT_MIN_EXPECTED_ERRORS,
              audit=0.0):
    # The stop signal is off unless a test is about it: these small fakes hold few expected errors. Audits are
    # off unless a test is about them (tests/test_audit_loop.py), so a batch is exactly the budget. Data-issue
    # tasks (outliers by rank take up to 20% of a batch) are off: these tests are about the label-issue
    # selection; tests/test_data_issues_loop.py covers data issues in the loop.
    return Loop(Store(tmp_path / name), fake, model=MODEL,
                review=ReviewSettings(budget=budget, min_expected_errors=min_expected_errors, audit=audit,
                                      data_issues=()))


@pytest.fixture
def fake():
    return FakeLabelStudio()


def test_first_round_scores_everything_and_pushes_the_budget(tmp_path, fake):
    loop = make_loop(tmp_path, fake)
    summary = loop.round(budget=12)
    store = loop.store
    assert summary.round == 1 and summary.score.method == "model-dawid-skene"
    assert store.annotation_counts() == fake.counts_per_annotator()
    assert len(store.rounds()) == 1 and store.latest_round()["status"] == "pushed"
    scores = store.scores(1)
    assert len(scores) == 60 and all(r["quality"] is not None for r in scores)
    assert {r["annotator_id"] for r in store.annotator_scores(1)} == set(ANNOTATORS)
    assert len(store.annotation_scores(1)) == len(fake.annotations)
    tasks = store.review_tasks(1)
    assert len(tasks) == 12 == len(fake.review_tasks)
    # the 12 lowest-quality items, each with a reason and the consensus as suggestion
    ranked = sorted(scores, key=lambda r: r["quality"])
    assert {t["item_id"] for t in tasks} == {r["item_id"] for r in ranked[:12]}
    by_item = {r["item_id"]: r for r in scores}
    assert all(t["suggested"] == by_item[t["item_id"]]["consensus_label"] and "quality" in t["reason"]
               for t in tasks)


def test_pushing_again_creates_nothing(tmp_path, fake):
    loop = make_loop(tmp_path, fake)
    loop.round(budget=12)
    again = loop.push(budget=30)
    assert (again.new, again.total) == (0, 12)
    assert len(fake.push_calls) == 1 and len(fake.review_tasks) == 12


def test_expected_remaining_errors_is_sum_of_one_minus_posterior(tmp_path, fake):
    loop = make_loop(tmp_path, fake)
    s = loop.round(budget=5).score
    rows = [r for r in loop.store.scores(1) if r["labelled"]]
    assert s.expected_remaining_errors == pytest.approx(sum(1 - r["posterior"] for r in rows))
    assert 0 < s.expected_remaining_errors < len(rows)


def test_consensus_recovers_most_true_labels(tmp_path, fake):
    loop = make_loop(tmp_path, fake)
    loop.round(budget=5)
    rows = loop.store.scores(1)
    accuracy = np.mean([r["consensus_label"] == fake.truth[r["item_id"]] for r in rows])
    assert accuracy >= 0.9


def test_second_round_records_decisions_and_never_requeues(tmp_path, fake):
    loop = make_loop(tmp_path, fake)
    loop.round(budget=12)
    first = loop.store.review_tasks(1)
    answered = first[:6]
    expected = {}
    for n, t in enumerate(answered):
        label = t["suggested"] if n % 2 == 0 else next(c for c in CLASSES if c != t["suggested"])
        fake.answer(t["task_id"], "eve@x", label)
        expected[t["item_id"]] = (t["suggested"], label, "confirmed" if n % 2 == 0 else "corrected")
    s2 = loop.round(budget=12)
    assert s2.round == 2 and s2.collect.decisions == 6 and s2.collect.corrected == 3
    decisions = loop.store.decisions()
    assert {d["item_id"]: (d["previous_label"], d["label"], d["outcome"]) for d in decisions} == expected
    second = {t["item_id"] for t in loop.store.review_tasks(2)}
    # the budget is the open review tasks to keep (issue 20): 6 of round 1's 12 are still open, so 6 new
    assert len(second) == 6 and s2.push.top_up.open == 6 and len(loop.store.waiting_item_ids()) == 12
    assert not second & {t["item_id"] for t in first}     # neither reviewed nor still-waiting items come back
    # reviewers' labels are final and the reviewed items drop out of the expected errors
    scores2 = {r["item_id"]: r for r in loop.store.scores(2)}
    for item, (_, label, _) in expected.items():
        assert scores2[item]["reviewed"] == 1 and scores2[item]["final_label"] == label
    exported = {r["item_id"]: r for r in loop.export_rows()}
    for item, (_, label, _) in expected.items():
        assert exported[item]["final_label"] == label and exported[item]["reviewed"] is True
    status = loop.status()["rounds"]
    assert [(r["round"], r["pushed"], r["reviewed"], r["corrected"]) for r in status] == [(1, 12, 6, 3), (2, 6, 0, 0)]


def test_killed_between_import_and_bookkeeping_resumes_without_duplicates(tmp_path, fake):
    loop = make_loop(tmp_path, fake)

    def kill():
        raise Killed()
    fake.after_import = kill
    with pytest.raises(Killed):
        loop.round(budget=8)
    assert len(fake.review_tasks) == 8
    assert loop.store.review_tasks() == [] and loop.store.latest_round()["status"] == "selected"
    fake.after_import = None
    seen = []
    real_push = fake.push

    def push(requests, **kwargs):
        seen.append(kwargs["unsure_since"])
        return real_push(requests, **kwargs)
    fake.push = push
    before = time.time()
    resumed = make_loop(tmp_path, fake).push()
    assert (resumed.new, resumed.total) == (8, 8)
    assert len(fake.review_tasks) == 8
    # the killed push's in-flight mark told the rerun to let its writes land before importing the rest
    assert len(seen) == 1 and seen[0] is not None and before - 60 < seen[0] <= before
    store = make_loop(tmp_path, fake).store
    assert store.latest_round()["status"] == "pushed" and store.get_meta("push_in_flight") is None


def test_round_resumes_an_open_round_instead_of_starting_another(tmp_path, fake):
    loop = make_loop(tmp_path, fake)
    loop.pull()
    loop.score()
    summary = loop.round(budget=4)
    assert summary.resumed and summary.round == 1 and summary.push.total == 4
    assert len(loop.store.rounds()) == 1


def test_rescoring_an_unpushed_round_keeps_its_number(tmp_path, fake):
    loop = make_loop(tmp_path, fake)
    loop.pull()
    assert loop.score().round == 1
    assert loop.score().round == 1
    loop.push(3)
    assert loop.score().round == 2


def test_unlabelled_items_get_active_scores_and_are_never_reviewed(tmp_path):
    fake = FakeLabelStudio(n_items=45, n_unlabelled=15)
    loop = make_loop(tmp_path, fake)
    loop.round(budget=100)
    rows = loop.store.scores(1)
    unlabelled = [r for r in rows if not r["labelled"]]
    assert len(unlabelled) == 15
    assert all(r["active_score"] is not None and r["consensus_label"] is None for r in unlabelled)
    assert all(r["active_score"] is not None for r in rows)
    assert {t["item_id"] for t in loop.store.review_tasks(1)} == {r["item_id"] for r in rows if r["labelled"]}


def test_single_annotator_is_scored_by_the_model_and_the_label(tmp_path):
    fake = FakeLabelStudio(annotators=("solo@x",), per_item=1)
    loop = make_loop(tmp_path, fake)
    s = loop.round(budget=5).score
    assert s.method == "model-dawid-skene" and s.labelled_items == 60
    rows = loop.store.scores(1)
    assert all(0 <= r["quality"] <= 1 for r in rows)
    # quality is the posterior probability of the consensus label
    assert all(r["quality"] == pytest.approx(r["posterior"]) for r in rows)
    (solo,) = loop.store.annotator_scores(1)
    assert solo["num_labels"] == 60 and 0 < solo["agreement"] <= 1.0
    assert len(loop.store.review_tasks(1)) == 5


def test_every_item_single_label_is_scored(tmp_path):
    fake = FakeLabelStudio(per_item=1)
    loop = make_loop(tmp_path, fake)
    s = loop.round(budget=5).score
    assert s.method == "model-dawid-skene" and s.labelled_items == 60
    assert all(r["quality"] is not None for r in loop.store.scores(1) if r["labelled"])


def test_empty_project_is_a_clear_error_and_writes_no_round(tmp_path):
    fake = FakeLabelStudio(n_items=0, n_unlabelled=5)
    loop = make_loop(tmp_path, fake)
    with pytest.raises(AnnotationError, match="has no labelled tasks"):
        loop.round(budget=5)
    assert loop.store.rounds() == [] and fake.push_calls == []


def test_store_of_another_project_is_refused(tmp_path, fake):
    make_loop(tmp_path, fake).round(budget=3)
    other = FakeLabelStudio(project_id=8)
    with pytest.raises(StoreError, match="belongs to project 7, not project 8"):
        make_loop(tmp_path, other).round(budget=3)


def test_deleted_annotations_drop_out_on_the_next_pull(tmp_path, fake):
    loop = make_loop(tmp_path, fake)
    loop.pull()
    gone = fake.annotations.pop(0)
    loop.pull()
    assert gone.annotation_id not in set(loop.store.scoring_table()[1])
    assert loop.store.annotation_counts() == fake.counts_per_annotator()


def test_deleted_tasks_drop_out_of_scores_and_export(tmp_path, fake):
    loop = make_loop(tmp_path, fake)
    loop.pull()
    gone = fake.items.pop(0)
    fake.annotations = [a for a in fake.annotations if a.item_id != gone.item_id]
    loop.pull()
    summary = loop.score()
    assert summary.items == 59
    assert gone.item_id not in {r["item_id"] for r in loop.export_rows()}


def test_push_before_score_and_bad_budget(tmp_path, fake):
    loop = make_loop(tmp_path, fake)
    with pytest.raises(StoreError, match="run `relabel score`"):
        loop.push()
    with pytest.raises(ConfigError, match="The 'budget' setting must be a positive integer. Got 0."):
        loop.round(budget=0)
    assert fake.push_calls == []


def test_connector_that_loses_tasks_leaves_the_round_resumable(tmp_path, fake):
    loop = make_loop(tmp_path, fake)
    real_push = fake.push
    fake.push = lambda requests, **kw: real_push(requests, **kw)[:-1]
    with pytest.raises(ConnectorError, match="run `relabel push` again"):
        loop.round(budget=5)
    assert loop.store.latest_round()["status"] == "selected" and len(loop.store.review_tasks(1)) == 4
    # re-scoring now would replace the selection and orphan the tasks already in Label Studio
    with pytest.raises(StoreError, match="run `relabel push`"):
        loop.score()
    assert [r["status"] for r in loop.store.rounds()] == ["selected"]
    fake.push = real_push
    assert loop.push().total == 5 and len(fake.review_tasks) == 5


def test_annotators_and_export(tmp_path, fake):
    loop = make_loop(tmp_path, fake)
    loop.round(budget=5)
    rows = loop.annotators()
    assert {r["annotator"] for r in rows} == set(ANNOTATORS)
    assert all(r["worst_class"] in CLASSES and 0 <= r["agreement"] <= 1 for r in rows)
    assert sum(r["labels"] for r in rows) == len(fake.annotations)
    out = tmp_path / "labels.jsonl"
    assert loop.export("jsonl", out) == 60
    assert len(out.read_text().splitlines()) == 60
    with pytest.raises(ConfigError, match="export format"):
        loop.export("xml", tmp_path / "x")


def test_stop_signal_pushes_nothing_once_reviewers_stop_correcting(tmp_path, fake):
    loop = make_loop(tmp_path, fake, min_expected_errors=1e6)
    first = loop.round(budget=12)
    # round 1 never stops, whatever the setting: no reviewer has said how good the posterior is
    assert first.stop_reason is None and first.push.new == 12
    assert "no reviewer decisions yet" in str(first.push.batch.evidence)
    for t in loop.store.review_tasks(1):
        fake.answer(t["task_id"], "eve@x", t["suggested"])         # every suggestion confirmed
    summary = loop.round(budget=12)
    assert summary.stop_reason is not None and "min_expected_errors = 1e+06" in summary.stop_reason
    assert "reviewers corrected 0 of 12 items in round 1" in summary.stop_reason
    assert summary.push.new == 0 and len(fake.push_calls) == 1
    assert loop.store.review_tasks(2) == [] and loop.store.latest_round()["status"] == "stopped"
    status = loop.status()["rounds"]
    assert status[1]["stop_reason"] == summary.stop_reason
    assert status[1]["batch_expected"] == pytest.approx(summary.push.batch.expected)
    assert status[1]["batch_evidence"] == "reviewers corrected 0 of 12 items in round 1"
    assert status[0]["batch_evidence"].startswith("no reviewer decisions yet")
    # running again neither resumes (and pushes) the stopped round nor starts one while nothing changed
    again = loop.round(budget=12)
    assert again.round == 2 and again.unchanged_reason is not None and len(fake.push_calls) == 1
    forced = loop.round(budget=12, force=True)
    assert forced.round == 3 and forced.stop_reason is not None
    assert len(fake.push_calls) == 1
    pushing = make_loop(tmp_path, fake, name="other.db", min_expected_errors=0.0)
    done = pushing.round(budget=12)
    assert done.stop_reason is None and done.push.new == 12


def test_round_summary_reports_expected_errors_with_an_interval(tmp_path, fake):
    s = make_loop(tmp_path, fake).round(budget=5).score
    assert s.expected_low <= s.expected_remaining_errors <= s.expected_high
    assert s.expected_text.startswith("≈ ") and "90% interval" in s.expected_text


def test_expected_errors_are_recalibrated_from_reviewer_decisions(tmp_path):
    from relabel.scoring.error_estimate import MIN_DECISIONS, fit_recalibration, recalibrate
    fake = FakeLabelStudio(n_items=80, noise=0.3)
    loop = make_loop(tmp_path, fake, budget=30)
    loop.round(budget=30)
    for t in loop.store.review_tasks(1):
        fake.answer(t["task_id"], "eve@x", fake.truth[t["item_id"]])      # an expert answers with the truth
    second = loop.round(budget=5).score
    pairs = loop.store.decision_posteriors()
    assert len(pairs) == 30 >= MIN_DECISIONS
    q, right = (np.array(x) for x in zip(*pairs))
    sent = {t["item_id"] for t in loop.store.review_tasks(1)}
    np.testing.assert_allclose(np.sort(q), np.sort([r["posterior"] for r in loop.store.scores(1) if r["item_id"] in sent]))
    params = fit_recalibration(q, right)
    # decisions of both kinds, enough of them: slope and shift; all of one kind: the shift alone
    assert params != (1.0, 0.0)
    assert (params[0] == 1.0) == (right.all() or not right.any())
    rows = [r for r in loop.store.scores(second.round) if r["labelled"] and not r["reviewed"]]
    np.testing.assert_allclose([r["p_wrong"] for r in rows],
                               1 - recalibrate(np.array([r["posterior"] for r in rows]), params), rtol=1e-9)
    assert second.expected_remaining_errors == pytest.approx(sum(r["p_wrong"] for r in rows))
