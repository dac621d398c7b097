"""Spans <-> tokens: one tokenisation per item with character offsets, BIO tags per layer, span matching.

    tokens = tokenize(texts)                         # flat arrays over every item's tokens
    first, stop = tokens.covering(item, start, end)  # the tokens each character span touches
    spans = tokens.tags_to_spans(tags, layer_labels) # decoded tags back to character spans

The tokenizer is the regex ``\\w+|[^\\w\\s]``: runs of word characters, and every other non-space character on
its own. Why this one: it keeps exact character offsets (Label Studio spans are character offsets), it needs
no model or download, it is the same for every annotator, whitespace is never inside a token (so boundaries that
differ by spaces map to the same tokens) and punctuation is its own token (so a span that does or does not take
the trailing full stop differs by one token, never splits the word it ends on). A span covers every token it
overlaps by at least one character, so a boundary in the middle of a word extends to the word.

Tags of a layer with L labels: 0 = O, 1 + 2l = B-label_l, 2 + 2l = I-label_l (S = 2L + 1 states).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class Tokens:
    """Every item's tokens as flat arrays: token r of item i is row ``offsets[i] + r``."""

    offsets: np.ndarray   # (n_items + 1,) int64
    start: np.ndarray     # (n_tokens,) character start
    end: np.ndarray       # (n_tokens,) character end (exclusive)
    item: np.ndarray      # (n_tokens,) item of each token
    stride: int           # larger than every text length: item * stride + position orders all tokens

    @property
    def n_items(self) -> int:
        return self.offsets.shape[0] - 1

    @property
    def n_tokens(self) -> int:
        return self.start.shape[0]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def covering(self, item, start, end) -> tuple[np.ndarray, np.ndarray]:
        """The global token rows [first, stop) each character span [start, end) of ``item`` overlaps.

        A span touching no token (only whitespace) gets first == stop.
        """
        item = np.asarray(item, dtype=np.int64)
        base = item * self.stride
        first = np.searchsorted(self.item * self.stride + self.end, base + np.asarray(start), side="right")
        stop = np.searchsorted(self.item * self.stride + self.start, base + np.asarray(end), side="left")
        return first, np.maximum(stop, first)

    def char_spans(self, first, stop) -> tuple[np.ndarray, np.ndarray]:
        """Character [start, end) of the token runs [first, stop)."""
        first = np.asarray(first, dtype=np.int64)
        stop = np.asarray(stop, dtype=np.int64)
        return self.start[first], self.end[stop - 1]


def tokenize(texts) -> Tokens:
    """Tokenise every text once (see the module docstring for the rule and why)."""
    starts, ends, lengths = [], [], []
    longest = 1
    for text in texts:
        found = [(m.start(), m.end()) for m in TOKEN_PATTERN.finditer(text)]
        lengths.append(len(found))
        longest = max(longest, len(text) + 1)
        if found:
            s, e = zip(*found)
            starts.extend(s)
            ends.extend(e)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    item = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    return Tokens(offsets, np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64), item, longest)


def n_states(n_labels: int) -> int:
    return 2 * n_labels + 1


def paint_tags(n_rows: int, row_first: np.ndarray, row_stop: np.ndarray, label: np.ndarray) -> np.ndarray:
    """A tag per row: O everywhere, then B-label at each run's first row and I-label on the rest of the run.

    Runs of one annotator on one item must not overlap (checked before); a later run wins a shared row.
    """
    tags = np.zeros(n_rows, dtype=np.int64)
    lengths = row_stop - row_first
    keep = lengths > 0
    row_first, lengths, label = row_first[keep], lengths[keep], label[keep]
    run = np.repeat(np.arange(row_first.shape[0]), lengths)
    within = np.arange(run.shape[0]) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    tags[row_first[run] + within] = np.where(within == 0, 1 + 2 * label[run], 2 + 2 * label[run])
    return tags


def tag_runs(tags: np.ndarray, token_item: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spans of a tag sequence over flat token rows: (first row, stop row, label index) per run.

    A run starts at a B, or at an I that does not continue a run of the same label on the same item (the
    lenient reading conlleval uses, so per-token argmax baselines decode too); it continues over I of its label.
    """
    tags = np.asarray(tags, dtype=np.int64)
    n = tags.shape[0]
    label = np.where(tags > 0, (tags - 1) // 2, -1)
    inside = (tags > 0) & (tags % 2 == 0)
    prev_label = np.concatenate(([-1], label[:-1]))
    prev_item = np.concatenate(([-1], token_item[:-1]))
    continues = inside & (prev_label == label) & (prev_item == token_item)
    starts = np.flatnonzero((tags > 0) & ~continues)
    # a run ends before the first row after its start that does not continue it
    breaks = np.flatnonzero(~continues)
    stop_index = np.searchsorted(breaks, starts, side="right")
    stops = np.where(stop_index < breaks.shape[0], breaks[np.minimum(stop_index, breaks.shape[0] - 1)], n)
    return starts, stops, label[starts]


def match_spans(pred, gold, *, relaxed: bool = False, keys=("item", "label")) -> dict:
    """Span precision, recall and F1 of ``pred`` against ``gold`` (DataFrames with item, start, end, label).

    Exact: a span counts when the other set has one with the same keys, start and end. Relaxed: when the other
    set has one with the same keys that overlaps it by at least one character. Independent of row order;
    duplicates count once.
    """
    cols = list(keys) + ["start", "end"]
    p = pred[cols].drop_duplicates()
    g = gold[cols].drop_duplicates()
    if relaxed:
        pairs = p.reset_index(drop=True).reset_index().merge(
            g.reset_index(drop=True).reset_index(), on=list(keys), suffixes=("_p", "_g"))
        hit = (pairs["start_p"] < pairs["end_g"]) & (pairs["start_g"] < pairs["end_p"])
        tp_p = pairs.loc[hit, "index_p"].nunique()
        tp_g = pairs.loc[hit, "index_g"].nunique()
    else:
        tp_p = tp_g = len(p.merge(g, on=cols))
    precision = tp_p / len(p) if len(p) else float("nan")
    recall = tp_g / len(g) if len(g) else float("nan")
    f1 = (2 * precision * recall / (precision + recall)) if precision + recall > 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "n_pred": len(p), "n_gold": len(g)}
