"""relabel.scoring.stop_signal: wrong labels among the batch a round would send, from the posterior and reviewers."""
import numpy as np
import pytest
from scipy.stats import betabinom

from relabel.scoring.error_estimate import expected_errors
from relabel.scoring.stop_signal import Evidence, batch_errors, stop_reason


def test_round_one_uses_the_posterior_and_never_stops():
    p = np.full(20, 0.15)
    e = batch_errors(p)
    posterior = expected_errors(1 - p)
    assert (e.expected, e.low, e.high, e.source) == (posterior.expected, posterior.low, posterior.high, "posterior")
    assert "no reviewer decisions yet" in e.describe()
    # even a near-certain posterior (annotators agree throughout) is not evidence enough before any review
    assert stop_reason(batch_errors(np.full(10, 1e-6)), 0.5) is None


def test_corrections_outweigh_an_overconfident_posterior():
    """The acceptance project's round 2: the posterior expects 0.32 wrong among 20, reviewers corrected 5 of 10."""
    e = batch_errors(np.full(20, 0.016), Evidence(round=1, decided=10, corrected=5))
    assert e.source == "reviewers" and e.expected == pytest.approx(20 * 5.5 / 11)
    assert (e.low, e.high) == tuple(int(x) for x in betabinom(20, 5.5, 5.5).ppf([0.05, 0.95]))
    assert e.low >= 2 and e.high <= 18
    assert stop_reason(e, 0.5) is None
    assert "reviewers corrected 5 of 10 items in round 1" in e.describe()
    assert "posterior alone expects 0.3" in e.describe()


def test_a_doubtful_posterior_wins_over_a_clean_review_round():
    e = batch_errors(np.full(20, 0.25), Evidence(3, 20, 0))
    assert e.source == "posterior" and e.expected == pytest.approx(5.0)
    assert stop_reason(e, 0.5) is None


def test_stops_after_a_round_without_corrections_and_says_why():
    e = batch_errors(np.full(30, 0.01), Evidence(round=3, decided=30, corrected=0))
    assert e.source == "posterior" and e.expected == pytest.approx(0.3)
    reason = stop_reason(e, 0.5)
    assert reason is not None
    for part in ("The 30 items this round would send hold ≈ 0.3 wrong labels (90% interval 0–",
                 "reviewers corrected 0 of 30 items in round 3", "posterior alone expects 0.3",
                 "below [review] min_expected_errors = 0.5", "set [review] min_expected_errors = 0 to push anyway"):
        assert part in reason
    assert stop_reason(e, 0) is None                    # 0 turns it off


def test_one_correction_keeps_going_a_clean_round_leaves_it_to_the_posterior():
    assert stop_reason(batch_errors(np.full(30, 0.001), Evidence(3, 30, 1)), 0.5) is None
    # issue 20: reviewers corrected 0 of 50 (49 decided, one skipped); the posterior expects ≈ 0.0 in the next 50.
    # The Jeffreys floor alone was 50 / (2 * 49 + 2) = 0.5, not below the threshold, and the batch was pushed.
    clean = batch_errors(np.full(50, 0.0005), Evidence(3, 49, 0))
    assert clean.source == "posterior" and clean.expected == pytest.approx(0.025)
    assert stop_reason(clean, 0.5) is not None
    # no "≈ 0.5 ... below 0.5": a figure just under the threshold gets the decimals that show it is under
    near = batch_errors(np.full(50, 0.0098), Evidence(3, 49, 0))
    reason = stop_reason(near, 0.5)
    assert "hold ≈ 0.49 wrong labels" in reason and "≈ 0.5 " not in reason, reason
    # ... while a posterior that still doubts the batch keeps it going
    assert stop_reason(batch_errors(np.full(20, 0.1), Evidence(3, 10, 0)), 0.5) is None


def test_the_total_left_restated_with_the_batch_never_holds_fewer_than_the_batch():
    from relabel.scoring.stop_signal import total_with_batch

    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 300))
        p = rng.beta(0.3, 5, n)
        mask = np.zeros(n, bool)
        mask[rng.choice(n, int(rng.integers(1, n + 1)), replace=False)] = True
        decided = int(rng.integers(0, 60))
        e = batch_errors(p[mask], Evidence(1, decided, int(rng.integers(0, decided + 1))))
        total = total_with_batch(p, mask, e)
        assert e.expected <= total.expected + 1e-9 and e.high <= total.high and e.low <= total.low
        assert total.expected >= expected_errors(1 - p).expected - 1e-9     # the floor only ever raises it


def test_empty_batch_and_bad_evidence():
    e = batch_errors([])
    assert (e.items, e.expected, e.low, e.high) == (0, 0.0, 0, 0)
    assert stop_reason(e, 0.5) == "No item is left to send to review, so nothing was pushed."
    assert stop_reason(e, 0) is None
    with pytest.raises(ValueError, match="corrected <= decided"):
        batch_errors([0.1], Evidence(1, decided=3, corrected=4))


def test_batches_it_stops_on_held_fewer_errors_than_the_threshold_on_average():
    """Simulated loops: the last round's 20 items were wrong at rate r_prev, this batch of 20 (ranked after it)
    at r <= r_prev, and the posterior is overconfident (it says a fifth of the truth), the crowd-set case. The
    batches the signal holds back must hold fewer than min_expected_errors = 0.5 wrong labels on average, and
    hardly any (under 2%) an error rate of 10% or more. The posterior alone fails this (checked too)."""
    rng = np.random.default_rng(3)
    held_back, posterior_held_back = [], []
    for _ in range(4000):
        r_prev = rng.uniform(0, 0.4)
        r = r_prev * rng.uniform(0.3, 1.0)
        corrected = int(rng.binomial(20, r_prev))
        actual = int(rng.binomial(20, r))
        p = np.full(20, r / 5)
        if stop_reason(batch_errors(p, Evidence(1, 20, corrected)), 0.5) is not None:
            held_back.append((actual, r))
        if p.sum() < 0.5:
            posterior_held_back.append(actual)
    assert len(held_back) > 200                              # it does stop once the loop has run dry
    actual, rate = np.array(held_back).T
    assert actual.mean() < 0.5 and np.mean(rate >= 0.1) < 0.02
    assert np.mean(posterior_held_back) > 1.0


def test_the_reviewers_interval_tightens_with_evidence():
    few = batch_errors(np.full(20, 0.01), Evidence(1, 5, 1))
    many = batch_errors(np.full(20, 0.01), Evidence(1, 200, 40))
    assert few.source == many.source == "reviewers"
    assert many.high - many.low < few.high - few.low
    assert str(many).startswith("≈ 4.0 (90% interval")
