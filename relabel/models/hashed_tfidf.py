"""Hashed word TF-IDF of a big project, built chunk by chunk so that memory holds about one copy of the matrix.

The result is exactly what ``TfidfTransformer(sublinear_tf=True).fit_transform(HashingVectorizer(...).transform(
texts))`` gives (float32, unit rows; tests/test_hashed_tfidf.py checks it), but scikit-learn's one-shot path holds,
at a million texts of ~240 words, the raw hashed tokens before their duplicates are summed, the summed matrix, and
an IDF-per-non-zero temporary at once: several GB beside the matrix itself (issue 15's 1M round reached 4.4 GB in
this step). Here each chunk of texts is hashed and reduced to its sublinear term frequencies, the document
frequencies are summed across chunks, and the chunks are then weighted, normalised and copied into one CSR matrix
whose arrays are allocated once, each chunk freed as soon as it is copied.
"""
from __future__ import annotations

import numpy as np

# Texts hashed at a time. The chunk's temporaries (tokens before duplicates are summed) are a few times its final
# size; 20,000 texts of ~240 words are ~40 MB of them, small beside a million-row matrix (~1.6 GB), and large
# enough that the per-chunk overhead (one vectorizer call) is nothing.
CHUNK_ROWS = 20_000


def hashed_word_tfidf(texts, *, n_features: int, ngram_max: int = 1, chunk_rows: int = CHUNK_ROWS):
    """Sublinear, smoothed, L2-normalised TF-IDF of hashed word n-grams (1..ngram_max) as a float32 CSR matrix."""
    import scipy.sparse
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.preprocessing import normalize

    hasher = HashingVectorizer(ngram_range=(1, ngram_max), n_features=n_features, alternate_sign=False, norm=None,
                               strip_accents="unicode", dtype=np.float32)
    n = len(texts)
    chunks = []
    df = np.zeros(n_features, dtype=np.int64)
    for start in range(0, n, chunk_rows):
        counts = hasher.transform(texts[start:start + chunk_rows])   # duplicates summed, indices sorted
        df += np.bincount(counts.indices, minlength=n_features)
        np.log(counts.data, out=counts.data)                          # sublinear tf: 1 + log(count)
        counts.data += 1.0
        chunks.append(counts)
    # Smoothed IDF in float32, operation for operation as TfidfTransformer computes it for float32 counts.
    idf = np.full(n_features, n + 1, dtype=np.float32)
    idf /= df.astype(np.float32) + 1.0
    np.log(idf, out=idf)
    idf += 1.0
    del df

    nnz = sum(c.nnz for c in chunks)
    index_dtype = np.int32 if max(nnz, n_features) < np.iinfo(np.int32).max else np.int64
    data = np.empty(nnz, dtype=np.float32)
    indices = np.empty(nnz, dtype=index_dtype)
    indptr = np.zeros(n + 1, dtype=index_dtype)
    row = at = 0
    chunks.reverse()                  # pop from the end: each chunk is released right after it is copied
    while chunks:
        c = chunks.pop()
        c.data *= idf[c.indices]
        c = normalize(c, norm="l2", copy=False)
        data[at:at + c.nnz] = c.data
        indices[at:at + c.nnz] = c.indices
        indptr[row + 1:row + 1 + c.shape[0]] = c.indptr[1:] + at
        row, at = row + c.shape[0], at + c.nnz
        del c
    return scipy.sparse.csr_matrix((data, indices, indptr), shape=(n, n_features), copy=False)
