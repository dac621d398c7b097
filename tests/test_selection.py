import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from relabel.errors import ConfigError, InputError
from relabel.scoring.selection import select_for_review

CLASSES = ("sport", "politics", "tech")


def toy():
    # item:     0     1     2     3     4     5
    quality = [0.90, 0.23, 0.50, 0.23, 0.10, np.nan]
    consensus = [0, 0, 1, 2, 1, -1]           # item 5 is unlabelled
    votes = [[3, 0, 0], [2, 1, 0], [0, 2, 1], [0, 0, 1], [1, 1, 1], [0, 0, 0]]
    probs = np.array([[0.8, 0.1, 0.1], [0.91, 0.05, 0.04], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.1, 0.3, 0.6],
                      [0.2, 0.2, 0.6]])
    return quality, consensus, votes, probs.argmax(1), probs.max(1)


def test_lowest_quality_first_with_stable_ties_and_readable_reasons():
    s = select_for_review(*toy(), CLASSES, budget=10)
    assert s.index.tolist() == [4, 1, 3, 2, 0]          # 1 and 3 tie at 0.23: item order kept
    assert s.suggested.tolist() == [1, 0, 2, 1, 0]
    assert s.reasons[1] == "annotators split 2-1 (sport, politics); model says 'sport' 0.91; quality 0.23"
    assert s.reasons[0] == "annotators split 1-1-1 (sport, politics, tech); model says 'tech' 0.60; quality 0.10"
    assert s.reasons[2] == "one annotator says 'tech'; model says 'tech' 0.40; quality 0.23"
    assert s.reasons[4] == "all 3 annotators say 'sport'; model says 'sport' 0.80; quality 0.90"


def test_budget_reviewed_waiting_and_unlabelled_are_respected():
    reviewed = [False, False, False, False, True, False]
    waiting = [False, True, False, False, False, False]
    s = select_for_review(*toy(), CLASSES, budget=2, reviewed=reviewed, waiting=waiting)
    assert s.index.tolist() == [3, 2]
    assert 5 not in select_for_review(*toy(), CLASSES, budget=100).index


def test_confident_learning_flag_appears_in_reason():
    issue = [False, True, False, False, False, False]
    s = select_for_review(*toy(), CLASSES, budget=2, label_issue=issue)
    assert "flagged by confident learning" in s.reasons[1]
    assert "flagged" not in s.reasons[0]


@pytest.mark.parametrize("budget", [0, -3, 2.5, True])
def test_budget_must_be_positive_integer(budget):
    with pytest.raises(ConfigError, match=r"The 'budget' setting must be a positive integer\. Got"):
        select_for_review(*toy(), CLASSES, budget=budget)


def test_bad_inputs_are_named():
    q, c, v, ml, mp = toy()
    with pytest.raises(InputError, match="quality is NaN or infinite for labelled items at positions 0"):
        select_for_review([np.nan] + q[1:], c, v, ml, mp, CLASSES, 3)
    with pytest.raises(InputError, match="model_label must be class indices 0..2; got 5"):
        select_for_review(q, c, v, [5] * 6, mp, CLASSES, 3)
    with pytest.raises(InputError, match="model_prob must have one entry per item"):
        select_for_review(q, c, v, ml, mp[:2], CLASSES, 3)
    with pytest.raises(InputError, match="vote_counts must have shape"):
        select_for_review(q, c, v[:3], ml, mp, CLASSES, 3)
    with pytest.raises(InputError, match="consensus must be class indices"):
        select_for_review(q, [0, 0, 1, 3, 1, -1], v, ml, mp, CLASSES, 3)
    with pytest.raises(InputError, match="reviewed must have one entry per item"):
        select_for_review(q, c, v, ml, mp, CLASSES, 3, reviewed=[True])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 50), st.integers(0, 10_000))
def test_selection_properties(n, budget, seed):
    rng = np.random.default_rng(seed)
    quality = rng.choice([0.1, 0.2, 0.5, 0.9], size=n)         # many ties on purpose
    consensus = rng.integers(-1, 3, size=n)
    votes = rng.integers(0, 3, size=(n, 3)) * (consensus >= 0)[:, None]
    probs = rng.dirichlet(np.ones(3), size=n)
    reviewed = rng.random(n) < 0.2
    waiting = rng.random(n) < 0.2
    s = select_for_review(quality, consensus, votes, probs.argmax(1), probs.max(1), CLASSES, budget,
                          reviewed=reviewed, waiting=waiting)
    eligible = np.flatnonzero((consensus >= 0) & ~reviewed & ~waiting)
    assert len(s) == min(budget, eligible.size)
    assert set(s.index) <= set(eligible)
    # sorted by (quality, position): nothing eligible and left out is strictly better than what was taken
    keys = list(zip(quality[s.index], s.index))
    assert keys == sorted(keys)
    if len(s):
        left_out = np.setdiff1d(eligible, s.index)
        assert all((quality[j], j) > keys[-1] for j in left_out)
    assert s.suggested.tolist() == consensus[s.index].tolist()
