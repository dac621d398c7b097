"""cleanlab.token_classification 2.9 over relabel: label quality of token labels, sentence scores and issues.

Provides get_label_quality_scores, issues_from_scores and find_label_issues (cleanlab's ``rank`` and ``filter``
submodules' functions of that name; ``from relabel.compat.cleanlab.token_classification import ...`` replaces
``from cleanlab.token_classification.rank import ...`` / ``.filter import ...``). Not provided: the ``summary``
display helpers. Where relabel differs on purpose: see relabel.scoring.token_issues.
"""
from relabel.scoring.token_issues import (
    find_label_issues,
    get_label_quality_scores,
    issues_from_scores,
)

__all__ = ["find_label_issues", "get_label_quality_scores", "issues_from_scores"]
