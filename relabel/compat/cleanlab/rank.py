"""cleanlab.rank 2.9 over relabel: label quality scores (lower = more likely mislabelled) and orderings.

Provides get_label_quality_scores, order_label_issues, find_top_issues, get_self_confidence_for_each_label,
get_normalized_margin_for_each_label and get_confidence_weighted_entropy_for_each_label.
Not provided: get_label_quality_ensemble_scores (see relabel.compat.cleanlab.UNSUPPORTED).

Where relabel differs on purpose: equal scores are ordered by index (stable sort); rank_by_kwargs accepts only
adjust_pred_probs.
"""
from relabel.scoring.confident.ranking import (
    find_top_issues,
    get_confidence_weighted_entropy_for_each_label,
    get_label_quality_scores,
    get_normalized_margin_for_each_label,
    get_self_confidence_for_each_label,
    order_label_issues,
)

__all__ = ["find_top_issues", "get_confidence_weighted_entropy_for_each_label", "get_label_quality_scores",
           "get_normalized_margin_for_each_label", "get_self_confidence_for_each_label", "order_label_issues"]
