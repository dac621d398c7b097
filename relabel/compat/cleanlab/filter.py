"""cleanlab.filter 2.9 over relabel: which items are label issues.

Provides find_label_issues (all seven filter_by rules, frac_noise, num_to_remove_per_class,
min_examples_per_class, return_indices_ranked_by, confident_joint), find_predicted_neq_given and
find_label_issues_using_argmax_confusion_matrix (all of cleanlab 2.9's public names).

Where relabel differs on purpose (see relabel.scoring.confident): items tied at a cut-off and equal scores in a
ranking are ordered by index (stable sort; cleanlab's unstable sort depends on the numpy build); fewer than two
given classes is an error; no multi_label or low_memory; n_jobs and verbose change nothing.
"""
from relabel.scoring.confident.filtering import (
    find_label_issues,
    find_label_issues_using_argmax_confusion_matrix,
    find_predicted_neq_given,
)

__all__ = ["find_label_issues", "find_label_issues_using_argmax_confusion_matrix", "find_predicted_neq_given"]
