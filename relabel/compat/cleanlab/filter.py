"""cleanlab.filter 2.9 over relabel: which items are label issues.

Provides find_label_issues (all seven filter_by rules, frac_noise, num_to_remove_per_class,
min_examples_per_class, return_indices_ranked_by, confident_joint), find_predicted_neq_given and
find_label_issues_using_argmax_confusion_matrix (all of cleanlab 2.9's public names), and two of cleanlab's private
helpers that its own tests call, ``_reduce_prune_counts`` and ``_keep_at_least_n_per_class``, over the pruning
steps relabel's find_label_issues uses (not in ``__all__``: private in cleanlab too).

Where relabel differs on purpose (see relabel.scoring.confident): items tied at a cut-off and equal scores in a
ranking are ordered by index (stable sort; cleanlab's unstable sort depends on the numpy build); fewer than two
given classes is an error; n_jobs and verbose change nothing. ``multi_label=True`` (one list of classes per item)
runs relabel.scoring.multilabel_confident, as cleanlab's deprecated flag runs its multi-label code.
"""
import numpy as np

from relabel.scoring import multilabel_confident as _ml
from relabel.scoring.confident import filtering as _filtering
from relabel.scoring.confident.filtering import find_label_issues_using_argmax_confusion_matrix

find_label_issues = _ml.find_label_issues      # single-label calls go straight to the single-label filter


def find_predicted_neq_given(labels, pred_probs, *, multi_label: bool = False):
    """Items whose model prediction differs from the given label (multi_label: for some class, the model's side
    of 0.5 differs from whether the class was given)."""
    if multi_label:
        return _ml.find_multilabel_predicted_neq_given(labels, pred_probs)
    return _filtering.find_predicted_neq_given(labels, pred_probs)


def _reduce_prune_counts(prune_count_matrix, frac_noise: float = 1.0) -> np.ndarray:
    """Off-diagonal counts times ``frac_noise``, each diagonal entry taking what its column lost; as ints."""
    return _filtering._reduce_prune_counts(np.asarray(prune_count_matrix), frac_noise)


def _keep_at_least_n_per_class(prune_count_matrix, n: int, *, frac_noise: float = 1.0) -> np.ndarray:
    """Prune matrix (transposed joint) whose diagonal keeps at least ``n`` per class, then frac_noise; as ints."""
    return _filtering._keep_at_least_n_per_class(np.asarray(prune_count_matrix), n, frac_noise)


__all__ = ["find_label_issues", "find_label_issues_using_argmax_confusion_matrix", "find_predicted_neq_given"]
