"""Read per-item vectors (embeddings or pred_probs) that someone computed elsewhere, keyed by item id.

A user who embeds images or audio with their own model, or who already has predicted probabilities, hands
relabel a file; this module lines its rows up with the project's items. Supported layouts:

- ``.npy`` (one row per vector) plus an id list: ``ids_path`` (a ``.txt`` with one id per line, or a ``.json``
  list); when not given, ``<stem>.ids.txt`` or ``<stem>.ids.json`` beside the ``.npy`` is used.
- ``.parquet``: an id column (``id_field``, default ``"id"``) and either one list-valued column
  (``vector_field``) or one numeric column per dimension/class (every column but the id).
- ``.jsonl`` / ``.jsonl.gz``: one object per line, ``{"<id_field>": ..., "<vector_field>": [...]}``.
- ``.csv``: an id column and one numeric column per dimension/class.

Ids are compared as strings (Label Studio task ids are integers in its JSON, strings in relabel). Ids in the
file that the project does not have are ignored; project items missing from the file are an error.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from relabel.errors import ConfigError, InputError, preview


def read_keyed_vectors(path, item_ids: Sequence, *, what: str = "embeddings", ids_path=None,
                       id_field: str = "id", vector_field: str | None = None) -> np.ndarray:
    """Return an (len(item_ids), D) float array whose row i is the vector the file holds for item_ids[i].

    ``what`` only words the error messages ("embeddings", "pred_probs"). Raises ConfigError when the file is
    missing or unreadable, InputError when its ids or dimensions do not match the items.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"The {what} file {str(path)!r} does not exist; check the path in the [model] settings.")
    ids, vectors = _read_file(path, what=what, ids_path=ids_path, id_field=id_field, vector_field=vector_field)
    return _align(ids, vectors, [str(i) for i in item_ids], path=path, what=what)


def _read_file(path: Path, *, what, ids_path, id_field, vector_field) -> tuple[list[str], np.ndarray]:
    name = path.name.lower()
    if name.endswith(".npy"):
        return _read_npy(path, what=what, ids_path=ids_path)
    if name.endswith(".parquet"):
        return _read_table(_load_parquet(path), path, what=what, id_field=id_field, vector_field=vector_field)
    if name.endswith(".jsonl") or name.endswith(".jsonl.gz"):
        return _read_jsonl(path, what=what, id_field=id_field, vector_field=vector_field)
    if name.endswith(".csv"):
        import pandas as pd
        return _read_table(pd.read_csv(path), path, what=what, id_field=id_field, vector_field=None)
    raise ConfigError(f"The {what} file {str(path)!r} has an unsupported type; use .npy (with an id list), "
                      ".parquet, .jsonl, .jsonl.gz or .csv.")


def _read_npy(path: Path, *, what, ids_path) -> tuple[list[str], np.ndarray]:
    vectors = np.load(path, allow_pickle=False)
    if vectors.ndim != 2:
        raise InputError(f"The {what} file {str(path)!r} holds an array of shape {vectors.shape}; "
                         "it must be 2-D, one row per item.")
    if ids_path is None:
        stem = path.with_suffix("")
        candidates = [stem.with_name(stem.name + ".ids.txt"), stem.with_name(stem.name + ".ids.json")]
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise ConfigError(f"The {what} file {str(path)!r} has no id list; set ids_path to a .txt (one item id "
                              f"per line) or .json list, or put {candidates[0].name} beside it.")
        ids_path = found[0]
    ids_path = Path(ids_path)
    if not ids_path.is_file():
        raise ConfigError(f"The id list {str(ids_path)!r} for {what} does not exist; check ids_path.")
    if ids_path.suffix.lower() == ".json":
        ids = [str(i) for i in json.loads(ids_path.read_text(encoding="utf-8"))]
    else:
        ids = [line.strip() for line in ids_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(ids) != vectors.shape[0]:
        raise InputError(f"The id list {str(ids_path)!r} has {len(ids)} ids but {str(path)!r} has "
                         f"{vectors.shape[0]} rows; give exactly one id per row, in row order.")
    return ids, vectors


def _load_parquet(path: Path):
    import pandas as pd
    try:
        return pd.read_parquet(path)
    except ImportError as exc:  # pandas needs pyarrow or fastparquet for parquet
        raise ConfigError(f"Reading {str(path)!r} needs pyarrow; `pip install pyarrow` or use .npy/.jsonl.") from exc


def _read_table(frame, path: Path, *, what, id_field, vector_field) -> tuple[list[str], np.ndarray]:
    if id_field not in frame.columns:
        raise InputError(f"The {what} file {str(path)!r} has no {id_field!r} column (columns: "
                         f"{preview(list(frame.columns))}); set id_field to the column holding item ids.")
    ids = frame[id_field].astype(str).tolist()
    if vector_field is not None and vector_field in frame.columns:
        return ids, _stack_rows(frame[vector_field].tolist(), ids, path=path, what=what)
    rest = frame.drop(columns=[id_field])
    non_numeric = [c for c in rest.columns if not np.issubdtype(rest[c].dtype, np.number)]
    if non_numeric or rest.shape[1] == 0:
        raise InputError(f"The {what} file {str(path)!r} needs a list column {vector_field!r} or only numeric "
                         f"columns besides {id_field!r}; columns {preview(non_numeric)} are not numeric.")
    return ids, rest.to_numpy(dtype=np.float64)


def _read_jsonl(path: Path, *, what, id_field, vector_field) -> tuple[list[str], np.ndarray]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    ids, rows = [], []
    with opener(path, "rt", encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            if id_field not in record or vector_field not in record:
                raise InputError(f"Line {line_number} of {str(path)!r} lacks {id_field!r} or {vector_field!r}; "
                                 "every line needs both (set id_field / vector_field to the keys you used).")
            ids.append(str(record[id_field]))
            rows.append(record[vector_field])
    return ids, _stack_rows(rows, ids, path=path, what=what)


def _stack_rows(rows: list, ids: list[str], *, path: Path, what: str) -> np.ndarray:
    """One 2-D array from per-item lists, naming the items whose length differs from the first row's."""
    lengths = np.fromiter((len(r) for r in rows), dtype=np.intp, count=len(rows))
    if lengths.size and (lengths != lengths[0]).any():
        bad = np.flatnonzero(lengths != lengths[0])
        raise InputError(f"The {what} in {str(path)!r} have different lengths: items "
                         f"{preview([ids[i] for i in bad])} have {lengths[bad[0]]} values, the first item has "
                         f"{lengths[0]}; every item needs the same dimension.")
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)


def _align(ids: list[str], vectors: np.ndarray, item_ids: list[str], *, path: Path, what: str) -> np.ndarray:
    """Rows of ``vectors`` in ``item_ids`` order, or an error naming the items the file lacks or repeats."""
    file_ids = np.asarray(ids, dtype=object)
    unique, counts = np.unique(file_ids, return_counts=True)
    if (counts > 1).any():
        raise InputError(f"The {what} file {str(path)!r} lists items {preview(unique[counts > 1].tolist())} "
                         "more than once; keep one row per item.")
    position = {item_id: row for row, item_id in enumerate(ids)}
    missing = [i for i in item_ids if i not in position]
    if missing:
        raise InputError(f"The {what} file {str(path)!r} has no row for items {preview(missing)} "
                         f"({len(missing)} of {len(item_ids)}); recompute it for the current project items.")
    aligned = vectors[np.fromiter((position[i] for i in item_ids), dtype=np.intp, count=len(item_ids))]
    bad = ~np.isfinite(aligned).all(axis=1)
    if bad.any():
        raise InputError(f"The {what} file {str(path)!r} has NaN or infinite values for items "
                         f"{preview([item_ids[i] for i in np.flatnonzero(bad)])}; recompute them.")
    return aligned
