"""Results carry item ids, annotator ids and class names (issue 13, point 10)."""
from __future__ import annotations

import numpy as np
import pytest

from relabel import Annotations
from relabel.scoring.consensus import crowdlab
from relabel.scoring.consensus_em import consensus


@pytest.fixture
def toy():
    annotations = Annotations.from_records(
        item_ids=["t1", "t1", "t2", "t2", "t3", "t3", "t4"], annotator_ids=["ann", "bob", "ann", "cy", "bob", "cy", "ann"],
        labels=["cat", "dog", "dog", "dog", "cat", "cat", "dog"], classes=["cat", "dog"])
    pred_probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    return annotations, pred_probs


@pytest.mark.parametrize("method", [consensus, crowdlab])
def test_frames_are_keyed_by_item_and_annotator_ids_with_class_names(toy, method):
    annotations, pred_probs = toy
    result = method(annotations, pred_probs)
    items = result.to_frame()
    assert items.index.name == "item_id" and list(items.index) == ["t1", "t2", "t3", "t4"]
    assert list(items["consensus_label"]) == [annotations.classes[c] for c in result.consensus_label]
    assert np.allclose(items["consensus_quality_score"], result.consensus_quality_score)
    assert np.allclose(items[["p_cat", "p_dog"]].to_numpy(), result.posterior)
    assert items.loc["t2", "num_annotations"] == 2
    people = result.annotator_frame()
    assert people.index.name == "annotator_id" and list(people.index) == ["ann", "bob", "cy"]
    stats = result.annotator_stats()
    for a, name in enumerate(["ann", "bob", "cy"]):
        assert stats[name]["annotator_quality"] == pytest.approx(result.annotator_quality[a])
        assert stats[name]["num_examples_labeled"] == result.num_examples_labeled[a]
        assert stats[name]["worst_class"] == annotations.classes[result.worst_class[a]]


def test_stats_follow_the_annotator_not_its_position(toy):
    annotations, pred_probs = toy
    order = np.array([6, 5, 4, 3, 2, 1, 0])        # the same annotations listed backwards: positions change
    backwards = Annotations.from_records(annotations.item_ids[annotations.item][order],
                                         annotations.annotator_ids[annotations.annotator][order],
                                         np.array(annotations.classes)[annotations.label][order],
                                         classes=annotations.classes)
    assert list(backwards.annotator_ids) != list(annotations.annotator_ids)
    a = consensus(annotations, pred_probs).annotator_stats()
    b = consensus(backwards, pred_probs[[3, 2, 1, 0]]).annotator_stats()
    assert a.keys() == b.keys()
    for name in a:
        assert b[name]["annotator_quality"] == pytest.approx(a[name]["annotator_quality"], abs=1e-6)


def test_a_dense_matrix_gets_positions_as_ids(toy):
    annotations, pred_probs = toy
    result = crowdlab(annotations.to_dense(), pred_probs)
    assert list(result.to_frame().index) == [0, 1, 2, 3] and list(result.annotator_frame().index) == [0, 1, 2]
