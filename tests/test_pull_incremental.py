"""Incremental pulls, deletions found from the counts, the streamed full pull, the text kept once, against a real
Label Studio and a real SQLite file (the store-only tests need no server)."""
import json
import sqlite3
import time

import numpy as np
import pytest

from connectors.label_studio import LabelStudioConnector
from connectors.label_studio_pull import snapshot_timeout
from connectors.records import AnnotationRecord, Item, ProjectInfo, Pull
from label_studio_helpers import CLASSES, TEXT_FIELD, annotation, answer_task, import_tasks, make_members, \
    make_project, make_text
from relabel.config import parse_config
from relabel.errors import ConfigError
from relabel.loop.rounds import Loop
from relabel.loop.store import Store


def info(text_field="text"):
    return ProjectInfo(project_id=7, title="News", classes=CLASSES, label_tag="topic", text_field=text_field,
                       n_tasks=2, n_annotations=2)


def ann(aid, item, label="sport"):
    return AnnotationRecord(annotation_id=aid, item_id=item, annotator_id="ann", label=label, created_at="2026-01-01",
                            updated_at="2026-01-01")


# ------------------------------------------------------------------------------------------- store only
def test_text_is_stored_once_and_read_back_whole(tmp_path):
    with Store(tmp_path / "r.db") as store:
        store.bind_project(info())
        store.apply_pull(Pull(items=[Item("1", {"text": "a long text", "source": "web"}, "a long text"),
                                     Item("2", {"text": 42}, "42")], annotations=[]))
        raw = dict(store.db.execute("select item_id, data from items").fetchall())
        assert json.loads(raw["1"]) == {"source": "web"}          # the text lives only in items.text
        assert json.loads(raw["2"]) == {"text": 42}               # not the same string: kept as the source had it
        assert store.item_data(["1", "2"]) == {"1": {"text": "a long text", "source": "web"}, "2": {"text": 42}}
        assert store.items()[0]["data"] == {"text": "a long text", "source": "web"}
        assert store.items(with_data=False) == [{"item_id": "1", "text": "a long text"},
                                                {"item_id": "2", "text": "42"}]


def test_a_schema_1_store_is_migrated_to_text_once(tmp_path):
    path = tmp_path / "old.db"
    with Store(path) as store:
        store.bind_project(info())
    # What relabel <= schema 1 wrote: the text inside data too, and schema_version 1.
    db = sqlite3.connect(path)
    db.executemany("insert into items (item_id, data, text, updated_at, deleted) values (?, ?, ?, ?, 0)",
                   [("1", json.dumps({"meta": 1, "text": "hello"}), "hello", None),
                    ("2", json.dumps({"text": "other"}), "changed since", None)])
    db.execute("update meta set value = '1' where key = 'schema_version'")
    db.commit()
    db.close()
    with Store(path) as store:
        assert store.get_meta("schema_version") == "2"
        raw = dict(store.db.execute("select item_id, data from items").fetchall())
        assert json.loads(raw["1"]) == {"meta": 1}
        assert json.loads(raw["2"]) == {"text": "other"}          # differs from items.text: nothing dropped
        assert store.item_data(["1", "2"]) == {"1": {"meta": 1, "text": "hello"}, "2": {"text": "other"}}


def test_batches_mark_annotations_gone_from_their_task_and_a_full_pull_marks_unseen_items(tmp_path):
    with Store(tmp_path / "r.db") as store:
        store.bind_project(info())
        items = [Item(str(i), {"text": f"t{i}"}, f"t{i}") for i in range(4)]
        first = store.apply_pull_batches([Pull(items=items[:2], annotations=[ann("a", "0"), ann("b", "0")],
                                               cursor="c1"),
                                          Pull(items=items[2:], annotations=[ann("c", "2")], cursor="c2")],
                                         full=True)
        assert (first.items, first.new, store.get_meta("pull_cursor")) == (4, 3, "c2")
        # Task 0 comes back changed with only one annotation: the other was deleted in the source.
        second = store.apply_pull_batches([Pull(items=items[:1], annotations=[ann("a", "0", "tech")], cursor="c3")])
        assert (second.changed, second.deleted) == (1, 1)
        assert store.live_counts() == (4, 2, 0)
        # A full pull without tasks 2 and 3 marks them deleted, and their annotations no longer count.
        third = store.apply_pull_batches([Pull(items=items[:2], annotations=[ann("a", "0", "tech")], cursor="c3")],
                                         full=True)
        assert (third.deleted_items, third.deleted) == (2, 1)
        assert store.live_counts() == (2, 1, 0)


def test_full_pull_hours_setting_is_validated():
    base = {"label_studio": {"url": "http://x", "project": 1}}
    assert parse_config(base).label_studio.full_pull_hours == 24.0
    assert parse_config({"label_studio": {**base["label_studio"], "full_pull_hours": 0}}).label_studio \
        .full_pull_hours is None
    with pytest.raises(ConfigError, match="'full_pull_hours' setting must be a number of hours >= 0.*Got -1"):
        parse_config({"label_studio": {**base["label_studio"], "full_pull_hours": -1}})


def test_snapshot_timeout_grows_with_the_project():
    assert snapshot_timeout(0) == snapshot_timeout(100) > 0
    assert snapshot_timeout(1_000_000) > 10 * snapshot_timeout(10_000)


# ------------------------------------------------------------------------------------------- real server
class CountingConnector(LabelStudioConnector):
    """The real connector, recording which kinds of reads a pull made."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def pull_batches(self, since=None, full=False):
        self.calls.append("full" if full or since is None else "incremental")
        return super().pull_batches(since=since, full=full)

    def deleted_task_ids(self, known_ids):
        self.calls.append("deleted_task_ids")
        return super().deleted_task_ids(known_ids)


@pytest.fixture()
def changing_project(label_studio, ls_admin, tmp_path):
    rng = np.random.default_rng(3)
    (a1, _), (a2, _) = make_members(ls_admin, f"inc{time.time_ns()}-", 2)
    tasks = [{"data": {TEXT_FIELD: make_text(c, rng)},
              "annotations": [annotation(a1, c), annotation(a2, CLASSES[0])]} for c in CLASSES * 4]
    tasks[0]["annotations"].append(annotation(a1, None, skipped=True))
    project_id = make_project(ls_admin, "incremental")
    task_ids = import_tasks(ls_admin, project_id, tasks)
    connector = CountingConnector(label_studio.url, label_studio.api_key, project_id)
    loop = Loop(Store(tmp_path / "relabel.db"), connector)
    yield loop, connector, task_ids, (a1, a2)
    loop.close()


@pytest.mark.integration
def test_pulls_are_incremental_and_see_deletions_made_in_label_studio(changing_project, ls_admin):
    loop, connector, task_ids, (a1, a2) = changing_project
    first = loop.pull()
    assert connector.calls == ["full"] and (first.items, first.new) == (12, 25)
    assert loop.store.live_counts() == (12, 24, 1)
    # The snapshot was deleted on the server after the download.
    assert ls_admin._client_wrapper.httpx_client.request(
        f"api/projects/{connector.project_id}/exports/", method="GET").json() == []

    nothing = loop.pull()
    assert connector.calls[1:] == ["incremental"] and (nothing.items, nothing.new, nothing.deleted) == (0, 0, 0)

    # An annotation deleted in Label Studio: the incremental pull brings its task back without it.
    time.sleep(0.01)
    victim = loop.store.db.execute("select annotation_id from annotations where item_id = ? and skipped = 0 "
                                   "limit 1", [str(task_ids[3])]).fetchone()[0]
    ls_admin.annotations.delete(id=int(victim))
    answer_task(ls_admin, task_ids[5], "tech", a1)
    second = loop.pull()
    assert connector.calls[2:] == ["incremental"]
    assert (second.items, second.new, second.deleted) == (2, 1, 1)
    assert loop.store.db.execute("select deleted from annotations where annotation_id = ?",
                                 [victim]).fetchone()[0] == 1

    # A task deleted in Label Studio leaves no trace in the task list: the counts give it away.
    ls_admin.tasks.delete(id=str(task_ids[7]))
    third = loop.pull()
    assert connector.calls[3:] == ["incremental", "deleted_task_ids"]
    assert (third.deleted_items, third.deleted) == (1, 2)
    assert loop.store.live_counts() == (11, 22, 1)
    assert str(task_ids[7]) not in {i["item_id"] for i in loop.store.items(with_data=False)}
    table = loop.store.annotations_table()
    assert str(task_ids[7]) not in set(table.item_ids) and len(table) == 22

    # --full reads everything again and finds nothing more to delete.
    full = loop.pull(full=True)
    assert connector.calls[5:] == ["full"] and (full.items, full.deleted, full.deleted_items) == (11, 0, 0)


@pytest.mark.integration
def test_a_due_periodic_full_pull_and_a_missed_change_read_the_whole_project(changing_project):
    loop, connector, task_ids, _ = changing_project
    loop.pull()
    loop.store.set_meta("last_full_pull", "2000-01-01T00:00:00+00:00")
    loop.pull()
    assert connector.calls == ["full", "full"]
    # The store lost an annotation without the task changing in Label Studio (e.g. a store restored from an
    # old copy): the counts disagree and a full pull repairs it.
    loop.store.db.execute("update annotations set deleted = 1 where annotation_id = "
                          "(select annotation_id from annotations where skipped = 0 limit 1)")
    loop.store.db.conn.commit()
    repaired = loop.pull()
    assert connector.calls[2:] == ["incremental", "full"]
    assert loop.store.live_counts() == (12, 24, 1) and repaired.deleted == 0


@pytest.mark.integration
def test_deleted_tasks_are_found_by_bisecting_counts(label_studio, ls_admin, monkeypatch):
    from connectors import label_studio_pull

    monkeypatch.setattr(label_studio_pull, "LEAF_TASKS", 4)   # 60 tasks: several levels of bisection
    project_id = make_project(ls_admin, "bisect")
    task_ids = import_tasks(ls_admin, project_id, [{"data": {TEXT_FIELD: f"t{i}"}} for i in range(60)])
    connector = LabelStudioConnector(label_studio.url, label_studio.api_key, project_id)
    known = [str(t) for t in task_ids]
    assert connector.deleted_task_ids(known) == set()
    victims = {task_ids[0], task_ids[31], task_ids[32], task_ids[58]}
    for t in victims:
        ls_admin.tasks.delete(id=str(t))
    listed = []
    original = connector._iter_tasks
    monkeypatch.setattr(connector, "_iter_tasks", lambda *a, **k: listed.append(1) or original(*a, **k))
    assert connector.deleted_task_ids(known) == {str(t) for t in victims}
    assert len(listed) <= 4      # only the small ranges that lost a task were listed, never the project
    # A task created after the store's newest one does not hide a deletion. (Label Studio on SQLite gives a new
    # task the id of a deleted newest task again; the incremental pull then brings that task back whole.)
    import_tasks(ls_admin, project_id, [{"data": {TEXT_FIELD: "new"}}])
    assert connector.deleted_task_ids(known) == {str(t) for t in victims}
