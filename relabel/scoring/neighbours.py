"""k-nearest-neighbour graphs over item embeddings: the one structure behind outlier and near-duplicate scores.

The conventions are cleanlab 2.9.0's (``cleanlab.internal.neighbor``), so scores built on this graph match
``OutOfDistribution`` and Datalab's near-duplicate sets:

* k = min(10, N - 1) unless given; the metric is cosine above 3 dimensions, else euclidean.
* An item is never its own neighbour.
* **Exact duplicates** (rows with identical feature values) are each other's nearest neighbours at distance 0,
  whatever rounding the distance arithmetic left. A group of m duplicates fills min(m - 1, k) slots of each
  member's list with other members, in index order; the remaining slots keep the nearest non-members in
  distance order. When the group is larger than k + 1 only some members fit: its first k + 1 members (by index)
  list each other, every later member lists the first k. This is how cleanlab lays out the slots, and it
  decides which members a near-duplicate set names.

Search is exact below ``EXACT_SEARCH_MAX_ITEMS`` items (blocked matrix products, no approximation) and
approximate above it (faiss-cpu's HNSW index, chosen by measurement in benchmarks/neighbours_ann.py, with
recall@10 checked against exact search in benchmarks/data_issues.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from relabel.errors import InputError

DEFAULT_K = 10
# Above this many dimensions cosine distance is used (as cleanlab does); at or below, euclidean.
HIGH_DIMENSION_CUTOFF = 3
# Exact search costs N^2 * d multiply-adds: 380 CPU s at 100,000 x 384 on this project's 2-core machine, so about
# 15 CPU s at 20,000, where faiss's HNSW index (68 CPU s at 100,000, recall@10 1.000) costs about as much
# (benchmarks/neighbours_ann.py). Below this size exact search is no slower and gives exact cleanlab parity.
EXACT_SEARCH_MAX_ITEMS = 20_000
# Memory for one block of the exact distance matrix (rows x N entries).
BLOCK_BYTES = 64 * 2**20
# Below this many pairwise coordinate differences the euclidean distance is computed from the differences
# themselves (exact to the last bits); above it from |x|^2 + |y|^2 - 2 x.y, which loses a few digits near 0.
DIRECT_EUCLIDEAN_MAX_ENTRIES = 20_000_000

METRICS = ("cosine", "euclidean")


@dataclass(frozen=True)
class KnnGraph:
    """Each item's k nearest other items: ``indices[i, j]`` at ``distances[i, j]``, ascending along j."""

    distances: np.ndarray   # (N, k) float64
    indices: np.ndarray     # (N, k) intp
    metric: str             # "cosine" or "euclidean"
    exact: bool             # False when an approximate index found the neighbours

    @property
    def k(self) -> int:
        return self.indices.shape[1]


def default_metric(features: np.ndarray) -> str:
    return "cosine" if features.shape[1] > HIGH_DIMENSION_CUTOFF else "euclidean"


def default_k(n_items: int, k: int | None = None) -> int:
    """k = min(10, N - 1) unless given; a given k must be below N."""
    if k is not None:
        if not 1 <= k < n_items:
            raise InputError(f"k={k} nearest neighbors needs more than {k} items, got {n_items}; lower k.")
        return int(k)
    return min(DEFAULT_K, n_items - 1)


def check_features(features, name: str = "features"):
    """A finite 2-D float array (float32 stays float32) or CSR matrix (TF-IDF), or InputError naming the problem."""
    import scipy.sparse
    if scipy.sparse.issparse(features):
        x = scipy.sparse.csr_matrix(features, dtype=np.float64 if features.dtype == np.float64 else np.float32)
        if x.shape[0] < 2:
            raise InputError(f"{name} has {x.shape[0]} item(s); neighbour scores need at least 2.")
        if not np.isfinite(x.data).all():
            raise InputError(f"{name} has NaN or infinite values in rows; fix those items' features.")
        x.sort_indices()
        return x
    x = np.asarray(features)
    if x.ndim != 2:
        raise InputError(f"{name} must be a 2-D array (items x dimensions), got shape {x.shape}.")
    if x.shape[0] < 2:
        raise InputError(f"{name} has {x.shape[0]} item(s); neighbour scores need at least 2.")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
        raise InputError(f"{name} has NaN or infinite values in rows {bad[:5].tolist()}; "
                         "fix or drop those items' embeddings.")
    return x


def _row_keys(x) -> np.ndarray:
    """One integer per distinct row of a CSR matrix (equal rows, equal keys): the rows' bytes, interned."""
    seen: dict[bytes, int] = {}
    keys = np.empty(x.shape[0], dtype=np.intp)
    for i in range(x.shape[0]):
        lo, hi = x.indptr[i], x.indptr[i + 1]
        key = x.indices[lo:hi].tobytes() + b"|" + x.data[lo:hi].tobytes()
        keys[i] = seen.setdefault(key, len(seen))
    return keys


def exact_duplicate_groups(features) -> list[np.ndarray]:
    """Groups (ascending item indices, 2 or more each) of rows with identical feature values."""
    import scipy.sparse
    if scipy.sparse.issparse(features):
        inverse = _row_keys(features)
        counts = np.bincount(inverse)
    else:
        _, inverse, counts = np.unique(np.ascontiguousarray(features), axis=0, return_inverse=True,
                                       return_counts=True)
    inverse = inverse.ravel()
    repeated = np.flatnonzero(counts > 1)
    if repeated.size == 0:
        return []
    members = np.flatnonzero(np.isin(inverse, repeated))
    order = np.argsort(inverse[members], kind="stable")       # grouped by value, index order inside
    members = members[order]
    cuts = np.flatnonzero(np.diff(inverse[members])) + 1
    return np.split(members, cuts)


# ---- exact search --------------------------------------------------------------------------------------
def _unit_rows(x):
    import scipy.sparse
    if scipy.sparse.issparse(x):
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        return scipy.sparse.diags(1 / np.where(norms > 0, norms, 1)) @ x
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1)   # a zero row stays zero: distance 1 to everything


def _distance_block(queries: np.ndarray, base: np.ndarray, metric: str, base_sq: np.ndarray | None) -> np.ndarray:
    if metric == "cosine":       # queries and base are unit rows here
        d = queries @ base.T
        d = d.toarray() if hasattr(d, "toarray") else d
        np.subtract(1, d, out=d)
        return np.clip(d, 0, 2, out=d)
    if queries.shape[0] * base.shape[0] * base.shape[1] <= DIRECT_EUCLIDEAN_MAX_ENTRIES:
        return np.sqrt(((queries[:, None, :] - base[None, :, :]) ** 2).sum(axis=2))
    d = queries @ base.T
    d *= -2
    d += (queries * queries).sum(axis=1)[:, None]
    d += base_sq[None, :]
    np.maximum(d, 0, out=d)
    return np.sqrt(d, out=d)


def exact_search(base: np.ndarray, queries: np.ndarray | None, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest rows of ``base`` for each query; ``queries=None`` queries base itself, excluding self."""
    self_query = queries is None
    if metric == "cosine":
        base = _unit_rows(base)
        queries = base if self_query else _unit_rows(queries)
    elif self_query:
        queries = base
    base_sq = None if metric == "cosine" else (base * base).sum(axis=1)
    n_q, n = queries.shape[0], base.shape[0]
    rows = max(1, BLOCK_BYTES // (8 * n))
    distances = np.empty((n_q, k), dtype=np.float64)
    indices = np.empty((n_q, k), dtype=np.intp)
    for start in range(0, n_q, rows):
        stop = min(n_q, start + rows)
        d = _distance_block(queries[start:stop], base, metric, base_sq).astype(np.float64, copy=False)
        if self_query:
            d[np.arange(stop - start), np.arange(start, stop)] = np.inf
        part = np.argpartition(d, k - 1, axis=1)[:, :k] if k < n else np.argsort(d, axis=1)[:, :k]
        part_d = np.take_along_axis(d, part, axis=1)
        order = np.lexsort((part, part_d), axis=1) if part.size else part
        indices[start:stop] = np.take_along_axis(part, order, axis=1)
        distances[start:stop] = np.take_along_axis(part_d, order, axis=1)
    return distances, indices


# ---- approximate search --------------------------------------------------------------------------------
# faiss's HNSW graph: M links per node and efConstruction candidates while building; efSearch at query time is
# set from k (EF_PER_NEIGHBOUR * k, at least EF_MIN). At 100k x 384 these give recall@10 of 1.000 on clustered
# embeddings (benchmarks/neighbours_ann.py), leaving room for harder data.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 100
HNSW_EF_MIN = 64
HNSW_EF_PER_NEIGHBOUR = 8


def approximate_search(base: np.ndarray, queries: np.ndarray | None, k: int, metric: str,
                       threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """As exact_search, from an HNSW index (faiss); distances are recomputed exactly for the found ids."""
    import faiss   # imported here: small projects never build an index

    if threads is not None:
        faiss.omp_set_num_threads(threads)
    self_query = queries is None
    base32 = np.ascontiguousarray(base, dtype=np.float32)
    if metric == "cosine":
        base32 = _unit_rows(base32)
    space = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    index = faiss.IndexHNSWFlat(base32.shape[1], HNSW_M, space)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.add(base32)
    want = k + 1 if self_query else k
    index.hnsw.efSearch = max(HNSW_EF_MIN, HNSW_EF_PER_NEIGHBOUR * want)
    q32 = base32 if self_query else np.ascontiguousarray(queries, dtype=np.float32)
    if metric == "cosine" and not self_query:
        q32 = _unit_rows(q32)
    _, labels = index.search(q32, want)
    labels = labels.astype(np.intp)
    if (labels < 0).any():   # fewer reachable items than asked: pad with the row's nearest found id
        labels = np.where(labels < 0, labels[:, :1], labels)
    if self_query:
        labels = _drop_self(labels)
    q_src = base if self_query else queries
    d = _pair_distances(q_src, base, labels, metric)
    order = np.lexsort((labels, d), axis=1)
    return np.take_along_axis(d, order, axis=1), np.take_along_axis(labels, order, axis=1)


def _drop_self(labels: np.ndarray) -> np.ndarray:
    """Remove each row's own id from its k + 1 found ids (or the farthest one when self was not found)."""
    n, width = labels.shape
    is_self = labels == np.arange(n)[:, None]
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), width - 1)
    keep = np.ones_like(labels, dtype=bool)
    keep[np.arange(n), drop] = False
    return labels[keep].reshape(n, width - 1)


def _pair_distances(queries: np.ndarray, base: np.ndarray, ids: np.ndarray, metric: str) -> np.ndarray:
    """Distance from query i to base[ids[i, j]] in float64, chunked so memory stays at a few MB per chunk."""
    out = np.empty(ids.shape, dtype=np.float64)
    step = max(1, 2**22 // max(1, ids.shape[1] * base.shape[1]))
    for start in range(0, ids.shape[0], step):
        q = np.asarray(queries[start:start + step], dtype=np.float64)
        b = np.asarray(base[ids[start:start + step]], dtype=np.float64)
        if metric == "cosine":
            q, b = _unit_rows(q), _unit_rows(b.reshape(-1, b.shape[-1])).reshape(b.shape)
            out[start:start + step] = np.clip(1 - np.einsum("nd,nkd->nk", q, b), 0, 2)
        else:
            out[start:start + step] = np.sqrt(((b - q[:, None, :]) ** 2).sum(axis=2))
    return out


# ---- the graph ------------------------------------------------------------------------------------------
def search(base, queries, k: int, metric: str, exact: bool | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
    """Exact search for small bases (or when ``exact`` says so), approximate above EXACT_SEARCH_MAX_ITEMS.

    Sparse rows (TF-IDF) are searched exactly with sparse products; above the size limit they are first
    projected to SPARSE_PROJECTION_DIMS dense dimensions (truncated SVD), where the approximate index works.
    """
    import scipy.sparse
    if metric not in METRICS:
        raise InputError(f"Unknown neighbour metric {metric!r}; choose one of {', '.join(METRICS)}.")
    if scipy.sparse.issparse(base) and metric != "cosine":
        raise InputError("sparse features (TF-IDF) are compared by cosine distance; pass metric='cosine'.")
    use_exact = base.shape[0] <= EXACT_SEARCH_MAX_ITEMS if exact is None else exact
    if use_exact:
        return (*exact_search(base, queries, k, metric), True)
    if scipy.sparse.issparse(base):
        base, queries = _project(base, queries)
    return (*approximate_search(base, queries, k, metric), False)


# Dense dimensions a large sparse (TF-IDF) matrix is projected to before approximate search.
SPARSE_PROJECTION_DIMS = 256


def _project(base, queries):
    from sklearn.decomposition import TruncatedSVD
    svd = TruncatedSVD(n_components=min(SPARSE_PROJECTION_DIMS, base.shape[1] - 1), random_state=0)
    base_dense = svd.fit_transform(_unit_rows(base)).astype(np.float32)
    return base_dense, None if queries is None else svd.transform(_unit_rows(queries)).astype(np.float32)


def correct_exact_duplicates(distances: np.ndarray, indices: np.ndarray,
                             groups: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Lay out duplicate groups' slots as described in the module docstring (returns new arrays)."""
    distances, indices = distances.copy(), indices.copy()
    k = indices.shape[1]
    for group in groups:
        m = group.size
        shared = min(m - 1, k)
        head = group[: shared + 1]
        # Each of the first shared + 1 members lists the others among them; later members list the first k.
        head_lists = np.array([np.delete(head, j) for j in range(head.size)])
        lists = np.vstack([head_lists, np.broadcast_to(group[:k], (m - head.size, k))]) if m > head.size \
            else head_lists
        if shared == k:
            indices[group] = lists
            distances[group] = 0.0
            continue
        rows = indices[group]
        outside = ~np.isin(rows, group)
        # The first k - shared non-members of each row, in their distance order (a stable sort keeps it).
        pick = np.argsort(~outside, axis=1, kind="stable")[:, : k - shared]
        indices[group, shared:] = np.take_along_axis(rows, pick, axis=1)
        distances[group, shared:] = np.take_along_axis(distances[group], pick, axis=1)
        indices[group, :shared] = lists
        distances[group, :shared] = 0.0
    return distances, indices


def knn_graph(features, k: int | None = None, metric: str | None = None,
              exact: bool | None = None) -> KnnGraph:
    """Each item's k nearest other items, with exact duplicates laid out as cleanlab does."""
    x = check_features(features)
    k = default_k(x.shape[0], k)
    import scipy.sparse
    metric = metric or ("cosine" if scipy.sparse.issparse(x) else default_metric(x))
    distances, indices, was_exact = search(x, None, k, metric, exact)
    distances, indices = correct_exact_duplicates(distances, indices, exact_duplicate_groups(x))
    return KnnGraph(distances, indices, metric, was_exact)
