"""Smoke test of benchmarks/bench_serve_latency_ls.py's helpers (the benchmark itself needs a Label Studio and
minutes; it is not part of the suite)."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_serve_latency_ls import CLASSES, PER_ITEM, first_time_at_least, imdb_tasks, p95


def test_p95_of_ten_lies_between_the_two_largest_as_numpy_interpolates():
    values = [1, 2, 3, 4, 5, 6, 7, 8, 10, 20]
    # rank 0.95 * 9 = 8.55: the 9th value (10) plus 0.55 of the gap to the 10th (20).
    assert p95(values) == pytest.approx(10 + 0.55 * 10)


def test_the_batch_is_seen_at_the_first_poll_that_shows_all_of_it():
    timeline = [(0.0, 100), (0.5, 100), (1.0, 120), (1.5, 150), (2.0, 150)]
    assert first_time_at_least(timeline, 150) == 1.5
    assert first_time_at_least(timeline, 151) is None


def test_imdb_tasks_carry_three_annotations_by_distinct_annotators_mostly_right():
    tasks, truth = imdb_tasks(200, seed=3, annotator_ids=[11, 12, 13, 14, 15])
    assert len(tasks) == len(truth) == 200
    right = []
    for task, label in zip(tasks, truth):
        owners = [a["completed_by"] for a in task["annotations"]]
        assert len(owners) == PER_ITEM == len(set(owners))
        assert all(a["ground_truth"] is False for a in task["annotations"])
        assert task["data"]["text"]
        right += [a["result"][0]["value"]["choices"] == [label] for a in task["annotations"]]
    assert set(truth) == set(CLASSES)
    # 15% of the simulated labels are wrong: 600 labels put the share well inside 0.10-0.20.
    assert 0.80 < np.mean(right) < 0.90
