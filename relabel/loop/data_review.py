"""Data issues in a round: computed beside the label issues, stored per item, selected for review with a reason.

The round's model already built each item's feature rows (embeddings, precomputed vectors or word TF-IDF:
``ModelResult.features``); relabel.scoring.data_issues finds outliers and duplicate groups in them. Items a
reviewer flagged as bad data are left out (they are excluded from scoring), so they neither count as anyone's
neighbour nor come back to review.

Per item the store keeps (scores table): ``outlier_score`` (lower = more unlike the others), ``outlier`` (below
the project's fence), ``duplicate_group`` (a number shared by an item's duplicates, else None), ``duplicate_of``
(JSON list of the other items of the group) and ``conflicting_duplicate`` (its group carries different labels).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np

from relabel.scoring.data_issues import DataIssues, DataIssueTask, find_data_issues, select_for_review
from relabel.scoring.duplicates import conflicting_groups
from relabel.scoring.selection import data_issue_reason  # noqa: F401  (the loop words its tasks with it)

COLUMNS = ("outlier_score", "outlier", "duplicate_group", "duplicate_of", "conflicting_duplicate")


def round_data_issues(features, texts: list, labels: np.ndarray, flagged: np.ndarray) -> tuple[DataIssues | None, np.ndarray]:
    """(issues over the unflagged items, their positions among all items); None when fewer than 3 items remain
    or the model built no features (a pred_probs file)."""
    keep = np.flatnonzero(~flagged)
    if features is None or keep.size < 3:
        return None, keep
    rows = features[keep]
    kept_texts = [texts[i] for i in keep]
    kept_labels = np.asarray(labels)[keep]
    key = _content_key(rows, kept_texts)
    if _LAST.get("key") == key:
        # The same feature rows and texts as the last round: the neighbour graph, outliers and duplicate groups are
        # the same; only which groups' labels conflict can have changed (reviewers' decisions).
        issues = dataclasses.replace(_LAST["issues"], conflicting=conflicting_groups(_LAST["issues"].groups,
                                                                                     kept_labels))
        return issues, keep
    issues = find_data_issues(rows, kept_texts, kept_labels)
    _LAST.clear()
    _LAST.update(key=key, issues=issues)
    return issues, keep


# The last computation in this process, by the sha256 of its inputs. relabel serve scores round after round in one
# process on texts that mostly did not change; at 10,000 TF-IDF rows the exact neighbour search alone took 40 s
# of the 60 s a round scored on a loaded 2-core machine (benchmarks/bench_serve_latency_ls.py). One entry: a
# project's rounds replace it, and the graph of 10,000 items is a few MB.
_LAST: dict = {}


def _content_key(rows, texts: list) -> bytes:
    """sha256 of the feature rows (dense, or CSR's arrays) and the texts: equal keys mean equal inputs."""
    import scipy.sparse
    h = hashlib.sha256()
    if scipy.sparse.issparse(rows):
        rows = scipy.sparse.csr_matrix(rows)
        parts = (rows.data, rows.indices, rows.indptr)
    else:
        parts = (np.asarray(rows),)
    h.update(repr((type(rows).__name__, rows.shape, [p.dtype.str for p in parts])).encode())
    for part in parts:
        h.update(np.ascontiguousarray(part).reshape(-1).view(np.uint8))
    for t in texts:
        encoded = str(t).encode("utf-8", "surrogatepass")
        h.update(len(encoded).to_bytes(8, "little"))      # a length prefix: no two lists of texts hash alike
        h.update(encoded)
    return h.digest()


def item_columns(issues: DataIssues | None, keep: np.ndarray, item_ids: list[str]) -> dict[str, list]:
    """The five per-item columns for every item (None where not computed, e.g. flagged items)."""
    n = len(item_ids)
    out = {c: [None] * n for c in COLUMNS}
    if issues is None:
        return out
    group_of = issues.group_of()
    conflicting = issues.is_conflicting()
    for j, i in enumerate(keep):
        out["outlier_score"][i] = float(issues.outlier_score[j])
        out["outlier"][i] = int(issues.is_outlier[j])
        out["conflicting_duplicate"][i] = int(conflicting[j])
        g = int(group_of[j])
        if g >= 0:
            out["duplicate_group"][i] = g
            out["duplicate_of"][i] = json.dumps([item_ids[keep[m]] for m in issues.groups[g] if m != j])
    return out


def tasks_from_columns(columns: dict, labels: list, budget: int, kinds, outlier_share: float,
                       exclude: set) -> list[tuple[int, DataIssueTask]]:
    """The data-issue tasks of a round's batch from its stored columns: (row, task) with row = item position."""
    n = len(columns["item_id"])
    score = np.array([s if s is not None else np.inf for s in columns["outlier_score"]], dtype=float)
    scored = np.isfinite(score)
    groups: dict[int, list[int]] = {}
    for i, g in enumerate(columns["duplicate_group"]):
        if g is not None:
            groups.setdefault(int(g), []).append(i)
    position = {c: k for k, c in enumerate(sorted({lab for lab in labels if lab is not None}))}
    y = np.array([position[lab] if lab is not None else -1 for lab in labels], dtype=np.intp)
    conflicting = [np.array(m) for g, m in sorted(groups.items())
                   if any(columns["conflicting_duplicate"][i] for i in m)]
    issues = DataIssues(outlier_score=np.where(scored, score, 1.0),
                        is_outlier=np.array([bool(o) for o in columns["outlier"]]) & scored,
                        near_duplicate_sets=[], exact_groups=[], groups=[np.array(m) for m in groups.values()],
                        conflicting=conflicting)
    tasks = select_for_review(issues, y, budget, outlier_share, kinds, exclude=exclude)
    return [(t.item, t) for t in tasks if t.item < n]
