"""cleanlab 2.9's module names over relabel's implementations: change ``from cleanlab import filter`` to
``from relabel.compat.cleanlab import filter`` and keep the rest of the code.

Modules: :mod:`.multiannotator` (CROWDLAB, ActiveLab, majority vote), :mod:`.filter` (find_label_issues),
:mod:`.count` (confident joint, noise matrices, cross-validated pred_probs), :mod:`.rank` (label quality
scores) and :mod:`.multilabel_classification` (multi-label issues and quality scores). Each module's docstring lists what it provides and where relabel differs on purpose; the differences
shared by all of them:

* Bad input raises a :class:`relabel.errors.RelabelError` subclass with a one-line message naming the fix, not
  cleanlab's ValueError/AssertionError wording (most subclasses also derive from ValueError).
* ``multi_label=True`` in filter and count, and :mod:`.multilabel_classification`, run relabel's one-vs-rest
  reduction (relabel.scoring.multilabel_confident) with cleanlab's results (tests/test_multilabel_parity.py).
* Ties are broken deterministically (stable sorts, smallest class last), where cleanlab uses unstable sorts or
  ``np.random.choice``.
* ``n_jobs`` and ``verbose`` are accepted and change nothing: the work is vectorised and prints nothing (except
  ``rank.get_label_quality_ensemble_scores``, whose verbose line shows the model weights it otherwise hides).

``UNSUPPORTED`` maps each module name to the public cleanlab names it does not provide, and why.
"""
UNSUPPORTED = {
    "multiannotator": {},
    "filter": {},
    "count": {},
    "multilabel_classification": {
        "dataset": "the dataset-level summaries (common_multilabel_issues, rank_classes_by_multilabel_quality, "
                   "overall_multilabel_health_score, multilabel_health_summary) are not provided",
    },
    "rank": {},
}
