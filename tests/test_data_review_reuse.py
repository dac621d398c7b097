"""relabel/loop/data_review.py reuses the last round's data issues when the feature rows and texts are the same
(relabel serve scores round after round in one process): only the conflicting duplicate groups are recomputed,
from this round's labels."""
from __future__ import annotations

import numpy as np
import scipy.sparse

import relabel.loop.data_review as data_review
from relabel.scoring.data_issues import find_data_issues


def project(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8))
    x[1] = x[0]                         # a duplicate pair
    x[-1] += 25.0                       # an outlier
    texts = [f"text {i}" for i in range(n)]
    texts[1] = texts[0]
    labels = rng.integers(2, size=n)
    labels[1] = labels[0]               # the pair agrees
    return x, texts, labels


def same(a, b) -> bool:
    return (np.array_equal(a.outlier_score, b.outlier_score) and np.array_equal(a.is_outlier, b.is_outlier)
            and [g.tolist() for g in a.groups] == [g.tolist() for g in b.groups]
            and [g.tolist() for g in a.conflicting] == [g.tolist() for g in b.conflicting])


def test_same_rows_and_texts_reuse_the_graph_and_recount_the_conflicts(monkeypatch):
    x, texts, labels = project()
    flagged = np.zeros(len(texts), dtype=bool)
    first, _ = data_review.round_data_issues(x, texts, labels, flagged)
    assert first.conflicting == []
    calls = []
    real = data_review.find_data_issues
    monkeypatch.setattr(data_review, "find_data_issues", lambda *a, **k: calls.append(1) or real(*a, **k))
    relabelled = labels.copy()
    relabelled[1] = 1 - relabelled[0]   # a reviewer's decision makes the pair conflict
    again, _ = data_review.round_data_issues(x.copy(), list(texts), relabelled, flagged)
    assert calls == []
    assert same(again, find_data_issues(x, texts, relabelled))
    assert [g.tolist() for g in again.conflicting] == [[0, 1]]
    # the first result is not changed by the second round's labels
    assert first.conflicting == []


def test_a_changed_text_or_row_computes_again(monkeypatch):
    x, texts, labels = project(seed=1)
    flagged = np.zeros(len(texts), dtype=bool)
    data_review.round_data_issues(x, texts, labels, flagged)
    calls = []
    real = data_review.find_data_issues
    monkeypatch.setattr(data_review, "find_data_issues", lambda *a, **k: calls.append(1) or real(*a, **k))
    edited = list(texts)
    edited[5] = "an edited text"
    data_review.round_data_issues(x, edited, labels, flagged)
    moved = x.copy()
    moved[3, 0] += 1e-9
    data_review.round_data_issues(moved, edited, labels, flagged)
    sparse = scipy.sparse.csr_matrix(moved)
    got, _ = data_review.round_data_issues(sparse, edited, labels, flagged)
    assert len(calls) == 3 and same(got, find_data_issues(sparse, edited, labels))


def test_text_boundaries_count_in_the_key():
    x = np.zeros((2, 2))
    assert data_review._content_key(x, ["ab", "c"]) != data_review._content_key(x, ["a", "bc"])
