"""relabel's default consensus (relabel.scoring.consensus.consensus): the contract every consensus result keeps."""
import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from relabel.scoring.annotations import Annotations
from relabel import ConsensusResult, consensus, crowdlab
from relabel.errors import AnnotationError, ConfigError, PredProbsError


def _dataset(seed, n_items=120, k=4, n_annotators=6, per_item=(1, 3)):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n_items)
    accuracy = rng.uniform(0.5, 0.95, n_annotators)
    items, annotators, labels = [], [], []
    for i in range(n_items):
        for j in rng.choice(n_annotators, size=rng.integers(per_item[0], per_item[1] + 1), replace=False):
            items.append(i); annotators.append(f"a{j}")
            labels.append(truth[i] if rng.random() < accuracy[j] else (truth[i] + rng.integers(1, k)) % k)
    p = rng.dirichlet(np.ones(k) * 0.5, n_items) * 0.5
    p[np.arange(n_items), truth] += 0.5
    return Annotations.from_records(items, annotators, labels, classes=list(range(k))), p, truth


METHODS = {
    "default with model": lambda a, p: consensus(a, p),
    "default annotations only": lambda a, p: consensus(a),
    "crowdlab": lambda a, p: crowdlab(a, p),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", range(3))
def test_contract(method, seed):
    a, p, truth = _dataset(seed, per_item=(2, 3))
    r = METHODS[method](a, p)
    assert isinstance(r, ConsensusResult)
    n, m, k = a.n_items, a.n_annotators, a.n_classes
    assert r.posterior.shape == (n, k) and np.allclose(r.posterior.sum(axis=1), 1)
    for per_item in (r.consensus_label, r.consensus_quality_score, r.annotator_agreement, r.num_annotations):
        assert per_item.shape == (n,)
    assert r.annotation_quality.shape == (len(a),)
    for per_annotator in (r.annotator_quality, r.agreement_with_consensus, r.worst_class, r.num_examples_labeled):
        assert per_annotator.shape == (m,)
    for score in (r.consensus_quality_score, r.annotator_agreement, r.annotation_quality, r.annotator_quality):
        assert ((score >= 0) & (score <= 1)).all()
    np.testing.assert_array_equal(r.num_annotations, a.num_annotations())
    np.testing.assert_array_equal(r.num_examples_labeled, np.bincount(a.annotator, minlength=m))
    # far above chance (0.25); how each method compares with the others is measured in benchmarks/quality.py
    assert (r.consensus_label == truth).mean() > 0.5


def test_default_quality_is_the_calibrated_posterior_of_the_em_label():
    from relabel.scoring.fitted_em import fitted_dawid_skene

    a, p, _ = _dataset(7)
    r = consensus(a, p, allow_overrides="always")
    em = fitted_dawid_skene(a, p)
    np.testing.assert_array_equal(r.consensus_label, em.posterior.argmax(axis=1))
    np.testing.assert_allclose(r.posterior, em.quality_posterior)
    np.testing.assert_allclose(r.consensus_quality_score, r.posterior[np.arange(a.n_items), r.consensus_label])
    np.testing.assert_allclose(r.annotation_quality, r.posterior[a.item, a.label])


def test_overrides_are_flagged_and_only_allowed_with_an_earning_model_by_default():
    a, p, _ = _dataset(7)
    p = np.roll(p, 1, axis=1) ** 8            # a confident model that disagrees with the annotators
    p /= p.sum(axis=1, keepdims=True)
    given = a.vote_counts() > 0
    always = consensus(a, p, allow_overrides="always")
    default = consensus(a, p)
    never = consensus(a, p, allow_overrides="never")
    for r in (always, default, never):
        np.testing.assert_array_equal(r.override, ~given[np.arange(a.n_items), r.consensus_label])
        np.testing.assert_allclose(r.consensus_quality_score, r.posterior[np.arange(a.n_items), r.consensus_label])
    assert not never.override.any() and always.override.any()
    # This model contradicts the annotators: it has not earned a say, so the labels are the annotations' own
    # (relabel.scoring.override_evidence; tests/test_override_evidence.py has the regimes).
    assert default.override_evidence.regime == "not earned" and not default.override.any()
    np.testing.assert_array_equal(default.consensus_label, consensus(a).consensus_label)
    model = consensus(a, p, allow_overrides="model")
    np.testing.assert_array_equal(model.consensus_label, always.consensus_label)
    alone, alone_always = consensus(a), consensus(a, allow_overrides="always")
    assert not alone.override.any()
    np.testing.assert_array_equal(alone.posterior, alone_always.posterior)
    with pytest.raises(ConfigError, match="allow_overrides"):
        consensus(a, p, allow_overrides="sometimes")


def test_expected_errors_has_an_interval_around_the_sum_of_doubts():
    a, p, _ = _dataset(11)
    r = consensus(a, p)
    e = r.expected_errors
    assert e.expected == pytest.approx(float(np.sum(1 - r.consensus_quality_score)))
    assert e.low <= e.expected <= e.high
    assert str(e).startswith("≈ ") and "(90% interval" in str(e)


def test_single_annotator_and_single_labels_are_fine():
    a, p, truth = _dataset(8, n_annotators=1, per_item=(1, 1))
    r = consensus(a, p)
    assert (r.consensus_label == truth).mean() >= (a.label == truth[a.item]).mean() - 0.05


def test_reviewer_decisions_are_final_and_teach_the_annotators():
    a, p, truth = _dataset(9)
    known = np.full(a.n_items, -1)
    known[:30] = truth[:30]
    before, after = consensus(a, p), consensus(a, p, known_labels=known)
    np.testing.assert_array_equal(after.consensus_label[:30], truth[:30])
    assert (after.consensus_label == truth).sum() >= (before.consensus_label == truth).sum()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), with_model=st.booleans())
@example(seed=2805, with_model=False)   # the pooling-strength search picked another point (1.6e-4 apart)
@example(seed=1230, with_model=True)    # the held-out calibration's discount moved (float32 sums)
def test_renaming_and_permuting_annotators_changes_nothing(seed, with_model):
    a, p, _ = _dataset(seed, n_items=40)
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(a))
    names = np.array([f"z{x}" for x in a.annotator_ids])[a.annotator]
    b = Annotations.from_records(a.item_ids[a.item][rows], names[rows], a.label[rows], classes=a.classes)
    where_in_b = np.array([list(b.item_ids).index(i) for i in a.item_ids])   # a's item i is b's item where_in_b[i]
    p_b = p[np.argsort(where_in_b)]
    ra, rb = (consensus(a, p), consensus(b, p_b)) if with_model else (consensus(a), consensus(b))
    np.testing.assert_allclose(ra.posterior, rb.posterior[where_in_b], atol=1e-5)  # float32 EM


def _permuted(a, p, seed):
    """The same annotations with rows shuffled, items and annotators in another order of first appearance,
    annotators renamed so that their names sort in the opposite order; p reordered alike. Also where a's items
    and annotators are in b."""
    rows = np.random.default_rng(seed).permutation(len(a))
    new_name = np.array([f"r{a.n_annotators - j:03d}" for j in range(a.n_annotators)])
    b = Annotations.from_records(a.item_ids[a.item][rows], new_name[a.annotator][rows], a.label[rows],
                                 classes=a.classes)
    item_in_b = np.array([list(b.item_ids).index(i) for i in a.item_ids])
    annotator_in_b = np.array([list(b.annotator_ids).index(x) for x in new_name])
    return b, p[np.argsort(item_in_b)], item_in_b, annotator_in_b


@pytest.mark.parametrize("seed, with_model", [(2805, False), (1230, True), (7, False), (7, True)])
@pytest.mark.parametrize("sampled", [False, True], ids=["all annotations", "sampled"])
def test_row_order_and_names_change_nothing_at_all(seed, with_model, sampled, monkeypatch):
    """Row order, item/annotator numbering and annotator names do not move a single bit: the fit sees one
    canonical table (annotators ordered by what they labelled, not by name), and the
    discount's and the held-out likelihood's annotation samples (forced here by a small cap) are drawn from it."""
    from relabel.scoring import fitted_em

    if sampled:
        monkeypatch.setattr(fitted_em, "DISCOUNT_FIT_ANNOTATIONS", 30)
    a, p, _ = _dataset(seed, n_items=40, per_item=(1, 3))
    b, p_b, item_in_b, annotator_in_b = _permuted(a, p, seed)
    ra, rb = (consensus(a, p), consensus(b, p_b)) if with_model else (consensus(a), consensus(b))
    np.testing.assert_array_equal(ra.posterior, rb.posterior[item_in_b])
    np.testing.assert_array_equal(ra.consensus_label, rb.consensus_label[item_in_b])
    np.testing.assert_array_equal(ra.confusion, rb.confusion[annotator_in_b])
    # a mean over the caller's rows, after the fit: summed in the caller's order, so equal to rounding
    np.testing.assert_allclose(ra.annotator_quality, rb.annotator_quality[annotator_in_b], rtol=1e-12)
    assert ra.settings == rb.settings


def test_interchangeable_annotators_keep_the_result_exact():
    """Two annotators with the same labels on the same items tie in the canonical order (kept in the caller's
    order): swapping their names must not move a bit either."""
    a, _, _ = _dataset(11, n_items=40, per_item=(1, 3))
    names = a.annotator_ids[a.annotator]
    twin = names == a.annotator_ids[0]
    items = np.concatenate([a.item_ids[a.item], a.item_ids[a.item][twin]])
    labels = np.concatenate([a.label, a.label[twin]])
    first = Annotations.from_records(items, np.concatenate([names, np.full(twin.sum(), "twin")]), labels,
                                     classes=a.classes)
    swapped = np.where(names == a.annotator_ids[0], "twin", names)
    second = Annotations.from_records(items, np.concatenate([swapped, np.full(twin.sum(), a.annotator_ids[0])]),
                                      labels, classes=a.classes)
    np.testing.assert_array_equal(consensus(first).posterior, consensus(second).posterior)


def test_every_per_item_and_per_annotator_field_is_mapped_back():
    """The canonical-order wrapper maps back the result fields it lists: a new per-item or per-annotator array
    field of FittedEM must be listed too, or it would come back in the canonical order."""
    from relabel.scoring.canonical_order import ANNOTATOR_FIELDS, ITEM_FIELDS
    from relabel.scoring.fitted_em import fitted_dawid_skene

    a, p, _ = _dataset(5, n_items=40, k=4, n_annotators=6)
    assert len({a.n_items, a.n_annotators, a.n_classes}) == 3          # leading axes tell the fields apart
    for em in (fitted_dawid_skene(a), fitted_dawid_skene(a, p)):
        for name, value in vars(em).items():
            if isinstance(value, np.ndarray) and value.ndim and value.shape[0] == a.n_items:
                assert name in ITEM_FIELDS, name
            if isinstance(value, np.ndarray) and value.ndim and value.shape[0] == a.n_annotators:
                assert name in ANNOTATOR_FIELDS, name


def test_mixed_id_types_have_a_canonical_order():
    from relabel.scoring.canonical_order import sorted_order

    ids = np.array([3, "b", 1, "a"], dtype=object)
    assert ids[sorted_order(ids)].tolist() == [1, 3, "a", "b"]


def test_bad_input_is_named():
    a, p, _ = _dataset(10, n_items=20)
    with pytest.raises(PredProbsError, match="rows"):
        consensus(a, p[:-1])
    with pytest.raises(ConfigError, match="known_labels"):
        consensus(a, p, known_labels=np.full(a.n_items, 9))
    empty = Annotations(a.item, a.annotator, a.label, np.append(a.item_ids, [999]), a.annotator_ids, a.classes)
    with pytest.raises(AnnotationError, match="999"):
        consensus(empty, np.vstack([p, p[:1]]))


def _correlated(seed, n_items=600, k=3, n_annotators=8, per_item=5, hard_share=0.25):
    """Annotators who err together: on 'hard' items most of them give the same wrong label (a decoy)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n_items)
    decoy = (truth + rng.integers(1, k, n_items)) % k
    hard = rng.random(n_items) < hard_share
    items, annotators, labels = [], [], []
    for i in range(n_items):
        for j in rng.choice(n_annotators, size=per_item, replace=False):
            right = rng.random() < (0.45 if hard[i] else 0.95)
            items.append(i); annotators.append(j)
            labels.append(truth[i] if right else (decoy[i] if hard[i] else (truth[i] + rng.integers(1, k)) % k))
    return Annotations.from_records(items, annotators, labels, classes=list(range(k))), truth


def test_correlated_errors_are_discounted_by_the_held_out_fit():
    from relabel.scoring.error_estimate import expected_errors
    from relabel.scoring.fitted_em import fitted_dawid_skene

    a, truth = _correlated(0)
    em = fitted_dawid_skene(a)
    assert em.quality_discount < 0.9           # the product of correlated annotators overstates the evidence
    label = consensus(a).consensus_label
    measured = int((label != truth).sum())
    rows = np.arange(a.n_items)
    calibrated = expected_errors(em.quality_posterior[rows, label]).expected
    in_sample = expected_errors(em.posterior[rows, label]).expected
    # the discounted posterior's count is nearer the truth than the EM's own (which is overconfident)
    assert abs(calibrated - measured) < abs(in_sample - measured)
    assert in_sample < calibrated


def test_independent_annotators_keep_their_evidence():
    from relabel.scoring.fitted_em import fitted_dawid_skene

    a, _, _ = _dataset(3, n_items=400, per_item=(3, 4))
    assert fitted_dawid_skene(a).quality_discount > 0.8


def test_annotation_only_labels_come_from_the_em_and_the_quality_from_the_calibrated_posterior():
    from relabel.scoring.consensus_em import _restrict_to_given
    from relabel.scoring.fitted_em import fitted_dawid_skene

    a, truth = _correlated(1)
    em = fitted_dawid_skene(a)
    r = consensus(a)
    np.testing.assert_array_equal(r.consensus_label, _restrict_to_given(a, em.posterior, np.zeros(a.n_items, bool)))
    np.testing.assert_allclose(r.posterior, em.quality_posterior)
    np.testing.assert_allclose(r.consensus_quality_score, em.quality_posterior[np.arange(a.n_items), r.consensus_label])
    assert r.settings["quality_discount"] == em.quality_discount


def test_pooling_strength_is_the_held_out_optimum():
    from relabel.scoring.fitted_em import _HeldOut, _Long, fitted_dawid_skene

    # annotators of accuracies 0.5-0.95: neither "each alone" nor "all alike", so the optimum is inside the bounds
    a, _, _ = _dataset(3, n_items=400, per_item=(3, 5), n_annotators=12)
    fitted = fitted_dawid_skene(a)
    assert 0.2 < fitted.pool_strength < 5e4
    held_out = _HeldOut(_Long(a), 0)
    score = lambda em: held_out.log_likelihood(*held_out.state(em), em.class_prior)  # noqa: E731
    best = score(fitted)
    for s in (fitted.pool_strength / 10, fitted.pool_strength * 10):
        assert score(fitted_dawid_skene(a, pool_strength=s)) < best


def test_with_a_model_the_quality_posterior_is_refitted_on_held_out_annotations():
    from relabel.scoring.fitted_em import fitted_dawid_skene

    a, truth = _correlated(0, per_item=3)
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1, (a.n_items, a.n_classes))
    logits[np.arange(a.n_items), truth] += 1.5                       # a model right ~75% of the time, unsure
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    em = fitted_dawid_skene(a, p)
    r = consensus(a, p, allow_overrides="model")        # the EM's labels, whether or not this model earned them
    rows = np.arange(a.n_items)
    measured = int((r.consensus_label != truth).sum())
    in_sample = float((1 - em.posterior[rows, r.consensus_label]).sum())
    calibrated = float((1 - r.consensus_quality_score).sum())
    assert in_sample < calibrated <= measured                          # the EM's posterior is the overconfident one
    assert (em.quality_temperature, em.quality_discount) != (em.temperature, em.discount)
    assert r.settings["quality_temperature"] == em.quality_temperature
    # the labels are the EM's (argmax of its posterior, overrides allowed with a model)
    np.testing.assert_array_equal(r.consensus_label, em.posterior.argmax(axis=1))
