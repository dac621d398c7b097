"""Span consensus (issue 23): tokenisation and span<->tag mapping, the EM steps, relabel.span_consensus, issues,
agreement and bad input."""
import itertools
import warnings

import numpy as np
import pandas as pd
import pytest

import relabel
from relabel.errors import SpanError
from relabel.scoring.span_consensus import consensus_spans
from relabel.scoring.span_em import (
    _Chains,
    _forward_backward,
    _viterbi,
    valid_transitions,
)
from relabel.scoring.span_input import SpanOverlapWarning
from relabel.scoring.spans import paint_tags, tag_runs, tokenize

COLUMNS = ["item", "annotator", "start", "end", "label"]


def frame(rows):
    return pd.DataFrame(rows, columns=COLUMNS)


def test_tokens_keep_character_offsets():
    texts = ["Alice met Bob in New York.", "", "  x-ray, 5mg  "]
    tokens = tokenize(texts)
    words = [texts[i][s:e] for i, s, e in zip(tokens.item, tokens.start, tokens.end)]
    assert words == ["Alice", "met", "Bob", "in", "New", "York", ".", "x", "-", "ray", ",", "5mg"]
    assert tokens.lengths.tolist() == [7, 0, 5]


def test_whitespace_and_mid_word_boundaries_map_to_the_same_tokens():
    tokens = tokenize(["Alice met Bob in New York."])
    # "New York", " New York", "New York " and "ew Yor" all cover tokens 4..6
    first, stop = tokens.covering([0, 0, 0, 0], [17, 16, 17, 18], [25, 25, 26 - 1, 24])
    assert first.tolist() == [4] * 4 and stop.tolist() == [6] * 4
    # a span of only whitespace covers nothing
    first, stop = tokens.covering([0], [5], [6])
    assert (stop - first).tolist() == [0]


def test_paint_and_runs_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 40))
        cuts = np.sort(rng.choice(np.arange(n + 1), size=2 * int(rng.integers(0, n // 2 + 1)), replace=False))
        first, stop = cuts[0::2], cuts[1::2]
        label = rng.integers(0, 3, size=first.shape[0])
        tags = paint_tags(n, first, stop, label)
        got_first, got_stop, got_label = tag_runs(tags, np.zeros(n, dtype=np.int64))
        keep = stop > first
        assert got_first.tolist() == first[keep].tolist()
        assert got_stop.tolist() == stop[keep].tolist()
        assert got_label.tolist() == label[keep].tolist()


def test_runs_do_not_cross_items_and_stray_i_opens_a_span():
    tags = np.array([2, 2, 0, 2, 2])           # I I O | I I  (items 0,0,0 | 1,1)
    first, stop, _ = tag_runs(tags, np.array([0, 0, 0, 1, 1]))
    assert list(zip(first, stop)) == [(0, 2), (3, 5)]


def test_forward_backward_and_viterbi_match_enumeration():
    rng = np.random.default_rng(1)
    s = 5
    lengths = [4, 1, 3, 4]
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    emit = rng.random((offsets[-1], s))
    allowed, start_ok = valid_transitions(s)
    trans = np.where(allowed, rng.random((s, s)), 0)
    trans /= trans.sum(1, keepdims=True)
    start = np.where(start_ok, rng.random(s), 0)
    start /= start.sum()
    chains = _Chains(offsets)
    post, xi = _forward_backward(chains, emit, start, trans)
    with np.errstate(divide="ignore"):
        best = _viterbi(chains, np.log(emit), np.log(start), np.log(trans))
    want_post = np.zeros_like(post)
    want_xi = np.zeros_like(xi)
    want_best = np.zeros(offsets[-1], dtype=int)
    for i, length in enumerate(lengths):
        o = offsets[i]
        z, acc, top = 0.0, np.zeros((length, s)), (-1.0, None)
        for seq in itertools.product(range(s), repeat=length):
            p = start[seq[0]] * emit[o, seq[0]]
            for t in range(1, length):
                p *= trans[seq[t - 1], seq[t]] * emit[o + t, seq[t]]
            z += p
            acc[np.arange(length), seq] += p
            if p > top[0]:
                top = (p, seq)
        want_post[o:o + length] = acc / z
        want_best[o:o + length] = top[1]
    # expected transition counts: each item's path weights normalised by that item's total
    for i, length in enumerate(lengths):
        o = offsets[i]
        paths = list(itertools.product(range(s), repeat=length))
        weights = []
        for seq in paths:
            p = start[seq[0]] * emit[o, seq[0]]
            for t in range(1, length):
                p *= trans[seq[t - 1], seq[t]] * emit[o + t, seq[t]]
            weights.append(p)
        z = sum(weights)
        for seq, p in zip(paths, weights):
            for t in range(1, length):
                want_xi[seq[t - 1], seq[t]] += p / z
    np.testing.assert_allclose(post, want_post, atol=1e-12)
    np.testing.assert_allclose(xi, want_xi, atol=1e-12)
    assert best.tolist() == want_best.tolist()


TEXTS = ["Alice met Bob in New York.", "No entities here at all.", "Paris is in France ."]


@pytest.mark.parametrize("method", ["factorized", "chain", "token"])
def test_unanimous_annotators_with_boundary_noise_give_one_span(method):
    # the three differ only by spaces and the trailing full stop's neighbour: one span each, never split
    spans = frame([(0, a, s, e, "LOC") for a, (s, e) in zip("abc", [(17, 25), (16, 25), (17, 25)])]
                  + [(0, a, 0, 5, "PER") for a in "abc"])
    result = consensus_spans(TEXTS[:1], spans, method=method)
    assert result.spans[["start", "end", "label"]].values.tolist() == [[0, 5, "PER"], [17, 25, "LOC"]]


def test_empty_answers_say_no_entity():
    spans = frame([(1, "a", 3, 11, "PER")])
    answered = pd.DataFrame({"item": [1, 1, 1, 0, 0, 0], "annotator": ["a", "b", "c", "a", "b", "c"]})
    more = frame([(0, a, 0, 5, "PER") for a in "abc"])
    with_empty = consensus_spans(TEXTS[:2], pd.concat([spans, more]), answered=answered)
    assert (with_empty.spans["item"] == 1).sum() == 0           # one of three marked it: outvoted
    only_pairs = consensus_spans(TEXTS[:2], pd.concat([spans, more]))
    assert (only_pairs.spans["item"] == 1).sum() == 1          # without answered, "a" is item 1's only voice


def test_consensus_recovers_truth_better_than_the_worst_annotator():
    from benchmarks.spans import score, simulate, token_majority
    texts, spans, answered, truth = simulate(300, seed=3)
    result = relabel.span_consensus(texts, spans, answered=answered, model=None)
    tokens = tokenize(texts)
    ours = score(tokens, result.spans, truth)
    mv = score(tokens, token_majority(texts, spans, answered, tokens), truth)
    worst = score(tokens, spans[spans["annotator"] == "ann4"], truth)
    assert ours["exact_f1"] > worst["exact_f1"]
    assert ours["exact_f1"] >= mv["exact_f1"] - 0.02      # measured: above token MV; a margin for the seed
    assert ours["relaxed_f1"] >= ours["exact_f1"]


def test_public_api_unpacks_and_default_model_runs():
    from benchmarks.spans import simulate
    texts, spans, answered, _ = simulate(60, seed=5)
    spans_out, items, annotators = relabel.span_consensus(texts, spans, answered=answered)
    assert list(spans_out.columns) == ["item", "start", "end", "label"]
    assert len(items) == 60 and items["quality"].between(0, 1).all()
    assert set(annotators["annotator"]) == {f"ann{k}" for k in range(5)}
    assert annotators["exact_f1"].between(0, 1).all()
    result = relabel.span_consensus(texts, spans, answered=answered)
    assert result.model_used and not result.issues.empty


def test_reviewer_spans_are_the_consensus_of_their_items():
    spans = frame([(0, a, 0, 5, "PER") for a in "abc"] + [(2, a, 0, 5, "LOC") for a in "abc"])
    gold = pd.DataFrame({"item": [0], "start": [10], "end": [13], "label": ["PER"]})
    result = consensus_spans(TEXTS, spans, gold=gold, gold_items=[0, 2])
    got = result.spans[["item", "start", "end", "label"]].values.tolist()
    assert got == [[0, 10, 13, "PER"]]                         # item 2 reviewed with no span: none
    assert result.items.set_index("item").loc[[0, 2], "reviewed"].all()


def test_controls_and_multiple_labels_are_kept_apart():
    rows = [(0, a, 17, 25, "LOC", "place") for a in "abc"] + [(0, a, 10, 25, "SPAN", "chunk") for a in "abc"]
    rows += [(0, a, 0, 5, "PER", "who") for a in "abc"] + [(0, a, 0, 5, "AGENT", "who") for a in "abc"]
    spans = pd.DataFrame(rows, columns=COLUMNS + ["control"])
    result = consensus_spans(TEXTS[:1], spans)
    got = sorted(map(tuple, result.spans[["control", "start", "end", "label"]].values.tolist()))
    assert got == [("chunk", 10, 25, "SPAN"), ("place", 17, 25, "LOC"), ("who", 0, 5, "AGENT"),
                   ("who", 0, 5, "PER")]


def test_issue_reasons():
    spans = frame([(0, "a", 17, 25, "LOC"), (0, "b", 17, 25, "LOC"), (0, "c", 10, 25, "LOC"),
                   (0, "a", 0, 5, "PER"), (0, "b", 0, 5, "PER"), (0, "c", 0, 5, "ORG"),
                   (2, "a", 12, 18, "LOC")])
    answered = pd.DataFrame({"item": [2, 2, 2], "annotator": ["a", "b", "c"]})
    issues = consensus_spans(TEXTS, spans, answered=answered).issues
    by_span = {(r.item, r.start, r.end, r.label): r.reason for r in issues.itertuples()}
    assert by_span[(0, 17, 25, "LOC")] == "annotators disagree on the boundary"
    assert by_span[(0, 0, 5, "PER")] == "annotators disagree on the label"
    assert by_span[(2, 12, 18, "LOC")] == "one annotator alone marked it"
    assert issues["score"].is_monotonic_increasing


def test_annotator_stats_against_the_consensus():
    spans = frame([(0, a, 0, 5, "PER") for a in "abc"] + [(0, "c", 10, 13, "PER")])
    stats = consensus_spans(TEXTS[:1], spans).annotators.set_index("annotator")
    assert stats.loc["a", "exact_f1"] == 1.0
    assert stats.loc["c", "exact_precision"] == 0.5 and stats.loc["c", "exact_recall"] == 1.0


@pytest.mark.parametrize("rows, message", [
    ([(0, "a", 20, 40, "PER")], "ends past the end of its text"),
    ([(0, "a", 5, 5, "PER")], "empty or negative"),
    ([(0, "a", 0, 5, "")], "empty label"),
    ([(0, "a", 0, 5, None)], "empty label"),
    ([(7, "a", 0, 5, "PER")], "not indexes of texts"),
])
def test_bad_spans_are_one_line_errors_naming_the_item(rows, message):
    with pytest.raises(SpanError, match=message) as error:
        relabel.span_consensus(TEXTS[:1], frame(rows), model=None)
    assert "\n" not in str(error.value)


def test_overlapping_spans_of_one_annotator_are_merged_with_a_warning():
    spans = frame([(0, "a", 0, 9, "PER"), (0, "a", 6, 13, "PER"), (0, "b", 0, 13, "PER")])
    with pytest.warns(SpanOverlapWarning, match="annotator 'a' on item 0"):
        result = consensus_spans(TEXTS[:1], spans)
    assert result.spans[["start", "end"]].values.tolist() == [[0, 13]]


def test_input_frame_is_not_changed():
    spans = frame([(0, "a", 0, 9, "PER"), (0, "a", 6, 13, "PER")])
    before = spans.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        consensus_spans(TEXTS[:1], spans)
    pd.testing.assert_frame_equal(spans, before)


def test_pairwise_span_agreement_is_symmetric_and_order_free():
    from relabel.scoring.span_input import encode
    from relabel.scoring.span_quality import pairwise_span_agreement
    rows = [(0, "a", 0, 5, "PER"), (0, "a", 10, 13, "PER"), (0, "b", 0, 5, "PER"), (0, "b", 10, 13, "LOC"),
            (0, "c", 0, 6, "PER")]
    texts = TEXTS[:1]
    tokens = tokenize(texts)
    table = pairwise_span_agreement(encode(texts, frame(rows), tokens)).set_index(["annotator_a", "annotator_b"])
    shuffled = pairwise_span_agreement(encode(texts, frame(rows[::-1]), tokens)).set_index(
        ["annotator_a", "annotator_b"])
    pd.testing.assert_frame_equal(table, shuffled)
    assert table.loc[("a", "b"), "f1"] == 0.5       # Alice agrees, Bob's label differs: 2 of 4 spans matched
    assert table.loc[("a", "c"), "f1"] == 2 / 3     # "Alice " and "Alice" cover the same token


def test_result_carries_pairwise_agreement():
    spans = frame([(0, "a", 0, 5, "PER"), (0, "b", 0, 5, "PER"), (0, "b", 10, 13, "PER"), (0, "c", 0, 6, "PER")])
    pairwise = consensus_spans(TEXTS[:1], spans).pairwise.set_index(["annotator_a", "annotator_b"])
    assert pairwise.loc[("a", "b"), "exact_f1"] == 2 / 3 and pairwise.loc[("a", "c"), "relaxed_f1"] == 1.0
