"""What a project's model phase keeps between rounds: each text's n-gram counts, and the pipeline the search chose.

A round's texts are mostly the last round's texts, and its labels mostly the last round's labels (a review batch
changes a few dozen of thousands). Two things are therefore kept, in a folder beside the store
(``ModelCache.beside(store_path)``; ``ModelCache()`` keeps them in memory only):

- **Term counts by text.** The word and char TF-IDF blocks are built from each text's n-gram counts, kept keyed by
  the sha256 of the text. A text seen before reuses its row; a new or edited text is counted (new n-grams get new
  columns). Document frequencies, the min_df/max_features pruning, sublinear tf, IDF and the unit-length rows are
  then recomputed from the counts of the round's texts, which is cheap, so the matrix is the one TfidfVectorizer
  would build on the same texts (same columns up to their order; tests/test_model_reuse.py compares them).
- **The chosen pipeline** (``Choice``): the winner, the labels and text hashes it was chosen on, and how large a
  share of changed labels it tolerates (``Choice.tolerance``, set by relabel.models.search from the search's own
  per-item log-losses). While the labels changed since that search stay below it, the next round refits the
  winner instead of searching.

Files are numpy arrays (loaded with ``allow_pickle=False``) and JSON: nothing in the folder is executed.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from relabel.errors import InputError

_HASH_BYTES = 16           # the first 16 bytes of sha256: collisions are out of reach at any project size
_TERM_SEPARATOR = "\n"     # analyzers collapse whitespace, so no n-gram holds a newline
_FORMAT = 1                # bumped when the files' layout changes: an older folder is then rebuilt, not misread


def text_digests(texts) -> np.ndarray:
    """The cache key of each text (16-byte sha256 prefix), as a numpy bytes array."""
    return np.array([hashlib.sha256(t.encode("utf-8")).digest()[:_HASH_BYTES] for t in texts],
                    dtype=f"S{_HASH_BYTES}")


@dataclass
class Choice:
    """The pipeline a search chose, and what it was chosen on."""

    features: str
    C: float
    class_weight: str | None
    tolerance: float            # share of labelled items whose label may change before a new search
    settings_key: str           # the settings that define the search (a change means a new search)
    repeats: int                # fold assignments averaged for the winner's out-of-fold rows
    why: str                    # how the tolerance was measured, for the report
    item_ids: np.ndarray        # str
    labels: np.ndarray          # int, -1 = unlabelled
    digests: np.ndarray         # text digests
    rounds_reused: int = 0
    reference: float = 0.0      # CPU seconds of the search's yardstick (relabel.models.search._Cost)
    assignment: float = 0.0     # CPU seconds of one cross-validation of the winner, measured by the search

    def changed_share(self, item_ids, labels: np.ndarray, digests: np.ndarray) -> float:
        """Share of the items labelled at the search (or now) whose label or text differs since the search."""
        before = {iid: n for n, iid in enumerate(self.item_ids.tolist())}
        where = np.array([before.get(str(i), -1) for i in item_ids], dtype=np.intp)
        seen = where >= 0
        prev_label = np.full(len(labels), -1, dtype=np.intp)
        prev_label[seen] = self.labels[where[seen]]
        same_text = np.zeros(len(labels), dtype=bool)
        same_text[seen] = self.digests[where[seen]] == digests[seen]
        relevant = (labels >= 0) | (prev_label >= 0)
        changed = relevant & ((labels != prev_label) | ~same_text)
        # Items labelled at the search that are gone now count as changed too.
        gone = int((self.labels >= 0).sum()) - int((prev_label >= 0).sum())
        base = max(int((self.labels >= 0).sum()), 1)
        return (int(changed.sum()) + max(gone, 0)) / base


class ModelCache:
    """Term counts and the chosen pipeline of one project, in ``directory`` (None: in memory only)."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory) if directory is not None else None
        self._counts: dict[str, dict] = {}
        self._choice: Choice | None = None
        self._choice_loaded = False
        self._prefit: dict | None = None
        self.texts_counted = 0     # texts whose n-grams were counted (not found) by this object
        self.texts_reused = 0      # texts whose counts came from the cache

    @classmethod
    def beside(cls, store_path: str | os.PathLike) -> "ModelCache":
        """The cache folder of a store: ``<store>.model-cache``."""
        return cls(Path(str(store_path) + ".model-cache"))

    # ---- term counts -------------------------------------------------------------------------------------
    def tfidf(self, block: str, options: dict, texts: list[str], *, min_df: int = 2,
              max_features: int | None = None, keep: bool = True):
        """Sublinear TF-IDF (float32 CSR, unit rows) of ``texts`` from cached counts, counting only unseen texts.

        ``options`` are CountVectorizer's analyzer options (ngram_range, analyzer, strip_accents). ``keep``: this is
        the project's whole corpus, so rows of texts not in it are dropped from the cache when it is saved (a
        sample's call adds rows and drops none).
        """
        key = block + ":" + json.dumps(options, sort_keys=True)
        state = self._load_counts(key)
        digests = text_digests(texts)
        rows = self._rows_for(state, digests, texts, options)
        X = tfidf_from_counts(state["counts"][rows], state["terms"], min_df=min_df, max_features=max_features)
        if keep:
            self._prune_to(state, np.unique(rows))
        self._save_counts(key, state)
        return X

    def count(self, block: str, options: dict, texts: list[str]) -> int:
        """Count (and keep) the n-grams of ``texts`` not seen before; the non-zeros of their rows."""
        key = block + ":" + json.dumps(options, sort_keys=True)
        state = self._load_counts(key)
        rows = self._rows_for(state, text_digests(texts), texts, options)
        return int(np.diff(state["counts"].indptr)[rows].sum())

    def _rows_for(self, state: dict, digests: np.ndarray, texts: list[str], options: dict) -> np.ndarray:
        import scipy.sparse
        known = {d: n for n, d in enumerate(state["digests"].tolist())}
        rows = np.array([known.get(d, -1) for d in digests.tolist()], dtype=np.intp)
        missing = np.flatnonzero(rows < 0)
        self.texts_reused += int(rows.size - missing.size)
        if missing.size:
            _, first = np.unique(digests[missing], return_index=True)
            new = missing[np.sort(first)]           # each distinct unseen text counted once
            self.texts_counted += int(new.size)
            counts, terms = _count(options, [texts[i] for i in new])
            index = state.setdefault("_index", {t: j for j, t in enumerate(state["terms"])})
            column = np.empty(len(terms), dtype=np.int64)
            for j, term in enumerate(terms):
                at = index.get(term)
                if at is None:
                    at = index[term] = len(state["terms"])
                    state["terms"].append(term)
                column[j] = at
            counts = scipy.sparse.csr_matrix((counts.data, column[counts.indices], counts.indptr),
                                             shape=(counts.shape[0], len(state["terms"])))
            old = state["counts"]
            old = scipy.sparse.csr_matrix((old.data, old.indices, old.indptr), shape=(old.shape[0], len(state["terms"])))
            start = old.shape[0]
            state["counts"] = scipy.sparse.vstack([old, counts], format="csr")
            state["digests"] = np.concatenate([state["digests"], digests[new]])
            state["dirty"] = True
            added = {d: start + j for j, d in enumerate(digests[new].tolist())}
            rows = np.array([r if r >= 0 else added[d] for r, d in zip(rows.tolist(), digests.tolist())],
                            dtype=np.intp)
        return rows

    def _prune_to(self, state: dict, rows: np.ndarray) -> None:
        """Keep only ``rows`` (the current corpus) and the terms they use."""
        if rows.size == state["counts"].shape[0]:
            return
        counts = state["counts"][rows]
        used = np.unique(counts.indices)
        remap = np.full(counts.shape[1], -1, dtype=np.int64)
        remap[used] = np.arange(used.size)
        import scipy.sparse
        state["counts"] = scipy.sparse.csr_matrix((counts.data, remap[counts.indices], counts.indptr),
                                                  shape=(counts.shape[0], used.size))
        state["terms"] = [state["terms"][j] for j in used]
        state["digests"] = state["digests"][rows]
        state.pop("_index", None)
        state["dirty"] = True

    def _path(self, key: str, suffix: str) -> Path:
        return self.directory / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.{suffix}"

    def _load_counts(self, key: str) -> dict:
        import scipy.sparse
        if key in self._counts:
            return self._counts[key]
        state = None
        if self.directory is not None and self._path(key, "counts.npz").is_file():
            try:
                with np.load(self._path(key, "counts.npz"), allow_pickle=False) as f:
                    if int(f["format"]) == _FORMAT and str(f["key"]) == key:
                        terms = bytes(f["terms"]).decode("utf-8")
                        state = {"terms": terms.split(_TERM_SEPARATOR) if terms else [],
                                 "digests": f["digests"].astype(f"S{_HASH_BYTES}"),
                                 "counts": scipy.sparse.csr_matrix((f["data"], f["indices"], f["indptr"]),
                                                                   shape=tuple(f["shape"]))}
            except (OSError, ValueError, KeyError):  # a damaged file is a cache miss, rebuilt below
                state = None
        if state is None:
            state = {"terms": [], "digests": np.empty(0, dtype=f"S{_HASH_BYTES}"),
                     "counts": scipy.sparse.csr_matrix((0, 0), dtype=np.int32)}
        state["dirty"] = False
        self._counts[key] = state
        return state

    def _save_counts(self, key: str, state: dict) -> None:
        if self.directory is None or not state.get("dirty"):
            return
        c = state["counts"]
        _atomic_savez(self._path(key, "counts.npz"), format=np.array(_FORMAT), key=np.array(key),
                      terms=np.frombuffer(_TERM_SEPARATOR.join(state["terms"]).encode("utf-8"), dtype=np.uint8),
                      digests=state["digests"], data=c.data, indices=c.indices, indptr=c.indptr,
                      shape=np.array(c.shape))
        state["dirty"] = False

    # ---- a model fitted ahead (relabel serve, while reviewers answer) ----------------------------------------
    def hold_prefit(self, settings_key: str, item_ids, texts, labels: np.ndarray, result) -> None:
        """Keep ``result`` (a ModelResult fitted on ``labels``) for the next round, in memory only."""
        self._prefit = {"key": settings_key, "ids": [str(i) for i in item_ids], "digests": _digests_of(texts),
                        "labels": np.asarray(labels, dtype=np.intp).copy(), "result": result}

    def holds_prefit(self, settings_key: str, item_ids, texts, labels: np.ndarray) -> bool:
        """Whether the held result would be taken for these inputs (it stays held)."""
        held = self._prefit
        taken, _ = self.take_prefit(settings_key, item_ids, texts, labels)
        self._prefit = held
        return taken is not None

    def take_prefit(self, settings_key: str, item_ids, texts, labels: np.ndarray):
        """The held result and how many labels changed since it was fitted, if the items and texts are the same
        and the changed share is within the chosen pipeline's tolerance (exactly the same labels without one);
        else (None, 0). A held result is handed out once."""
        held, self._prefit = self._prefit, None
        if held is None or held["key"] != settings_key or held["ids"] != [str(i) for i in item_ids]:
            return None, 0
        labels = np.asarray(labels, dtype=np.intp)
        if labels.shape != held["labels"].shape or not np.array_equal(held["digests"], _digests_of(texts)):
            return None, 0
        changed = int((labels != held["labels"]).sum())
        choice = self.choice()
        tolerance = choice.tolerance if choice is not None else 0.0
        if changed > tolerance * max(int((held["labels"] >= 0).sum()), 1):
            return None, changed
        return held["result"], changed

    # ---- the chosen pipeline -----------------------------------------------------------------------------
    def choice(self) -> Choice | None:
        """The last search's choice, or None."""
        if not self._choice_loaded:
            self._choice_loaded = True
            self._choice = self._read_choice()
        return self._choice

    def save_choice(self, choice: Choice) -> None:
        self._choice, self._choice_loaded = choice, True
        if self.directory is None:
            return
        meta = {k: v for k, v in asdict(choice).items() if not isinstance(v, np.ndarray)}
        _atomic_savez(self.directory / "choice.npz", format=np.array(_FORMAT), meta=np.array(json.dumps(meta)),
                      item_ids=np.asarray(choice.item_ids, dtype=str), labels=choice.labels,
                      digests=choice.digests)

    def _read_choice(self) -> Choice | None:
        path = None if self.directory is None else self.directory / "choice.npz"
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as f:
                if int(f["format"]) != _FORMAT:
                    return None
                meta = json.loads(str(f["meta"]))
                return Choice(**meta, item_ids=f["item_ids"], labels=f["labels"].astype(np.intp),
                              digests=f["digests"].astype(f"S{_HASH_BYTES}"))
        except (OSError, ValueError, KeyError, TypeError):  # unreadable: as if there were none (a new search)
            return None


def _digests_of(texts) -> np.ndarray:
    return text_digests([t if isinstance(t, str) else "" for t in texts] if texts is not None else [])


def _count(options: dict, texts: list[str]):
    """n-gram counts (int32 CSR) of ``texts`` and the column terms; no n-gram at all gives zero columns."""
    import scipy.sparse
    from sklearn.feature_extraction.text import CountVectorizer
    vectorizer = CountVectorizer(dtype=np.int32, **options)
    try:
        counts = vectorizer.fit_transform(texts)
    except ValueError:  # every text empty (or without a single token): nothing to count
        return scipy.sparse.csr_matrix((len(texts), 0), dtype=np.int32), []
    terms = [None] * len(vectorizer.vocabulary_)
    for term, j in vectorizer.vocabulary_.items():
        terms[j] = term
    return counts, terms


def tfidf_from_counts(counts, terms: list[str], *, min_df: int = 2, max_features: int | None = None):
    """What TfidfVectorizer(sublinear_tf=True, min_df, max_features, dtype=float32) gives from these counts.

    min_df falls back to 1 when it would leave no column (as relabel.models.pipelines._tfidf does); columns are in
    the terms' sorted order, as TfidfVectorizer's vocabulary is.
    """
    import scipy.sparse
    from sklearn.preprocessing import normalize
    counts = scipy.sparse.csr_matrix(counts)
    n = counts.shape[0]
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    keep = np.zeros(0, dtype=np.intp)
    for floor in sorted({min_df, 1}, reverse=True):
        if floor > n:       # TfidfVectorizer refuses a min_df above the number of texts
            continue
        keep = np.flatnonzero(df >= floor)
        if keep.size:
            break
    if not keep.size:
        raise InputError(f"TF-IDF found no words to use in the {n} texts; check text_field or use the "
                         "sentence-transformers featurizer.")
    if max_features is not None and keep.size > max_features:
        totals = np.asarray(counts.sum(axis=0)).ravel()[keep]
        keep = keep[np.argsort(-totals, kind="stable")[:max_features]]
    keep = keep[np.argsort(np.array([terms[j] for j in keep], dtype=object), kind="stable")]
    X = counts[:, keep].astype(np.float32)
    X.sort_indices()
    np.log(X.data, out=X.data)
    X.data += 1.0
    idf = np.log(np.float32(n + 1) / (df[keep].astype(np.float32) + np.float32(1.0))) + np.float32(1.0)
    X = X @ scipy.sparse.diags(idf.astype(np.float32), format="csr")
    return normalize(X, norm="l2", copy=False).astype(np.float32)


def _atomic_savez(path: Path, **arrays) -> None:
    """Write a .npz so that a crash leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
