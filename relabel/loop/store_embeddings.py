"""The embedding cache in the store: one float32 vector per (model, text hash), so a text is embedded once.

Part of the store (relabel/loop/store.py and its store_* siblings, the only modules that touch SQLite).
"""
from __future__ import annotations

import numpy as np

from relabel.errors import InputError, preview
from relabel.loop.store_sql import chunks


class StoreEmbeddings:
    """The embedding cache of Store, used by relabel.models.fit (mixed into relabel.loop.store.Store, whose ``db``
    it uses)."""

    def cached_embeddings(self, model_id: str, text_hashes: list[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``text_hashes`` for ``model_id`` (float32), keyed by text hash."""
        out: dict[str, np.ndarray] = {}
        for chunk in chunks(list(dict.fromkeys(text_hashes))):
            sql = (f"select text_hash, dim, vector from embeddings where model_id = ? and text_hash in "
                   f"({','.join('?' * len(chunk))})")
            for h, dim, blob in self.db.execute(sql, [model_id, *chunk]).fetchall():
                out[h] = np.frombuffer(blob, dtype=np.float32, count=dim).copy()
        return out

    def save_embeddings(self, model_id: str, text_hashes: list[str], vectors: np.ndarray) -> None:
        """Cache one float32 vector per text hash for ``model_id`` (replacing any earlier vector)."""
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[0] != len(text_hashes):
            raise InputError(f"save_embeddings needs one row of vectors per text hash; got {len(text_hashes)} "
                             f"hashes and an array of shape {vectors.shape}.")
        if not np.isfinite(vectors).all():
            bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
            raise InputError(f"Embeddings for text hashes {preview([text_hashes[i] for i in bad])} contain NaN or "
                             "infinite values; fix the featurizer before caching.")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = int(vectors.shape[1])
        rows = [(model_id, str(h), dim, vectors[i].tobytes()) for i, h in enumerate(text_hashes)]
        with self.db.atomic():
            self.db.conn.executemany("insert or replace into embeddings (model_id, text_hash, dim, vector) "
                                     "values (?, ?, ?, ?)", rows)
