"""relabel.calibration: the expected count of wrong labels, its interval, and recalibration from reviewers."""
import numpy as np
import pytest

from relabel.calibration import expected_errors, fit_recalibration, format_expected, recalibrate


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


def test_too_few_or_one_sided_decisions_keep_the_posterior():
    assert fit_recalibration([0.9] * 5, [True, False, True, True, True]) == (1.0, 0.0)
    assert fit_recalibration(np.linspace(0.5, 1, 50), np.ones(50, bool)) == (1.0, 0.0)
    np.testing.assert_array_equal(recalibrate([0.7, 0.9], (1.0, 0.0)), [0.7, 0.9])
