"""cleanlab.rank 2.9 over relabel: label quality scores (lower = more likely mislabelled) and orderings.

Provides get_label_quality_scores, order_label_issues, find_top_issues, get_self_confidence_for_each_label,
get_normalized_margin_for_each_label, get_confidence_weighted_entropy_for_each_label and
get_label_quality_ensemble_scores (all of cleanlab 2.9's public names).

Where relabel differs on purpose: equal scores are ordered by index (stable sort); rank_by_kwargs accepts only
adjust_pred_probs. get_label_quality_ensemble_scores raises relabel's errors (ConfigError/PredProbsError, not
AssertionError, for a pred_probs_list that is not a list or is empty and for missing or mis-sized
custom_weights), raises InputError where cleanlab would return NaN scores (no model's argmax matches any label
under "accuracy") or fail an assertion (every log-loss weight underflows), accepts a tuple as well as a list,
and its log_loss_search also works when a class is absent from the labels; with verbose=True it prints one line
(the weighting and the weights) and does not warn about a one-model list.
"""
from relabel.scoring.confident.ranking import (
    find_top_issues,
    get_confidence_weighted_entropy_for_each_label,
    get_label_quality_ensemble_scores,
    get_label_quality_scores,
    get_normalized_margin_for_each_label,
    get_self_confidence_for_each_label,
    order_label_issues,
)

__all__ = ["find_top_issues", "get_confidence_weighted_entropy_for_each_label", "get_label_quality_ensemble_scores",
           "get_label_quality_scores", "get_normalized_margin_for_each_label", "get_self_confidence_for_each_label",
           "order_label_issues"]
