"""The Label Studio connector and the private server, against a real Label Studio started for the session.

The parse tests at the top need no server; everything marked ``integration`` talks to the session's server.
"""
from __future__ import annotations

import json
import shutil
import time
from collections import Counter

import httpx
import pytest
from label_studio_helpers import (CLASSES, LABEL_TAG, TEXT_FIELD, annotation, answer_task,
                                  choice_result, choices_config, import_tasks, make_members, make_project, make_text)

from connectors.label_config import parse_label_config
from connectors.label_studio import LabelStudioConnector, model_version, view_title
from connectors.records import ReviewRequest
from relabel.errors import AuthError, ConfigError, ConnectorError, InputError
from relabel.server import (create_personal_access_token, create_user, free_port, start_label_studio)

import numpy as np


# ---------------------------------------------------------------------------------------------- label config
def test_config_classes_in_config_order_with_tag_and_text_field():
    config = parse_label_config(choices_config(("zeta", "alpha", "mid")))
    assert config.classes == ("zeta", "alpha", "mid")
    assert config.label_tag == LABEL_TAG
    assert config.text_field == TEXT_FIELD
    assert config.to_name == "body"


def test_config_with_two_choices_tags_asks_which_and_lists_them():
    xml = choices_config(extra='<Choices name="tone" toName="body"><Choice value="a"/><Choice value="b"/></Choices>')
    with pytest.raises(ConfigError, match=r"2 <Choices> tags \('topic', 'tone'\).*'label_tag'"):
        parse_label_config(xml)
    assert parse_label_config(xml, label_tag="tone").classes == ("a", "b")
    with pytest.raises(ConfigError, match=r"'label_tag' setting is 'mood'.*'topic', 'tone'"):
        parse_label_config(xml, label_tag="mood")


def test_config_without_choices_or_with_bad_choices_is_refused():
    with pytest.raises(ConfigError, match="no <Choices> tag"):
        parse_label_config('<View><Text name="t" value="$text"/></View>')
    with pytest.raises(ConfigError, match="not valid XML"):
        parse_label_config("<View><Choices>")
    with pytest.raises(ConfigError, match="repeats the choices 'a'"):
        parse_label_config(choices_config(("a", "b", "a")))
    with pytest.raises(ConfigError, match="needs at least 2 classes"):
        parse_label_config(choices_config(("only",)))


def test_config_text_field_can_be_overridden():
    assert parse_label_config(choices_config(), text_field="title").text_field == "title"


def test_connector_refuses_bad_settings_before_any_request():
    with pytest.raises(ConfigError, match=r"must be an http\(s\) URL"):
        LabelStudioConnector("localhost:8080", "k", 1)
    with pytest.raises(AuthError, match="LABEL_STUDIO_API_KEY"):
        LabelStudioConnector("http://127.0.0.1:1", "", 1)
    with pytest.raises(ConfigError, match="'project_id' setting must be a positive integer. Got 0"):
        LabelStudioConnector("http://127.0.0.1:1", "k", 0)


def test_unreachable_server_names_the_url():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(ConnectorError, match=rf"Cannot reach Label Studio at {url}.*check the URL"):
        LabelStudioConnector(url, "0" * 40, 1).describe()


# ---------------------------------------------------------------------------------------------- server
@pytest.mark.integration
def test_server_is_private_and_keeps_files_in_its_data_dir(label_studio):
    assert label_studio.url.startswith("http://127.0.0.1:")
    assert httpx.get(f"{label_studio.url}/health").json() == {"status": "UP"}
    # Label Studio writes ~/.config/label-studio/user_id; HOME points inside the data dir.
    assert (label_studio.data_dir / "home" / ".config" / "label-studio").is_dir()
    assert label_studio.api_key not in repr(label_studio) and label_studio.password not in repr(label_studio)
    with pytest.raises(ConfigError, match=f"Port {label_studio.port} on 127.0.0.1 is already in use"):
        start_label_studio(label_studio.data_dir.parent / "unused", port=label_studio.port,
                           username="x@example.com", password="whatever1")


@pytest.mark.integration
@pytest.mark.slow
def test_second_start_on_an_initialised_data_dir_reuses_it(label_studio, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(label_studio.data_dir, copy, ignore=shutil.ignore_patterns("*.log", "export"))
    started = time.monotonic()
    with start_label_studio(copy, username=label_studio.username, password=label_studio.password) as second:
        elapsed = time.monotonic() - started
        assert second.port != label_studio.port
        assert second.api_key == label_studio.api_key  # the token the data dir was initialised with
        whoami = httpx.get(f"{second.url}/api/current-user/whoami",
                           headers={"Authorization": f"Token {second.api_key}"})
        assert whoami.status_code == 200 and whoami.json()["email"] == label_studio.username
    assert second.process.poll() is not None
    assert elapsed < 30, f"a restart on an initialised data dir took {elapsed:.0f} s; migrations ran again?"


# ---------------------------------------------------------------------------------------------- describe/pull
@pytest.fixture(scope="session")
def acceptance_connector(label_studio, acceptance_project):
    return LabelStudioConnector(label_studio.url, label_studio.api_key, acceptance_project.project_id)


@pytest.mark.integration
def test_describe_reads_classes_tag_text_field_and_counts(acceptance_connector, acceptance_project):
    info = acceptance_connector.describe()
    assert info.classes == CLASSES
    assert info.label_tag == LABEL_TAG and info.text_field == TEXT_FIELD
    assert info.n_tasks == 300
    assert info.n_annotations == acceptance_project.n_annotations
    assert info.title == "relabel acceptance"


@pytest.mark.integration
def test_pull_brings_every_annotation_by_annotator(acceptance_connector, acceptance_project):
    pull = acceptance_connector.pull()
    truth = acceptance_project
    assert len(pull.items) == 300
    assert {i.item_id for i in pull.items} == {str(t) for t in truth.task_ids}
    scored = [a for a in pull.annotations if not a.skipped]
    assert Counter(a.annotator_id for a in scored) == Counter(truth.counts_per_annotator())
    got = {(a.item_id, a.annotator_id, a.label) for a in scored}
    assert got == {(str(t), e, lab) for t, pairs in truth.labels.items() for e, lab in pairs}
    skipped = {(a.item_id, a.annotator_id) for a in pull.annotations if a.skipped}
    assert skipped == {(str(t), e) for t, emails in truth.skipped.items() for e in emails}
    assert all(a.label is None for a in pull.annotations if a.skipped)
    assert all(a.valid for a in pull.annotations) and pull.warnings == []
    texts = {i.item_id: i.text for i in pull.items}
    assert texts == {str(t): text for t, text in truth.texts.items()}
    labelled = {a.item_id for a in pull.annotations}
    assert {str(t) for t in truth.unlabelled}.isdisjoint(labelled)
    assert pull.cursor == max(i.updated_at for i in pull.items)
    assert pull.all_annotation_ids is None


@pytest.fixture()
def small_project(label_studio, ls_admin):
    """A fresh 6-task project with 2 annotators (3 labelled tasks) that a test may change."""
    rng = np.random.default_rng(1)
    (a1, e1), (a2, e2) = make_members(ls_admin, f"small{time.time_ns()}-", 2)
    tasks = [{"data": {TEXT_FIELD: make_text(c, rng)}, "annotations": []} for c in CLASSES * 2]
    tasks[0]["annotations"] = [annotation(a1, "sport"), annotation(a2, "tech")]
    tasks[1]["annotations"] = [annotation(a1, "politics"), annotation(a2, None, skipped=True)]
    tasks[2]["annotations"] = [annotation(a1, "tech")]
    project_id = make_project(ls_admin, "small")
    task_ids = import_tasks(ls_admin, project_id, tasks)
    connector = LabelStudioConnector(label_studio.url, label_studio.api_key, project_id)
    return connector, task_ids, {e1: a1, e2: a2}


@pytest.mark.integration
def test_incremental_pull_returns_only_changed_tasks(small_project, ls_admin):
    connector, task_ids, users = small_project
    first = connector.pull()
    assert len(first.annotations) == 5
    assert connector.pull(since=first.cursor).annotations == []
    time.sleep(0.01)  # updated_at has microseconds; make the change strictly later than the cursor
    new_id = answer_task(ls_admin, task_ids[4], "politics", users[min(users)])
    ls_admin.annotations.update(id=int(first.annotations[0].annotation_id), result=[
        {"from_name": LABEL_TAG, "to_name": "body", "type": "choices", "value": {"choices": ["politics"]}}])
    second = connector.pull(since=first.cursor)
    assert {i.item_id for i in second.items} == {str(task_ids[0]), str(task_ids[4])}
    by_id = {a.annotation_id: a for a in second.annotations}
    assert by_id[str(new_id)].label == "politics" and by_id[str(new_id)].annotator_id == min(users)
    assert by_id[first.annotations[0].annotation_id].label == "politics"
    assert second.cursor > first.cursor
    assert connector.pull(since=second.cursor).items == []
    # Any ISO 8601 form is accepted (Label Studio's filter takes only one); a bad cursor is named.
    assert len(connector.pull(since="2000-01-01T00:00:00Z").items) == 6
    assert len(connector.pull(since="2000-01-01 00:00:00").items) == 6
    with pytest.raises(InputError, match="cursor must be an ISO 8601 time.*Got 'yesterday'"):
        connector.pull(since="yesterday")


@pytest.mark.integration
def test_reconcile_detects_deleted_annotations(small_project, ls_admin):
    connector, task_ids, _ = small_project
    first = connector.pull(reconcile=True)
    assert first.all_annotation_ids == {a.annotation_id for a in first.annotations}
    gone = first.annotations[0].annotation_id
    ls_admin.annotations.delete(id=int(gone))
    second = connector.pull(since=first.cursor, reconcile=True)
    assert first.all_annotation_ids - second.all_annotation_ids == {gone}
    # The task that lost an annotation changed; the others are not returned again.
    assert [i.item_id for i in second.items] == [first.annotations[0].item_id]


@pytest.mark.integration
def test_choice_outside_the_config_is_stored_invalid_and_warned_by_id(label_studio, ls_admin):
    (uid, email), = make_members(ls_admin, f"inv{time.time_ns()}-", 1)
    project_id = make_project(ls_admin, "invalid choice")
    import_tasks(ls_admin, project_id, [{"data": {TEXT_FIELD: "x"}, "annotations": [annotation(uid, "weather")]}])
    pull = LabelStudioConnector(label_studio.url, label_studio.api_key, project_id).pull()
    (record,) = pull.annotations
    assert record.valid is False and record.label == "weather" and record.annotator_id == email
    (warning,) = pull.warnings
    assert f"Annotation {record.annotation_id} on task {record.item_id}" in warning and "'weather'" in warning


@pytest.mark.integration
def test_completed_by_as_id_or_as_dict_gives_the_same_annotator(acceptance_connector, ls_admin,
                                                                  acceptance_project):
    task_id = next(t for t, pairs in acceptance_project.labels.items() if pairs)
    task = ls_admin.tasks.get(str(task_id))  # a single-task GET returns completed_by as a dict
    as_dict = task.annotations[0]["completed_by"] if isinstance(task.annotations[0], dict) \
        else task.annotations[0].completed_by
    as_dict = as_dict if isinstance(as_dict, dict) else {"id": as_dict}
    listed = [a for a in acceptance_connector.pull().annotations if a.item_id == str(task_id)]
    assert acceptance_connector._annotator(as_dict) == acceptance_connector._annotator(as_dict["id"])
    assert acceptance_connector._annotator(as_dict["id"]) in {a.annotator_id for a in listed}


@pytest.mark.integration
def test_empty_project_describes_and_pulls_nothing(label_studio, ls_admin):
    connector = LabelStudioConnector(label_studio.url, label_studio.api_key, make_project(ls_admin, "empty"))
    info = connector.describe()
    assert (info.n_tasks, info.n_annotations, info.classes) == (0, 0, CLASSES)
    pull = connector.pull()
    assert (pull.items, pull.annotations, pull.cursor) == ([], [], None)


# ---------------------------------------------------------------------------------------------- push
def _requests(task_ids, texts, round_number=1, n=20):
    # quality descending with task order, so "lowest quality first" is the reverse of the task order
    return [ReviewRequest(item_id=str(t), round=round_number, data={TEXT_FIELD: texts[t]},
                          quality=round(0.9 - 0.04 * k, 3), reason=f"annotators split; reason {k}",
                          suggested_label=CLASSES[k % 3]) for k, t in enumerate(task_ids[:n])]


@pytest.fixture()
def fresh_acceptance(ls_admin, request):
    """A fresh acceptance-like project a push test may write to."""
    from label_studio_helpers import build_acceptance_project

    return build_acceptance_project(ls_admin, title="push", n_tasks=40, seed=abs(hash(request.node.name)) % 1000)


@pytest.mark.integration
def test_push_project_mode_creates_review_tasks_once(label_studio, ls_admin, fresh_acceptance):
    connector = LabelStudioConnector(label_studio.url, label_studio.api_key, fresh_acceptance.project_id)
    requests = _requests(fresh_acceptance.task_ids, fresh_acceptance.texts)
    pushed = connector.push(requests, preselect=True)
    assert [p.item_id for p in pushed] == [r.item_id for r in requests]
    target = pushed[0].target_project
    assert target != fresh_acceptance.project_id and {p.mode for p in pushed} == {"project"}
    review = ls_admin.projects.get(id=target)
    assert review.title == "relabel review: push"
    # The review config (connectors/review_config.py), with the suggestion named in the panel.
    assert review.label_config == connector.review_config(show_suggestion=True)
    assert review.model_version == model_version(1)
    tasks = {t["id"]: t for t in connector._iter_tasks(target)}
    assert len(tasks) == 20
    for request, p in zip(requests, pushed):
        task = tasks[p.task_id]
        assert task["data"] == {TEXT_FIELD: request.data[TEXT_FIELD], "relabel_item": request.item_id,
                                "relabel_round": 1, "relabel_quality": request.quality,
                                "relabel_reason": request.reason, "relabel_suggested": request.suggested_label,
                                "relabel_annotators": "no annotator labelled it",
                                "relabel_model": "no model view recorded"}
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == model_version(1) and prediction["score"] == request.quality
        assert prediction["result"][0]["value"]["choices"] == [request.suggested_label]
        assert task["predictions_score"] == pytest.approx(request.quality)  # counted: sortable by quality
    assert connector.push(requests, preselect=True) == pushed
    assert len(list(connector._iter_tasks(target))) == 20
    # A later round of the same items is new work in the same review project.
    again = connector.push(_requests(fresh_acceptance.task_ids, fresh_acceptance.texts, round_number=2, n=3))
    assert {p.target_project for p in again} == {target} and not {p.task_id for p in again} & set(tasks)


@pytest.mark.integration
def test_a_push_lists_only_its_own_rounds_review_tasks(label_studio, fresh_acceptance):
    """The idempotency listing is filtered by data.relabel_round: a push does not read every earlier round's
    tasks again (the review project grows every round; relabel serve pushes right after the last answer)."""
    truth = fresh_acceptance
    connector = LabelStudioConnector(label_studio.url, label_studio.api_key, truth.project_id)
    first = connector.push(_requests(truth.task_ids, truth.texts, n=6))
    second = connector.push(_requests(truth.task_ids, truth.texts, round_number=2, n=4))
    listed, real = [], connector._iter_tasks

    def spy(project_id, **kwargs):
        rows = list(real(project_id, **kwargs))
        listed.append(sorted({t["data"]["relabel_round"] for t in rows}))
        return iter(rows)
    connector._iter_tasks = spy
    assert connector.push(_requests(truth.task_ids, truth.texts, round_number=2, n=4)) == second
    assert listed == [[2]]
    assert connector.push(_requests(truth.task_ids, truth.texts, n=6)) == first
    assert listed == [[2], [1]]
    connector._iter_tasks = real
    assert len(list(connector._iter_tasks(first[0].target_project))) == 10


@pytest.mark.integration
def test_push_without_suggestion_shows_no_prediction(label_studio, fresh_acceptance):
    connector = LabelStudioConnector(label_studio.url, label_studio.api_key, fresh_acceptance.project_id)
    pushed = connector.push(_requests(fresh_acceptance.task_ids, fresh_acceptance.texts, n=5),
                            show_suggestion=False)
    tasks = list(connector._iter_tasks(pushed[0].target_project))
    assert len(tasks) == 5
    assert all(t["predictions"] == [] and "relabel_suggested" not in t["data"] for t in tasks)


@pytest.mark.integration
def test_push_in_place_predicts_raises_overlap_and_saves_a_view(label_studio, ls_admin, fresh_acceptance):
    truth = fresh_acceptance
    connector = LabelStudioConnector(label_studio.url, label_studio.api_key, truth.project_id)
    before = {t["id"]: t for t in connector._iter_tasks(truth.project_id)}
    requests = _requests(truth.task_ids, truth.texts, n=10)
    pushed = connector.push(requests, mode="in_place")
    assert [(p.task_id, p.target_project) for p in pushed] == [(int(r.item_id), truth.project_id) for r in requests]
    after = {t["id"]: t for t in connector._iter_tasks(truth.project_id)}
    for request in requests:
        task, old = after[int(request.item_id)], before[int(request.item_id)]
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == model_version(1) and prediction["score"] == request.quality
        authors = {a["completed_by"] for a in old["annotations"] if not a["was_cancelled"]}
        assert task["overlap"] == max(old["overlap"], len(authors) + 1)
        assert task["is_labeled"] is False  # Label Studio will hand it out for one more annotation
    untouched = [t for t in after if t not in {p.task_id for p in pushed}]
    assert all(after[t]["predictions"] == [] and after[t]["overlap"] == before[t]["overlap"] for t in untouched)
    (view,) = [v for v in ls_admin.views.list(project=truth.project_id) if v.data["title"] == view_title(1)]
    listed = ls_admin.tasks.list(project=truth.project_id, view=view.id, fields="task_only")
    listed_ids = [t.id for t in listed]
    by_quality = [int(r.item_id) for r in sorted(requests, key=lambda r: r.quality)]
    assert listed_ids == by_quality
    # Idempotent: nothing new, overlap not raised twice, still one view.
    assert connector.push(requests, mode="in_place") == pushed
    again = {t["id"]: t for t in connector._iter_tasks(truth.project_id)}
    assert all(len(again[p.task_id]["predictions"]) == 1 for p in pushed)
    assert all(again[p.task_id]["overlap"] == after[p.task_id]["overlap"] for p in pushed)
    assert len([v for v in ls_admin.views.list(project=truth.project_id) if v.data["title"] == view_title(1)]) == 1


class Killed(Exception):
    pass


def _kill():
    raise Killed("simulated crash right after the import call")


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["project", "in_place"])
def test_push_killed_after_import_is_recovered_without_duplicates(label_studio, fresh_acceptance, mode):
    truth = fresh_acceptance
    requests = _requests(truth.task_ids, truth.texts, n=8)
    crashing = LabelStudioConnector(label_studio.url, label_studio.api_key, truth.project_id, after_import=_kill)
    with pytest.raises(Killed):
        crashing.push(requests[:5], mode=mode)
    connector = LabelStudioConnector(label_studio.url, label_studio.api_key, truth.project_id)
    pushed = connector.push(requests, mode=mode)  # the 5 imported before the crash + 3 new ones
    assert [p.item_id for p in pushed] == [r.item_id for r in requests]
    target = pushed[0].target_project
    tasks = list(connector._iter_tasks(target))
    if mode == "project":
        assert len(tasks) == 8
        assert sorted(t["data"]["relabel_item"] for t in tasks) == sorted(r.item_id for r in requests)
        assert {t["id"] for t in tasks} == {p.task_id for p in pushed}
    else:
        by_id = {t["id"]: t for t in tasks}
        assert all(len(by_id[p.task_id]["predictions"]) == 1 for p in pushed)
        assert all(by_id[p.task_id]["is_labeled"] is False for p in pushed)  # overlap done on the resumed push


@pytest.mark.integration
def test_push_refuses_bad_requests(acceptance_connector, acceptance_project):
    truth = acceptance_project
    requests = _requests(truth.task_ids, truth.texts, n=2)
    with pytest.raises(ConfigError, match="push mode must be one of project, in_place. Got 'inline'"):
        acceptance_connector.push(requests, mode="inline")
    bad = [ReviewRequest(item_id=requests[0].item_id, round=1, data={}, quality=0.1, reason="r",
                         suggested_label="weather")]
    with pytest.raises(InputError, match=rf"items '{requests[0].item_id}' suggest a label that is not a class"):
        acceptance_connector.push(bad)
    with pytest.raises(InputError, match="requested twice in the same round"):
        acceptance_connector.push(requests + requests[:1])
    assert acceptance_connector.push([]) == []


# ---------------------------------------------------------------------------------------------- collect
@pytest.mark.integration
def test_collect_reads_reviewers_answers_in_a_review_project(label_studio, ls_admin, fresh_acceptance):
    truth = fresh_acceptance
    connector = LabelStudioConnector(label_studio.url, label_studio.api_key, truth.project_id)
    pushed = connector.push(_requests(truth.task_ids, truth.texts, n=4))
    email = f"reviewer{time.time_ns()}@example.com"
    reviewer = create_user(label_studio, email, "reviewer-pass-1")
    assert connector.collect(pushed) == []
    answer_task(ls_admin, pushed[0].task_id, "tech", reviewer)
    answer_task(ls_admin, pushed[1].task_id, None, reviewer, skipped=True)
    answer_task(ls_admin, pushed[2].task_id, "sport", reviewer)
    answers = {a.item_id: a for a in connector.collect(pushed)}
    assert set(answers) == {p.item_id for p in pushed[:3]}
    assert answers[pushed[0].item_id].label == "tech" and answers[pushed[1].item_id].label is None
    assert answers[pushed[2].item_id].label == "sport"
    assert {a.reviewer for a in answers.values()} == {email}
    assert all(a.round == 1 and a.answered_at and a.annotation_id for a in answers.values())


@pytest.mark.integration
def test_collect_in_place_takes_a_new_annotators_answer_after_the_push(label_studio, ls_admin, fresh_acceptance):
    truth = fresh_acceptance
    connector = LabelStudioConnector(label_studio.url, label_studio.api_key, truth.project_id)
    labelled = [t for t in truth.task_ids if truth.labels[t]][:3]
    requests = [r for r in _requests(truth.task_ids, truth.texts, n=40) if int(r.item_id) in labelled]
    pushed = connector.push(requests, mode="in_place")
    (new_uid, new_email), = make_members(ls_admin, f"inplace{time.time_ns()}-", 1)
    earlier_email = truth.labels[labelled[1]][0][0]
    answer_task(ls_admin, labelled[0], "politics", new_uid)
    answer_task(ls_admin, labelled[1], "politics", truth.annotators[earlier_email])  # not a review answer
    answers = connector.collect(pushed)
    assert [(a.item_id, a.label, a.reviewer) for a in answers] == [(str(labelled[0]), "politics", new_email)]


@pytest.mark.integration
def test_a_second_collect_reads_only_the_tasks_updated_since(label_studio, ls_admin, fresh_acceptance, monkeypatch):
    """relabel serve keeps its connector and collects after every burst of answers: a collect after the first
    reads only the review tasks updated since (answered, edited); a new connector reads them all."""
    import connectors.label_studio_answers as answers_module
    monkeypatch.setattr(answers_module, "COLLECT_OVERLAP_SECONDS", 0.0)   # no overlap: exactly what changed
    truth = fresh_acceptance
    connector = LabelStudioConnector(label_studio.url, label_studio.api_key, truth.project_id)
    pushed = connector.push(_requests(truth.task_ids, truth.texts, n=6))
    (uid, email), = make_members(ls_admin, f"collector{time.time_ns()}-", 1)
    first_answer = answer_task(ls_admin, pushed[0].task_id, "sport", uid)
    assert [(a.task_id, a.label) for a in connector.collect(pushed)] == [(pushed[0].task_id, "sport")]
    read, real = [], connector._iter_tasks

    def spy(project_id, **kwargs):
        rows = list(real(project_id, **kwargs))
        read.append(len(rows))
        return iter(rows)
    connector._iter_tasks = spy
    assert connector.collect(pushed) == [] and read == [0]
    answer_task(ls_admin, pushed[1].task_id, "tech", uid)
    assert [(a.task_id, a.label) for a in connector.collect(pushed)] == [(pushed[1].task_id, "tech")]
    # an edited answer bumps its task: collected again, with the new label
    ls_admin.annotations.update(id=first_answer, result=choice_result("politics"))
    assert [(a.task_id, a.label) for a in connector.collect(pushed)] == [(pushed[0].task_id, "politics")]
    assert read == [0, 1, 1]
    fresh = LabelStudioConnector(label_studio.url, label_studio.api_key, truth.project_id)
    assert sorted((a.task_id, a.label, a.reviewer) for a in fresh.collect(pushed)) == sorted(
        [(pushed[0].task_id, "politics", email), (pushed[1].task_id, "tech", email)])


# ---------------------------------------------------------------------------------------------- auth/errors
@pytest.mark.integration
def test_personal_access_token_works_like_the_legacy_token(label_studio, acceptance_project, acceptance_connector):
    email = f"pat{time.time_ns()}@example.com"
    create_user(label_studio, email, "pat-user-pass-1")
    token = create_personal_access_token(label_studio.url, email, "pat-user-pass-1")
    assert token.count(".") == 2  # a JWT, sent as Bearer by the SDK
    with_pat = LabelStudioConnector(label_studio.url, token, acceptance_project.project_id)
    assert with_pat.describe() == acceptance_connector.describe()
    assert len(with_pat.pull().annotations) == len(acceptance_connector.pull().annotations)


@pytest.mark.integration
def test_wrong_key_is_an_auth_error_naming_the_variable(label_studio, acceptance_project):
    connector = LabelStudioConnector(label_studio.url, "f" * 40, acceptance_project.project_id)
    with pytest.raises(AuthError, match=r"rejected the API key \(401\); check LABEL_STUDIO_API_KEY.*personal access"):
        connector.describe()


@pytest.mark.integration
def test_missing_project_is_named(label_studio):
    connector = LabelStudioConnector(label_studio.url, label_studio.api_key, 987654)
    with pytest.raises(ConnectorError, match=rf"no project 987654 at {label_studio.url}"):
        connector.describe()


class _OwnAnnotationsOnly(httpx.BaseTransport):
    """What Label Studio Enterprise serves an annotator's key: tasks with that user's annotations only.

    The community edition has no roles, so the test reproduces the filtering over the real server's answer.
    """

    def __init__(self, user_id: int):
        self.user_id = user_id
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request):
        response = self.inner.handle_request(request)
        path = request.url.path.rstrip("/")
        if path != "/api/tasks" and not path.endswith(("/export", "/download")):  # list, export, snapshot
            return response
        body = json.loads(response.read())
        for task in body["tasks"] if isinstance(body, dict) else body:
            task["annotations"] = [a for a in task["annotations"] if a["completed_by"] == self.user_id]
        return httpx.Response(response.status_code, json=body)


@pytest.mark.integration
def test_key_that_sees_only_its_own_annotations_is_refused(label_studio, ls_admin):
    (uid, _), = make_members(ls_admin, f"other{time.time_ns()}-", 1)
    admin_id = ls_admin.users.whoami().id
    project_id = make_project(ls_admin, "own only")
    import_tasks(ls_admin, project_id, [
        {"data": {TEXT_FIELD: "a"}, "annotations": [annotation(admin_id, "sport"), annotation(uid, "tech")]},
        {"data": {TEXT_FIELD: "b"}, "annotations": [annotation(uid, "tech")]}])
    blind = LabelStudioConnector(label_studio.url, label_studio.api_key, project_id, httpx_client=httpx.Client(
        transport=_OwnAnnotationsOnly(admin_id), timeout=60))
    with pytest.raises(AuthError, match=r"sees 1 of the 3 annotations in project \d+ \(only its own\); set "
                                        r"LABEL_STUDIO_API_KEY to an owner's"):
        blind.pull()
    assert len(LabelStudioConnector(label_studio.url, label_studio.api_key, project_id).pull().annotations) == 3


@pytest.mark.integration
def test_pull_keeps_lead_time_and_skips(label_studio, ls_admin):
    """The report's time per label and skips come from Label Studio's lead_time and was_cancelled."""
    (uid, _), = make_members(ls_admin, f"lead{time.time_ns()}-", 1)
    project_id = make_project(ls_admin, "lead time")
    first, second = import_tasks(ls_admin, project_id, [{"data": {TEXT_FIELD: "a"}}, {"data": {TEXT_FIELD: "b"}}])
    timed = ls_admin.annotations.create(id=first, result=choice_result("tech"), completed_by=uid, lead_time=12.5,
                                        ground_truth=False, request_options={"max_retries": 0}).id
    skipped = answer_task(ls_admin, second, None, uid, skipped=True)
    pull = LabelStudioConnector(label_studio.url, label_studio.api_key, project_id).pull()
    by_id = {a.annotation_id: a for a in pull.annotations}
    assert by_id[str(timed)].lead_time == pytest.approx(12.5) and not by_id[str(timed)].skipped
    assert by_id[str(skipped)].skipped and by_id[str(skipped)].label is None
