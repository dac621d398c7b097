"""Confident learning on single labels: thresholds, confident joint, noise matrices, label issues, quality scores.

Implements ALGORITHMS.md section 1 (Northcutt, Jiang, Chuang, JAIR 2021) with the names, parameters,
defaults and return shapes of cleanlab 2.9's ``cleanlab.count``, ``cleanlab.filter`` and ``cleanlab.rank``,
split along the same seams:

* :mod:`~relabel.scoring.confident.counting` (cleanlab.count): thresholds, confident joint, calibration,
  noise matrices, the number of issues; also the validation and constants the other two share.
* :mod:`~relabel.scoring.confident.filtering` (cleanlab.filter): ``find_label_issues``.
* :mod:`~relabel.scoring.confident.ranking` (cleanlab.rank): ``get_label_quality_scores``.

Counting imports neither sibling, ranking imports counting, filtering imports both. This package re-exports
the public functions and settings, so ``from relabel.scoring import confident`` reaches all of them;
``relabel.compat.cleanlab`` maps them onto cleanlab's module names.

Outputs match cleanlab 2.9.0 (floats to 1e-9, integers and masks exactly), except for the one of the
project's three deliberate differences that applies to single labels (the other two, vote counting and the
random majority-vote tie-break, concern multi-annotator data and live in consensus.py):

* **Ties are broken by a stable sort** (deliberate difference 3). cleanlab orders exactly equal keys with
  numpy's default (unstable) argsort, so its choice among equal keys depends on the numpy build: which of
  several equally ranked items are flagged at a cut-off, the order of equal scores in a ranking, and which
  of several equal rounding residuals absorbs a unit in the calibrated joint. Here every such choice is
  what cleanlab gives when its argsort is stable: index order among equal keys (for the residuals, a
  stable ascending sort read from the end when rounding up). On the CIFAR-10 test set this moves one count
  of the calibrated joint and changes 2 of 10,000 flags relative to cleanlab on an AVX-512 machine.

Smaller differences: bad input raises :mod:`relabel.errors` exceptions (a singular noise matrix with
``py_method='eqn'`` raises InputError, not LinAlgError); fewer than two given classes is always an error
(cleanlab lets all-zero labels through, for its multi-label code); this package handles single labels, and
``multi_label`` (one set of classes per item) is :mod:`relabel.scoring.multilabel_confident`, which runs
``filtering._find_label_issues`` on each class; ``n_jobs`` / ``verbose`` are accepted and ignored because the
work is vectorised.

Public functions validate their inputs and raise :mod:`relabel.errors` exceptions; the private
``_compute_*`` functions trust theirs (CROWDLAB in ``consensus.py`` calls them directly).
"""
from relabel.scoring.confident.counting import (
    FUZZY_EPS,
    NUM_ISSUES_METHODS,
    PY_METHODS,
    THRESHOLD_FLOOR,
    UNREACHABLE_THRESHOLD,
    calibrate_confident_joint,
    compute_confident_joint,
    estimate_joint,
    estimate_latent,
    estimate_py_and_noise_matrices_from_probabilities,
    get_confident_thresholds,
    num_label_issues,
)
from relabel.scoring.confident.filtering import FILTER_BY, find_label_issues
from relabel.scoring.confident.ranking import QUALITY_METHODS, check_quality_method, get_label_quality_scores

__all__ = ["FILTER_BY", "FUZZY_EPS", "NUM_ISSUES_METHODS", "PY_METHODS", "QUALITY_METHODS", "THRESHOLD_FLOOR",
           "UNREACHABLE_THRESHOLD", "calibrate_confident_joint", "check_quality_method", "compute_confident_joint",
           "estimate_joint", "estimate_latent", "estimate_py_and_noise_matrices_from_probabilities",
           "find_label_issues", "get_confident_thresholds", "get_label_quality_scores", "num_label_issues"]
