"""relabel serve holds each round's model for the next round (relabel.loop.model_phase.hold_round_model): the round
after the last review answer re-scores without refitting while the labels changed since the model was fitted stay
within the chosen pipeline's reuse tolerance, counted from the labels it was fitted on, not from the last round's."""
from __future__ import annotations

import dataclasses
import re
import time
from collections import Counter

from relabel.loop.store import Store
from test_rounds import CLASSES, FakeLabelStudio, make_loop

REUSED = "re-scored without refitting"


def answer_batch(loop, fake, *, change: bool, at: str) -> int:
    """Answer the latest batch's items that have a clear majority: with another class (``change``) or with the
    majority itself. Returns how many training labels the answers changed."""
    rnd = loop.store.latest_round()["round"]
    changed = 0
    for task in loop.store.review_tasks(rnd):
        labels = Counter(a.label for a in fake.annotations if str(a.item_id) == str(task["item_id"]))
        top, count = labels.most_common(1)[0]
        if count < 2:
            continue            # a tie: which label the model trained on depends on the tie-break
        label = next(c for c in CLASSES if c != top) if change else top
        fake.answer(task["task_id"], "rev@x", label, at=at)
        changed += change
    loop.collect()
    return changed


def notes(loop, summary) -> str:
    return " ".join(loop.store.model_report(summary.round)["notes"])


def changed_in_note(text: str) -> int:
    return int(re.search(r"differ from this round's in (\d+) items", text).group(1))


def wait_for_rounds(worker, rounds: int = 1, timeout: float = 120) -> None:
    """Until the worker has started ``rounds`` rounds and is idle again (fails with its snapshot after
    ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while worker.snapshot()["rounds_started"] < rounds or worker.snapshot()["state"] != "idle":
        assert time.monotonic() < deadline, worker.snapshot()
        time.sleep(0.1)


def test_serve_rescores_with_the_last_rounds_model_when_nothing_changed(tmp_path):
    fake = FakeLabelStudio()
    loop = make_loop(tmp_path, fake)
    loop.keep_round_model = True
    first = loop.round()
    answer_batch(loop, fake, change=False, at="2026-02-02T00:00:00")
    second = loop.round()
    text = notes(loop, second)
    assert REUSED in text and changed_in_note(text) == 0
    a, b = loop.store.model_report(first.round), loop.store.model_report(second.round)
    assert (a["pipeline"], a["cv_log_loss"], a["seconds"]) == (b["pipeline"], b["cv_log_loss"], b["seconds"])
    # the note is not repeated round after round on the held copy
    answer_batch(loop, fake, change=False, at="2026-02-03T00:00:00")
    assert notes(loop, loop.round()).count(REUSED) == 1


def test_a_loop_that_does_not_ask_refits_as_before(tmp_path):
    fake = FakeLabelStudio()
    loop = make_loop(tmp_path, fake)          # the CLI's loop: keep_round_model stays False
    loop.round()
    answer_batch(loop, fake, change=False, at="2026-02-02T00:00:00")
    assert REUSED not in notes(loop, loop.round())


def test_changes_are_counted_from_the_labels_the_held_model_was_fitted_on(tmp_path, monkeypatch):
    fake = FakeLabelStudio(n_items=90)
    loop = make_loop(tmp_path, fake)
    loop.keep_round_model = True
    loop.round()
    cache = loop.model_cache
    real_choice = cache.choice
    tolerance = {"share": 0.5}
    monkeypatch.setattr(cache, "choice", lambda: dataclasses.replace(real_choice(), tolerance=tolerance["share"]))
    first = answer_batch(loop, fake, change=True, at="2026-02-02T00:00:00")
    text = notes(loop, loop.round())
    assert first > 0 and REUSED in text and changed_in_note(text) == first
    second = answer_batch(loop, fake, change=True, at="2026-02-03T00:00:00")
    text = notes(loop, loop.round())
    # round 3 took round 1's model again: its labels differ from round 1's by both batches' answers
    assert second > 0 and REUSED in text and changed_in_note(text) == first + second
    # beyond the tolerance the round refits; the refitted model is then held with the labels it was fitted on
    tolerance["share"] = (first + second) / 2 / 90
    answer_batch(loop, fake, change=True, at="2026-02-04T00:00:00")
    assert REUSED not in notes(loop, loop.round())
    answer_batch(loop, fake, change=False, at="2026-02-05T00:00:00")
    text = notes(loop, loop.round())
    assert REUSED in text and changed_in_note(text) == 0


def test_the_worker_asks_its_loop_to_keep_round_models(tmp_path):
    from relabel.config import parse_config
    from relabel.service.worker import Worker

    fake, loops = FakeLabelStudio(), []

    def factory():          # in the worker's thread: the store's connection stays in it
        loops.append(make_loop(tmp_path, fake))
        return loops[-1]
    config = parse_config({"label_studio": {"url": "http://127.0.0.1:1", "project": fake.project_id}})
    worker = Worker(config, loop_factory=factory)
    worker.start()
    try:
        wait_for_rounds(worker)
    finally:
        worker.stop(timeout=60)
    assert worker.snapshot()["last_error"] is None
    assert len(loops) == 1 and loops[0].keep_round_model is True


def test_a_round_handed_a_fresh_collect_does_not_collect_again(tmp_path):
    fake = FakeLabelStudio()
    loop = make_loop(tmp_path, fake)
    loop.round()
    answer_batch(loop, fake, change=True, at="2026-02-02T00:00:00")
    done = loop.collect()
    calls = []
    real = loop.collect
    loop.collect = lambda: calls.append(1) or real()
    summary = loop.round(collected=done)
    assert calls == [] and summary.collect is done and summary.steps[0] == "collect"
    assert summary.round == 2 and loop.store.decisions()


def test_the_worker_hands_its_collect_to_the_round_it_starts(tmp_path):
    from relabel.config import parse_config
    from relabel.service.worker import Worker

    fake, loops, collects = FakeLabelStudio(), [], []

    def factory():
        loop = make_loop(tmp_path, fake)
        real = loop.collect

        def counted():
            collects.append(loop.store.latest_round()["round"])
            return real()
        loop.collect = counted
        loops.append(loop)
        return loop
    config = parse_config({"label_studio": {"url": "http://127.0.0.1:1", "project": fake.project_id}})
    worker = Worker(config, loop_factory=factory)
    worker.start()
    try:
        wait_for_rounds(worker)
        with Store(tmp_path / "relabel.db") as store:
            tasks = store.review_tasks(1)
        for t in tasks:             # the whole batch answered at once: the queue drains
            fake.answer(t["task_id"], "rev@x", fake.truth[t["item_id"]], at="2026-02-02T00:00:00")
        worker.reconcile_soon()
        wait_for_rounds(worker, 2)
    finally:
        worker.stop(timeout=60)
    assert worker.snapshot()["last_error"] is None
    assert collects.count(1) == 1       # the worker's collect; the round it started did not collect again
