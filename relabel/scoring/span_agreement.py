"""Span agreement per annotator and label: exact and relaxed span precision, recall and F1 of each annotator's
spans against the consensus, for every (control, label), on the items the annotator answered.

    table = label_span_agreement(texts, spans, answered, consensus)

Same matching as relabel.scoring.span_quality (token space, so whitespace at a boundary is no disagreement;
exact: same tokens and label; relaxed: overlapping tokens and the same label; within one control; independent
of region order). Precision of annotator a on label l: a's spans of l that the consensus has / a's spans of l;
recall: the consensus spans of l on a's items that a has / those consensus spans.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from relabel.scoring.span_quality import _matches, _prf
from relabel.scoring.spans import tokenize

KEYS = ["annotator", "control", "label"]


def label_span_agreement(texts, spans: pd.DataFrame, answered: pd.DataFrame, consensus: pd.DataFrame,
                         tokens=None) -> pd.DataFrame:
    """One row per (annotator, control, label) that either side has: n_spans, n_consensus and the exact and
    relaxed precision, recall and F1 (NaN where there is nothing to divide by). ``spans``: item, annotator,
    control, start, end, label; ``answered``: item, annotator; ``consensus``: item, control, start, end, label."""
    tokens = tokenize(list(texts)) if tokens is None else tokens

    def with_tokens(frame):
        first, stop = tokens.covering(frame["item"].to_numpy(dtype=np.int64), frame["start"].to_numpy(dtype=np.int64),
                                      frame["end"].to_numpy(dtype=np.int64))
        return frame.assign(first=first, stop=stop)

    mine = with_tokens(spans[["item", "annotator", "control", "start", "end", "label"]].reset_index(drop=True))
    theirs = with_tokens(consensus[["item", "control", "start", "end", "label"]].reset_index(drop=True)).merge(
        answered[["item", "annotator"]].drop_duplicates(), on="item")
    keys = ["annotator", "item", "control", "label"]
    out = None
    for kind, relaxed in (("exact", False), ("relaxed", True)):
        hit_p, hit_g = _matches(mine, theirs, keys, relaxed)
        p = mine[KEYS].assign(hit=hit_p).groupby(KEYS)["hit"].agg(["sum", "size"]).add_suffix("_p")
        g = theirs[KEYS].assign(hit=hit_g).groupby(KEYS)["hit"].agg(["sum", "size"]).add_suffix("_g")
        table = p.join(g, how="outer").fillna(0)
        precision, recall, f1 = _prf(table["sum_p"].to_numpy(float), table["size_p"].to_numpy(float),
                                     table["sum_g"].to_numpy(float), table["size_g"].to_numpy(float))
        if out is None:
            out = pd.DataFrame({"n_spans": table["size_p"].astype(int), "n_consensus": table["size_g"].astype(int)},
                               index=table.index)
        out[f"{kind}_precision"], out[f"{kind}_recall"], out[f"{kind}_f1"] = precision, recall, f1
    return out.reset_index()
