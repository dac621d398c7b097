"""The audit estimator (relabel.scoring.audit): the draw's inclusion probabilities, unbiasedness on simulated
populations, coverage of the 90% interval by simulation (a broader sweep with RELABEL_AUDIT_COVERAGE=full)."""
import os

import numpy as np
import pytest

from relabel.scoring.audit import AuditEstimate, draw_audit, estimate_wrong_labels, format_audited


def population(n, kind, seed=0):
    """Posterior P(wrong) and the true wrong flags: calibrated, 0.4x the truth (a crowd agreeing on wrong labels),
    or blind (the posterior says nothing about where the errors are)."""
    rng = np.random.default_rng(seed)
    p = rng.beta(0.3, 6, n)
    true_rate = {"calibrated": p, "under": np.clip(2.5 * p, 0, 1), "blind": np.full(n, 0.1)}[kind]
    return p, rng.random(n) < true_rate


def audit_and_estimate(p, wrong, size, rng, seed=0):
    pos, pi = draw_audit(p, size, rng)
    rest = np.ones(p.size, bool)
    rest[pos] = False
    est = estimate_wrong_labels(p[rest], p[pos], pi, wrong[pos], seed=seed)
    return est, int(wrong[rest].sum())


def test_draw_weights_add_up_to_the_frame_and_every_item_can_be_drawn():
    p, _ = population(1000, "calibrated")
    pos, pi = draw_audit(p, 50, np.random.default_rng(1))
    assert pos.size == 50 and np.unique(pos).size == 50 and pos.min() >= 0 and pos.max() < 1000
    assert np.all((pi > 0) & (pi <= 1))
    # Stratified simple random sampling: the Horvitz-Thompson weights of the sample add up to the frame's size.
    assert np.sum(1 / pi) == pytest.approx(1000)
    # The draw leans towards high P(wrong) (Neyman allocation) but the least suspicious items can still be drawn.
    order = np.argsort(p)
    low_pi, high_pi = pi[np.isin(pos, order[:200])], pi[np.isin(pos, order[-200:])]
    assert low_pi.size >= 1 and high_pi.mean() > low_pi.mean()


def test_inclusion_probabilities_match_how_often_items_are_drawn():
    p, _ = population(60, "calibrated", seed=3)
    rng = np.random.default_rng(2)
    hits, recorded = np.zeros(60), np.zeros(60)
    reps = 3000
    for _ in range(reps):
        pos, pi = draw_audit(p, 12, rng)
        hits[pos] += 1
        recorded[pos] = pi
    freq = hits / reps
    se = np.sqrt(recorded * (1 - recorded) / reps)
    assert np.all(np.abs(freq - recorded) < 5 * se + 1e-9)


def test_small_frames_and_empty_audits():
    pos, pi = draw_audit([0.1, 0.2, 0.3], 5, np.random.default_rng(0))
    assert pos.tolist() == [0, 1, 2] and pi.tolist() == [1, 1, 1]
    pos, pi = draw_audit([0.1, 0.2], 0, np.random.default_rng(0))
    assert pos.size == 0 and pi.size == 0
    with pytest.raises(ValueError):
        draw_audit([0.1], -1, np.random.default_rng(0))


def test_without_audits_the_estimate_is_the_model_and_says_nothing_is_measured():
    est = estimate_wrong_labels([0.1, 0.2, 0.7], [], [], [])
    assert est.audited == 0 and est.expected == pytest.approx(1.0) and (est.low, est.high) == (0, 3)


def test_a_perfect_posterior_leaves_no_residual():
    # Every item's P(wrong) is 0 or 1 and right: the audits find exactly what the posterior said.
    p = np.r_[np.zeros(90), np.ones(10)]
    est = estimate_wrong_labels(p, p[::5], np.full(20, 0.2), p[::5])
    assert est.expected == pytest.approx(10.0) and est.low <= 10 <= est.high


def test_a_stratum_whose_audits_found_no_error_still_has_an_interval():
    # 40 audits, none wrong, from a posterior that says 2% of the labels are wrong: the count is not known to be
    # exactly the posterior's; the interval holds 0 and reaches above the posterior's own sum.
    p = np.full(2000, 0.02)
    est = estimate_wrong_labels(p, p[:40], np.full(40, 0.02), np.zeros(40, bool))
    assert est.found == 0 and est.low == 0 and est.high > p.sum()


def test_the_count_left_keeps_its_own_coin_flips():
    # Audits of the whole frame but a few items: the items left are still each wrong or not, so the interval for
    # 10 items at a 30% error rate is not a point even with 990 audits.
    rng = np.random.default_rng(4)
    wrong = rng.random(990) < 0.3
    est = estimate_wrong_labels(np.full(10, 0.3), np.full(990, 0.3), np.ones(990), wrong)
    assert est.high - est.low >= 3


def test_rounds_that_disagree_widen_the_interval():
    # Two rounds of audits at the same P(wrong): one found 2 errors in 50, the other 20 in 50. Told the rounds,
    # the estimate widens its interval for the spread between them; its point estimate is the same.
    p = np.full(3000, 0.05)
    ap, pi = np.full(100, 0.05), np.full(100, 0.02)
    y = np.r_[np.arange(50) < 2, np.arange(50) < 20]
    pooled = estimate_wrong_labels(p, ap, pi, y)
    by_round = estimate_wrong_labels(p, ap, pi, y, audit_round=np.repeat([1, 2], 50))
    assert by_round.expected == pytest.approx(pooled.expected)
    assert by_round.high - by_round.low > 1.5 * (pooled.high - pooled.low)
    agree = np.r_[np.arange(50) < 11, np.arange(50) < 11]
    assert (estimate_wrong_labels(p, ap, pi, agree, audit_round=np.repeat([1, 2], 50)).high
            == estimate_wrong_labels(p, ap, pi, agree).high)
    with pytest.raises(ValueError, match="audit_round"):
        estimate_wrong_labels(p, ap, pi, y, audit_round=[1, 2])


def test_bad_audit_records_are_refused():
    with pytest.raises(ValueError, match="inclusion"):
        estimate_wrong_labels([0.1], [0.1], [0.0], [1])
    with pytest.raises(ValueError, match="one length"):
        estimate_wrong_labels([0.1], [0.1, 0.2], [0.5], [1])
    with pytest.raises(ValueError, match="finite"):
        estimate_wrong_labels([0.1], [np.nan], [0.5], [1])


@pytest.mark.parametrize("kind", ["calibrated", "under", "blind"])
def test_the_estimate_is_unbiased_whatever_the_posterior(kind):
    # Design-based: one fixed population, many random audits; the mean estimate meets the truth even when the
    # posterior sees 0.4x the errors or none of their places.
    p, wrong = population(3000, kind, seed=5)
    rng = np.random.default_rng(7)
    errors = []
    for rep in range(300):
        est, truth = audit_and_estimate(p, wrong, 60, rng, seed=rep)
        errors.append(est.expected - truth)
    errors = np.array(errors)
    assert abs(errors.mean()) < 3 * errors.std() / np.sqrt(errors.size) + 1.0


def test_audits_pool_across_rounds():
    # Two rounds: the second estimate uses both rounds' audits, and the audited items left the target.
    p, wrong = population(4000, "under", seed=9)
    rng = np.random.default_rng(0)
    left = np.ones(p.size, bool)
    ap, api, ay = [], [], []
    for _ in range(2):
        frame = np.flatnonzero(left)
        pos, pi = draw_audit(p[frame], 40, rng)
        ap.append(p[frame[pos]]), api.append(pi), ay.append(wrong[frame[pos]])
        left[frame[pos]] = False
    est = estimate_wrong_labels(p[left], np.concatenate(ap), np.concatenate(api), np.concatenate(ay))
    assert est.audited == 80 and est.items == 3920 and est.found == int(np.concatenate(ay).sum())
    assert est.low <= est.expected <= est.high


def coverage(kind, n_items, size, reps, seed=0):
    p, wrong = population(n_items, kind, seed=seed)
    rng = np.random.default_rng(seed + 100)
    hits = 0
    for rep in range(reps):
        est, truth = audit_and_estimate(p, wrong, size, rng, seed=rep)
        hits += est.low <= truth <= est.high
    return hits / reps


def test_the_90_percent_interval_covers_about_90_percent():
    # 300 audits of 30 items from a population whose posterior sees 0.4x the errors: binomial noise of the
    # coverage at 300 repetitions is +-3%.
    assert 0.84 <= coverage("under", 2000, 30, 300) <= 0.96


@pytest.mark.skipif(os.environ.get("RELABEL_AUDIT_COVERAGE") != "full",
                    reason="coverage sweep: set RELABEL_AUDIT_COVERAGE=full (a few minutes)")
@pytest.mark.parametrize("kind", ["calibrated", "under", "blind"])
@pytest.mark.parametrize("n_items,size", [(300, 10), (5000, 30), (20000, 100)])
def test_coverage_sweep(kind, n_items, size):
    # Issue 22's bar (85-95%) holds from 30 audits on; with 10 audits of 300 items the variance rests on one or two
    # errors found and coverage dips (79.5% for a calibrated posterior when this was written): kept visible here.
    low, high = (0.85, 0.95) if size >= 30 else (0.75, 0.97)
    assert low <= coverage(kind, n_items, size, 400) <= high


def test_wording_says_what_it_rests_on():
    est = AuditEstimate(items=1000, expected=41.2, low=22, high=68, audited=57, found=4, model_expected=20.0)
    assert str(est) == "≈ 41 wrong labels left (90% interval 22–68), from 57 audited items"
    assert format_audited(3, 0, 9, 1).endswith("from 1 audited item")
    assert est.as_dict()["source"] == "audit" and est.rate == pytest.approx(0.0412)
