"""Duplicate items: the same text imported twice (exact, after whitespace and case normalisation) and near
duplicates in embedding space, and the duplicate sets whose items carry different labels.

Near duplicates follow Datalab's rule (cleanlab 2.9.0 ``NearDuplicateIssueManager``) so the sets are identical
on the same embeddings: on the k = 10 nearest-neighbour graph (neighbours.py), item j is a near duplicate of
item i when j is among i's neighbours at a distance below 0.13 x the median nearest-neighbour distance of the
whole project; the relation is then made symmetric (i joins j's set whenever j is in i's). The threshold is a
share of the project's own median, so it adapts to how spread out the embeddings are.

One difference: when an item has more equidistant neighbours than its k slots (it sits near a group of more than
k + 1 exact copies), which copies fill the slots is an arbitrary tie-break in cleanlab (scikit-learn's
argpartition) and index order here. The sets then name different copies of the same group; mapped to their
groups they are the same (tests/test_outliers_parity.py).
"""
from __future__ import annotations

import re

import numpy as np

from relabel.errors import InputError
from relabel.scoring.neighbours import DEFAULT_K, KnnGraph, knn_graph

# Datalab's default: a neighbour closer than 13% of the median nearest-neighbour distance is a near duplicate.
NEAR_DUPLICATE_THRESHOLD = 0.13
# The median is floored so a project of identical embeddings (median 0) still has a usable radius.
MEDIAN_FLOOR = 1e-6

_SPACE = re.compile(r"\s+")


def normalise_text(text) -> str:
    """Case-folded text with every run of whitespace collapsed to one space and the ends trimmed."""
    return _SPACE.sub(" ", str(text if text is not None else "")).strip().casefold()


def exact_text_duplicate_sets(texts) -> list[np.ndarray]:
    """Groups (ascending indices, 2 or more) of items whose normalised texts are equal; empty texts excluded
    (an empty text is a data problem of its own, not a copy of another item)."""
    keys = [normalise_text(t) for t in texts]
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        if key:
            groups.setdefault(key, []).append(i)
    return [np.asarray(g, dtype=np.intp) for g in groups.values() if len(g) > 1]


def near_duplicate_graph(features, k: int = DEFAULT_K) -> KnnGraph:
    """The neighbour graph Datalab builds for near duplicates: k = 10 (fewer only for tiny projects)."""
    n = np.asarray(features).shape[0]
    if n < 2:
        raise InputError(f"near duplicates need at least 2 items, got {n}.")
    return knn_graph(features, k=min(k, n - 1))


def near_duplicate_sets(graph: KnnGraph, threshold: float = NEAR_DUPLICATE_THRESHOLD) -> list[np.ndarray]:
    """For every item, the items that are its near duplicates (possibly none), as Datalab reports them."""
    if threshold < 0:
        raise InputError(f"near-duplicate threshold {threshold} is negative; use a share such as 0.13.")
    n = graph.indices.shape[0]
    median = max(float(np.median(graph.distances[:, 0])), MEDIAN_FLOOR)
    close = graph.distances < threshold * median
    rows, cols = np.nonzero(close)
    pairs_from = np.concatenate([rows, graph.indices[rows, cols]])
    pairs_to = np.concatenate([graph.indices[rows, cols], rows])
    order = np.lexsort((pairs_to, pairs_from))
    pairs_from, pairs_to = pairs_from[order], pairs_to[order]
    keep = np.ones(pairs_from.size, dtype=bool)
    keep[1:] = (pairs_from[1:] != pairs_from[:-1]) | (pairs_to[1:] != pairs_to[:-1])
    pairs_from, pairs_to = pairs_from[keep], pairs_to[keep]
    cuts = np.searchsorted(pairs_from, np.arange(n + 1))
    return [pairs_to[cuts[i]:cuts[i + 1]] for i in range(n)]


def duplicate_groups(n_items: int, sets) -> list[np.ndarray]:
    """Connected groups (ascending indices, 2 or more) of items linked by per-item sets (``sets[i]`` = the
    items linked to item i), e.g. near_duplicate_sets' output."""
    parent = np.arange(n_items)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, members in enumerate(sets):
        members = np.asarray(members, dtype=np.intp)
        if members.size == 0:
            continue
        for j in members:
            a, b = root(i), root(int(j))
            if a != b:
                parent[max(a, b)] = min(a, b)
    roots = np.array([root(i) for i in range(n_items)])
    counts = np.bincount(roots, minlength=n_items)
    order = np.argsort(roots, kind="stable")
    grouped = np.split(order, np.cumsum(counts)[:-1])
    return [g for g in grouped if g.size > 1]


def conflicting_groups(groups, labels) -> list[np.ndarray]:
    """The groups whose items carry more than one distinct label (unlabelled items, label < 0, are ignored)."""
    y = np.asarray(labels)
    out = []
    for g in groups:
        given = y[g]
        given = given[given >= 0]
        if np.unique(given).size > 1:
            out.append(g)
    return out
