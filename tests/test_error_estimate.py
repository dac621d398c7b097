"""relabel.scoring.error_estimate: the expected count of wrong labels, its interval, and recalibration from reviewers."""
import numpy as np
import pytest

from relabel.scoring.error_estimate import expected_errors, fit_recalibration, format_expected, recalibrate


def test_interval_covers_the_simulated_count_about_90_percent_of_the_time():
    rng = np.random.default_rng(0)
    q = rng.beta(8, 1, 2000)
    e = expected_errors(q)
    wrong = (rng.random((2000, q.size)) > q).sum(axis=1)      # 2000 simulated projects
    covered = ((wrong >= e.low) & (wrong <= e.high)).mean()
    assert 0.86 <= covered <= 0.95
    assert e.expected == pytest.approx((1 - q).sum())


def test_certain_labels_give_zero():
    e = expected_errors(np.ones(50))
    assert (e.expected, e.low, e.high) == (0.0, 0, 0)
    assert str(e) == "≈ 0.0 (90% interval 0–0)"
    assert format_expected(None, None, None) == "-"
    assert format_expected(3.25, 1, 6) == "≈ 3.2 (90% interval 1–6)"


def test_recalibration_learns_an_overconfident_posterior():
    rng = np.random.default_rng(1)
    q = rng.uniform(0.6, 1.0, 3000)
    truly = 0.5 + (q - 0.6) * 0.9            # really right less often than q says
    right = rng.random(q.size) < truly
    params = fit_recalibration(q, right)
    fixed = recalibrate(q, params)
    assert abs(fixed.mean() - right.mean()) < 0.02
    assert abs(q.mean() - right.mean()) > 0.05


def test_no_decision_keeps_the_posterior():
    assert fit_recalibration([], []) == (1.0, 0.0)
    np.testing.assert_array_equal(recalibrate([0.7, 0.9], (1.0, 0.0)), [0.7, 0.9])


def test_a_few_decisions_already_shift_the_posterior_towards_what_reviewers_saw():
    # 1 of 5 corrected where the posterior said 0.9 right: the shift alone, landing near the observed 0.8
    a, b = fit_recalibration([0.9] * 5, [True, False, True, True, True])
    assert a == 1.0 and b < 0
    assert 0.8 <= recalibrate([0.9], (a, b))[0] < 0.85
    # the prior counts as one decision: two answers move it less than ten with the same outcomes
    _, b2 = fit_recalibration([0.95] * 2, [True, False])
    _, b10 = fit_recalibration([0.95] * 10, [True, False] * 5)
    assert b10 < b2 < 0
    assert recalibrate([0.95], (1.0, b10))[0] == pytest.approx(0.5, abs=0.05)
    # a shift keeps the order: a near-certain posterior stays far above a doubtful one
    low, high = recalibrate([0.6, 0.999], (1.0, b10))
    assert high > 0.95 > 0.1 > low


def test_decisions_all_of_one_kind_give_a_finite_shift_of_the_right_sign():
    q = np.linspace(0.5, 1, 50)
    a, up = fit_recalibration(q, np.ones(50, bool))
    _, down = fit_recalibration(q, np.zeros(50, bool))
    assert a == 1.0 and 0 < up < 30 and -30 < down < 0
    assert fit_recalibration(q[:5], np.ones(5, bool))[1] < up      # fewer confirmations, smaller shift


def test_the_shift_recovers_an_overconfident_posterior_from_a_dozen_decisions():
    """Reviewers see 12 items a round; the truth is P(right) = sigmoid(logit(q) - 2). Over 300 simulated
    rounds the fitted shift is centred near -2 and the recalibrated count of wrong labels among those items is
    nearer the truth than the posterior's in most of them."""
    rng = np.random.default_rng(7)
    shifts, better = [], 0
    for _ in range(300):
        q = rng.uniform(0.7, 0.99, 12)
        truly = 1 / (1 + np.exp(-(np.log(q / (1 - q)) - 2)))
        right = rng.random(12) < truly
        if right.all():
            continue
        params = fit_recalibration(q, right)
        shifts.append(params[1])
        truth = (1 - truly).sum()
        better += abs((1 - recalibrate(q, params)).sum() - truth) < abs((1 - q).sum() - truth)
    assert len(shifts) > 250
    assert -2.6 < np.median(shifts) < -1.4
    assert better > 0.8 * len(shifts)
