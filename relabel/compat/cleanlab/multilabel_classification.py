"""``cleanlab.multilabel_classification`` (2.9) over relabel's one-vs-rest implementation.

    from relabel.compat.cleanlab.multilabel_classification import find_label_issues, get_label_quality_scores

cleanlab spreads these over the submodules ``filter`` and ``rank``; both are reachable here as attributes
(``from relabel.compat.cleanlab.multilabel_classification import filter``). Thin re-exports: the work is in
:mod:`relabel.scoring.multilabel_confident`, which also documents the differences (errors are relabel's
exceptions, exact ties rank by index, ``low_memory`` computes the exact result).
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from relabel.scoring import multilabel_confident as _ml

find_label_issues = _ml.find_multilabel_label_issues
get_label_quality_scores_per_class = _ml.get_multilabel_quality_scores_per_class


def get_label_quality_scores(labels, pred_probs, *, method: str = "self_confidence", adjust_pred_probs: bool = False,
                             aggregator_kwargs: dict | None = None) -> np.ndarray:
    """Per-item label quality (cleanlab's defaults: self_confidence, exponential moving average with alpha 0.8)."""
    return _ml.get_multilabel_quality_scores(labels, pred_probs, method=method, adjust_pred_probs=adjust_pred_probs,
                                             aggregator_kwargs=aggregator_kwargs)


def find_multilabel_issues_per_class(labels, pred_probs, return_indices_ranked_by: str | None = None,
                                     rank_by_kwargs: dict | None = None, filter_by: str = "prune_by_noise_rate",
                                     frac_noise: float = 1.0, num_to_remove_per_class=None,
                                     min_examples_per_class: int = 1, confident_joint=None, n_jobs=None,
                                     verbose: bool = False, low_memory: bool = False):
    """N x K mask of (item, class) issues; with ``return_indices_ranked_by``, cleanlab's three per-class lists
    (flagged indices ranked by the binary score, the binary labels, the two-column binary pred_probs)."""
    mask = _ml.find_multilabel_issues_per_class_mask(
        labels, pred_probs, filter_by=filter_by, frac_noise=frac_noise,
        num_to_remove_per_class=num_to_remove_per_class, min_examples_per_class=min_examples_per_class,
        confident_joint=confident_joint, rank_by_kwargs=rank_by_kwargs)
    if return_indices_ranked_by is None:
        return mask
    onehot, p = _ml._check_inputs(labels, pred_probs)
    adjust = bool((rank_by_kwargs or {}).get("adjust_pred_probs", False))
    scores = _ml._class_quality(onehot, p, return_indices_ranked_by, adjust)
    issues = [np.flatnonzero(mask[:, k])[np.argsort(scores[mask[:, k], k], kind="stable")]
              for k in range(p.shape[1])]
    return issues, list(onehot.T), [_ml.binary_columns(p[:, k]) for k in range(p.shape[1])]


filter = SimpleNamespace(find_label_issues=find_label_issues,  # noqa: A001 - cleanlab's submodule name
                         find_multilabel_issues_per_class=find_multilabel_issues_per_class)
rank = SimpleNamespace(get_label_quality_scores=get_label_quality_scores,
                       get_label_quality_scores_per_class=get_label_quality_scores_per_class)

__all__ = ["filter", "find_label_issues", "find_multilabel_issues_per_class", "get_label_quality_scores",
           "get_label_quality_scores_per_class", "rank"]
