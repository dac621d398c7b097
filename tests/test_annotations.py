import numpy as np
import pytest

from relabel.scoring.annotations import Annotations
from relabel.errors import LabelError, AnnotationError


def test_from_records_keeps_first_appearance_order_and_encodes_names():
    a = Annotations.from_records(["t2", "t1", "t2"], ["bob", "ann", "ann"], ["cat", "dog", "dog"],
                                 classes=["dog", "cat", "bird"])
    assert list(a.item_ids) == ["t2", "t1"]
    assert list(a.annotator_ids) == ["bob", "ann"]
    assert a.classes == ("dog", "cat", "bird")
    assert a.label.tolist() == [1, 0, 0]
    assert a.vote_counts().tolist() == [[1, 1, 0], [1, 0, 0]]
    assert a.num_annotations().tolist() == [2, 1]


def test_dense_round_trip():
    dense = np.array([[0, np.nan, 2], [np.nan, 1, 1], [2, 2, np.nan]])
    a = Annotations.from_dense(dense)
    assert (a.n_items, a.n_annotators, a.n_classes, len(a)) == (3, 3, 3, 6)
    np.testing.assert_array_equal(a.to_dense(), dense)
    assert a.vote_counts().tolist() == [[1, 0, 1], [0, 2, 0], [0, 0, 2]]


def test_unknown_class_is_named():
    with pytest.raises(LabelError, match="'fish'"):
        Annotations.from_records([1, 2], ["a", "b"], ["cat", "fish"], classes=["cat", "dog"])


def test_non_integer_dense_label_is_named():
    with pytest.raises(LabelError, match="item 1, annotator 0: 0.5"):
        Annotations.from_dense(np.array([[0.0, 1.0], [0.5, 1.0]]))


def test_lengths_must_match():
    with pytest.raises(AnnotationError, match="equal length"):
        Annotations.from_records([1, 2], ["a"], [0, 1])
