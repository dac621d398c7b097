"""relabel.multilabel_consensus (issue 24): binary relevance with per-annotator sensitivity/specificity."""
import numpy as np
import pandas as pd
import pytest

import relabel
from relabel.errors import AnnotationError, PredProbsError
from relabel.scoring.multilabel import fit_multilabel_consensus, review_reason


def simulate(seed=0, n=3000, k=6, m=8, per_item=3):
    rng = np.random.default_rng(seed)
    truth = rng.random((n, k)) < rng.uniform(0.05, 0.4, k)
    sens, false_tag = rng.uniform(0.55, 0.95, m), rng.uniform(0.01, 0.1, m)
    items = np.repeat(np.arange(n), per_item)
    annotators = np.concatenate([rng.choice(m, per_item, replace=False) for _ in range(n)])
    tags = np.where(truth[items], rng.random((items.size, k)) < sens[annotators, None],
                    rng.random((items.size, k)) < false_tag[annotators, None])
    frame = pd.DataFrame({"item": items, "annotator": [f"ann{j}" for j in annotators],
                          "labels": [list(np.flatnonzero(row)) for row in tags]})
    model = 1 / (1 + np.exp(-(np.where(truth, 1.5, -1.5) + rng.normal(0, 1.2, truth.shape))))
    return frame, truth, model, sens, 1 - false_tag


def test_recovers_annotator_rates_and_beats_majority_vote():
    frame, truth, _, sens, spec = simulate()
    result = relabel.multilabel_consensus(frame, truth.shape[1])
    order = np.argsort([int(a[3:]) for a in result.annotator_ids])
    assert np.abs(result.sensitivity.mean(axis=1)[order] - sens).max() < 0.06
    assert np.abs(result.specificity.mean(axis=1)[order] - spec).max() < 0.02
    majority = result.tagged * 2 > result.n_annotations[:, None]
    assert (result.labels == truth).all(axis=1).mean() >= (majority == truth).all(axis=1).mean()
    assert result.converged


def test_model_improves_sets_and_quality_ranks_wrong_sets():
    from sklearn.metrics import roc_auc_score
    frame, truth, model, _, _ = simulate(seed=1)
    alone = relabel.multilabel_consensus(frame, truth.shape[1])
    with_model = relabel.multilabel_consensus(frame, truth.shape[1], pred_probs=model)
    exact = lambda r: (r.labels == truth).all(axis=1).mean()  # noqa: E731
    assert exact(with_model) > exact(alone) + 0.02
    wrong = ~(with_model.labels == truth).all(axis=1)
    assert roc_auc_score(wrong, -with_model.quality) > roc_auc_score(wrong, -with_model.agreement)
    assert with_model.model_probabilities.shape == truth.shape


def test_empty_set_is_an_answer_and_relabelling_annotators_changes_nothing():
    frame = pd.DataFrame({"item": [0, 0, 0, 1, 1, 1], "annotator": ["a", "b", "c", "a", "b", "c"],
                          "labels": [[], [], [2], [0, 1], [0], [0, 1]]})
    result = relabel.multilabel_consensus(frame, 3)
    assert result.labels[0].tolist() == [0, 0, 0]          # "none apply" outvotes one tag
    assert result.labels[1, 0] == 1
    renamed = frame.assign(annotator=frame["annotator"].map({"a": "z", "b": "y", "c": "x"})).iloc[::-1]
    np.testing.assert_allclose(relabel.multilabel_consensus(renamed, 3).probabilities, result.probabilities,
                               atol=1e-9)


def test_gold_sets_clamp_their_items():
    frame, truth, _, _, _ = simulate(seed=2, n=400)
    gold_items = np.arange(50)
    result = fit_multilabel_consensus(frame, truth.shape[1], gold_items=gold_items,
                                      gold_labels=truth[gold_items].astype(int))
    np.testing.assert_array_equal(result.labels[gold_items], truth[gold_items])


def test_class_issues_say_missing_or_extra():
    frame, truth, model, _, _ = simulate(seed=3, n=1500)
    issues = relabel.multilabel_consensus(frame, truth.shape[1], pred_probs=model).class_issues()
    missing, extra = issues[issues["kind"] == "missing"], issues[issues["kind"] == "extra"]
    assert len(missing) and len(extra)
    assert ((missing["consensus"] == 1) & (missing["tagged"] * 2 <= missing["annotators"])).all()
    assert ((extra["consensus"] == 0) & (extra["tagged"] * 2 > extra["annotators"])).all()
    assert issues["class_quality"].is_monotonic_increasing
    # the classes it calls missing are mostly truly there, the extra ones mostly not
    assert truth[missing["item"], missing["class"]].mean() > 0.5
    assert truth[extra["item"], extra["class"]].mean() < 0.5


@pytest.mark.parametrize("frame,pred,error", [
    (pd.DataFrame({"item": [0], "annotator": ["a"]}), None, AnnotationError),
    (pd.DataFrame({"item": [0], "annotator": ["a"], "labels": [[3]]}), None, AnnotationError),
    (pd.DataFrame({"item": [0], "annotator": ["a"], "labels": [None]}), None, AnnotationError),
    (pd.DataFrame({"item": ["x"], "annotator": ["a"], "labels": [[0]]}), None, AnnotationError),
    (pd.DataFrame({"item": [0], "annotator": ["a"], "labels": [[0]]}), np.array([[0.2, 1.3]]), PredProbsError),
    (pd.DataFrame({"item": [0], "annotator": ["a"], "labels": [[0]]}), np.array([[0.2]]), PredProbsError),
])
def test_bad_input_is_a_clear_error(frame, pred, error):
    with pytest.raises(error):
        relabel.multilabel_consensus(frame, 2, pred_probs=pred)


def test_review_reason_names_tags_and_model():
    frame = pd.DataFrame({"item": [0, 0, 0, 1, 1, 1], "annotator": ["a", "b", "c"] * 2,
                          "labels": [[1], [1], [], [0], [0], [0]]})
    result = relabel.multilabel_consensus(frame, 2, pred_probs=np.array([[0.3, 0.04], [0.9, 0.1]]))
    both = review_reason(result, 0, ["news", "sports"])
    assert both.count("of 3 annotators tagged") == 2 and both.count("the model says") == 2
    assert "2 of 3 annotators tagged sports, the model says" in both
    first = review_reason(result, 0, ["news", "sports"], max_classes=1)
    assert both.startswith(first) and ";" not in first


def test_per_class_kappa_and_summary():
    from relabel.scoring.multilabel import class_summary, per_class_kappa
    frame, truth, _, _, _ = simulate(seed=4, n=1500)
    kappa = per_class_kappa(frame, truth.shape[1])
    assert np.all((kappa > 0.3) & (kappa <= 1))
    perfect = pd.DataFrame({"item": [0, 0, 1, 1], "annotator": ["a", "b", "a", "b"],
                            "labels": [[0], [0], [], []]})
    assert per_class_kappa(perfect, 2)[0] == pytest.approx(1.0)
    assert np.isnan(per_class_kappa(perfect, 2)[1])        # nobody ever tags class 1
    summary = class_summary(frame, relabel.multilabel_consensus(frame, truth.shape[1]))
    assert summary["missed"].is_monotonic_decreasing and summary["missed"].between(0, 1).all()
