"""The chunked hashed TF-IDF (relabel.models.hashed_tfidf) equals scikit-learn's one-shot HashingVectorizer + TfidfTransformer."""
import numpy as np
import pytest
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer

from relabel.models import pipelines
from relabel.models.hashed_tfidf import hashed_word_tfidf


def _texts(n, seed=0):
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(800)] + ["café", "naïve", "Über", "the"]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(0, 40)))) for _ in range(n)]
    texts[3] = ""              # an empty text: a row of zeros, as scikit-learn leaves it
    texts[4] = "the the the"   # a repeated word: sublinear tf
    return texts


def _sklearn(texts, n_features, ngram_max):
    counts = HashingVectorizer(ngram_range=(1, ngram_max), n_features=n_features, alternate_sign=False, norm=None,
                               strip_accents="unicode", dtype=np.float32).transform(texts)
    return TfidfTransformer(sublinear_tf=True).fit(counts).transform(counts, copy=False)


@pytest.mark.parametrize("chunk_rows", [1, 7, 250, 10_000])
@pytest.mark.parametrize("ngram_max", [1, 2])
def test_equals_scikit_learn_one_shot(chunk_rows, ngram_max):
    texts = _texts(1001)
    expected = _sklearn(texts, 2 ** 16, ngram_max)
    got = hashed_word_tfidf(texts, n_features=2 ** 16, ngram_max=ngram_max, chunk_rows=chunk_rows)
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.array_equal(got.indptr, expected.indptr)
    assert np.array_equal(got.indices, expected.indices)
    assert np.array_equal(got.data, expected.data)   # bit for bit: the same float32 operations in the same order
    assert got.getrow(3).nnz == 0


def test_word_features_hash_above_the_threshold_as_before(monkeypatch):
    texts = _texts(300, seed=1)
    monkeypatch.setattr(pipelines, "HASHING_ABOVE", 100)
    monkeypatch.setattr(pipelines, "HASHING_FEATURES", 2 ** 15)
    got = pipelines.word_features(texts, [str(i) for i in range(len(texts))], ngram_max=2)
    expected = _sklearn(texts, 2 ** 15, pipelines.HASHED_NGRAM_MAX)
    assert (got != expected).nnz == 0 and got.shape == (300, 2 ** 15)
