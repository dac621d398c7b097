"""Span agreement per annotator and label (relabel.scoring.span_agreement), checked on a case counted by hand."""
import numpy as np
import pandas as pd

from relabel.scoring.span_agreement import label_span_agreement

TEXTS = ["Alice met Bob in Paris .", "Nothing here"]
CONSENSUS = pd.DataFrame([(0, "e", 0, 5, "PER"), (0, "e", 10, 14, "PER"), (0, "e", 17, 22, "LOC")],
                         columns=["item", "control", "start", "end", "label"])


def table(spans, answered):
    spans = pd.DataFrame(spans, columns=["item", "annotator", "control", "start", "end", "label"])
    answered = pd.DataFrame(answered, columns=["item", "annotator"])
    return label_span_agreement(TEXTS, spans, answered, CONSENSUS).set_index(["annotator", "control", "label"])


def test_whitespace_at_a_boundary_is_no_disagreement_and_labels_are_counted_apart():
    # a: both PER spans ("Bob" without the trailing space), no LOC; b: Alice as ORG, Paris as LOC, "Paris ." wide
    got = table([(0, "a", "e", 0, 5, "PER"), (0, "a", "e", 10, 13, "PER"), (0, "b", "e", 0, 5, "ORG"),
                 (0, "b", "e", 17, 24, "LOC")], [(0, "a"), (0, "b"), (1, "a")])
    assert got.loc[("a", "e", "PER"), ["exact_precision", "exact_recall", "exact_f1"]].tolist() == [1.0, 1.0, 1.0]
    assert got.loc[("a", "e", "LOC"), "exact_recall"] == 0.0 and np.isnan(got.loc[("a", "e", "LOC"), "exact_precision"])
    assert got.loc[("b", "e", "ORG"), "exact_precision"] == 0.0 and got.loc[("b", "e", "ORG"), "n_consensus"] == 0
    # "Paris ." against "Paris": exact misses, relaxed (overlap) matches
    assert got.loc[("b", "e", "LOC"), "exact_f1"] == 0.0 and got.loc[("b", "e", "LOC"), "relaxed_f1"] == 1.0
    assert got.loc[("b", "e", "PER"), "n_spans"] == 0 and got.loc[("b", "e", "PER"), "n_consensus"] == 2


def test_the_order_regions_come_in_does_not_matter():
    spans = [(0, "a", "e", 0, 5, "PER"), (0, "a", "e", 10, 13, "PER"), (0, "a", "e", 17, 24, "LOC")]
    first = table(spans, [(0, "a")])
    second = table(spans[::-1], [(0, "a")])
    pd.testing.assert_frame_equal(first.sort_index(), second.sort_index())
