"""Out-of-fold per-class probabilities for a multi-label project (issue 24): one-vs-rest logistic regression on
the project's features (the [model] featurizer: TF-IDF by default, sentence-transformers or precomputed vectors).

Each class is its own yes/no classifier, trained on the labelled items' current sets (the per-class majority
vote of the annotators, a reviewer's set where one decided). Labelled items get out-of-fold rows (K folds), so no
item is scored by a model that saw its own set; unlabelled items get rows from a model fit on every labelled item.
The probabilities are not calibrated here: relabel.scoring.multilabel recalibrates them per class (Platt
scaling) against the annotators-only posterior while it fits the consensus, which is the per-class calibration
the consensus needs (a calibration against the majority vote here would teach the model the annotators' misses).
"""
from __future__ import annotations

import numpy as np

# Fewer labelled items than this and no model is fitted: K folds of one or two items teach nothing.
MIN_LABELLED_PER_FOLD = 2
# The probability of a class no labelled item has (or every one has) is its smoothed share, Beta(1, 1): a
# constant column the consensus's Platt step then weighs (a constant carries no per-item evidence).
PSEUDOCOUNT = 1.0


def multilabel_pred_probs(features, targets: np.ndarray, labelled: np.ndarray, *, n_folds: int = 5,
                          seed: int = 0, C: float = 1.0) -> np.ndarray | None:
    """N x K probabilities from features (N rows) and the labelled items' 0/1 sets (``targets``, N x K, read where
    ``labelled``); None when there are too few labelled items for ``n_folds`` folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold
    labelled_idx = np.flatnonzero(labelled)
    n, k = targets.shape
    if labelled_idx.size < MIN_LABELLED_PER_FOLD * n_folds:
        return None
    y = np.asarray(targets, dtype=bool)
    out = np.zeros((n, k))
    unlabelled_idx = np.flatnonzero(~np.asarray(labelled, dtype=bool))
    splits = [(labelled_idx[tr], labelled_idx[te])
              for tr, te in KFold(n_folds, shuffle=True, random_state=seed).split(labelled_idx)]
    if unlabelled_idx.size:
        splits.append((labelled_idx, unlabelled_idx))
    for train, test in splits:
        for c in range(k):
            yc = y[train, c]
            if yc.min() == yc.max():
                out[test, c] = (yc.sum() + PSEUDOCOUNT) / (yc.size + 2 * PSEUDOCOUNT)
                continue
            model = LogisticRegression(C=C, solver="liblinear", random_state=seed).fit(features[train], yc)
            out[test, c] = model.predict_proba(features[test])[:, 1]
    return out
