"""Embeddings on dask.distributed (a real LocalCluster of 2 worker processes) against the local path."""
import numpy as np
import pytest

from relabel.models.embed_dask import dask_client, embed_on_dask
from relabel.errors import ConfigError
from relabel.models.featurizers import MemoryEmbeddingCache, encode_on_worker, featurizer, text_hash
from relabel.models.fit import ModelSettings
from tiny_sentence_model import WORDS, build_tiny_model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-dask"))


def _texts(n, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 20)))) for _ in range(n)]


def _cosine(a, b):
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def cluster():
    with dask_client(workers=2) as client:
        assert len(client.nthreads()) == 2     # two worker processes, one thread each
        yield client


@pytest.mark.slow
def test_dask_vectors_equal_the_local_path_and_land_in_the_cache_as_chunks_finish(tiny_model, cluster):
    texts = _texts(150)
    local = featurizer("sentence-transformers", model=str(tiny_model), batch_size=16).transform(texts)
    cache = MemoryEmbeddingCache()
    on_dask = featurizer("sentence-transformers", model=str(tiny_model), batch_size=16, cache=cache)
    spec = {"model": str(tiny_model), "batch_size": 16, "device": None, "threads": None, "normalize": True,
            "max_seq_length": None}
    saved = []

    def save(hashes, vectors):
        saved.append(len(hashes))
        cache.save_embeddings(on_dask.model_id, hashes, vectors)

    hashes = [text_hash(t) for t in texts]
    vectors = embed_on_dask(spec, on_dask.model_id, texts, hashes, cluster, encode=encode_on_worker, on_chunk=save, chunk=40)
    assert vectors.shape == local.shape
    assert _cosine(vectors, local).min() >= 0.9999
    assert sorted(saved) == [30, 40, 40, 40] and len(cache) == len(set(hashes))
    # The featurizer then finds everything cached and loads no model.
    again = on_dask.transform(texts)
    assert on_dask.last_embedded == 0 and on_dask._model is None
    assert np.array_equal(again, vectors)


@pytest.mark.slow
def test_an_interrupted_dask_run_resumes_from_the_cache(tiny_model, cluster):
    texts = _texts(100, seed=1)
    cache = MemoryEmbeddingCache()
    f = featurizer("sentence-transformers", model=str(tiny_model), cache=cache)
    spec = {"model": str(tiny_model), "batch_size": 32, "device": None, "threads": None, "normalize": True,
            "max_seq_length": None}
    hashes = [text_hash(t) for t in texts]

    def save_then_die(chunk_hashes, vectors):
        cache.save_embeddings(f.model_id, chunk_hashes, vectors)
        raise KeyboardInterrupt   # the run is stopped right after its first chunk was saved

    with pytest.raises(KeyboardInterrupt):
        embed_on_dask(spec, f.model_id, texts, hashes, cluster, encode=encode_on_worker, on_chunk=save_then_die, chunk=25)
    assert len(cache) == 25
    full = f.transform(texts)
    assert f.last_embedded == len(set(hashes)) - 25
    local = featurizer("sentence-transformers", model=str(tiny_model)).transform(texts)
    assert _cosine(full, local).min() >= 0.9999


@pytest.mark.slow
def test_dask_scheduler_setting_embeds_on_an_existing_cluster(tiny_model, cluster):
    texts = _texts(20, seed=2)
    address = cluster.scheduler.address
    settings = ModelSettings(featurizer="sentence-transformers", model=str(tiny_model), dask_scheduler=address)
    vectors = settings.make_featurizer(cache=MemoryEmbeddingCache()).transform(texts)
    local = featurizer("sentence-transformers", model=str(tiny_model)).transform(texts)
    assert _cosine(vectors, local).min() >= 0.9999


@pytest.mark.slow
def test_a_worker_with_another_model_is_refused(tiny_model, tmp_path, cluster):
    other = build_tiny_model(tmp_path / "other", seed=1)
    mine = featurizer("sentence-transformers", model=str(tiny_model))
    spec = {"model": str(other), "batch_size": 8, "device": None, "threads": None, "normalize": True,
            "max_seq_length": None}
    with pytest.raises(ConfigError, match="A Dask worker embeds with model .*install the same model on every"):
        embed_on_dask(spec, mine.model_id, ["cat sat"], [text_hash("cat sat")], cluster, encode=encode_on_worker)


def test_bad_dask_settings_are_named():
    with pytest.raises(ConfigError, match="'dask_scheduler' setting must be a scheduler address.*Got 'host'"):
        ModelSettings(featurizer="sentence-transformers", dask_scheduler="host")
    with pytest.raises(ConfigError, match="'workers' setting must be an integer of at least 1. Got 0"):
        ModelSettings(featurizer="sentence-transformers", workers=0)


def test_an_unreachable_scheduler_is_one_clear_error():
    with pytest.raises(ConfigError, match="Cannot reach the Dask scheduler at tcp://127.0.0.1:9.*dask_scheduler"):
        with dask_client(scheduler="tcp://127.0.0.1:9", timeout=2):
            pass


def test_the_scoring_path_embeds_where_the_dask_settings_say(tiny_model, monkeypatch):
    """The round's model (FeatureBlocks, behind fit_predict_probs) honours ``dask_scheduler``: an unreachable
    scheduler is its error, not a silent local run."""
    import relabel.models.embed_dask
    from relabel.models.pipelines import FeatureBlocks
    monkeypatch.setattr(relabel.models.embed_dask, "CONNECT_TIMEOUT", 2)
    settings = ModelSettings(featurizer="sentence-transformers", model=str(tiny_model),
                             dask_scheduler="tcp://127.0.0.1:9")
    texts = _texts(5, seed=3)
    blocks = FeatureBlocks(texts, [str(i) for i in range(len(texts))], settings, cache=MemoryEmbeddingCache())
    with pytest.raises(ConfigError, match="Cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        blocks.matrix("minilm")
