"""Checking and encoding span annotations: the long table (item, annotator, [control,] start, end, label) as one
observation table of BIO tags per layer.

A *layer* is what gets one tag per token. Each ``control`` (Label Studio ``<Labels>`` tag; one control when the
column is absent) is one layer whose tags cover all its labels, so EM learns which labels an annotator confuses.
When an annotator gives overlapping or nested spans with different labels inside one control (``choice=
"multiple"``, or nested labels), one tag per token cannot hold them: that control is then scored as one layer
per label. Spans from different controls never interact.

Bad input raises :class:`relabel.errors.SpanError` with one line naming the item, annotator and the fix:
spans past the end of their text, start >= end, an empty label, an item index outside ``texts``. One annotator's
overlapping spans of one label in one control are merged into their union with a warning (real crowd data
has them).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from relabel.errors import SpanError, preview
from relabel.scoring.span_em import Observations
from relabel.scoring.spans import Tokens, n_states, paint_tags


class SpanOverlapWarning(UserWarning):
    """Overlapping spans of one annotator and label were merged into one."""


SPAN_COLUMNS = ("item", "annotator", "start", "end", "label")


@dataclass(frozen=True)
class Layer:
    control: object                 # the control name (None when the spans had no control column)
    labels: tuple                   # label names, in tag order
    obs: Observations               # every answered (item, annotator) pair's tags over the item's tokens
    clamp: np.ndarray | None        # reviewed tokens' tags, -1 elsewhere (None: nothing reviewed)

    @property
    def n_states(self) -> int:
        return n_states(len(self.labels))


@dataclass(frozen=True)
class SpanInput:
    spans: pd.DataFrame             # checked spans, with integer 'annotator_code', 'first' and 'stop' token rows
    pairs: pd.DataFrame             # answered (item, annotator_code)
    annotator_ids: np.ndarray
    layers: list
    tokens: Tokens
    has_control: bool
    gold_items: np.ndarray          # items a reviewer decided


def check_spans(texts, spans, *, what: str = "spans", need_annotator: bool = True) -> pd.DataFrame:
    """The spans as a clean frame (integer item/start/end, string label), or a one-line SpanError."""
    if not isinstance(spans, pd.DataFrame):
        raise SpanError(f"{what} must be a pandas DataFrame with columns {', '.join(SPAN_COLUMNS)}.")
    need = [c for c in SPAN_COLUMNS if need_annotator or c != "annotator"]
    missing = [c for c in need if c not in spans.columns]
    if missing:
        raise SpanError(f"{what} has no column {', '.join(missing)}; it needs {', '.join(need)}.")
    cols = need + (["control"] if "control" in spans.columns else [])
    frame = spans[cols].copy()
    if frame["label"].isna().any() or (frame["label"].astype(str).str.strip() == "").any():
        bad = frame[frame["label"].isna() | (frame["label"].astype(str).str.strip() == "")]
        raise SpanError(f"{what}: a span of item {_where(bad)} has an empty label; give every span a label or "
                        "drop the span.")
    for col in ("item", "start", "end"):
        if frame[col].isna().any() or not np.all(np.mod(frame[col].to_numpy(dtype=float), 1) == 0):
            raise SpanError(f"{what}: column {col} must hold whole numbers (character offsets, item indexes).")
        frame[col] = frame[col].astype(np.int64)
    n = len(texts)
    out = frame[(frame["item"] < 0) | (frame["item"] >= n)]
    if len(out):
        raise SpanError(f"{what}: items {preview(out['item'].unique().tolist())} are not indexes of texts "
                        f"(0..{n - 1}); item i must be the position of its text in texts.")
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    past = frame[frame["end"].to_numpy() > lengths[frame["item"].to_numpy()]]
    if len(past):
        row = past.iloc[0]
        raise SpanError(f"{what}: span [{row['start']}, {row['end']}) of item {_where(past)} ends past the end of "
                        f"its text ({lengths[row['item']]} characters): the text changed after annotation or "
                        "the span belongs to another text; re-annotate the item or drop the span.")
    empty = frame[(frame["start"] < 0) | (frame["start"] >= frame["end"])]
    if len(empty):
        row = empty.iloc[0]
        raise SpanError(f"{what}: span [{row['start']}, {row['end']}) of item {_where(empty)} is empty or "
                        "negative; a span needs 0 <= start < end.")
    frame["label"] = frame["label"].astype(str)
    return frame.drop_duplicates(ignore_index=True)


def _where(bad: pd.DataFrame) -> str:
    row = bad.iloc[0]
    who = f" (annotator {row['annotator']!r})" if "annotator" in bad.columns else ""
    return f"{row['item']}{who}"


def _overlaps(frame: pd.DataFrame, keys: list) -> pd.DataFrame:
    """Rows whose span overlaps an earlier span (by start) of the same keys."""
    if frame.empty:
        return frame
    ordered = frame.sort_values(keys + ["start", "end"], kind="stable")
    reach = ordered.groupby(keys, sort=False, dropna=False)["end"].cummax()
    prev_reach = reach.groupby([ordered[k] for k in keys], sort=False, dropna=False).shift(1)
    return ordered[ordered["start"] < prev_reach]


def merge_overlaps(frame: pd.DataFrame) -> pd.DataFrame:
    """One annotator's overlapping spans of one label in one control, merged into their union, with a one-line
    warning naming the items (real crowd data has them, e.g. a worker who marked a phrase and then the sentence
    around it; one tag per token cannot hold both, and the union keeps every character they marked)."""
    keys = ["item", "annotator", "control", "label"]
    bad = _overlaps(frame, keys)
    if bad.empty:
        return frame
    warnings.warn(f"spans: {len(bad)} spans overlap another span of the same annotator and label (first: annotator "
                  f"{bad.iloc[0]['annotator']!r} on item {bad.iloc[0]['item']}, items "
                  f"{preview(sorted(bad['item'].unique().tolist()))}); each such group is scored as one span, "
                  "their union.", SpanOverlapWarning, stacklevel=3)
    ordered = frame.sort_values(keys + ["start", "end"], kind="stable", ignore_index=True)
    reach = ordered.groupby(keys, sort=False)["end"].cummax()
    prev_reach = reach.groupby([ordered[k] for k in keys], sort=False).shift(1)
    group = (~(ordered["start"] < prev_reach)).cumsum()
    merged = ordered.groupby(group, sort=False).agg(
        {**{k: "first" for k in keys}, "start": "min", "end": "max"}).reset_index(drop=True)
    return merged[frame.columns]


def encode(texts, spans, tokens: Tokens, *, answered=None, gold=None, gold_items=None) -> SpanInput:
    frame = check_spans(texts, spans)
    has_control = "control" in frame.columns
    if not has_control:
        frame["control"] = ""
    frame["control"] = frame["control"].fillna("").astype(str)
    frame = merge_overlaps(frame)
    split_controls = set(_overlaps(frame, ["item", "annotator", "control"])["control"].unique())
    if gold is not None:
        gold_frame = check_spans(texts, gold, what="gold", need_annotator=False)
        if "control" not in gold_frame.columns:
            gold_frame["control"] = ""
        gold_frame["control"] = gold_frame["control"].fillna("").astype(str)
        split_controls |= set(_overlaps(gold_frame, ["item", "control"])["control"].unique())
    else:
        gold_frame = frame.iloc[:0][["item", "start", "end", "label", "control"]]
    decided = np.unique(np.concatenate([np.asarray(gold_items if gold_items is not None else [], dtype=np.int64),
                                        gold_frame["item"].to_numpy(dtype=np.int64)]))

    pair_frame = frame[["item", "annotator"]]
    if answered is not None:
        if not isinstance(answered, pd.DataFrame) or {"item", "annotator"} - set(answered.columns):
            raise SpanError("answered must be a DataFrame with columns item and annotator (every annotated pair).")
        bad = answered[(answered["item"] < 0) | (answered["item"] >= len(texts))]
        if len(bad):
            raise SpanError(f"answered: items {preview(bad['item'].unique().tolist())} are not indexes of texts.")
        pair_frame = pd.concat([pair_frame, answered[["item", "annotator"]]], ignore_index=True)
    annotator_ids, pair_codes = np.unique(pair_frame["annotator"].astype(object).to_numpy(), return_inverse=True)
    pairs = pd.DataFrame({"item": pair_frame["item"].to_numpy(dtype=np.int64), "annotator_code": pair_codes})
    pairs = pairs.drop_duplicates().sort_values(["item", "annotator_code"], ignore_index=True)
    frame["annotator_code"] = np.searchsorted(annotator_ids, frame["annotator"].astype(object).to_numpy())
    frame["first"], frame["stop"] = tokens.covering(frame["item"].to_numpy(), frame["start"].to_numpy(),
                                                    frame["end"].to_numpy())
    gold_first, gold_stop = tokens.covering(gold_frame["item"].to_numpy(), gold_frame["start"].to_numpy(),
                                            gold_frame["end"].to_numpy())
    gold_frame = gold_frame.assign(first=gold_first, stop=gold_stop)

    layers = []
    for control in sorted(set(frame["control"]) | set(gold_frame["control"])):
        labels = sorted(set(frame.loc[frame["control"] == control, "label"])
                        | set(gold_frame.loc[gold_frame["control"] == control, "label"]))
        groups = [[label] for label in labels] if control in split_controls else [labels]
        for group in groups:
            layers.append(_layer(control, tuple(group), frame, gold_frame, pairs, tokens, decided,
                                 len(annotator_ids)))
    return SpanInput(frame, pairs, annotator_ids, layers, tokens, has_control, decided)


def _layer(control, labels, frame, gold_frame, pairs, tokens: Tokens, decided, n_annotators) -> Layer:
    code = {label: k for k, label in enumerate(labels)}
    mine = frame[(frame["control"] == control) & frame["label"].isin(labels)]
    pair_item = pairs["item"].to_numpy()
    pair_len = tokens.lengths[pair_item]
    pair_row = np.concatenate(([0], np.cumsum(pair_len)))
    n_obs = int(pair_row[-1])
    within = np.arange(n_obs) - np.repeat(pair_row[:-1], pair_len)
    token = np.repeat(tokens.offsets[:-1][pair_item], pair_len) + within
    annotator = np.repeat(pairs["annotator_code"].to_numpy(), pair_len)
    # each span's pair: pairs are sorted by (item, annotator_code), so a searchsorted on the combined key
    key = pair_item * max(n_annotators, 1) + pairs["annotator_code"].to_numpy()
    span_pair = np.searchsorted(key, mine["item"].to_numpy() * max(n_annotators, 1) + mine["annotator_code"].to_numpy())
    base = pair_row[:-1][span_pair] - tokens.offsets[:-1][mine["item"].to_numpy()]
    tag = paint_tags(n_obs, base + mine["first"].to_numpy(), base + mine["stop"].to_numpy(),
                     mine["label"].map(code).to_numpy(dtype=np.int64))
    obs = Observations(token, annotator, tag, n_annotators, n_states(len(labels)))
    clamp = None
    if decided.size:
        clamp = np.full(tokens.n_tokens, -1, dtype=np.int64)
        rows = np.concatenate([np.arange(tokens.offsets[i], tokens.offsets[i + 1]) for i in decided])
        clamp[rows] = 0
        g = gold_frame[(gold_frame["control"] == control) & gold_frame["label"].isin(labels)]
        painted = paint_tags(tokens.n_tokens, g["first"].to_numpy(), g["stop"].to_numpy(),
                             g["label"].map(code).to_numpy(dtype=np.int64))
        clamp[rows] = painted[rows]
    return Layer(control, labels, obs, clamp)
