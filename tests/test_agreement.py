"""Inter-annotator agreement against hand computations and Krippendorff's own published example."""
from __future__ import annotations

import numpy as np
import pytest

from relabel import Annotations
from relabel.scoring.agreement import annotator_confusion, krippendorff_alpha, pairwise_agreement
from relabel.errors import AnnotationError


def toy() -> Annotations:
    # item 1: ann x, bob x, cy y | item 2: ann x, bob x | item 3: ann y, bob y, cy y | item 4: ann x (alone)
    return Annotations.from_records(
        item_ids=[1, 1, 1, 2, 2, 3, 3, 3, 4], annotator_ids=["ann", "bob", "cy", "ann", "bob", "ann", "bob", "cy", "ann"],
        labels=["x", "x", "y", "x", "x", "y", "y", "y", "x"], classes=["x", "y"])


def test_alpha_of_the_toy_set_by_hand():
    # Coincidences (ordered pairs within an item, each item's pairs weighted 1/(m-1)):
    #   item 1 (x, x, y): xx 2/2, xy 2/2, yx 2/2 -> o_xx 1, o_xy 1, o_yx 1
    #   item 2 (x, x):    xx 2/1                 -> o_xx 2
    #   item 3 (y, y, y): yy 6/2                 -> o_yy 3        item 4 has one label: not pairable
    # o = [[3, 1], [1, 3]], n_x = n_y = 4, n = 8
    # alpha = 1 - (n - 1) * sum_{c != k} o_ck / sum_{c != k} n_c n_k = 1 - 7 * 2 / (4 * 4 * 2) = 0.5625
    assert krippendorff_alpha(toy()) == pytest.approx(0.5625, abs=1e-12)


def test_alpha_matches_krippendorffs_published_nominal_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers, 12 units,
    # missing values; nominal alpha = 0.743.
    table = {"A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
             "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
             "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
             "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]}
    rows = [(unit, who, str(v)) for who, values in table.items() for unit, v in enumerate(values) if v is not None]
    ann = Annotations.from_records(*zip(*rows), classes=["1", "2", "3", "4", "5"])
    assert round(krippendorff_alpha(ann), 3) == 0.743


def test_alpha_is_one_for_perfect_agreement_and_nan_without_variation_or_pairs():
    perfect = Annotations.from_records([1, 1, 2, 2], ["a", "b", "a", "b"], ["x", "x", "y", "y"], classes=["x", "y"])
    assert krippendorff_alpha(perfect) == pytest.approx(1.0)
    same = Annotations.from_records([1, 1, 2, 2], ["a", "b", "a", "b"], ["x", "x", "x", "x"], classes=["x", "y"])
    assert np.isnan(krippendorff_alpha(same))
    single = Annotations.from_records([1, 2], ["a", "b"], ["x", "y"], classes=["x", "y"])
    assert np.isnan(krippendorff_alpha(single))


def test_alpha_ignores_annotator_names():
    ann = toy()
    renamed = Annotations.from_records([str(i) for i in ann.item_ids[ann.item]],
                                       [f"z{a}" for a in ann.annotator_ids[ann.annotator][::-1]][::-1],
                                       [ann.classes[c] for c in ann.label], classes=ann.classes)
    assert krippendorff_alpha(renamed) == pytest.approx(krippendorff_alpha(ann))


def test_pairwise_agreement_by_hand():
    pairs = pairwise_agreement(toy())
    assert list(pairs.annotator_ids) == ["ann", "bob", "cy"]
    # ann-bob share items 1, 2, 3 and agree on all; ann-cy and bob-cy share 1 and 3 and agree on 3 only.
    assert pairs.shared.tolist() == [[4, 3, 2], [3, 3, 2], [2, 2, 2]]
    assert pairs.agreed.tolist() == [[4, 3, 1], [3, 3, 1], [1, 1, 2]]
    assert pairs.rate[0, 2] == pytest.approx(0.5)
    sub = pairwise_agreement(toy(), annotators=[2, 0])
    assert list(sub.annotator_ids) == ["cy", "ann"] and sub.shared.tolist() == [[2, 2], [2, 4]]
    with pytest.raises(AnnotationError, match="indices 0..2"):
        pairwise_agreement(toy(), annotators=[3])


def test_annotator_confusion_by_hand():
    reference = np.array([0, 0, 1, -1])     # items 1, 2 are x, item 3 is y, item 4 has no reference
    conf = annotator_confusion(toy(), reference)
    assert conf.shape == (3, 2, 2)
    assert conf[0].tolist() == [[2, 0], [0, 1]]        # ann: x,x on x items, y on the y item (item 4 left out)
    assert conf[2].tolist() == [[0, 1], [0, 1]]        # cy: y on item 1 (an x), y on item 3
    with pytest.raises(AnnotationError, match="one integer reference"):
        annotator_confusion(toy(), np.array([0, 1]))
