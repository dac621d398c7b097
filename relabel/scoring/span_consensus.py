"""Consensus spans from several annotators (and optionally a token model): the scoring core of span projects.

    result = consensus_spans(texts, spans, answered=answered)       # annotations only
    result.spans          # DataFrame item, [control,] start, end, label: the consensus
    result.items          # DataFrame per item: quality (low = likely wrong), n_annotators, n_spans
    result.annotators     # DataFrame per annotator: exact and relaxed span P/R/F1 against the consensus, ...
    result.issues         # DataFrame of the spans most likely wrong, each with its reason
    result.pairwise       # DataFrame per annotator pair: shared items, exact and relaxed span F1 between them
    spans, items, annotators = result                                 # unpacks too

Steps: tokenise each text once (relabel.scoring.spans), paint every answered (item, annotator) pair's spans as
BIO tags per layer (span_input), aggregate the tags with Dawid-Skene (span_em), decode and map the tag runs back
to character spans (token boundaries: first token's start, last token's end).

``method`` chooses the aggregation; all three learn one confusion matrix per annotator:

* ``"factorized"`` (default): two token-wise Dawid-Skene runs, one over inside/outside per label (IO: is this
  token in a span of label l?) and one over the BIO tags; the IO run decides whether a token is in a span and
  of which label, the BIO run only where a new span starts inside a run (P(B) against P(I)). Then the valid
  BIO sequence with the largest sum of log marginals is decoded (Viterbi with O -> I forbidden). Why: the IO
  confusion matrix has (L+1)^2 cells, so a worker's miss and false-alarm rates are estimated from all their
  tokens instead of being split between B and I, which on PICO gives fewer false spans (relaxed precision
  0.78 against 0.74) while the BIO split keeps the boundaries.
* ``"chain"``: the BIO tags with a Markov chain over the true tags (HMM-Crowd's model without its neural part),
  forward-backward and Viterbi. On PICO it finds more gold spans but many more false ones (one worker's long
  false span counts as many independent token votes), so it is not the default; see benchmarks/spans.py.
* ``"token"``: plain token-wise Dawid-Skene over the BIO tags, per-token argmax (the baseline).

With ``token_model`` (a callable, see relabel.models.token_model) a second run adds the model's out-of-fold tag
probabilities (trained on the first run's consensus) as one more annotator with its own confusion matrix.
Reviewers' spans (``gold``) clamp their items' tags in every run.

Item quality is the posterior probability that every token tag of the item's consensus is right, taking
tokens as independent: prod_t P(tag_t) over the item's tokens and layers. It is what "this item's consensus
has no error" means, and it is lower for long items with several doubtful tokens, unlike the single worst token.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from relabel.errors import ConfigError
from relabel.scoring.span_em import (
    combine_io_bio,
    constrained_decode,
    io_observations,
    io_probs,
    io_tags,
    tag_dawid_skene,
)
from relabel.scoring.span_input import encode
from relabel.scoring.span_quality import (
    annotator_span_stats,
    pairwise_span_agreement,
    span_issues,
)
from relabel.scoring.spans import tag_runs, tokenize

# Token posteriors are floored here before the log of the item quality: one certain-wrong token should not
# make log(0) and hide how doubtful the rest of the item is.
QUALITY_FLOOR = 1e-12
METHODS = ("factorized", "chain", "token")


@dataclass(frozen=True)
class SpanConsensusResult:
    spans: pd.DataFrame
    items: pd.DataFrame
    annotators: pd.DataFrame
    issues: pd.DataFrame
    pairwise: pd.DataFrame = field(repr=False, default=None)          # annotator pairs: exact and relaxed F1
    token_marginals: list = field(repr=False, default_factory=list)   # per layer (n_tokens x S)
    token_tags: list = field(repr=False, default_factory=list)        # per layer (n_tokens,)
    layers: list = field(repr=False, default_factory=list)            # per layer (control, labels)
    model_used: bool = False

    def __iter__(self):
        return iter((self.spans, self.items, self.annotators))


def consensus_spans(texts, spans, *, answered=None, token_model=None, gold=None, gold_items=None,
                    method: str = "factorized", tokens=None) -> SpanConsensusResult:
    """Consensus spans, item quality, annotator stats and span issues; see the module docstring.

    ``token_model(texts, tokens, tags, n_states, layer_index)`` returns out-of-fold tag probabilities
    (n_tokens x S) given the annotation-only consensus tags; None: annotations only.
    ``method``: "factorized" (default), "chain" or "token" (plain token-wise Dawid-Skene, the baseline); see
    the module docstring.
    """
    if method not in METHODS:
        raise ConfigError(f"span consensus method must be one of {', '.join(METHODS)}. Got {method!r}.")
    texts = list(texts)
    tokens = tokenize(texts) if tokens is None else tokens
    data = encode(texts, spans, tokens, answered=answered, gold=gold, gold_items=gold_items)
    marginals, tags, model_tags = [], [], []
    for index, layer in enumerate(data.layers):
        post, layer_tags = fit_layer(layer, tokens.offsets, method)
        model_tag = None
        if token_model is not None and tokens.n_tokens:
            probs = np.asarray(token_model(texts, tokens, layer_tags, layer.n_states, index), dtype=float)
            post, layer_tags = fit_layer(layer, tokens.offsets, method, probs)
            model_tag = probs.argmax(axis=1)
        marginals.append(post)
        tags.append(layer_tags)
        model_tags.append(model_tag)
    consensus = _spans_frame(data, tags)
    items = _item_table(data, marginals, tags, consensus)
    annotators = annotator_span_stats(data, consensus, tags)
    issues = span_issues(data, consensus, marginals, tags, model_tags)
    pairwise = pairwise_span_agreement(data).rename(columns={"f1": "exact_f1"})
    pairwise["relaxed_f1"] = pairwise_span_agreement(data, relaxed=True)["f1"].to_numpy()
    if not data.has_control:
        consensus = consensus.drop(columns="control")
        issues = issues.drop(columns="control")
    return SpanConsensusResult(consensus, items, annotators, issues, pairwise, marginals, tags,
                               [(layer.control, layer.labels) for layer in data.layers],
                               token_model is not None)


def fit_layer(layer, offsets, method: str, model_probs=None) -> tuple[np.ndarray, np.ndarray]:
    """(BIO marginals, decoded tags) of one layer by ``method``."""
    if method == "token":
        fit = tag_dawid_skene(layer.obs, offsets, sequential=False, clamp=layer.clamp, model_probs=model_probs)
        return fit.marginals, fit.tags
    if method == "chain":
        fit = tag_dawid_skene(layer.obs, offsets, sequential=True, clamp=layer.clamp, model_probs=model_probs)
        return fit.marginals, fit.tags
    bio = tag_dawid_skene(layer.obs, offsets, sequential=False, clamp=layer.clamp, model_probs=model_probs)
    io = tag_dawid_skene(io_observations(layer.obs), offsets, sequential=False,
                         clamp=None if layer.clamp is None else np.where(layer.clamp >= 0, io_tags(layer.clamp), -1),
                         model_probs=None if model_probs is None else io_probs(model_probs))
    post = combine_io_bio(io.marginals, bio.marginals)
    return post, constrained_decode(post, offsets)


def _spans_frame(data, tags) -> pd.DataFrame:
    tokens = data.tokens
    parts = []
    for layer, layer_tags in zip(data.layers, tags):
        first, stop, label = tag_runs(layer_tags, tokens.item)
        start, end = tokens.char_spans(first, stop)
        parts.append(pd.DataFrame({"item": tokens.item[first], "control": layer.control, "start": start,
                                   "end": end, "label": np.asarray(layer.labels, dtype=object)[label]
                                   if len(first) else np.array([], dtype=object),
                                   "first": first, "stop": stop}))
    if not parts:
        return pd.DataFrame({"item": pd.Series(dtype=np.int64), "control": pd.Series(dtype=object),
                             "start": pd.Series(dtype=np.int64), "end": pd.Series(dtype=np.int64),
                             "label": pd.Series(dtype=object)})
    frame = pd.concat(parts, ignore_index=True).sort_values(["item", "start", "end", "control", "label"],
                                                            ignore_index=True)
    return frame[["item", "control", "start", "end", "label"]]


def item_log_quality(tokens, marginals, tags) -> np.ndarray:
    """Per item, sum over its tokens and layers of log P(consensus tag) (log of the quality)."""
    total = np.zeros(tokens.n_items)
    for post, layer_tags in zip(marginals, tags):
        p = np.maximum(post[np.arange(post.shape[0]), layer_tags], QUALITY_FLOOR)
        total += np.bincount(tokens.item, weights=np.log(p), minlength=tokens.n_items)
    return total


def _item_table(data, marginals, tags, consensus) -> pd.DataFrame:
    tokens = data.tokens
    quality = np.exp(item_log_quality(tokens, marginals, tags))
    worst = np.ones(tokens.n_items)
    for post, layer_tags in zip(marginals, tags):
        p = post[np.arange(post.shape[0]), layer_tags]
        np.minimum.at(worst, tokens.item, p)
    n_annotators = np.bincount(data.pairs["item"].to_numpy(), minlength=tokens.n_items)
    n_spans = np.bincount(consensus["item"].to_numpy(dtype=np.int64), minlength=tokens.n_items)
    reviewed = np.zeros(tokens.n_items, dtype=bool)
    reviewed[data.gold_items] = True
    return pd.DataFrame({"item": np.arange(tokens.n_items), "quality": quality, "worst_token": worst,
                         "n_annotators": n_annotators, "n_spans": n_spans, "reviewed": reviewed})
