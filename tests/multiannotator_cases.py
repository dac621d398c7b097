"""Seeded random multi-annotator data sets for the consensus / ActiveLab tests, and a cleanlab oracle helper.

Each case is an items x annotators float matrix (NaN = not labelled, cleanlab's form) plus pred_probs, built to
reach the edge cases of ALGORITHMS section 2: 2 to 20 classes, 1 to 5 labels per item, annotators who label
only one or two items, a class nobody gives, single-label items, tied votes and tied probabilities.
"""
from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np


def random_case(seed: int, *, n_items: int | None = None, n_annotators: int | None = None,
                n_classes: int | None = None, max_labels: int = 5, tied_probs: bool | None = None,
                all_single: bool = False):
    """(labels_multiannotator N x M with NaN, pred_probs N x K) for one seed."""
    rng = np.random.default_rng(seed)
    k = int(n_classes or rng.integers(2, 21))
    n = int(n_items or rng.integers(20, 120))
    m = int(n_annotators or rng.integers(3, 12))
    tied_probs = bool(rng.random() < 0.4) if tied_probs is None else tied_probs
    truth = rng.integers(0, k, n)
    # A class nobody gives (when there are enough classes): pred_probs still has its column.
    never = int(rng.integers(0, k)) if k > 3 and rng.random() < 0.5 else -1
    if never >= 0:
        truth[truth == never] = (never + 1) % k
    accuracy = rng.uniform(0.3, 0.95, m)
    labels = np.full((n, m), np.nan)
    for i in range(n):
        if all_single:
            # The first m items go one to each annotator, so every annotator has a label.
            who = np.array([i if i < m else int(rng.integers(0, m))])
        else:
            who = rng.choice(m, int(rng.integers(1, min(max_labels, m) + 1)), replace=False)
        noise = rng.integers(0, k, who.size)
        if never >= 0:
            noise[noise == never] = (never + 1) % k
        labels[i, who] = np.where(rng.random(who.size) < accuracy[who], truth[i], noise)
    if not all_single:
        # Two annotators who label only one or two items each.
        for j in (m - 2, m - 1):
            labels[:, j] = np.nan
            for i in rng.choice(n, int(rng.integers(1, 3)), replace=False):
                labels[i, j] = truth[i] if rng.random() < 0.5 else (truth[i] + 1) % k
                if labels[i, j] == never:
                    labels[i, j] = truth[i]
        # Every item needs a label (cleanlab's dense form refuses empty rows).
        for i in np.flatnonzero(np.isnan(labels).all(axis=1)):
            labels[i, rng.integers(0, m - 2)] = truth[i]
        # CROWDLAB needs some item with two labels.
        if not ((~np.isnan(labels)).sum(axis=1) > 1).any():
            labels[0, :2] = truth[0]
    # Model: right most of the time, with a Dirichlet spread; optionally rounded to create exact ties.
    logits = rng.normal(0, 1.0, (n, k))
    logits[np.arange(n), truth] += rng.uniform(0, 3, n)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    if tied_probs:
        p = np.round(p, 1) + 1e-3  # many exactly equal entries per row, none zero
        p /= p.sum(axis=1, keepdims=True)
    return labels, p


def correct_value_counts(x, *, num_classes=None, multi_label=False):
    """What cleanlab's internal value_counts should return: counts in each class's own slot."""
    x = np.asarray(x).astype(int)
    if num_classes is None:
        return np.unique(x, return_counts=True)[1]
    return np.bincount(x, minlength=num_classes)


@contextlib.contextmanager
def cleanlab_with_correct_vote_counts():
    """Patch cleanlab's vote-count helper to count correctly (our deliberate difference 1)."""
    import cleanlab.internal.multiannotator_utils as utils
    import cleanlab.multiannotator as multi

    saved = utils.value_counts, multi.value_counts
    utils.value_counts = multi.value_counts = correct_value_counts
    try:
        yield
    finally:
        utils.value_counts, multi.value_counts = saved


@contextlib.contextmanager
def quiet():
    """cleanlab prints and warns on normal inputs; keep test output readable."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield
