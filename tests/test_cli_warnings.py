"""Issue 20: warnings print as one line naming the classes by label, not `file:line: Category` with numbers."""
import warnings

import numpy as np

from relabel import cli_warnings
from relabel.models.featurizers import ModelWarning


def test_a_rare_class_warning_is_one_line_with_class_names(capsys):
    from relabel.models.fit import _warn_rare_classes

    saved = warnings.showwarning
    try:
        cli_warnings.install()
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            cli_warnings.install()
            _warn_rare_classes(np.array([0, 0, 0, 0, 0, 1, 2, 2]), 3, 5, ("sport", "politics", "tech"))
            _warn_rare_classes(np.array([0, 0, 0, 0, 0, 1, 2, 2]), 3, 5, ("sport", "politics", "tech"))
            warnings.warn("lbfgs failed to converge", UserWarning)
    finally:
        warnings.showwarning = saved
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("warning: Classes 'politics', 'tech' have fewer labelled items (1, 2) than the 5 folds")
    assert len(err) == 2 and err[1] == "warning (UserWarning): lbfgs failed to converge"   # each warning once
    assert ".py:" not in "\n".join(err) and "ModelWarning" not in err[0]


def test_one_line_keeps_a_librarys_category():
    assert cli_warnings.one_line("a\n  b", ModelWarning) == "warning: a b"


def test_round_lines_say_1_annotator_and_1_override():
    """Issue 20's wording: "by 1 annotator", "1 override", "1 label issue" (no "1 annotators")."""
    from relabel.cli_output import score_lines
    from relabel.loop.summaries import ScoreSummary

    s = ScoreSummary(round=1, method="model-dawid-skene", items=6, labelled_items=6, annotations=6, annotators=1,
                     label_issues=1, expected_remaining_errors=0.4, expected_low=0, expected_high=1, overrides=1,
                     override_evidence={"regime": "too little evidence", "reason": "6 items with two or more "
                                        "annotations, 30 needed to compare the model with the annotators"})
    first, regime = score_lines(s)
    assert "6 annotations by 1 annotator;" in first and "1 label issue;" in first and "1 override (" in first
    assert regime.startswith("Overrides off (too little evidence): the model reorders the review queue but "
                             "changes no final label; 6 items")
