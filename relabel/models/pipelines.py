"""The model pipelines relabel can fit: feature blocks, a linear classifier over them, folds fitted in parallel.

A pipeline is a ``PipelineSpec``: which feature blocks (``word``, ``char``, ``minilm``, ``precomputed``, or two
joined with "+", e.g. ``word+char``), the inverse regularisation strength ``C`` and the ``class_weight``.

Feature blocks are *unsupervised* and are fitted once on every item's text, labelled or not, never per fold:
TF-IDF vocabularies and IDF weights, hashing, and pre-trained sentence embeddings see no label, so fitting them on
all texts leaks nothing into the out-of-fold rows (and costs one pass instead of one per fold and per candidate).
Only the classifier is fitted inside each fold.

- ``word``: TF-IDF of word 1- and 2-grams with sublinear term frequency (min_df = 2, vocabulary capped at
  ``max_features``). Above ``HASHING_ABOVE`` texts the vocabulary is replaced by feature hashing of single words
  (2**20 columns, IDF still fitted), so memory stays bounded and no vocabulary of millions of n-grams is held.
- ``char``: TF-IDF of character 2- to 5-grams within word boundaries (capped vocabulary). Not offered above
  ``HASHING_ABOVE`` texts: it has about ten times the non-zeros of ``word``.
- ``minilm``: sentence embeddings (relabel.models.featurizers.SentenceTransformerFeaturizer, cached in the store).
- ``precomputed``: vectors from a file keyed by item id (relabel.models.vector_files).

The classifier is a multinomial ``LogisticRegression`` (lbfgs) up to ``SGD_ABOVE`` training rows and above that an
``SGDClassifier`` with log loss and averaging, whose cost grows with the number of non-zeros: with
``alpha = 1 / (C * n)`` both minimise the same regularised log-loss. A classifier named in ``[model] classifier``
replaces both (see relabel.models.classifiers for which names are accepted).
"""
from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass

import numpy as np

from relabel.errors import ConfigError, InputError

FEATURE_BLOCKS = ("word", "char", "minilm", "precomputed")
# Above this many texts the word block hashes instead of building a vocabulary, and the char block is not offered:
# a vocabulary of every 1-2-gram of 100,000 reviews is millions of Python strings (GBs), while hashing is bounded.
# Above it the held-out fold is also given weight 0 instead of being cut out, so no fold copies the matrix.
HASHING_ABOVE = 50_000
HASHING_FEATURES = 2 ** 20
# The hashed word block uses single words only: on recombined 20 Newsgroups/IMDB texts 1-2-grams had 501 non-zeros
# per text against 198 (4 GB against 1.6 GB of float32 + int32 at a million texts) and took twice the time.
HASHED_NGRAM_MAX = 1
# Above this many training rows the classifier is SGD (cost ~ nnz x epochs) instead of lbfgs (cost ~ nnz x K x
# iterations, and iterations grow with n). On 20 Newsgroups (6,000 rows, 265k features) SGD took 2.4 CPU-s for
# out-of-fold accuracy 0.920, lbfgs 13 CPU-s for 0.918; below 5,000 rows lbfgs costs seconds and is exact.
SGD_ABOVE = 5_000
# SGD makes at least this many single-row updates (epochs = this / n, between SGD_MIN_EPOCHS and SGD_MAX_EPOCHS):
# averaged SGD settles within about ten passes over a few thousand rows (20 Newsgroups, 6,000 rows: 10 epochs gave
# accuracy 0.920 against lbfgs's 0.918), and a large project gets there in a few epochs.
SGD_MIN_UPDATES = 60_000
SGD_MIN_EPOCHS, SGD_MAX_EPOCHS = 5, 20
# lbfgs stops when the gradient is this small: 1e-3 gave the same out-of-fold accuracy as sklearn's 1e-4 on
# 20 Newsgroups in 40% of the time.
LBFGS_TOL = 1e-3
# Texts counted to project what a TF-IDF block would cost on every text before building it (FeatureBlocks.probe).
# 200 texts measure the per-text time and non-zeros to a few percent, at a fifth of a 1,000-text block at most.
PROBE_TEXTS = 200


@dataclass(frozen=True)
class PipelineSpec:
    """One candidate pipeline: feature blocks joined by '+', inverse regularisation C, class weights."""

    features: str = "word"
    C: float = 10.0
    class_weight: str | None = None

    def __post_init__(self):
        blocks = self.blocks
        if not blocks or any(b not in FEATURE_BLOCKS for b in blocks) or len(set(blocks)) != len(blocks):
            raise ConfigError(f"The 'pipeline' setting {self.features!r} must be feature blocks from "
                              f"{', '.join(FEATURE_BLOCKS)} joined by '+', e.g. 'word+char'.")
        if isinstance(self.C, bool) or not isinstance(self.C, (int, float)) or not self.C > 0:
            raise ConfigError(f"The 'C' setting must be a positive number. Got {self.C!r}.")
        if self.class_weight not in (None, "balanced"):
            raise ConfigError(f"The 'class_weight' setting must be 'balanced' or unset. Got {self.class_weight!r}.")

    @property
    def blocks(self) -> tuple[str, ...]:
        return tuple(b.strip() for b in str(self.features).split("+") if b.strip())

    def describe(self) -> str:
        weight = ", class_weight=balanced" if self.class_weight else ""
        return f"{self.features}, C={self.C:g}{weight}"


class FeatureBlocks:
    """Builds each feature block once for a project's items and hands out (joined) matrices."""

    def __init__(self, texts, item_ids, settings, cache=None, progress: bool = False, reuse=None,
                 whole: bool = True):
        """``reuse``: a relabel.models.model_cache.ModelCache whose per-text counts build the TF-IDF blocks (only
        unseen texts are counted); ``whole``: these are the project's items, not a sample of them."""
        self.texts, self.item_ids, self.settings = texts, item_ids, settings
        self.cache, self.progress, self.reuse, self.whole = cache, progress, reuse, whole
        self._built: dict[str, object] = {}

    def nnz(self, features: str) -> int:
        """Non-zeros of the built blocks of ``features`` (what a linear fit's cost grows with)."""
        return sum(_nnz(self._built[b]) for b in PipelineSpec(features).blocks if b in self._built)

    def probe(self, blocks) -> None:
        """Count a spread sample of PROBE_TEXTS texts for each unbuilt TF-IDF block, timing it: what building the
        block on every text would cost and how many non-zeros it would have. The counts stay in ``reuse``, so a
        block built later does not count them again."""
        self._probes = getattr(self, "_probes", {})
        for name in blocks:
            if name in self._built or name in self._probes or name not in TFIDF_ANALYZERS or self.reuse is None \
                    or self.texts is None or len(self.texts) > HASHING_ABOVE:
                continue
            step = max(1, len(self.texts) // PROBE_TEXTS)
            sample = [t if isinstance(t, str) else "" for t in self.texts[::step][:PROBE_TEXTS]]
            started = time.process_time()
            nnz = self.reuse.count(name, self._analyzer(name), sample)
            self._probes[name] = ((time.process_time() - started) / len(sample), nnz / len(sample), len(sample))

    def projected_build(self, name: str) -> float:
        """CPU seconds still needed to build block ``name`` (0 when built or never probed)."""
        probe = getattr(self, "_probes", {}).get(name)
        if name in self._built or probe is None:
            return 0.0
        return probe[0] * max(len(self.texts) - probe[2], 0)

    def projected_nnz(self, features: str) -> float:
        total = 0.0
        for b in PipelineSpec(features).blocks:
            probe = getattr(self, "_probes", {}).get(b)
            total += _nnz(self._built[b]) if b in self._built else (probe[1] * len(self.texts) if probe else 0.0)
        return total

    def _analyzer(self, name: str) -> dict:
        options = dict(TFIDF_ANALYZERS[name], strip_accents="unicode")
        if name == "word":
            options["ngram_range"] = (1, self.settings.tfidf_ngram_max)
        return options

    def matrix(self, features: str):
        """The rows of every item for blocks ``features`` ("word+char" joins the blocks' columns)."""
        import scipy.sparse
        parts = [self._block(b) for b in PipelineSpec(features).blocks]
        if len(parts) == 1:
            return parts[0]
        if any(scipy.sparse.issparse(p) for p in parts):
            return scipy.sparse.hstack([scipy.sparse.csr_matrix(p) for p in parts], format="csr", dtype=np.float32)
        return np.hstack(parts)

    def data_features(self):
        """The rows data issues (outliers, near duplicates) are found in: the embeddings or precomputed vectors
        when the model built them, else the word TF-IDF rows (sparse). Never builds embeddings just for this."""
        for name in ("minilm", "precomputed"):
            if name in self._built:
                return self._built[name]
        return self._block("word")

    def _block(self, name: str):
        if name not in self._built:
            self._built[name] = self._build(name)
        return self._built[name]

    def _build(self, name: str):
        s = self.settings
        if name in ("word", "char") and self.reuse is not None and len(self.texts) <= HASHING_ABOVE:
            from relabel.models.featurizers import check_texts
            texts = check_texts(self.texts, self.item_ids)
            return self.reuse.tfidf(name, self._analyzer(name), texts, min_df=MIN_DF,
                                    max_features=s.tfidf_max_features, keep=self.whole)
        if name == "word":
            return word_features(self.texts, self.item_ids, max_features=s.tfidf_max_features,
                                 ngram_max=s.tfidf_ngram_max)
        if name == "char":
            return char_features(self.texts, self.item_ids, max_features=s.tfidf_max_features)
        if name == "precomputed":
            return s.precomputed_featurizer().transform(None, self.item_ids)
        return s.embedding_featurizer(cache=self.cache, progress=self.progress).transform(self.texts, self.item_ids)


def _nnz(block) -> int:
    return int(block.nnz) if hasattr(block, "nnz") else int(np.prod(np.shape(block)))


def word_features(texts, item_ids=None, *, max_features: int | None = HASHING_FEATURES, ngram_max: int = 2):
    """Sublinear TF-IDF of word 1..ngram_max-grams (CSR, float32, rows of unit length); hashed above HASHING_ABOVE."""
    from relabel.models.featurizers import check_texts
    texts = check_texts(texts, item_ids)
    if len(texts) > HASHING_ABOVE:
        # Chunk by chunk (relabel.models.hashed_tfidf): at a million texts the one-shot path held several copies.
        from relabel.models.hashed_tfidf import hashed_word_tfidf
        return hashed_word_tfidf(texts, n_features=HASHING_FEATURES, ngram_max=min(ngram_max, HASHED_NGRAM_MAX))
    return _tfidf(texts, dict(ngram_range=(1, ngram_max), max_features=max_features))


def char_features(texts, item_ids=None, *, max_features: int | None = HASHING_FEATURES):
    """Sublinear TF-IDF of character 2..5-grams inside word boundaries (CSR, float32, unit rows)."""
    from relabel.models.featurizers import check_texts
    return _tfidf(check_texts(texts, item_ids), dict(TFIDF_ANALYZERS["char"], max_features=max_features))


# min_df = 2 drops n-grams seen in one text only (typos, names): they cannot generalise across folds. A tiny
# project may have no such n-gram, so it falls back to every n-gram.
MIN_DF = 2
# The analyzers of the word and char blocks (relabel.models.model_cache counts with the same ones).
TFIDF_ANALYZERS = {"word": {"analyzer": "word"}, "char": {"analyzer": "char_wb", "ngram_range": (2, 5)}}


def _tfidf(texts: list[str], options: dict):
    from sklearn.feature_extraction.text import TfidfVectorizer
    for min_df in (MIN_DF, 1):
        try:
            return TfidfVectorizer(sublinear_tf=True, min_df=min_df, strip_accents="unicode", dtype=np.float32,
                                   **options).fit_transform(texts)
        except ValueError as exc:  # no n-gram left after pruning (or every text empty)
            error = exc
    raise InputError(f"TF-IDF found no words to use in the {len(texts)} texts ({error}); check text_field or use "
                     "the sentence-transformers featurizer.")


def make_estimator(spec: PipelineSpec, n_train: int, settings, n_jobs: int = 1):
    """An unfitted classifier for ``spec`` sized for ``n_train`` training rows (see the module docstring)."""
    from relabel.models.estimators import make_classifier
    if settings.classifier is not None:
        return make_classifier(settings.classifier, settings.classifier_options, seed=settings.seed)
    options = dict(settings.classifier_options)
    if n_train > SGD_ABOVE:
        from sklearn.linear_model import SGDClassifier
        epochs = int(min(SGD_MAX_EPOCHS, max(SGD_MIN_EPOCHS, math.ceil(SGD_MIN_UPDATES / max(n_train, 1)))))
        options = {"loss": "log_loss", "alpha": 1.0 / (spec.C * n_train), "average": True, "max_iter": epochs,
                   "tol": None, "class_weight": spec.class_weight, "random_state": settings.seed,
                   "n_jobs": n_jobs, **options}
        return make_classifier(SGDClassifier, options, seed=settings.seed)
    from sklearn.linear_model import LogisticRegression
    options = {"C": spec.C, "class_weight": spec.class_weight, "max_iter": 1000, "tol": LBFGS_TOL, **options}
    return make_classifier(LogisticRegression, options, seed=settings.seed)


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def fit_predict_folds(X, y, folds, n_classes, make, n_jobs: int, sample_weight=None, only=None) -> np.ndarray:
    """Out-of-fold probabilities: fold f's rows from ``make(n_train)`` fitted on the other folds (``only``: just
    those folds; the other rows are left 0).

    Folds run on ``n_jobs`` threads (scikit-learn's solvers release the GIL, and threads share X without copies),
    with BLAS held to one thread each so that folds, not BLAS, use the cores (threadpoolctl).
    """
    from joblib import Parallel, delayed
    from threadpoolctl import threadpool_limits
    from relabel.models.estimators import fit_predict
    fold_ids = np.unique(folds) if only is None else np.asarray(only)
    jobs = max(1, min(n_jobs, fold_ids.size))
    in_place = X.shape[0] > HASHING_ABOVE

    def one(fold):
        test = folds == fold
        if in_place:  # every row, the held-out ones weighing 0: same fit, no copy of X per fold
            w = (~test).astype(np.float64) * (1.0 if sample_weight is None else sample_weight)
            return fit_predict(make(int((~test).sum())), X, y, X[test], n_classes, sample_weight=w)
        w = None if sample_weight is None else sample_weight[~test]
        return fit_predict(make(int((~test).sum())), X[~test], y[~test], X[test], n_classes, sample_weight=w)

    # BLAS at one thread: the cores go to folds (and to SGD's classes), not to oversubscribed BLAS threads, which
    # made fits 3.5x slower on a busy 2-core machine (issue 15).
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=_convergence_warning())
        parts = Parallel(n_jobs=jobs, backend="threading")(delayed(one)(f) for f in fold_ids)
    probs = (np.empty if only is None else np.zeros)((y.size, n_classes), dtype=np.float64)
    for fold, part in zip(fold_ids, parts):
        probs[folds == fold] = part
    return probs


def _convergence_warning():
    from sklearn.exceptions import ConvergenceWarning
    return ConvergenceWarning
