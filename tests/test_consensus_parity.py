"""Parity of relabel.scoring.consensus / relabel.scoring.active with cleanlab 2.9.0 on many seeded random inputs.

Floats must agree to 1e-9 and integers exactly. Where the two may legitimately differ (ALGORITHMS.md, "deliberate
differences"), the oracle is cleanlab adjusted to the documented behaviour, never our own output:

* vote counts: cleanlab's vote-count helper is patched to count correctly (agreement, calibrate_probs, ActiveLab);
* the final majority-vote tie-break: cleanlab's np.random.choice is patched to take the smallest tied class
  (test_majority_vote_random_ties checks, unpatched, that ours is the smallest class cleanlab can pick);
* exact posterior ties: cleanlab's per-annotator loop can split an exact tie by one unit in the last place and
  then pick a class by rounding noise. When cleanlab's own majority-vote posterior has such a near-tie
  (top two within 1e-12), the oracle is assembled from cleanlab's own private steps with the tie honoured
  (the item keeps its majority-vote label, ALGORITHMS 2.3).
"""
from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import pytest

import cleanlab.multiannotator as cl
from relabel.scoring.active import get_active_learning_scores
from relabel.scoring.annotations import Annotations
from relabel.scoring.consensus import crowdlab, get_label_quality_multiannotator, get_majority_vote_label

from multiannotator_cases import cleanlab_with_correct_vote_counts, quiet, random_case

TOL = 1e-9
NOISE_TIE = 1e-12
SEEDS = range(120)


@contextlib.contextmanager
def smallest_class_on_random_ties():
    """cleanlab's last majority-vote tie-break with our deterministic rule (smallest tied class)."""
    saved = np.random.choice
    np.random.choice = lambda options, *args, **kwargs: np.min(options)
    try:
        yield
    finally:
        np.random.choice = saved


def _noise_tied_items(labels, p, quality_method="crowdlab") -> np.ndarray:
    """Items whose cleanlab majority-vote posterior has its top two classes within NOISE_TIE."""
    majority = cl.get_majority_vote_label(labels, p, verbose=False)
    posterior = cl._get_consensus_stats(labels, p, (~np.isnan(labels)).sum(axis=1), majority,
                                        quality_method=quality_method, verbose=False)[2]
    top2 = np.sort(posterior, axis=1)[:, -2:]
    return np.flatnonzero(top2[:, 1] - top2[:, 0] <= NOISE_TIE)


def _assembled_oracle(labels, p, methods, quality_method, kwargs, detailed=True):
    """cleanlab's get_label_quality_multiannotator rebuilt from its own private steps, exact ties honoured."""
    n = (~np.isnan(labels)).sum(axis=1)
    majority = cl.get_majority_vote_label(labels, p, verbose=False)
    mv = cl._get_consensus_stats(labels, p, n, majority, quality_method=quality_method, verbose=False,
                                 label_quality_score_kwargs=kwargs)
    stats = {"majority_vote": (majority,) + mv}
    if "best_quality" in methods:
        posterior = mv[2]
        top2 = np.sort(posterior, axis=1)[:, -2:]
        unique = top2[:, 1] - top2[:, 0] > NOISE_TIE
        best = np.where(unique, posterior.argmax(axis=1), majority)
        stats["best_quality"] = (best,) + cl._get_consensus_stats(
            labels, p, n, best, quality_method=quality_method, verbose=False, label_quality_score_kwargs=kwargs)
    label, agreement, quality, posterior, model_weight, annotator_weight = stats[methods[0]]
    label_quality = pd.DataFrame({"consensus_label": label, "consensus_quality_score": quality,
                                  "annotator_agreement": agreement, "num_annotations": n})
    for extra in methods[1:]:
        label_quality[f"consensus_label_{extra}"] = stats[extra][0]
        label_quality[f"consensus_quality_score_{extra}"] = stats[extra][2]
        label_quality[f"annotator_agreement_{extra}"] = stats[extra][1]
    detailed_quality = np.apply_along_axis(cl._get_annotator_label_quality_score, 0, labels,
                                           pred_probs=posterior, label_quality_score_kwargs=kwargs)
    out = {"label_quality": label_quality,
           "annotator_stats": cl._get_annotator_stats(labels, posterior, label, n, agreement, model_weight,
                                                      annotator_weight, quality, detailed_quality,
                                                      quality_method=quality_method),
           "model_weight": stats[methods[-1]][4], "annotator_weight": stats[methods[-1]][5]}
    if detailed:
        out["detailed_label_quality"] = pd.DataFrame(detailed_quality).add_prefix("quality_annotator_")
    return out


def cleanlab_oracle(labels, p, *, consensus_method="best_quality", quality_method="crowdlab",
                    label_quality_score_kwargs=None, return_detailed_quality=True, calibrate_probs=False):
    """(oracle dict, whether the assembled oracle was needed) for one input."""
    kwargs = dict(label_quality_score_kwargs or {})
    methods = consensus_method if isinstance(consensus_method, list) else [consensus_method]
    with quiet(), smallest_class_on_random_ties():
        if calibrate_probs:
            p = cl.temp_scale_pred_probs(p, cl.find_best_temp_scaler(labels, p))
        if "best_quality" in methods and _noise_tied_items(labels, p, quality_method).size:
            return _assembled_oracle(labels, p, methods, quality_method, kwargs, return_detailed_quality), True
        out = cl.get_label_quality_multiannotator(
            labels, p, consensus_method=consensus_method, quality_method=quality_method,
            return_detailed_quality=return_detailed_quality,
            return_weights=quality_method == "crowdlab", verbose=False, label_quality_score_kwargs=kwargs)
        return out, False


def assert_annotator_stats_equal(ours: pd.DataFrame, theirs: pd.DataFrame):
    """Same values per annotator, and the same order up to runs of (numerically) equal sort keys."""
    pd.testing.assert_frame_equal(ours.sort_index(), theirs.sort_index(), rtol=TOL, atol=TOL)
    assert list(ours.columns) == list(theirs.columns)

    def runs(frame):
        keys = frame[["annotator_quality", "agreement_with_consensus"]].to_numpy().round(9)
        groups, current, last = [], [], None
        for index, key in zip(frame.index, map(tuple, np.nan_to_num(keys, nan=np.inf))):
            if key != last and current:
                groups.append(set(current))
                current = []
            current.append(index)
            last = key
        return groups + [set(current)]

    assert runs(ours) == runs(theirs)
    # And ours is itself sorted, stably: lowest quality first, then agreement, NaN last.
    expected = np.lexsort((ours["agreement_with_consensus"], ours["annotator_quality"]))
    assert (expected == np.arange(len(ours))).all()


def assert_same_output(ours: dict, theirs: dict, weights: bool = True):
    pd.testing.assert_frame_equal(ours["label_quality"], theirs["label_quality"], rtol=TOL, atol=TOL,
                                  check_index_type=False)
    if "detailed_label_quality" in theirs:
        pd.testing.assert_frame_equal(ours["detailed_label_quality"], theirs["detailed_label_quality"],
                                      rtol=TOL, atol=TOL, check_index_type=False, check_column_type=False)
    assert_annotator_stats_equal(ours["annotator_stats"], theirs["annotator_stats"])
    if weights:
        assert abs(ours["model_weight"] - theirs["model_weight"]) <= TOL
        np.testing.assert_allclose(ours["annotator_weight"], theirs["annotator_weight"], rtol=TOL, atol=TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_crowdlab_defaults_match_cleanlab(seed):
    labels, p = random_case(seed)
    theirs, _ = cleanlab_oracle(labels, p)
    ours = get_label_quality_multiannotator(labels, p, return_weights=True)
    assert_same_output(ours, theirs)


def test_assembled_oracle_is_rare_and_faithful():
    """The assembled oracle stands in for cleanlab's public function only on a minority of seeds (16 of 120
    when written: those with rounded, tied pred_probs), and where both apply they agree exactly."""
    with quiet():
        tied = [seed for seed in SEEDS if _noise_tied_items(*random_case(seed)).size]
    assert len(tied) <= len(SEEDS) // 5, tied
    for seed in [s for s in SEEDS if s not in tied][:15]:
        labels, p = random_case(seed)
        with quiet(), smallest_class_on_random_ties():
            public = cl.get_label_quality_multiannotator(labels, p, verbose=False, return_weights=True)
            assembled = _assembled_oracle(labels, p, ["best_quality"], "crowdlab", {})
        pd.testing.assert_frame_equal(assembled["label_quality"], public["label_quality"], check_exact=True)
        pd.testing.assert_frame_equal(assembled["detailed_label_quality"], public["detailed_label_quality"],
                                      check_exact=True)
        pd.testing.assert_frame_equal(assembled["annotator_stats"], public["annotator_stats"], check_exact=True)


SCORE_KWARGS = [
    {"method": "self_confidence", "adjust_pred_probs": True},
    {"method": "normalized_margin"},
    {"method": "normalized_margin", "adjust_pred_probs": True},
    {"method": "confidence_weighted_entropy"},
]


@pytest.mark.parametrize("kwargs", SCORE_KWARGS, ids=lambda k: "-".join(f"{v}" for v in k.values()))
@pytest.mark.parametrize("seed", range(200, 230))
def test_label_quality_score_kwargs_match_cleanlab(seed, kwargs):
    labels, p = random_case(seed)
    theirs, _ = cleanlab_oracle(labels, p, label_quality_score_kwargs=kwargs)
    ours = get_label_quality_multiannotator(labels, p, return_weights=True, label_quality_score_kwargs=kwargs)
    assert_same_output(ours, theirs)


@pytest.mark.parametrize("method", ["majority_vote", ["majority_vote", "best_quality"],
                                    ["best_quality", "majority_vote"]], ids=str)
@pytest.mark.parametrize("seed", range(300, 330))
def test_consensus_methods_match_cleanlab(seed, method):
    labels, p = random_case(seed)
    theirs, _ = cleanlab_oracle(labels, p, consensus_method=method)
    ours = get_label_quality_multiannotator(labels, p, consensus_method=method, return_weights=True)
    assert_same_output(ours, theirs)


@pytest.mark.parametrize("seed", range(400, 440))
def test_agreement_quality_matches_cleanlab_with_correct_vote_counts(seed):
    labels, p = random_case(seed)
    with cleanlab_with_correct_vote_counts():
        theirs, _ = cleanlab_oracle(labels, p, quality_method="agreement")
    ours = get_label_quality_multiannotator(labels, p, quality_method="agreement")
    assert_same_output(ours, theirs, weights=False)


@pytest.mark.parametrize("seed", range(500, 540))
def test_calibrate_probs_matches_cleanlab_with_correct_vote_counts(seed):
    labels, p = random_case(seed)
    with cleanlab_with_correct_vote_counts():
        theirs, _ = cleanlab_oracle(labels, p, calibrate_probs=True)
    ours = get_label_quality_multiannotator(labels, p, calibrate_probs=True, return_weights=True)
    assert_same_output(ours, theirs)


def test_unpatched_cleanlab_miscounts_votes_where_we_do_not():
    """The deliberate difference is real: on these inputs cleanlab's helper puts votes in the wrong class."""
    labels = np.array([[1.0, 1.0], [0.0, 2.0], [2.0, 2.0]])
    from cleanlab.internal.util import value_counts
    assert list(value_counts(labels[0], num_classes=3)) == [2, 0, 0]  # cleanlab: both votes for class 1 -> slot 0
    p = np.full((3, 3), 1 / 3)
    ours = get_label_quality_multiannotator(labels, p, quality_method="agreement")["detailed_label_quality"]
    # Vote fractions under correct counting: item 0 is unanimous for class 1, so both labels score 1.
    np.testing.assert_allclose(ours.iloc[0], [1.0, 1.0])


@pytest.mark.parametrize("seed", range(600, 630))
def test_without_detailed_quality_matches_cleanlab(seed):
    labels, p = random_case(seed)
    theirs, _ = cleanlab_oracle(labels, p, return_detailed_quality=False)
    ours = get_label_quality_multiannotator(labels, p, return_detailed_quality=False, return_weights=True)
    assert "detailed_label_quality" not in ours
    assert_same_output(ours, theirs)


@pytest.mark.parametrize("seed", range(700, 760))
def test_majority_vote_matches_cleanlab(seed):
    labels, p = random_case(seed)
    with quiet(), smallest_class_on_random_ties():
        with_model = cl.get_majority_vote_label(labels, p, verbose=False)
        without_model = cl.get_majority_vote_label(labels, verbose=False)
    np.testing.assert_array_equal(get_majority_vote_label(labels, p), with_model)
    np.testing.assert_array_equal(get_majority_vote_label(labels), without_model)


def _all_tie_breaks_tied(seed):
    """Votes where every tie survives rules 1-3: no model, equal class totals, every annotator fully credible.

    Unanimous items (the same number per class) make every annotator agree with every clear majority; split
    items give one vote to each of two classes, so class totals stay equal.
    """
    rng = np.random.default_rng(seed)
    k, m = int(rng.integers(2, 6)), 4
    rows = []
    for _ in range(int(rng.integers(1, 4))):
        for c in range(k):
            row = np.full(m, np.nan)
            row[rng.choice(m, 2, replace=False)] = c
            rows.append(row)
    for _ in range(int(rng.integers(2, 10))):
        row = np.full(m, np.nan)
        row[rng.choice(m, 2, replace=False)] = rng.choice(k, 2, replace=False)
        rows.append(row)
    return np.array(rows)


def test_majority_vote_random_ties_resolve_to_the_smallest_class_cleanlab_can_pick():
    """Unpatched cleanlab picks at random among the classes still tied; ours is the smallest of them."""
    reached = 0
    for seed in range(800, 840):
        labels = _all_tie_breaks_tied(seed)
        picks = []
        for numpy_seed in range(25):
            np.random.seed(numpy_seed)
            with quiet():
                picks.append(cl.get_majority_vote_label(labels, verbose=False))
        picks = np.array(picks)
        ours = get_majority_vote_label(labels)
        random_items = np.flatnonzero((picks != picks[0]).any(axis=0))
        reached += random_items.size
        steady = np.setdiff1d(np.arange(labels.shape[0]), random_items)
        np.testing.assert_array_equal(ours[steady], picks[0, steady])
        np.testing.assert_array_equal(ours[random_items], picks[:, random_items].min(axis=0))
    assert reached > 20  # the random tie-break was actually exercised


@pytest.mark.parametrize("seed", range(900, 930))
def test_input_forms_match_cleanlab_indexes(seed):
    """A DataFrame keeps its item index and annotator names in every output, as cleanlab does."""
    labels, p = random_case(seed, tied_probs=False)
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(labels, columns=[f"worker_{j}" for j in rng.permutation(labels.shape[1])],
                         index=[f"task-{i}" for i in range(labels.shape[0])])
    with quiet(), smallest_class_on_random_ties():
        assert not _noise_tied_items(labels, p).size  # continuous pred_probs: no float-noise ties
        theirs = cl.get_label_quality_multiannotator(frame, p, verbose=False, return_weights=True)
    ours = get_label_quality_multiannotator(frame, p, return_weights=True)
    assert_same_output(ours, theirs)
    # The same data as a long table: same numbers, ids carried through.
    item, annotator = np.nonzero(~np.isnan(labels))
    order = rng.permutation(item.size)  # any row order
    long = Annotations.from_records(np.asarray(frame.index)[item[order]],
                                    np.asarray(frame.columns)[annotator[order]],
                                    labels[item, annotator][order].astype(int), classes=range(p.shape[1]))
    from_long = get_label_quality_multiannotator(long, p[_positions(long.item_ids, frame.index)],
                                                 return_weights=True)
    by_item = from_long["label_quality"].loc[frame.index]
    pd.testing.assert_frame_equal(by_item, theirs["label_quality"], rtol=TOL, atol=TOL)
    pd.testing.assert_frame_equal(from_long["annotator_stats"].sort_index(),
                                  theirs["annotator_stats"].sort_index(), rtol=TOL, atol=TOL)


def _positions(ids, index) -> np.ndarray:
    where = {v: i for i, v in enumerate(index)}
    return np.array([where[v] for v in ids])


@pytest.mark.parametrize("seed", range(1000, 1040))
def test_sparse_entry_point_matches_cleanlab(seed):
    """crowdlab() on a shuffled long table: every ConsensusResult field against cleanlab."""
    labels, p = random_case(seed)
    theirs, _ = cleanlab_oracle(labels, p)
    rng = np.random.default_rng(seed)
    item, annotator = np.nonzero(~np.isnan(labels))
    order = rng.permutation(item.size)
    item, annotator = item[order], annotator[order]
    table = Annotations(item, annotator, labels[item, annotator].astype(np.intp), np.arange(labels.shape[0]),
                        np.arange(labels.shape[1]), tuple(range(p.shape[1])))
    result = crowdlab(table, p)
    lq = theirs["label_quality"]
    np.testing.assert_array_equal(result.consensus_label, lq["consensus_label"])
    np.testing.assert_allclose(result.consensus_quality_score, lq["consensus_quality_score"], rtol=TOL, atol=TOL)
    np.testing.assert_allclose(result.annotator_agreement, lq["annotator_agreement"], rtol=TOL, atol=TOL)
    np.testing.assert_array_equal(result.num_annotations, lq["num_annotations"])
    detailed = theirs["detailed_label_quality"].to_numpy()
    np.testing.assert_allclose(result.annotation_quality, detailed[item, annotator], rtol=TOL, atol=TOL)
    stats = theirs["annotator_stats"].sort_index()
    np.testing.assert_allclose(result.annotator_quality, stats["annotator_quality"], rtol=TOL, atol=TOL)
    np.testing.assert_allclose(result.agreement_with_consensus, stats["agreement_with_consensus"], rtol=TOL, atol=TOL)
    np.testing.assert_array_equal(result.worst_class, stats["worst_class"])
    np.testing.assert_array_equal(result.num_examples_labeled, stats["num_examples_labeled"])
    np.testing.assert_allclose(result.annotator_weight, theirs["annotator_weight"], rtol=TOL, atol=TOL)
    assert abs(result.model_weight - theirs["model_weight"]) <= TOL
    # The posterior is not returned by cleanlab's public API: compare with its own step for the final labels.
    with quiet():
        posterior = cl._get_consensus_stats(labels, p, (~np.isnan(labels)).sum(axis=1),
                                            np.asarray(lq["consensus_label"]), verbose=False)[2]
    np.testing.assert_allclose(result.posterior, posterior, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(result.posterior.sum(axis=1), 1.0, atol=1e-12)


# ---- ActiveLab ---------------------------------------------------------------------------------------------
def _cleanlab_active(labels, p, p_unlabeled):
    with quiet(), smallest_class_on_random_ties(), cleanlab_with_correct_vote_counts():
        return cl.get_active_learning_scores(labels, p, p_unlabeled)


@pytest.mark.parametrize("with_unlabeled", [False, True])
@pytest.mark.parametrize("seed", range(1100, 1140))
def test_active_learning_scores_match_cleanlab(seed, with_unlabeled):
    # Continuous pred_probs: float-noise posterior ties (see the module docstring) cannot occur, so the
    # public cleanlab function is the oracle for every seed.
    labels, p = random_case(seed, tied_probs=False)
    rng = np.random.default_rng(seed)
    p_unlabeled = rng.dirichlet(np.ones(p.shape[1]) * 0.3, 25) if with_unlabeled else None
    theirs = _cleanlab_active(labels, p, p_unlabeled)
    ours = get_active_learning_scores(labels, p, p_unlabeled)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=TOL, atol=TOL)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=TOL, atol=TOL)
    assert ours[1].shape == theirs[1].shape


@pytest.mark.parametrize("seed", range(1200, 1220))
def test_active_learning_all_single_labels_match_cleanlab(seed):
    labels, p = random_case(seed, all_single=True)
    assert ((~np.isnan(labels)).sum(axis=1) == 1).all()
    p_unlabeled = np.random.default_rng(seed).dirichlet(np.ones(p.shape[1]), 10)
    theirs = _cleanlab_active(labels, p, p_unlabeled)
    ours = get_active_learning_scores(labels, p, p_unlabeled)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=TOL, atol=TOL)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=TOL, atol=TOL)


@pytest.mark.parametrize("seed", range(1300, 1305))
def test_active_learning_unlabeled_only_matches_cleanlab(seed):
    p_unlabeled = np.random.default_rng(seed).dirichlet(np.ones(4), 30)
    theirs = _cleanlab_active(None, None, p_unlabeled)
    ours = get_active_learning_scores(pred_probs_unlabeled=p_unlabeled)
    assert ours[0].shape == theirs[0].shape == (0,)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=TOL, atol=TOL)


@pytest.mark.parametrize("seed", range(1400, 1410))
def test_annotator_quality_uses_the_score_kwargs_even_without_detailed_quality(seed):
    """Documented difference: cleanlab falls back to self_confidence for annotator_quality when
    return_detailed_quality=False; ours always uses the kwargs, i.e. equals cleanlab's detailed-quality run."""
    labels, p = random_case(seed, tied_probs=False)
    kwargs = {"method": "normalized_margin"}
    theirs, _ = cleanlab_oracle(labels, p, label_quality_score_kwargs=kwargs)
    ours = get_label_quality_multiannotator(labels, p, return_detailed_quality=False,
                                            label_quality_score_kwargs=kwargs)
    assert_annotator_stats_equal(ours["annotator_stats"], theirs["annotator_stats"])
