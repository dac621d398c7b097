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
