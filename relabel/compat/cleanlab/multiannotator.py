"""cleanlab.multiannotator 2.9 over relabel: CROWDLAB consensus and quality, ActiveLab, majority vote.

Provides get_label_quality_multiannotator, get_label_quality_multiannotator_ensemble,
get_active_learning_scores, get_active_learning_scores_ensemble, get_majority_vote_label and
convert_long_to_wide_dataset (all of cleanlab 2.9's public names).

Where relabel differs on purpose (see relabel.scoring.consensus): votes are counted in each class's own slot
(cleanlab's vote counting misplaces them with float labels, which changes quality_method="agreement" and the
temperature search of calibrate_probs and ActiveLab); the last majority-vote tie-break is the smallest class,
not a random one; annotator_stats sorts are stable; labels_multiannotator without pred_probs is an error in the
ActiveLab functions instead of being ignored; no multi_label.

pred_probs that feed a score must be probability rows (PredProbsError "do not sum to 1"; cleanlab accepts any
values in [0, 1]), while get_majority_vote_label, which uses them only to break ties, accepts unnormalised rows
as cleanlab does. One case meets cleanlab's own tests: get_active_learning_scores_ensemble with every item
labelled by one annotator and unnormalised pred_probs (cleanlab's test passes ``np.random.random((2, 5, 3))``).
There cleanlab does not only break ties with the models' mean: it scores each item's consensus label by that
mean's entry, so a row summing to 1.57 inflates the item's ActiveLab score and the item is less likely to be
picked for relabelling. relabel refuses such pred_probs on purpose; normalise each model's rows first.
"""
from relabel.scoring.active import get_active_learning_scores
from relabel.scoring.consensus import get_label_quality_multiannotator, get_majority_vote_label
from relabel.scoring.ensemble import get_active_learning_scores_ensemble, get_label_quality_multiannotator_ensemble


def convert_long_to_wide_dataset(labels_multiannotator_long):
    """A long DataFrame (columns task, annotator, label) as the wide items x annotators DataFrame, NaN where unlabelled.

    Same as cleanlab's; relabel's own functions also take the long form directly as an
    :class:`relabel.Annotations` table.
    """
    wide = labels_multiannotator_long.pivot(index="task", columns="annotator", values="label")
    wide.index.name = None
    wide.columns.name = None
    return wide


__all__ = ["convert_long_to_wide_dataset", "get_active_learning_scores", "get_active_learning_scores_ensemble",
           "get_label_quality_multiannotator", "get_label_quality_multiannotator_ensemble", "get_majority_vote_label"]
