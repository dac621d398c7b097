import sqlite3

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from connectors.records import AnnotationRecord, Item, ProjectInfo, Pull, PushedTask, ReviewAnswer
from relabel.errors import InputError, StoreError
from relabel.loop.store import Store

CLASSES = ("sport", "politics", "tech")


def info(project_id=7):
    return ProjectInfo(project_id=project_id, title="News", classes=CLASSES, label_tag="topic",
                       text_field="text", n_tasks=3, n_annotations=5)


def ann(aid, item, who, label, updated="2026-01-01", **kw):
    return AnnotationRecord(annotation_id=aid, item_id=item, annotator_id=who, label=label,
                            created_at="2026-01-01", updated_at=updated, **kw)


def items(*ids):
    return [Item(item_id=i, data={"text": f"text {i}"}, text=f"text {i}") for i in ids]


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "relabel.db")
    s.bind_project(info())
    yield s
    s.close()


def test_pull_twice_changes_nothing(store):
    pull = Pull(items=items("1", "2"), annotations=[ann("a1", "1", "ann", "sport"), ann("a2", "1", "bob", "tech"),
                                                   ann("a3", "2", "ann", "politics")])
    first = store.apply_pull(pull)
    assert (first.new, first.changed, first.unchanged) == (3, 0, 0)
    second = store.apply_pull(pull)
    assert (second.new, second.changed, second.unchanged) == (0, 0, 3)
    assert store.count("annotations") == 3 and store.count("items") == 2


def test_changed_annotation_is_updated_not_duplicated(store):
    store.apply_pull(Pull(items=items("1"), annotations=[ann("a1", "1", "ann", "sport")]))
    summary = store.apply_pull(Pull(items=[], annotations=[ann("a1", "1", "ann", "tech", updated="2026-01-02")]))
    assert summary.changed == 1 and summary.new == 0
    table = store.annotations_table()
    assert table.classes[table.label[0]] == "tech" and len(table) == 1


def test_annotations_table_keeps_only_labels_that_count(store):
    store.apply_pull(Pull(items=items("1", "2", "3"), annotations=[
        ann("a1", "1", "ann", "sport"),
        ann("a2", "1", "bob", None, skipped=True),
        ann("a3", "2", "bob", "weather", valid=False),
        ann("a4", "2", "cy", "politics"),
        ann("a5", "3", "cy", "tech", kind="review"),
    ]))
    table = store.annotations_table()
    assert list(table.item_ids) == ["1", "2"]
    assert sorted(table.annotator_ids) == ["ann", "cy"]
    assert table.classes == CLASSES
    assert [table.classes[k] for k in table.label] == ["sport", "politics"]


def test_reconcile_marks_deleted_annotations(store):
    store.apply_pull(Pull(items=items("1"), annotations=[ann("a1", "1", "ann", "sport"),
                                                         ann("a2", "1", "bob", "tech")]))
    summary = store.apply_pull(Pull(items=[], annotations=[], all_annotation_ids={"a1"}))
    assert summary.deleted == 1
    assert len(store.annotations_table()) == 1
    assert store.annotation_counts() == {"ann": 1}


def test_reconcile_marks_deleted_tasks(store):
    store.apply_pull(Pull(items=items("1", "2"), annotations=[ann("a1", "1", "ann", "sport"),
                                                              ann("a2", "2", "bob", "tech")]))
    # Task 2 was deleted in Label Studio: its annotation and the task itself are gone from the full listing.
    summary = store.apply_pull(Pull(items=[], annotations=[], all_annotation_ids={"a1"}, all_item_ids={"1"}))
    assert (summary.deleted, summary.deleted_items) == (1, 1)
    assert [it["item_id"] for it in store.items()] == ["1"]


def test_store_refuses_another_project(tmp_path):
    path = tmp_path / "r.db"
    with Store(path) as s:
        s.bind_project(info(7))
    with Store(path) as s:
        with pytest.raises(StoreError, match="belongs to project 7, not project 8"):
            s.bind_project(info(8))
        assert s.project_id == 7


def test_a_duplicated_annotation_is_reported_and_skipped_not_blocking(store):
    pulled = Pull(items=items("1", "2"), annotations=[ann("a1", "1", "ann", "sport"), ann("a1", "2", "bob", "tech"),
                                                      ann("a2", "2", "cy", "tech")])
    summary = store.apply_pull(pulled)
    assert summary.new == 2 and store.count("annotations") == 2
    assert [w for w in summary.warnings if w.startswith("Annotation a1 came 2 times")]
    kept = store.db.execute("select item_id, annotator_id from annotations where annotation_id = 'a1'").fetchall()
    assert kept == [("1", "ann")]


def test_failed_multi_row_write_leaves_nothing(store, monkeypatch):
    store.apply_pull(Pull(items=items("1", "2"), annotations=[ann("a1", "1", "ann", "sport")]))
    round_row = {"round": 1, "status": "scored"}
    good = [{"item_id": "1", "quality": 0.5}]
    bad_annotators = [{"annotator_id": "ann", "quality": 0.1}, {"annotator_id": "ann", "quality": 0.2}]  # dup pk
    with pytest.raises(sqlite3.IntegrityError):
        store.save_scores(round_row, good, bad_annotators, [])
    assert store.rounds() == [] and store.count("scores") == 0 and store.count("annotator_scores") == 0


def test_scores_round_trip_and_pushed_round_is_final(store):
    store.apply_pull(Pull(items=items("1", "2"), annotations=[ann("a1", "1", "ann", "sport")]))
    store.save_scores({"round": 1, "status": "scored"}, [{"item_id": "1", "quality": 0.25, "consensus_label": "sport"}],
                      [{"annotator_id": "ann", "quality": 0.9}], [{"annotation_id": "a1", "quality": 0.8}])
    assert store.scores(1)[0]["quality"] == 0.25
    assert store.annotation_scores(1) == {"a1": 0.8}
    store.save_selection(1, [{"item_id": "1", "rank": 0, "quality": 0.25, "reason": "r", "suggested": "sport"}],
                         budget=5, mode="project")
    tasks = [PushedTask(item_id="1", round=1, target_project=9, task_id=100, mode="project")]
    assert store.record_pushed(1, tasks, store.selection(1), mark_pushed=True) == 1
    assert store.record_pushed(1, tasks, store.selection(1), mark_pushed=True) == 0
    assert store.latest_round()["status"] == "pushed"
    assert store.waiting_item_ids() == {"1"}
    with pytest.raises(StoreError, match="already pushed"):
        store.save_scores({"round": 1, "status": "scored"}, [], [], [])


def test_decisions_record_outcome_and_previous_label(store):
    store.apply_pull(Pull(items=items("1", "2", "3"), annotations=[ann("a1", "1", "ann", "sport")]))
    store.save_scores({"round": 1, "status": "scored"},
                      [{"item_id": i, "consensus_label": "sport"} for i in ("1", "2", "3")], [], [])
    sel = [{"item_id": i, "rank": n, "quality": 0.1, "reason": "r", "suggested": "sport"}
           for n, i in enumerate(("1", "2", "3"))]
    store.save_selection(1, sel, budget=3, mode="project")
    store.record_pushed(1, [PushedTask(i, 1, 9, 100 + n, "project") for n, i in enumerate(("1", "2", "3"))],
                        sel, mark_pushed=True)
    rows = store.record_decisions([ReviewAnswer("1", 1, 100, "eve", "sport", "2026-02-01"),
                                   ReviewAnswer("2", 1, 101, "eve", "tech", "2026-02-01"),
                                   ReviewAnswer("3", 1, 102, "eve", None, "2026-02-01")])
    assert [(r["item_id"], r["previous_label"], r["label"], r["outcome"]) for r in rows] == [
        ("1", "sport", "sport", "confirmed"), ("2", "sport", "tech", "corrected"), ("3", "sport", None, "skipped")]
    store.record_decisions([ReviewAnswer("2", 1, 101, "eve", "tech", "2026-02-01")])
    assert store.count("decisions") == 3
    assert store.final_labels() == {"1": "sport", "2": "tech"}
    assert store.waiting_item_ids() == set()


def test_unknown_review_task_is_refused(store):
    with pytest.raises(StoreError, match="never recorded"):
        store.record_decisions([ReviewAnswer("1", 1, 555, "eve", "sport", None)])


def test_embedding_cache_round_trip(store):
    vectors = np.arange(12, dtype=np.float64).reshape(3, 4) / 7
    store.save_embeddings("m", ["h1", "h2", "h3"], vectors)
    got = store.cached_embeddings("m", ["h3", "h1", "missing"])
    assert set(got) == {"h1", "h3"}
    assert got["h3"].dtype == np.float32
    np.testing.assert_allclose(got["h3"], vectors[2].astype(np.float32))
    assert store.cached_embeddings("other-model", ["h1"]) == {}
    store.save_embeddings("m", ["h1"], np.ones((1, 4)))
    np.testing.assert_array_equal(store.cached_embeddings("m", ["h1"])["h1"], np.ones(4, np.float32))


def test_embedding_cache_handles_more_than_one_sql_chunk(store):
    hashes = [f"h{i}" for i in range(2500)]
    vectors = np.random.default_rng(0).normal(size=(2500, 3)).astype(np.float32)
    store.save_embeddings("m", hashes, vectors)
    got = store.cached_embeddings("m", hashes)
    assert len(got) == 2500
    np.testing.assert_array_equal(np.stack([got[h] for h in hashes]), vectors)


def test_embedding_cache_rejects_bad_shapes(store):
    with pytest.raises(InputError, match="one row of vectors per text hash"):
        store.save_embeddings("m", ["a", "b"], np.ones((3, 4)))
    with pytest.raises(InputError, match="'b'"):
        store.save_embeddings("m", ["a", "b"], np.array([[1.0, 2.0], [np.nan, 1.0]]))


def test_store_uses_wal(store):
    assert store.db.execute("pragma journal_mode").fetchone()[0] == "wal"


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["ann", "bob", "cy"]), st.sampled_from(CLASSES)),
                min_size=1, max_size=30, unique_by=lambda t: (t[0], t[1])))
def test_pull_round_trips_into_annotations_table(tmp_path_factory, labels):
    path = tmp_path_factory.mktemp("rt") / "r.db"
    with Store(path) as s:
        s.bind_project(info())
        recs = [ann(f"a{n}", str(i), who, lab) for n, (i, who, lab) in enumerate(labels)]
        s.apply_pull(Pull(items=items(*sorted({str(i) for i, _, _ in labels})), annotations=recs))
        table = s.annotations_table()
    got = sorted((str(table.item_ids[i]), str(table.annotator_ids[a]), table.classes[k])
                 for i, a, k in zip(table.item, table.annotator, table.label))
    assert got == sorted((str(i), who, lab) for i, who, lab in labels)


def test_a_write_transaction_holds_the_write_lock_from_its_first_read(store, tmp_path):
    """Another connection's commit between a transaction's read and its write (the lock's heartbeat does one every
    15 s) must not fail the store's write: the store takes the write lock at BEGIN, so the other writer waits."""
    store.apply_pull(Pull(items=items("1"), annotations=[ann("a1", "1", "ann", "sport")]))
    other = sqlite3.connect(tmp_path / "relabel.db", timeout=0.05, isolation_level=None)
    try:
        with store.db.atomic():
            assert store.db.execute("select count(*) from items").fetchone()[0] == 1
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("update meta set value = value where key = 'project_id'")
            store.db.execute("update items set text = 'changed' where item_id = '1'")
        with store.db.atomic():   # nested transactions still use savepoints
            with pytest.raises(ZeroDivisionError):
                with store.db.atomic():
                    store.db.execute("update items set text = 'lost' where item_id = '1'")
                    1 / 0
        assert store.db.execute("select text from items where item_id = '1'").fetchone()[0] == "changed"
    finally:
        other.close()


def test_score_rows_may_be_generated_and_unknown_columns_are_refused(store):
    store.apply_pull(Pull(items=items("1", "2"), annotations=[ann("a1", "1", "ann", "sport")]))
    store.save_scores({"round": 1, "status": "scored"},
                      ({"item_id": i, "quality": q} for i, q in (("1", 0.5), ("2", None))), [],
                      iter([{"annotation_id": "a1", "quality": 0.75}]))
    assert [(r["item_id"], r["quality"], r["consensus_label"]) for r in store.scores(1)] == \
        [("1", 0.5, None), ("2", None, None)]
    assert store.annotation_scores(1) == {"a1": 0.75}
    with pytest.raises(StoreError, match="no column 'qualty'"):
        store.save_scores({"round": 2, "status": "scored"}, [{"item_id": "1", "qualty": 0.1}], [], [])
    assert store.count("scores") == 2 and [r["round"] for r in store.rounds()] == [1]


def test_streamed_scoring_table_equals_the_one_built_from_all_rows(store, monkeypatch):
    import relabel.loop.store_items as store_items
    monkeypatch.setattr(store_items, "_FETCH_ROWS", 2)   # several fetches, ids first seen in different ones
    store.apply_pull(Pull(items=items("3", "1", "2"), annotations=[
        ann("a1", "3", "bob", "sport"), ann("a2", "1", "ann", "tech"), ann("a3", "1", "bob", "sport"),
        ann("a4", "2", "cy", "tech"), ann("a5", "3", "ann", "tech")]))
    table, ids = store.scoring_table()
    ref, ref_ids = Store._scoring_table_of(store._scorable_rows(), store.classes)
    for name in ("item", "annotator", "label", "item_ids", "annotator_ids"):
        assert np.array_equal(getattr(table, name), getattr(ref, name)), name
    assert table.classes == ref.classes and ids.tolist() == ref_ids.tolist() and len(ids) == 5


def test_item_texts_are_the_items_ids_and_texts_in_pull_order(store, monkeypatch):
    import relabel.loop.store_items as store_items
    monkeypatch.setattr(store_items, "_FETCH_ROWS", 2)
    store.apply_pull(Pull(items=items("3", "1", "2"), annotations=[]))
    ids, texts = store.item_texts()
    assert [{"item_id": i, "text": t} for i, t in zip(ids, texts)] == store.items(with_data=False)
    assert ids == ["3", "1", "2"]
