"""cleanlab.filter 2.9 over relabel: which items are label issues.

Provides find_label_issues (all seven filter_by rules, frac_noise, num_to_remove_per_class,
min_examples_per_class, return_indices_ranked_by, confident_joint), find_predicted_neq_given and
find_label_issues_using_argmax_confusion_matrix (all of cleanlab 2.9's public names).

Where relabel differs on purpose (see relabel.scoring.confident): items tied at a cut-off and equal scores in a
ranking are ordered by index (stable sort; cleanlab's unstable sort depends on the numpy build); fewer than two
given classes is an error; n_jobs and verbose change nothing. ``multi_label=True`` (one list of classes per item)
runs relabel.scoring.multilabel_confident, as cleanlab's deprecated flag runs its multi-label code.
"""
from relabel.scoring import multilabel_confident as _ml
from relabel.scoring.confident import filtering as _single
from relabel.scoring.confident.filtering import find_label_issues_using_argmax_confusion_matrix

find_label_issues = _ml.find_label_issues      # single-label calls go straight to the single-label filter


def find_predicted_neq_given(labels, pred_probs, *, multi_label: bool = False):
    """Items whose model prediction differs from the given label (multi_label: for some class, the model's side
    of 0.5 differs from whether the class was given)."""
    if multi_label:
        return _ml.find_multilabel_predicted_neq_given(labels, pred_probs)
    return _single.find_predicted_neq_given(labels, pred_probs)


__all__ = ["find_label_issues", "find_label_issues_using_argmax_confusion_matrix", "find_predicted_neq_given"]
