"""``relabel.span_consensus``: consensus spans of several annotators and relabel's own token model.

    spans, items, annotators = relabel.span_consensus(texts, spans, answered=answered)
    result = relabel.span_consensus(texts, spans, model=None)     # annotations only
    result.issues                                                   # spans most likely wrong, with the reason

It lives in the models layer because its default uses a model; the annotation-only core is
relabel.scoring.span_consensus.consensus_spans.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from relabel.errors import ConfigError

if TYPE_CHECKING:
    from relabel.scoring.span_consensus import SpanConsensusResult

DEFAULT_SPAN_MODEL = "relabel"


def span_consensus(texts, spans, *, answered=None, model=DEFAULT_SPAN_MODEL, gold=None,
                   gold_items=None) -> SpanConsensusResult:
    """Consensus spans of several annotators (and a model) for each text.

    ``texts``: a sequence of strings. ``spans``: a DataFrame with columns item, annotator, start, end, label
    (item indexes ``texts``; character offsets, end exclusive; an optional ``control`` column keeps spans of
    different Label Studio ``<Labels>`` controls apart). ``answered``: a DataFrame with columns item, annotator
    listing every (item, annotator) that was annotated, including annotators who marked nothing there (an empty
    answer says "no entity here"); None: only pairs with a span. ``model``: ``"relabel"`` (default) adds
    relabel's out-of-fold token model (relabel.models.token_model); None uses the annotations only; a callable
    ``(texts, tokens, tags, n_states, layer) -> probs`` plugs in another model. ``gold`` (DataFrame item,
    start, end, label[, control]) and ``gold_items`` (items a reviewer decided, including ones with no span):
    reviewers' spans, which are the consensus of their items.

    Returns a SpanConsensusResult that unpacks to ``(spans, items, annotators)``: the consensus spans (item,
    start, end, label), per-item quality (low = likely wrong) and per-annotator span stats; ``.issues`` lists
    the spans most likely wrong with the reason.
    """
    # imported here so that `import relabel` stays light (pandas, scipy and scikit-learn load on first use)
    from relabel.models.token_model import OutOfFoldTokenModel
    from relabel.scoring.span_consensus import consensus_spans

    if model is None:
        token_model = None
    elif isinstance(model, str):
        if model != DEFAULT_SPAN_MODEL:
            raise ConfigError(f"span_consensus: model must be None, {DEFAULT_SPAN_MODEL!r} or a callable. Got "
                              f"{model!r}.")
        token_model = OutOfFoldTokenModel()
    elif callable(model):
        token_model = model
    else:
        raise ConfigError(f"span_consensus: model must be None, {DEFAULT_SPAN_MODEL!r} or a callable. Got "
                          f"{type(model).__name__}.")
    return consensus_spans(texts, spans, answered=answered, token_model=token_model, gold=gold,
                           gold_items=gold_items)
