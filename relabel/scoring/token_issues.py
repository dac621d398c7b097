"""Label issues in token classification (one label per token, sentences of tokens), with the names, arguments,
defaults and results of cleanlab 2.9's ``cleanlab.token_classification``:

    sentence_scores, token_scores = get_label_quality_scores(labels, pred_probs)   # "min" over token scores
    issues = issues_from_scores(sentence_scores, token_scores=token_scores)        # [(sentence, token), ...]
    issues = find_label_issues(labels, pred_probs)                                 # confident learning per token

``labels[i]`` is the list of token labels of sentence i and ``pred_probs[i]`` its (T_i x K) array. Token scores
are relabel.scoring.confident's label quality scores over all tokens at once; sentence scores are their minimum
(``sentence_score_method="min"``) or their softmin (``"softmin"``: <s, softmax((1 - s) / temperature)>,
temperature 0.05 unless ``sentence_score_kwargs`` says otherwise), computed per sentence with one
``np.*.reduceat`` over the flat scores instead of a loop.

Differences from cleanlab, on purpose: ties are ordered by position (stable sort) where cleanlab's
``np.argsort`` is unstable; ``issues_from_scores`` returns every sentence when all score below the threshold
(cleanlab 2.9 raises IndexError there); an empty sentence is refused with an InputError naming it;
``low_memory=True`` is refused (cleanlab then runs its batched estimator, which relabel does not have).
"""
from __future__ import annotations

import numpy as np

from relabel.errors import ConfigError, InputError, MethodChoiceError, preview
from relabel.scoring.confident import find_label_issues as _find_label_issues
from relabel.scoring.confident import get_label_quality_scores as _token_quality

SENTENCE_SCORE_METHODS = ("min", "softmin")
SOFTMIN_TEMPERATURE = 0.05
# cleanlab divides by max(temperature, this) so a tiny temperature does not overflow; kept for parity.
TEMPERATURE_FLOOR = 1e-6


def _flatten(labels, pred_probs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat token labels, stacked pred_probs and sentence offsets into them."""
    lengths = np.array([len(sentence) for sentence in labels], dtype=np.int64)
    if len(pred_probs) != lengths.shape[0]:
        raise InputError(f"labels has {lengths.shape[0]} sentences but pred_probs has {len(pred_probs)}; give one "
                         "(tokens x classes) array per sentence.")
    empty = np.flatnonzero(lengths == 0)
    if empty.size:
        raise InputError(f"Sentences {preview(empty.tolist())} have no tokens; drop them before scoring.")
    rows = np.array([np.shape(p)[0] if np.ndim(p) == 2 else -1 for p in pred_probs])
    wrong = np.flatnonzero(rows != lengths)
    if wrong.size:
        raise InputError(f"pred_probs of sentences {preview(wrong.tolist())} do not have one row per token label; "
                         "pred_probs[i] must be (len(labels[i]) x classes).")
    flat_labels = np.array([label for sentence in labels for label in sentence])
    flat_probs = np.concatenate([np.asarray(p) for p in pred_probs], axis=0)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    return flat_labels, flat_probs, offsets


def _softmin(scores: np.ndarray, offsets: np.ndarray, temperature: float) -> np.ndarray:
    starts = offsets[:-1]
    if temperature == 0:
        return np.minimum.reduceat(scores, starts)
    if temperature == np.inf:
        return np.add.reduceat(scores, starts) / np.diff(offsets)
    x = (1 - scores) / max(temperature, TEMPERATURE_FLOOR)
    sentence = np.repeat(np.arange(starts.shape[0]), np.diff(offsets))
    weights = np.exp(x - np.maximum.reduceat(x, starts)[sentence])
    weights /= np.add.reduceat(weights, starts)[sentence]
    return np.add.reduceat(scores * weights, starts)


def get_label_quality_scores(labels, pred_probs, *, tokens=None, token_score_method: str = "self_confidence",
                             sentence_score_method: str = "min", sentence_score_kwargs: dict | None = None):
    """(sentence_scores, token_scores): an (N,) array of sentence scores in [0, 1] (low = likely has a
    mislabelled token) and a list of pandas Series of token scores (indexed by ``tokens[i]`` when given)."""
    import pandas as pd

    if sentence_score_method not in SENTENCE_SCORE_METHODS:
        # cleanlab raises AssertionError here with "Select from the following methods:"; the drop-in keeps both
        raise MethodChoiceError(f"sentence_score_method must be one of {', '.join(SENTENCE_SCORE_METHODS)} (Select "
                                f"from the following methods: {', '.join(SENTENCE_SCORE_METHODS)}). Got "
                                f"{sentence_score_method!r}.")
    flat_labels, flat_probs, offsets = _flatten(labels, pred_probs)
    scores = _token_quality(flat_labels, flat_probs, method=token_score_method)
    if sentence_score_method == "min":
        sentence_scores = np.minimum.reduceat(scores, offsets[:-1])
    else:
        temperature = (sentence_score_kwargs or {}).get("temperature", SOFTMIN_TEMPERATURE)
        sentence_scores = _softmin(scores, offsets, temperature)
    pieces = np.split(scores, offsets[1:-1])
    if tokens:
        token_scores = [pd.Series(piece, index=names) for piece, names in zip(pieces, tokens)]
    else:
        token_scores = [pd.Series(piece) for piece in pieces]
    return sentence_scores, token_scores


def issues_from_scores(sentence_scores, *, token_scores=None, threshold: float = 0.1):
    """With ``token_scores``: the (sentence, token) pairs scoring below ``threshold``, lowest first. Without:
    the indices of the sentences scoring below it, lowest first (an array)."""
    if token_scores:
        lengths = np.array([len(s) for s in token_scores], dtype=np.int64)
        flat = np.concatenate([np.asarray(s, dtype=float) for s in token_scores]) if lengths.sum() else np.zeros(0)
        below = np.flatnonzero(flat < threshold)
        below = below[np.argsort(flat[below], kind="stable")]
        sentence = np.repeat(np.arange(lengths.shape[0]), lengths)
        position = np.arange(flat.shape[0]) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return [(int(i), int(j)) for i, j in zip(sentence[below], position[below])]
    scores = np.asarray(sentence_scores)
    ranking = np.argsort(scores, kind="stable")
    return ranking[:int(np.count_nonzero(scores < threshold))]


def find_label_issues(labels, pred_probs, *, return_indices_ranked_by: str = "self_confidence",
                      low_memory: bool = False, **kwargs) -> list:
    """The (sentence, token) pairs confident learning flags over all tokens at once, ranked by token label
    quality (lowest first). ``kwargs`` go to relabel.scoring.confident.find_label_issues."""
    if low_memory:
        raise ConfigError("find_label_issues: low_memory=True is not supported (relabel has no batched "
                          "estimator); the default path is vectorised, leave low_memory=False.")
    flat_labels, flat_probs, offsets = _flatten(labels, pred_probs)
    flagged = np.asarray(_find_label_issues(flat_labels, flat_probs,
                                            return_indices_ranked_by=return_indices_ranked_by, **kwargs))
    sentence = np.searchsorted(offsets, flagged, side="right") - 1
    return [(int(i), int(j)) for i, j in zip(sentence, flagged - offsets[sentence])]
