"""Span agreement and span issues: per-annotator span P/R/F1 against the consensus, pairwise annotator agreement,
and the spans most likely wrong with their reason.

Spans are compared in token space (first and stop token rows, from relabel.scoring.spans): two spans are the
same when they cover the same tokens, so a boundary that differs by whitespace is not a disagreement. Exact:
same tokens and label (within one control). Relaxed: overlapping tokens and the same label. Everything is a
merge over long tables; nothing depends on the order regions were saved in.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

REASON_LABEL = "annotators disagree on the label"
REASON_BOUNDARY = "annotators disagree on the boundary"
REASON_ALONE = "one annotator alone marked it"
REASON_MODEL = "the model disagrees with everyone"
REASON_MISSED = "some annotators did not mark it"


def _with_tokens(data, consensus: pd.DataFrame) -> pd.DataFrame:
    first, stop = data.tokens.covering(consensus["item"].to_numpy(), consensus["start"].to_numpy(),
                                       consensus["end"].to_numpy())
    return consensus.assign(first=first, stop=stop)


def _matches(pred: pd.DataFrame, gold: pd.DataFrame, keys: list, relaxed: bool) -> tuple[pd.Series, pd.Series]:
    """Booleans: does each pred row have a matching gold row, and each gold row a matching pred row."""
    p = pred.reset_index(drop=True)
    g = gold.reset_index(drop=True)
    on = keys + ([] if relaxed else ["first", "stop"])
    pairs = p[on + (["first", "stop"] if relaxed else [])].reset_index().merge(
        g[on + (["first", "stop"] if relaxed else [])].reset_index(), on=on, suffixes=("_p", "_g"))
    if relaxed:
        pairs = pairs[(pairs["first_p"] < pairs["stop_g"]) & (pairs["first_g"] < pairs["stop_p"])]
    hit_p = np.zeros(len(p), dtype=bool)
    hit_g = np.zeros(len(g), dtype=bool)
    hit_p[pairs["index_p"].to_numpy()] = True
    hit_g[pairs["index_g"].to_numpy()] = True
    return hit_p, hit_g


def _prf(tp_p, n_p, tp_g, n_g):
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(n_p > 0, tp_p / np.maximum(n_p, 1), np.nan)
        recall = np.where(n_g > 0, tp_g / np.maximum(n_g, 1), np.nan)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        f1 = np.where(np.isnan(precision) & np.isnan(recall), np.nan, np.nan_to_num(f1))
    return precision, recall, f1


def annotator_span_stats(data, consensus: pd.DataFrame, tags) -> pd.DataFrame:
    """Per annotator: items answered, spans, exact and relaxed span P/R/F1 against the consensus on the items
    they answered, and token agreement (share of their token tags equal to the consensus tag)."""
    m = len(data.annotator_ids)
    cons = _with_tokens(data, consensus)
    mine = data.spans.rename(columns={"annotator_code": "who"})
    theirs = cons.merge(data.pairs.rename(columns={"annotator_code": "who"}), on="item")
    keys = ["who", "item", "control", "label"]
    out = {"annotator": data.annotator_ids,
           "n_items": np.bincount(data.pairs["annotator_code"].to_numpy(), minlength=m),
           "n_spans": np.bincount(mine["who"].to_numpy(), minlength=m)}
    n_p = np.bincount(mine["who"].to_numpy(), minlength=m).astype(float)
    n_g = np.bincount(theirs["who"].to_numpy(), minlength=m).astype(float)
    for kind, relaxed in (("exact", False), ("relaxed", True)):
        hit_p, hit_g = _matches(mine, theirs, keys, relaxed)
        tp_p = np.bincount(mine["who"].to_numpy(), weights=hit_p, minlength=m)
        tp_g = np.bincount(theirs["who"].to_numpy(), weights=hit_g, minlength=m)
        for name, value in zip(("precision", "recall", "f1"), _prf(tp_p, n_p, tp_g, n_g)):
            out[f"{kind}_{name}"] = value
    agree = np.zeros(m)
    seen = np.zeros(m)
    for layer, layer_tags in zip(data.layers, tags):
        obs = layer.obs
        agree += np.bincount(obs.annotator, weights=obs.tag == layer_tags[obs.token], minlength=m)
        seen += np.bincount(obs.annotator, minlength=m)
    with np.errstate(invalid="ignore"):
        out["token_agreement"] = agree / seen
    return pd.DataFrame(out)


def pairwise_span_agreement(data, *, relaxed: bool = False) -> pd.DataFrame:
    """For every two annotators who share items: span F1 of one against the other on their shared items
    (symmetric), and how many items and spans that rests on. Items where neither marked anything are agreement
    but carry no spans; they count in ``shared_items`` only."""
    pairs = data.pairs.rename(columns={"annotator_code": "who"})
    shared = pairs.merge(pairs, on="item", suffixes=("_a", "_b"))
    shared = shared[shared["who_a"] < shared["who_b"]]
    spans = data.spans.rename(columns={"annotator_code": "who"})
    a = shared.merge(spans.rename(columns={"who": "who_a"}), on=["item", "who_a"])
    b = shared.merge(spans.rename(columns={"who": "who_b"}), on=["item", "who_b"])
    keys = ["who_a", "who_b", "item", "control", "label"]
    hit_a, hit_b = _matches(a, b, keys, relaxed)
    grouped = pd.DataFrame({"who_a": np.concatenate([a["who_a"], b["who_a"]]),
                            "who_b": np.concatenate([a["who_b"], b["who_b"]]),
                            "hit": np.concatenate([hit_a, hit_b]).astype(float)})
    counts = grouped.groupby(["who_a", "who_b"]).agg(spans=("hit", "size"), matched=("hit", "sum"))
    items = shared.groupby(["who_a", "who_b"]).size().rename("shared_items")
    table = items.to_frame().join(counts, how="left").fillna({"spans": 0, "matched": 0}).reset_index()
    with np.errstate(invalid="ignore"):
        table["f1"] = np.where(table["spans"] > 0, table["matched"] / table["spans"], np.nan)
    ids = data.annotator_ids
    return pd.DataFrame({"annotator_a": ids[table["who_a"].to_numpy()], "annotator_b": ids[table["who_b"].to_numpy()],
                         "shared_items": table["shared_items"].to_numpy(), "spans": table["spans"].astype(int),
                         "f1": table["f1"].to_numpy()})


def span_issues(data, consensus: pd.DataFrame, marginals, tags, model_tags) -> pd.DataFrame:
    """Every consensus span and every annotator span the consensus left out, with a score (low = the consensus
    is likely wrong about it: a doubtful consensus span, or a left-out span it probably should have kept),
    its support and its reason; sorted most doubtful first."""
    cons = _with_tokens(data, consensus).assign(in_consensus=True)
    ann = data.spans[["item", "control", "label", "first", "stop", "annotator_code"]]
    ann = ann[ann["stop"] > ann["first"]]
    support = ann.groupby(["item", "control", "label", "first", "stop"]).size().rename("support").reset_index()
    cand = cons[["item", "control", "label", "first", "stop", "in_consensus"]].merge(
        support, on=["item", "control", "label", "first", "stop"], how="outer")
    cand["in_consensus"] = cand["in_consensus"].eq(True)
    cand["support"] = cand["support"].fillna(0).astype(int)
    n_answered = np.bincount(data.pairs["item"].to_numpy(), minlength=data.tokens.n_items)
    cand["n_annotators"] = n_answered[cand["item"].to_numpy(dtype=np.int64)]
    # overlapping annotator spans: same label with other boundaries, or another label (same control)
    over = cand.reset_index().merge(ann, on=["item", "control"], suffixes=("", "_a"))
    over = over[(over["first_a"] < over["stop"]) & (over["first"] < over["stop_a"])]
    other_label = over[over["label_a"] != over["label"]].groupby("index")["annotator_code"].nunique()
    other_bound = over[(over["label_a"] == over["label"])
                       & ((over["first_a"] != over["first"]) | (over["stop_a"] != over["stop"]))]
    other_bound = other_bound.groupby("index")["annotator_code"].nunique()
    cand["other_label"] = other_label.reindex(cand.index, fill_value=0).to_numpy()
    cand["other_boundary"] = other_bound.reindex(cand.index, fill_value=0).to_numpy()
    score, model_agrees = _span_scores(data, cand, marginals, model_tags)
    cand["score"] = np.where(cand["in_consensus"], score, 1.0 - score)
    reason = np.full(len(cand), REASON_MISSED, dtype=object)
    everyone = cand["support"].to_numpy() >= cand["n_annotators"].to_numpy()
    reason[everyone] = ""
    model_off = (~np.isnan(model_agrees)) & (model_agrees < 0.5) & everyone
    reason[model_off] = REASON_MODEL
    reason[(cand["support"] == 1).to_numpy() & (cand["n_annotators"] > 1).to_numpy()] = REASON_ALONE
    reason[(cand["other_boundary"] > 0).to_numpy()] = REASON_BOUNDARY
    reason[(cand["other_label"] > 0).to_numpy()] = REASON_LABEL
    cand["reason"] = reason
    start, end = data.tokens.char_spans(cand["first"].to_numpy(dtype=np.int64), cand["stop"].to_numpy(dtype=np.int64))
    cand["start"], cand["end"] = start, end
    cols = ["item", "control", "start", "end", "label", "in_consensus", "support", "n_annotators", "score", "reason"]
    return cand.sort_values(["score", "item", "start"], kind="stable", ignore_index=True)[cols]


def _span_scores(data, cand: pd.DataFrame, marginals, model_tags) -> tuple[np.ndarray, np.ndarray]:
    """Mean posterior of the span's own tags (B then I of its label) over its tokens, and the share of its
    tokens whose model argmax tag equals them (NaN without a model)."""
    score = np.zeros(len(cand))
    model = np.full(len(cand), np.nan)
    layer_of = {}
    for index, layer in enumerate(data.layers):
        for k, label in enumerate(layer.labels):
            layer_of[(layer.control, label)] = (index, k)
    keys = list(zip(cand["control"], cand["label"]))
    layer_index = np.array([layer_of[k][0] for k in keys], dtype=np.int64)
    label_index = np.array([layer_of[k][1] for k in keys], dtype=np.int64)
    first = cand["first"].to_numpy(dtype=np.int64)
    length = cand["stop"].to_numpy(dtype=np.int64) - first
    for index in np.unique(layer_index):
        rows = np.flatnonzero(layer_index == index)
        run = np.repeat(rows, length[rows])
        within = np.arange(run.shape[0]) - np.repeat(np.cumsum(length[rows]) - length[rows], length[rows])
        token = first[run] + within
        tag = np.where(within == 0, 1 + 2 * label_index[run], 2 + 2 * label_index[run])
        p = marginals[index][token, tag]
        sums = np.bincount(run, weights=p, minlength=len(cand))
        score[rows] = sums[rows] / np.maximum(length[rows], 1)
        if model_tags[index] is not None:
            hits = np.bincount(run, weights=model_tags[index][token] == tag, minlength=len(cand))
            model[rows] = hits[rows] / np.maximum(length[rows], 1)
    return score, model
