"""relabel's own token model for span projects: out-of-fold tag probabilities from a per-token logistic regression.

    probs = OutOfFoldTokenModel()(texts, tokens, consensus_tags, n_states, layer_index)   # (n_tokens x S)

Features of token t (one-hot, sparse): its lower-cased word, the words at t-2..t+2, its 3-character prefix and
suffix, its shape (Xx, dd, ...), whether it opens a sentence-like unit, and the same shape at t-1 and t+1. The
model is trained on the current consensus tags of the other folds (items split into ``folds`` groups at random)
and predicts the held-out fold, so no item's probabilities come from a model that saw its own consensus.

Why this model: it runs offline with scikit-learn (already a dependency), fits 20,000 sentences in well under a
minute on one core (training folds capped at MAX_TRAIN_TOKENS), and the consensus step learns from the annotations how far to trust it (the model is one
more annotator with its own confusion matrix), so a weak model costs little. A CRF (python-crfsuite) or MiniLM
token embeddings are the obvious stronger models; they were not measured for this first version.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

# Logistic regression strength; tag classes are many and sparse features rare, so moderate regularisation.
TOKEN_MODEL_C = 1.0
TOKEN_MODEL_FOLDS = 5
# lbfgs iterations: the held-out log-loss on PICO is flat from 50 on (0.28), and each iteration costs a pass.
TOKEN_MODEL_MAX_ITER = 50
# At most this many training tokens per fold (whole items, drawn at random): past it the model gains little and
# the fit time grows linearly (keeps a 20,000-sentence project inside its time budget).
MAX_TRAIN_TOKENS = 150_000
# Words seen fewer times than this in the whole run share one "rare word" feature (keeps the matrix small
# and gives unseen words of a held-out fold a trained weight).
MIN_WORD_COUNT = 2


def _shape(word: str) -> str:
    out = []
    for ch in word[:6]:
        kind = "X" if ch.isupper() else "x" if ch.isalpha() else "d" if ch.isdigit() else ch
        if not out or out[-1] != kind:
            out.append(kind)
    return "".join(out)


def _codes(values: list, min_count: int = 1) -> np.ndarray:
    _, inverse, counts = np.unique(np.asarray(values, dtype=object), return_inverse=True, return_counts=True)
    if min_count > 1:
        rare = counts[inverse] < min_count
        inverse = np.where(rare, -1, inverse)
    return inverse + 1       # 0 is "rare / padding"


def token_features(texts, tokens) -> sp.csr_matrix:
    """The sparse one-hot feature matrix, one row per token (see the module docstring)."""
    words = [texts[i][s:e] for i, s, e in zip(tokens.item.tolist(), tokens.start.tolist(), tokens.end.tolist())]
    lower = [w.lower() for w in words]
    word = _codes(lower, MIN_WORD_COUNT)
    prefix = _codes([w[:3] for w in lower], MIN_WORD_COUNT)
    suffix = _codes([w[-3:] for w in lower], MIN_WORD_COUNT)
    shape = _codes([_shape(w) for w in words])
    n = tokens.n_tokens
    position = np.arange(n) - tokens.offsets[:-1][tokens.item]
    after_stop = np.zeros(n, dtype=np.int64)
    after_stop[1:] = np.isin(np.asarray(lower[:-1] if n else [], dtype=object), [".", ";", ":"]).astype(np.int64)
    opens = ((position == 0) | (after_stop == 1)).astype(np.int64)

    def shifted(codes: np.ndarray, by: int) -> np.ndarray:
        """codes of the token ``by`` places away within the same item; 0 (padding) past the item's ends."""
        index = np.arange(n) + by
        inside = (index >= 0) & (index < n)
        out = np.zeros(n, dtype=np.int64)
        out[inside] = codes[index[inside]]
        same = np.zeros(n, dtype=bool)
        same[inside] = tokens.item[index[inside]] == tokens.item[inside]
        return np.where(same, out, 0)

    columns = [word, shifted(word, -1), shifted(word, 1), shifted(word, -2), shifted(word, 2), prefix, suffix,
               shape, shifted(shape, -1), shifted(shape, 1), opens]
    widths = [int(c.max(initial=0)) + 1 for c in columns]
    base = np.concatenate(([0], np.cumsum(widths)[:-1]))
    cols = np.stack([c + b for c, b in zip(columns, base)], axis=1)
    data = np.ones(cols.size)
    indptr = np.arange(0, cols.size + 1, cols.shape[1])
    return sp.csr_matrix((data, cols.ravel(), indptr), shape=(n, int(sum(widths))))


@dataclass(frozen=True)
class OutOfFoldTokenModel:
    """Callable for relabel.scoring.span_consensus.consensus_spans(token_model=...)."""

    folds: int = TOKEN_MODEL_FOLDS
    C: float = TOKEN_MODEL_C
    seed: int = 0

    def __call__(self, texts, tokens, tags, n_states: int, layer_index: int) -> np.ndarray:
        from sklearn.linear_model import LogisticRegression

        features = _cached_features(texts, tokens)
        n_items = tokens.n_items
        fold_of_item = np.random.default_rng(self.seed).permutation(n_items) % max(2, min(self.folds, n_items))
        fold = fold_of_item[tokens.item]
        probs = np.zeros((tokens.n_tokens, n_states))
        tags = np.asarray(tags)
        rng = np.random.default_rng(self.seed + 1)
        for k in np.unique(fold):
            test = fold == k
            train = ~test
            if train.sum() > MAX_TRAIN_TOKENS:
                train_items = np.unique(tokens.item[train])
                rng.shuffle(train_items)
                sizes = tokens.lengths[train_items]
                keep_items = train_items[np.cumsum(sizes) <= MAX_TRAIN_TOKENS]
                train = np.isin(tokens.item, keep_items)
            present = np.unique(tags[train])
            if present.size < 2:          # nothing to learn: the training folds carry one tag only
                probs[test, present[0] if present.size else 0] = 1.0
                continue
            clf = LogisticRegression(C=self.C, max_iter=TOKEN_MODEL_MAX_ITER)
            clf.fit(features[train], tags[train])
            probs[np.ix_(test, clf.classes_)] = clf.predict_proba(features[test])
        return probs


_FEATURE_CACHE: dict = {}


def _cached_features(texts, tokens):
    """One feature matrix per tokenisation (every layer of a run shares it)."""
    key = id(tokens)
    if key not in _FEATURE_CACHE:
        _FEATURE_CACHE.clear()
        _FEATURE_CACHE[key] = (tokens, token_features(texts, tokens))
    return _FEATURE_CACHE[key][1]
