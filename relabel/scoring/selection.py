"""Which items go to review this round, and why (numpy only).

The lowest-quality labelled items, up to the budget, skipping items a reviewer already decided and items
already waiting in review. Each gets a reason a person can read and the suggested label (the consensus):
"annotators split 2-1 (sport, politics); model says 'sport' 0.91; quality 0.23".
Unlabelled items are never review candidates: they need a first label, not a review (ActiveLab's scores for
them are recorded by the round for "label next").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from relabel.errors import ConfigError, InputError, preview


@dataclass(frozen=True)
class Selection:
    """The items to review, in review order (ascending quality, ties in item order)."""

    index: np.ndarray        # positions into the scored items
    quality: np.ndarray      # their quality scores
    suggested: np.ndarray    # suggested class index (the consensus label)
    reasons: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.index.shape[0])


def select_for_review(quality, consensus, vote_counts, model_label, model_prob, classes, budget: int, *,
                      reviewed=None, waiting=None, label_issue=None, requeue=None) -> Selection:
    """Pick up to ``budget`` items to review, lowest quality first.

    ``quality``, ``consensus`` (class index, -1 = unlabelled), ``vote_counts`` (N x K annotator votes),
    ``model_label`` and ``model_prob`` (the model's top class and its probability) describe the N scored
    items; ``reviewed``, ``waiting``, ``label_issue`` and ``requeue`` are optional boolean masks. Items with consensus -1 (no label) are never selected.
    ``requeue`` items (skipped or disputed in review, so still undecided) come first, lowest quality first.

    >>> s = select_for_review([0.9, 0.2], [0, 1], [[2, 0], [1, 1]], [0, 0], [0.9, 0.7], ("a", "b"), 5)
    >>> s.index.tolist(), s.reasons[0]
    ([1, 0], "annotators split 1-1 (a, b); model says 'a' 0.70; quality 0.20")
    """
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget <= 0:
        raise ConfigError(f"The 'budget' setting must be a positive integer. Got {budget!r}.")
    classes = tuple(classes)
    consensus = np.asarray(consensus)
    n = consensus.shape[0]
    quality = _vector("quality", quality, n, float)
    model_label = _vector("model_label", model_label, n, np.intp)
    model_prob = _vector("model_prob", model_prob, n, float)
    if n and (model_label.min() < 0 or model_label.max() >= len(classes)):
        raise InputError(f"model_label must be class indices 0..{len(classes) - 1}; got "
                         f"{preview(np.unique(model_label[(model_label < 0) | (model_label >= len(classes))]))}.")
    votes = np.asarray(vote_counts)
    if votes.shape != (n, len(classes)):
        raise InputError(f"vote_counts must have shape ({n}, {len(classes)}) (items x classes); got {votes.shape}.")
    if consensus.ndim != 1 or not np.issubdtype(consensus.dtype, np.integer) or \
            (consensus.size and (consensus.min() < -1 or consensus.max() >= len(classes))):
        raise InputError(f"consensus must be class indices 0..{len(classes) - 1} (or -1 for unlabelled items).")
    labelled = consensus >= 0
    bad = labelled & ~np.isfinite(quality)
    if bad.any():
        raise InputError(f"quality is NaN or infinite for labelled items at positions {preview(np.flatnonzero(bad))}; "
                         "score every labelled item before selecting.")
    masks = [_vector(name, m, n, bool) if m is not None else np.zeros(n, bool)
             for name, m in (("reviewed", reviewed), ("waiting", waiting), ("label_issue", label_issue),
                             ("requeue", requeue))]
    return _compute_selection(quality, consensus, votes, model_label, model_prob, classes, int(budget), *masks)


def _compute_selection(quality, consensus, votes, model_label, model_prob, classes, budget,
                       reviewed, waiting, label_issue, requeue) -> Selection:
    candidates = np.flatnonzero((consensus >= 0) & ~reviewed & ~waiting)
    # Stable sort over candidates already in item order: equal qualities keep item order, so a round that
    # is re-run on the same scores picks exactly the same items (push relies on that to stay idempotent).
    # Requeued items first: a reviewer already looked and left them undecided, so they are owed an answer.
    order = candidates[np.lexsort((quality[candidates], ~requeue[candidates]))][:budget]
    reasons = tuple(_reason(votes[i], model_label[i], model_prob[i], quality[i], bool(label_issue[i]), classes)
                    for i in order)
    return Selection(index=order, quality=quality[order], suggested=consensus[order], reasons=reasons)


def describe_items(index, quality, consensus, vote_counts, model_label, model_prob, classes, label_issue=None
                   ) -> Selection:
    """The same reasons and suggestions for items chosen another way (the audit sample), so that a reviewer
    cannot tell them from the ranked ones. ``vote_counts`` needs the rows of ``index`` only."""
    index = np.asarray(index, dtype=np.intp)
    quality, consensus = np.asarray(quality, dtype=float), np.asarray(consensus)
    votes, model_label, model_prob = np.asarray(vote_counts), np.asarray(model_label), np.asarray(model_prob)
    issue = np.zeros(consensus.shape[0], bool) if label_issue is None else np.asarray(label_issue, bool)
    reasons = tuple(_reason(votes[i], model_label[i], model_prob[i], quality[i], bool(issue[i]), tuple(classes))
                    for i in index)
    return Selection(index=index, quality=quality[index], suggested=consensus[index], reasons=reasons)


def _reason(votes: np.ndarray, model_label: int, model_prob: float, quality: float, issue: bool, classes) -> str:
    """'annotators split 2-1 (sport, politics); model says 'sport' 0.91; quality 0.23'."""
    given = np.flatnonzero(votes)
    # Most-voted classes first; equal votes in class order (stable).
    given = given[np.argsort(-votes[given], kind="stable")]
    total = int(votes.sum())
    if total == 1:
        crowd = f"one annotator says '{classes[given[0]]}'"
    elif given.size == 1:
        crowd = f"all {total} annotators say '{classes[given[0]]}'"
    else:
        crowd = ("annotators split " + "-".join(str(int(votes[k])) for k in given)
                 + " (" + ", ".join(classes[k] for k in given) + ")")
    parts = [crowd, f"model says '{classes[model_label]}' {model_prob:.2f}"]
    if issue:
        parts.append("flagged by confident learning")
    parts.append(f"quality {quality:.2f}")
    return "; ".join(parts)


def _vector(name: str, value, n: int, dtype) -> np.ndarray:
    arr = np.asarray(value, dtype=dtype)
    if arr.shape != (n,):
        raise InputError(f"{name} must have one entry per item ({n}); got shape {arr.shape}.")
    return arr


def data_issue_reason(kind: str, score: float, partner: str | None = None, partner_label: str | None = None,
                      own_label: str | None = None) -> str:
    """What the review panel says about a data issue (relabel/scoring/data_issues.py): a conflicting duplicate
    names the other task and its label; an outlier says it is unlike the rest."""
    if kind == "conflicting_duplicate":
        return (f"possible duplicate of task {partner}, labelled {partner_label} there (labelled {own_label} here): "
                "one of the two labels is wrong, or the item is bad data")
    return (f"unlike any other item in the project (outlier score {score:.3f}): out of scope or bad data? "
            "Flag it to leave it out of scoring")
