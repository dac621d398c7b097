"""Data issues (issue 25): exact text duplicates, duplicate groups, conflicting labels, outlier fence, search paths."""
from __future__ import annotations

import numpy as np
import pytest

from relabel.errors import InputError
from relabel.scoring.data_issues import find_data_issues, outlier_fence, select_for_review
from relabel.scoring.duplicates import (conflicting_groups, duplicate_groups, exact_text_duplicate_sets,
                                        normalise_text)
from relabel.scoring.neighbours import approximate_search, exact_search, knn_graph


def test_exact_text_duplicates_ignore_whitespace_and_case_but_not_empty_texts():
    texts = ["Hello  World", "hello world\n", "other", "", "  ", "HELLO WORLD", "other."]
    groups = exact_text_duplicate_sets(texts)
    assert [g.tolist() for g in groups] == [[0, 1, 5]]
    assert normalise_text("  A\tb  ") == "a b"


def test_duplicate_groups_join_links_transitively_and_conflicts_need_two_labels():
    links = [np.array([1]), np.array([0]), np.array([3]), np.array([2, 4]), np.array([3]), np.array([], int)]
    groups = duplicate_groups(6, links)
    assert [g.tolist() for g in groups] == [[0, 1], [2, 3, 4]]
    labels = np.array([0, 0, 1, -1, 2, 0])
    assert [g.tolist() for g in conflicting_groups(groups, labels)] == [[2, 3, 4]]


def clustered(rng, n, d=16):
    centres = rng.normal(size=(5, d)) * 4
    return centres[rng.integers(0, 5, n)] + rng.normal(size=(n, d))


def test_find_data_issues_flags_planted_outliers_and_conflicting_copies():
    rng = np.random.default_rng(0)
    x = clustered(rng, 300)
    far = rng.normal(size=(4, 16)) * 40                 # items unlike any other
    x = np.vstack([x, far])
    x[10] = x[20] + 1e-5                                # a lightly edited copy
    texts = [f"text {i}" for i in range(len(x))]
    texts[30] = texts[40].upper()                       # the same text, typed differently
    labels = rng.integers(0, 3, len(x))
    labels[10], labels[20], labels[30], labels[40] = 0, 1, 2, 2
    issues = find_data_issues(x, texts, labels)
    assert set(np.flatnonzero(issues.is_outlier)) >= set(range(300, 304))
    assert issues.is_outlier.sum() <= 10
    assert [g.tolist() for g in issues.conflicting] == [[10, 20]]
    assert [10, 20] in [g.tolist() for g in issues.groups] and [30, 40] in [g.tolist() for g in issues.groups]
    assert issues.counts()["conflicting_duplicate_groups"] == 1
    assert issues.group_of()[30] == issues.group_of()[40] >= 0


def test_outlier_fence_adapts_to_the_projects_spread():
    scores = np.exp(-np.concatenate([np.linspace(0.8, 1.2, 100), [5.0]]))
    fence = outlier_fence(scores)
    assert scores[-1] < fence < scores[:-1].min()
    assert outlier_fence(scores ** 3) < fence            # a wider spread moves the fence down


def test_approximate_search_finds_the_exact_neighbours_on_small_data():
    x = clustered(np.random.default_rng(1), 500, 32).astype(np.float32)
    d_exact, i_exact = exact_search(x, None, 10, "cosine")
    d_ann, i_ann = approximate_search(x, None, 10, "cosine")
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(i_exact, i_ann)])
    assert recall >= 0.99
    same = (i_exact == i_ann).all(axis=1)
    np.testing.assert_allclose(d_ann[same], d_exact[same], atol=1e-6)
    assert not (i_ann == np.arange(500)[:, None]).any()     # never its own neighbour


def test_the_graph_path_can_be_forced_and_records_it():
    x = clustered(np.random.default_rng(2), 200)
    assert knn_graph(x).exact and not knn_graph(x, exact=False).exact


def test_bad_input_names_the_problem():
    with pytest.raises(InputError, match="rows"):
        find_data_issues(np.array([[0.0, np.nan], [1.0, 2.0], [3, 4]]))
    with pytest.raises(InputError, match="one text per item"):
        find_data_issues(np.zeros((3, 4)), texts=["a"])
    with pytest.raises(InputError, match="at least 2"):
        find_data_issues(np.zeros((1, 4)))


def test_review_selection_puts_conflicting_duplicates_first_and_caps_outliers():
    rng = np.random.default_rng(3)
    x = np.vstack([clustered(rng, 400), rng.normal(size=(30, 16)) * 40])
    labels = rng.integers(0, 3, len(x))
    pairs = [(0, 1), (2, 3), (4, 5)]
    for a, b in pairs:
        x[b] = x[a]
        labels[b] = (labels[a] + 1) % 3
    issues = find_data_issues(x, labels=labels)
    tasks = select_for_review(issues, labels, budget=20, outlier_share=0.25)
    assert [t.kind for t in tasks[:3]] == ["conflicting_duplicate"] * 3
    assert {frozenset((t.item, t.partner)) for t in tasks[:3]} == {frozenset(p) for p in pairs}
    assert all(t.item in (1, 3, 5) for t in tasks[:3])        # ties go to the later copy
    outliers = [t for t in tasks if t.kind == "outlier"]
    assert len(outliers) == 5 and all(t.item >= 400 for t in outliers)
    assert [t.score for t in outliers] == sorted(t.score for t in outliers)
    only = select_for_review(issues, labels, budget=20, kinds=("outlier",), exclude=[t.item for t in outliers])
    assert all(t.kind == "outlier" and t.item not in {o.item for o in outliers} for t in only)


def test_sparse_tfidf_rows_search_like_their_dense_copy():
    import scipy.sparse
    rng = np.random.default_rng(4)
    dense = np.abs(clustered(rng, 120, 30)) * (rng.random((120, 30)) < 0.3)
    dense[5] = dense[9]
    sparse = scipy.sparse.csr_matrix(dense)
    a, b = knn_graph(sparse), knn_graph(dense)
    np.testing.assert_allclose(a.distances, b.distances, atol=1e-9)
    assert (a.indices[5:10] == b.indices[5:10]).all()
    issues = find_data_issues(sparse)
    assert [5, 9] in [g.tolist() for g in issues.groups]
