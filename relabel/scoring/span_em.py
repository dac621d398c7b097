"""Token-wise Dawid-Skene over BIO tags, with an optional first-order Markov chain over the true tags.

Observations are a long table (token row, annotator, tag): every annotator who answered an item gives every
token of it a tag (O where they marked nothing). Each annotator j has a confusion matrix CM[j, true, given]
over the S tags of one layer. The latent true tags of an item are

* ``sequential=False``: independent per token with a prior pi (token-wise Dawid-Skene, the baseline), or
* ``sequential=True``: a Markov chain with start distribution pi and transitions A, where the BIO-invalid
  transitions (O -> I-x, B-x/I-x -> I-y with y != x) have probability zero. This is HMM-Crowd's generative
  model (Nguyen et al., ACL 2017) without its neural part: the E-step is forward-backward, the M-step re-counts
  the confusion matrices from the token marginals and the transitions from the pair marginals, and decoding
  is Viterbi, so the consensus is always a valid BIO sequence (no stray I, no span split by a lone O vote).

A model's per-token tag probabilities q enter as one more annotator with its own confusion matrix CMm and a
soft answer: its factor for true tag k is prod_l CMm[k, l] ** q[t, l] (the expected log-likelihood of its
answer), and its M-step counts are post[t, k] * q[t, l]. EM so learns how far to trust the model per tag, as
it learns it for people.

Forward-backward runs over all items at once, position by position: items are sorted longest first, so at
position p the items still running are a prefix, and each step is one (n_running x S) @ (S x S) product.
Rows are scaled at each step (no underflow on long abstracts). Cost O(n_tokens x S^2) per iteration.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Pseudo-count on every confusion and transition cell (as in dawid_skene.CONFUSION_SMOOTHING): keeps logs
# finite for tags an annotator never used and pulls annotators with little data towards uniform.
CONFUSION_SMOOTHING = 0.01
TRANSITION_SMOOTHING = 0.01
PRIOR_FLOOR = 1e-12
# EM stops when no token marginal moves more than this between iterations.
TOLERANCE = 1e-4
MAX_ITER = 50


@dataclass(frozen=True)
class Observations:
    """One layer's long table: for row r, annotator ``annotator[r]`` gave token row ``token[r]`` tag ``tag[r]``."""

    token: np.ndarray
    annotator: np.ndarray
    tag: np.ndarray
    n_annotators: int
    n_states: int


@dataclass(frozen=True)
class TagPosterior:
    marginals: np.ndarray       # (n_tokens, S) posterior of each token's true tag
    tags: np.ndarray            # (n_tokens,) decoded tags (Viterbi when sequential, argmax otherwise)
    confusion: np.ndarray       # (n_annotators, S, S)
    model_confusion: np.ndarray | None
    transitions: np.ndarray | None
    n_iter: int


def valid_transitions(n_states: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (S x S) allowed transitions and (S,) allowed first tags of BIO with (S - 1) / 2 labels."""
    labels = (n_states - 1) // 2
    allowed = np.ones((n_states, n_states), dtype=bool)
    start = np.ones(n_states, dtype=bool)
    for m in range(labels):
        inside = 2 + 2 * m
        allowed[:, inside] = False
        allowed[1 + 2 * m, inside] = True     # B-m -> I-m
        allowed[inside, inside] = True        # I-m -> I-m
        start[inside] = False
    return allowed, start


class _Chains:
    """The position-major order of every item's tokens: rows_at[p] are the token rows at position p of the
    items (longest first) that are at least p + 1 tokens long."""

    def __init__(self, offsets: np.ndarray):
        lengths = np.diff(offsets)
        self.order = np.argsort(-lengths, kind="stable")
        self.sorted_len = lengths[self.order]
        starts = offsets[:-1][self.order]
        longest = int(self.sorted_len[0]) if self.sorted_len.size else 0
        running = np.searchsorted(-self.sorted_len, -np.arange(longest), side="left")  # items with len > p
        self.rows_at = [starts[:n] + p for p, n in enumerate(running)]


def _emission_logs(obs: Observations, confusion, n_tokens, model_probs, model_confusion, clamp) -> np.ndarray:
    s = obs.n_states
    log_cm = np.log(confusion)
    per_obs = log_cm[obs.annotator, :, obs.tag]                                        # (n_obs, S)
    flat = (obs.token[:, None] * s + np.arange(s)[None, :]).ravel()
    log_e = np.bincount(flat, weights=per_obs.ravel(), minlength=n_tokens * s).reshape(n_tokens, s)
    if model_probs is not None:
        log_e += model_probs @ np.log(model_confusion).T
    if clamp is not None:
        known = clamp >= 0
        log_e[known] = -np.inf
        log_e[known, clamp[known]] = 0.0
    return log_e


def _forward_backward(chains: _Chains, emit: np.ndarray, start: np.ndarray, trans: np.ndarray):
    """Token marginals (n_tokens x S) and the expected transition counts (S x S) of every chain."""
    alpha = np.empty_like(emit)
    rows0 = chains.rows_at[0]
    a = start[None, :] * emit[rows0]
    a /= a.sum(axis=1, keepdims=True)
    alpha[rows0] = a
    for p in range(1, len(chains.rows_at)):
        rows = chains.rows_at[p]
        a = (alpha[chains.rows_at[p - 1][:rows.shape[0]]] @ trans) * emit[rows]
        a /= a.sum(axis=1, keepdims=True)
        alpha[rows] = a
    beta = np.ones_like(emit)
    xi = np.zeros_like(trans)
    for p in range(len(chains.rows_at) - 1, 0, -1):
        rows = chains.rows_at[p]
        prev = chains.rows_at[p - 1][:rows.shape[0]]
        eb = emit[rows] * beta[rows]
        z = ((alpha[prev] @ trans) * eb).sum(axis=1, keepdims=True)
        xi += trans * (alpha[prev].T @ (eb / z))
        b = eb @ trans.T
        beta[prev] = b / b.sum(axis=1, keepdims=True)
    post = alpha * beta
    post /= post.sum(axis=1, keepdims=True)
    return post, xi


def _viterbi(chains: _Chains, log_emit: np.ndarray, log_start: np.ndarray, log_trans: np.ndarray) -> np.ndarray:
    n_tokens, s = log_emit.shape
    delta = np.empty_like(log_emit)
    back = np.zeros((n_tokens, s), dtype=np.int16)
    rows0 = chains.rows_at[0]
    delta[rows0] = log_start[None, :] + log_emit[rows0]
    for p in range(1, len(chains.rows_at)):
        rows = chains.rows_at[p]
        scores = delta[chains.rows_at[p - 1][:rows.shape[0]]][:, :, None] + log_trans[None, :, :]  # (n, from, to)
        best = scores.argmax(axis=1)
        back[rows] = best
        delta[rows] = np.take_along_axis(scores, best[:, None, :], axis=1)[:, 0, :] + log_emit[rows]
    tags = np.zeros(n_tokens, dtype=np.int64)
    current = np.zeros(chains.order.shape[0], dtype=np.int64)
    for p in range(len(chains.rows_at) - 1, -1, -1):
        rows = chains.rows_at[p]
        n_next = chains.rows_at[p + 1].shape[0] if p + 1 < len(chains.rows_at) else 0
        if n_next:
            current[:n_next] = back[chains.rows_at[p + 1], current[:n_next]]
        current[n_next:rows.shape[0]] = delta[rows[n_next:]].argmax(axis=1)
        tags[rows] = current[:rows.shape[0]]
    return tags


def _vote_marginals(obs: Observations, n_tokens: int, clamp) -> np.ndarray:
    votes = np.zeros((n_tokens, obs.n_states))
    np.add.at(votes, (obs.token, obs.tag), 1.0)
    none = votes.sum(axis=1) == 0
    votes[none, 0] = 1.0          # a token nobody saw starts as O
    votes /= votes.sum(axis=1, keepdims=True)
    if clamp is not None:
        known = clamp >= 0
        votes[known] = np.eye(obs.n_states)[clamp[known]]
    return votes


def _confusion(obs: Observations, post: np.ndarray) -> np.ndarray:
    s = obs.n_states
    index = ((obs.annotator[:, None] * s + np.arange(s)[None, :]) * s + obs.tag[:, None]).ravel()
    counts = np.bincount(index, weights=post[obs.token].ravel(), minlength=obs.n_annotators * s * s)
    counts = counts.reshape(obs.n_annotators, s, s) + CONFUSION_SMOOTHING
    return counts / counts.sum(axis=2, keepdims=True)


def tag_dawid_skene(obs: Observations, offsets: np.ndarray, *, sequential: bool = True, model_probs=None,
                    clamp: np.ndarray | None = None, max_iter: int = MAX_ITER, tol: float = TOLERANCE,
                    init_marginals: np.ndarray | None = None) -> TagPosterior:
    """EM from vote fractions (or ``init_marginals``); ``clamp`` (tag per token, -1 = unknown) fixes reviewed
    tokens; ``model_probs`` (n_tokens x S) adds the model as a soft annotator."""
    n_tokens = int(offsets[-1])
    s = obs.n_states
    allowed, start_ok = valid_transitions(s)
    post = _vote_marginals(obs, n_tokens, clamp) if init_marginals is None else np.array(init_marginals)
    chains = _Chains(offsets) if sequential and n_tokens else None
    first_rows = offsets[:-1][np.diff(offsets) > 0]
    xi = None
    model_confusion = None
    trans = start = None
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        confusion = _confusion(obs, post)
        if model_probs is not None:
            counts = post.T @ model_probs + CONFUSION_SMOOTHING
            model_confusion = counts / counts.sum(axis=1, keepdims=True)
        if sequential:
            if xi is None:     # first iteration: transitions counted from the starting marginals
                xi = _pair_counts(post, offsets)
            trans = np.where(allowed, xi + TRANSITION_SMOOTHING, 0.0)
            trans /= trans.sum(axis=1, keepdims=True)
            start = np.where(start_ok, post[first_rows].sum(axis=0) + TRANSITION_SMOOTHING, 0.0)
            start /= start.sum()
        else:
            prior = np.maximum(post.mean(axis=0), PRIOR_FLOOR)
        log_e = _emission_logs(obs, confusion, n_tokens, model_probs, model_confusion, clamp)
        if sequential:
            emit = np.exp(log_e - log_e.max(axis=1, keepdims=True))
            new, xi = _forward_backward(chains, emit, start, trans)
        else:
            log_t = log_e + np.log(prior)
            log_t -= log_t.max(axis=1, keepdims=True)
            new = np.exp(log_t)
            new /= new.sum(axis=1, keepdims=True)
        change = float(np.abs(new - post).max()) if n_tokens else 0.0
        post = new
        if change < tol:
            break
    if sequential and n_tokens:
        with np.errstate(divide="ignore"):
            tags = _viterbi(chains, log_e, np.log(start), np.log(trans))
    else:
        tags = post.argmax(axis=1) if n_tokens else np.zeros(0, dtype=np.int64)
    return TagPosterior(post, tags, confusion, model_confusion, trans, n_iter)


def _pair_counts(post: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Expected (tag at t-1, tag at t) counts within items, taking neighbouring marginals as independent."""
    same = np.ones(post.shape[0], dtype=bool)
    same[offsets[:-1][offsets[:-1] < post.shape[0]]] = False      # a token that starts an item has no left pair
    right = np.flatnonzero(same)
    return post[right - 1].T @ post[right] if right.size else np.zeros((post.shape[1], post.shape[1]))


def constrained_decode(marginals: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The valid BIO sequence per item with the largest sum of log token marginals (Viterbi with the invalid
    transitions removed): no I without its B, and a run's label never changes mid-span."""
    if marginals.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    allowed, start_ok = valid_transitions(marginals.shape[1])
    with np.errstate(divide="ignore"):
        return _viterbi(_Chains(offsets), np.log(marginals), np.log(start_ok.astype(float)),
                        np.log(allowed.astype(float)))


def io_observations(obs: Observations) -> Observations:
    """The same answers with B and I merged: tag 0 = outside, 1 + l = inside a span of label l."""
    return Observations(obs.token, obs.annotator, np.where(obs.tag > 0, 1 + (obs.tag - 1) // 2, 0),
                        obs.n_annotators, 1 + (obs.n_states - 1) // 2)


def io_probs(bio: np.ndarray) -> np.ndarray:
    """BIO tag probabilities (n x 2L+1) summed to inside/outside per label (n x L+1)."""
    return np.concatenate([bio[:, :1], bio[:, 1::2] + bio[:, 2::2]], axis=1)


def io_tags(tags: np.ndarray) -> np.ndarray:
    return np.where(tags > 0, 1 + (tags - 1) // 2, 0)


def combine_io_bio(io_marginals: np.ndarray, bio_marginals: np.ndarray) -> np.ndarray:
    """BIO marginals whose inside/outside part comes from the IO model and whose B-versus-I split comes from
    the BIO model: P(B-l) = P_io(l) * P_bio(B-l) / (P_bio(B-l) + P_bio(I-l)), likewise I-l."""
    b, i = bio_marginals[:, 1::2], bio_marginals[:, 2::2]
    total = b + i
    share_b = np.divide(b, total, out=np.full_like(b, 0.5), where=total > 0)
    out = np.empty_like(bio_marginals)
    out[:, 0] = io_marginals[:, 0]
    out[:, 1::2] = io_marginals[:, 1:] * share_b
    out[:, 2::2] = io_marginals[:, 1:] * (1 - share_b)
    return out
