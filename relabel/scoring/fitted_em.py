"""relabel's default consensus EM: Dawid-Skene whose every setting is fitted on the data of the run.

One EM serves both cases. Each item i has a latent true class; its prior is either a learned class prior pi
(annotations only) or the model's out-of-sample pred_probs, temperature-scaled (model-aware). Each annotator j
has a confusion matrix CM[j, true, given]. The E-step is

    log T[i, k] = log prior[i, k] + d * sum over the item's annotations r of log CM[annotator_r, k, label_r]

and the M-step re-estimates, from the current posterior T, everything that changes results:

* **class prior** (annotations only): the posterior mode under a Dirichlet(1 + 1 per class) prior, i.e.
  Laplace-smoothed mean posterior, so a class nobody seems to have keeps a finite prior and rare classes are
  neither inflated (a flat prior that is never re-estimated does that) nor driven to zero.
* **model temperature** T (model-aware): the EM update, maximising sum_i sum_k T[i,k] log softmax(log p / T)[k].
  That objective is A / T - L(T) with A = sum T * log p and L(T) = sum_i logsumexp(log p_i / T), and L depends
  on T only, so it is computed once per grid temperature up front: no temperature-scaled copy of pred_probs is
  ever kept (memory O(items x K), issue 15).
* **pooling strength** s: every annotator's confusion row has a Dirichlet(s * pooled row) prior, pooled = all
  annotators' counts together. Annotators with few labels are then "average", and the data say how alike
  annotators are. Annotations only: s maximises the held-out annotation likelihood (below). With a model: the
  empirical-Bayes estimate, the value maximising the Dirichlet-multinomial marginal likelihood of the
  annotators' expected counts (the model anchors the posterior there, CIFAR-10N's annotators have hundreds of
  labels each, and a held-out search, one EM per point, would cost ~10x on 50,000 items; not compared).
* **annotator discount** d (model-aware only): real annotators' mistakes are correlated (hard items fool several
  people the same way), which Dawid-Skene, assuming independence, turns into overconfident agreement that
  overrules the model. d is fitted by held-out likelihood: the leave-one-annotation-out predictive probability
  of each annotation given the item's other annotations and the model. Annotation-only runs keep d = 1: with
  no other evidence the discount is not identifiable (it only rescales the same ranking) and the class prior
  would dominate.

**Held-out annotation likelihood**: every annotation r (annotator j, item i, label l) is predicted from the
item's other annotations and its prior, with every confusion matrix re-estimated without item i's own expected
counts (leave-item-out: an annotation must not vouch for its own annotator):

    P(l) = sum_k P_{-r}(k) CM_{-i}[j, k, l]
    log P_{-r}(k) = prior_T(i, k) + d * sum_{r' != r} log CM_{-i}[j', k, l'] + c

where prior_T is the class prior (annotations only) or the model at temperature T. The in-sample posterior lets
each item's labels raise their own annotators' estimated accuracy, and the EM's temperature update sharpens the
model towards a posterior the model itself shaped, so the EM posterior is overconfident (on CIFAR-10N half the
wrong labels it should predict; on the crowd sets Dawid-Skene is sure of items the crowd splits on). The
held-out likelihood measures how well the fitted parts predict a label they did not see. It chooses

* the **pooling strength** without a model (one EM per point of a bounded search over log s, at d = 1), and
* after convergence, the **quality posterior** ``quality_posterior`` = softmax(prior_T + d * leave-item-out
  evidence), with d <= 1 (and T, with a model) maximising the held-out likelihood: d < 1 when annotators'
  errors are correlated (the product of their likelihoods overstates the evidence), a flatter T when the model
  is less sure than the EM made it. With one label per item d cannot be fitted and stays the EM's.

The consensus labels still come from the EM posterior (the benchmarks' accuracy is fitted there; without an earning
model, strict pluralities are kept unless relabel.scoring.majority_evidence grants overturning them); the
confidence, the quality score and the expected wrong labels come from ``quality_posterior``. Ablations that fix
``discount`` get the EM posterior as their quality posterior.

Reviewers' decisions clamp their items' posterior (gold labels): they teach the confusion matrices, the
temperature and the prior.

Memory: the annotation table plus O(items x K) float arrays (float32 by default; the tests compare with float64)
and O(annotators x K^2). Every per-annotation quantity is computed one class at a time, so no annotations x K
array is built. Arrays are class-major (K x items) so that each per-class pass is contiguous.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.special import gammaln

from relabel.scoring.annotations import Annotations
from relabel.scoring.canonical_order import in_canonical_order
# Pseudo-count added to every confusion cell, as in classic Dawid-Skene: keeps log CM finite for unused classes.
from relabel.scoring.dawid_skene import CONFUSION_SMOOTHING

# The Dirichlet prior on the class prior: one pseudo-item per class (Laplace), the least informative prior that
# keeps every class possible.
CLASS_PRIOR_PSEUDOCOUNT = 1.0
# Grids searched in the M-step. They bound the fitted values, they do not choose them: the temperature grid spans
# a model 5x too sharp to 5x too flat, the pooling-strength bounds from "each annotator alone" to "everyone
# alike", and the discount grid from "annotators count a third" to "fully independent".
TEMPERATURES = tuple(np.exp(np.linspace(np.log(0.2), np.log(5.0), 25)))
POOL_STRENGTH_BOUNDS = (float(np.log(0.1)), float(np.log(1e5)))
DISCOUNTS = tuple(np.round(np.linspace(0.3, 1.0, 15), 3))
# Bounds of the searches of the held-out likelihood (annotations only): they bound, they do not choose. The
# confidence discount spans "annotators' product counts a hundredth" to "fully independent" (1: the EM's own).
QUALITY_DISCOUNT_BOUNDS = (float(np.log(0.01)), 0.0)
# Precision (in log d, or log T at one label per item) of the 1-D held-out fits of the quality posterior: fine
# enough that renaming annotators (float sums in another order) cannot move the result visibly.
CALIBRATION_XTOL = 1e-4
# Precision of the search over log pooling strength (annotations only): each point is one EM run, and the held-out
# likelihood is flat within +-10% of s.
POOL_SEARCH_XTOL = 0.1
# Floor for probabilities before the log, so a model that gives exactly 0 to a class does not veto it forever.
PROB_FLOOR = 1e-30
# The discount when it cannot be fitted: with a model and one label per item there is no other annotation to
# hold one out against. 0.7 is the value fitted on CIFAR-10N's items with 2-3 labels (0.7-0.8 for every model
# in benchmarks/quality.py) and beat 0.3, 0.5 and 1.0 at one label per item for both pred_probs folders; no other
# set we have has a model and single labels, so this is the one constant not shown to win everywhere.
SINGLE_LABEL_DISCOUNT = 0.7
# Annotations used to fit the discount (a seeded sample of items when there are more): the fit is a mean over
# annotations, so a large sample estimates it as well as all of them, at a bounded cost.
DISCOUNT_FIT_ANNOTATIONS = 200_000


@dataclass(frozen=True)
class FittedEM:
    """The posterior (items x K, float64), the fitted settings and each annotator's confusion matrix."""

    posterior: np.ndarray
    class_prior: np.ndarray          # (K,): the learned class prior, or the mean posterior with a model
    confusion: np.ndarray            # (annotators, K true, K given)
    temperature: float               # the model's fitted temperature (1.0 without a model)
    pool_strength: float
    discount: float
    n_iter: int
    converged: bool
    quality_posterior: np.ndarray = None   # the posterior the confidence figures use (items x K, float64)
    quality_discount: float = 1.0          # its held-out-fitted discount (1 and the EM posterior in ablations)
    quality_temperature: float = 1.0       # its held-out-fitted model temperature (1.0 without a model)


class _Long:
    """The annotation table as the flat keys the per-class passes need (computed once)."""

    def __init__(self, a: Annotations):
        self.item = np.asarray(a.item, dtype=np.intp)
        self.cell = np.asarray(a.annotator, dtype=np.intp) * a.n_classes + np.asarray(a.label, dtype=np.intp)
        self.n_items, self.n_annotators, self.k = a.n_items, a.n_annotators, a.n_classes


def _confusion_counts(t: _Long, post: np.ndarray) -> np.ndarray:
    """Expected (annotator, true, given) counts under the class-major posterior, one bincount per true class."""
    out = np.empty((t.n_annotators, t.k, t.k))
    for k in range(t.k):
        out[:, k, :] = np.bincount(t.cell, weights=post[k][t.item],
                                   minlength=t.n_annotators * t.k).reshape(t.n_annotators, t.k)
    return out


def _annotator_log_likelihood(t: _Long, log_cm: np.ndarray, dtype) -> np.ndarray:
    """Class-major (K x items): per item and true class, the sum of log CM[annotator, class, label]."""
    out = np.empty((t.k, t.n_items), dtype=dtype)
    for k in range(t.k):
        out[k] = np.bincount(t.item, weights=log_cm[:, k, :].ravel()[t.cell], minlength=t.n_items)
    return out


def _fit_pool_strength(counts: np.ndarray, pooled: np.ndarray) -> float:
    """Empirical Bayes: the s maximising the sum over annotator rows of the Dirichlet-multinomial log marginal
    likelihood of the expected counts under Dirichlet(s * pooled row); a bounded 1-D search over log s."""
    from scipy.optimize import minimize_scalar

    n_row = counts.sum(axis=2)                                   # (M, K)
    used = n_row > 0                                             # rows with no counts add nothing

    def negative(log_s: float) -> float:
        s = np.exp(log_s)
        alpha = s * pooled
        return -float(gammaln(s) * used.sum() - gammaln(s + n_row[used]).sum()
                      + (gammaln(alpha[None] + counts) - gammaln(alpha)[None]).sum())

    fit = minimize_scalar(negative, bounds=POOL_STRENGTH_BOUNDS, method="bounded", options={"xatol": 1e-3})
    return float(np.exp(fit.x))


def _softmax_columns(log_t: np.ndarray) -> np.ndarray:
    """Normalise class-major log scores (K x items) into a posterior, in place."""
    log_t -= log_t.max(axis=0, keepdims=True)
    np.exp(log_t, out=log_t)
    log_t /= log_t.sum(axis=0, keepdims=True)
    return log_t


def _logsumexp_columns(z: np.ndarray) -> np.ndarray:
    top = z.max(axis=0)
    return top + np.log(np.exp(z - top).sum(axis=0))


class _Model:
    """The model's log pred_probs (class-major) and, per grid temperature, sum_i logsumexp(log p_i / T)."""

    def __init__(self, p: np.ndarray, dtype):
        self.log_p = np.log(np.maximum(np.asarray(p, dtype=dtype).T, PROB_FLOOR)).astype(dtype, copy=False)
        self.log_p = np.ascontiguousarray(self.log_p)
        self.normaliser = np.array([float(_logsumexp_columns(self.log_p / t).sum()) for t in TEMPERATURES])

    def fit_temperature(self, post: np.ndarray) -> float:
        expected = float(np.einsum("ki,ki->", post, self.log_p, dtype=np.float64))
        objective = expected / np.asarray(TEMPERATURES) - self.normaliser
        return float(TEMPERATURES[int(np.argmax(objective))])

    def log_prior(self, temperature: float) -> np.ndarray:
        z = self.log_p / np.asarray(temperature, dtype=self.log_p.dtype)
        z -= _logsumexp_columns(z)[None, :]
        return z


@in_canonical_order          # the result must not depend on row order (relabel.scoring.canonical_order)
def fitted_dawid_skene(annotations: Annotations, pred_probs: np.ndarray | None = None, *,
                       known_labels: np.ndarray | None = None, max_iter: int = 50, tol: float = 1e-4,
                       discount: float | None = None, pool_strength: float | None = None,
                       dtype=np.float32, seed: int = 0) -> FittedEM:
    """Run the EM of the module docstring; inputs are trusted (relabel.scoring.consensus_em validates them).

    ``discount`` / ``pool_strength`` fix a setting instead of fitting it (for the benchmarks' ablations; a
    fixed ``discount`` without a model also fixes the confidence discount). ``known_labels``: one class index
    per item, -1 = not reviewed. ``dtype`` of the items x K arrays.
    """
    t = _Long(annotations)
    model = _Model(pred_probs, dtype) if pred_probs is not None else None
    if discount is not None:                      # an ablation: the EM as it is, its posterior as the quality
        return _em(annotations, t, model, known_labels=known_labels, max_iter=max_iter, tol=tol,
                   discount=discount, pool_strength=pool_strength, dtype=dtype, seed=seed)
    if model is None:
        return _annotation_only(annotations, t, known_labels=known_labels, max_iter=max_iter, tol=tol,
                                pool_strength=pool_strength, dtype=dtype, seed=seed)
    em = _em(annotations, t, model, known_labels=known_labels, max_iter=max_iter, tol=tol, discount=discount,
             pool_strength=pool_strength, dtype=dtype, seed=seed)
    return _calibrated(annotations, em, model.log_p, known_labels, _HeldOut(t, seed))


def annotation_only_posterior(annotations: Annotations, *, known_labels, pool_strength: float, max_iter: int = 50,
                              tol: float = 1e-4, dtype=np.float32) -> np.ndarray:
    """The annotation-only EM's posterior (items x K) at a fixed pooling strength, without the held-out quality
    calibration: what relabel.scoring.majority_evidence refits on each held-out split."""
    return _em(annotations, _Long(annotations), None, known_labels=known_labels, max_iter=max_iter, tol=tol,
               discount=1.0, pool_strength=pool_strength, dtype=dtype).posterior


def _em(annotations: Annotations, t: _Long, model: _Model | None, *, known_labels, max_iter: int, tol: float,
        discount: float | None, pool_strength: float | None, dtype, seed: int = 0) -> FittedEM:
    """The EM loop of the module docstring at fixed or per-M-step fitted settings (``t`` and ``model``: the
    annotations' flat keys and the model's log-probabilities, built once by the caller)."""
    k = t.k
    votes = annotations.vote_counts().T.astype(np.float64)
    post = votes / votes.sum(axis=0, keepdims=True)
    if model is not None:
        # Start halfway between the vote fractions and the model: neither source alone decides the first M-step.
        post = 0.5 * (post + np.exp(model.log_p))
    post = post.astype(dtype)
    clamp = None
    if known_labels is not None:
        known = np.asarray(known_labels, dtype=np.intp)
        clamp = np.flatnonzero(known >= 0)
        if clamp.size:
            post[:, clamp] = 0
            post[known[clamp], clamp] = 1
        else:
            clamp = None
    clamped = post[:, clamp].copy() if clamp is not None else None
    fit_discount = model is not None and discount is None
    discount_rows = _discount_rows(t, seed) if fit_discount else None
    d = 1.0 if discount is None else float(discount)
    temperature, strength, converged = 1.0, 0.0, False
    class_prior = np.full(k, 1.0 / k)
    for n_iter in range(1, max_iter + 1):
        counts = _confusion_counts(t, post)
        pooled = counts.sum(axis=0) + CONFUSION_SMOOTHING
        pooled /= pooled.sum(axis=1, keepdims=True)
        strength = _fit_pool_strength(counts, pooled) if pool_strength is None else float(pool_strength)
        counts += CONFUSION_SMOOTHING
        confusion = (counts + strength * pooled) / (counts.sum(axis=2, keepdims=True) + strength)
        log_cm = np.log(confusion)
        if model is None:
            class_prior = post.sum(axis=1, dtype=np.float64) + CLASS_PRIOR_PSEUDOCOUNT
            class_prior /= class_prior.sum()
            log_prior = np.log(class_prior).astype(dtype)[:, None]
        else:
            temperature = model.fit_temperature(post)
            log_prior = model.log_prior(temperature)
        evidence = _annotator_log_likelihood(t, log_cm, dtype)
        if fit_discount:
            d = _fit_discount(t, discount_rows, log_cm, evidence, log_prior)
        log_t = evidence
        log_t *= d
        log_t += log_prior
        new = _softmax_columns(log_t)
        if clamp is not None:
            new[:, clamp] = clamped
        change = float(np.abs(new - post).max())
        post = new
        if change < tol:
            converged = True
            break
    posterior = np.ascontiguousarray(post.T, dtype=np.float64)
    if model is not None:
        class_prior = post.mean(axis=1, dtype=np.float64)
    return FittedEM(posterior, class_prior, confusion, temperature, strength, d, n_iter, converged, posterior)


def _annotation_only(annotations: Annotations, t: _Long, *, known_labels, max_iter: int, tol: float,
                     pool_strength: float | None, dtype, seed: int) -> FittedEM:
    """Annotations only: the EM at the pooling strength with the highest held-out annotation likelihood (a
    bounded search over log s, one EM per point), then the discounted, held-out-calibrated quality posterior."""
    from scipy.optimize import minimize_scalar

    held_out = _HeldOut(t, seed)
    run = lambda s: _em(annotations, t, None, known_labels=known_labels, max_iter=max_iter, tol=tol,  # noqa: E731
                        discount=1.0, pool_strength=s, dtype=dtype)
    if pool_strength is None:
        best = {"score": np.inf, "em": None}  # the best point evaluated (not only the last one); one EM kept

        def negative(log_s: float) -> float:
            em = run(float(np.exp(log_s)))
            score = -held_out.log_likelihood(*held_out.state(em), em.class_prior)
            if score < best["score"]:
                best.update(score=score, em=em)
            return score

        minimize_scalar(negative, bounds=POOL_STRENGTH_BOUNDS, method="bounded", options={"xatol": POOL_SEARCH_XTOL})
        em = best["em"]
    else:
        em = run(float(pool_strength))
    return _calibrated(annotations, em, None, known_labels, held_out)


def _calibrated(annotations: Annotations, em: FittedEM, log_p: np.ndarray | None, known_labels,
                held_out: "_HeldOut") -> FittedEM:
    """``em`` with its quality posterior: softmax(prior + d * leave-item-out evidence), the prior being the
    class prior (annotations only) or the model at temperature T, with d (and T) maximising the held-out
    annotation likelihood. Reviewed items keep their clamped posterior."""
    post, counts, pooled, strength = held_out.state(em)
    if log_p is None:
        log_pi = np.log(em.class_prior)[:, None]
        prior_of = lambda temperature, items: log_pi  # noqa: E731
    else:
        prior_of = lambda temperature, items: log_p[:, items] / temperature  # noqa: E731
    temperature, d = held_out.fit_calibration(post, counts, pooled, strength, prior_of, log_p is not None,
                                              em.temperature, em.discount)
    log_q = held_out.evidence(post, counts, pooled, strength, post.dtype)      # K x items, in place from here
    log_q *= d
    for k in range(log_q.shape[0]):                  # one class at a time: no second K x items array
        log_q[k] += prior_of(temperature, slice(None))[k] if log_p is None else log_p[k] / temperature
    quality = np.ascontiguousarray(_softmax_columns(log_q).T, dtype=np.float64)
    if known_labels is not None:
        clamp = np.asarray(known_labels) >= 0
        quality[clamp] = em.posterior[clamp]
    return replace(em, quality_posterior=quality, quality_discount=d, quality_temperature=temperature)


def _discount_rows(t: _Long, seed: int) -> np.ndarray:
    """The annotations the discount is fitted on: those of items with two or more, a seeded sample of at most
    DISCOUNT_FIT_ANNOTATIONS of them. The same in every M-step, so drawn once per EM."""
    rows = np.flatnonzero(np.bincount(t.item, minlength=t.n_items)[t.item] >= 2)
    if rows.size > DISCOUNT_FIT_ANNOTATIONS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, DISCOUNT_FIT_ANNOTATIONS, replace=False))
    return rows


def _fit_discount(t: _Long, rows: np.ndarray, log_cm: np.ndarray, evidence: np.ndarray,
                  log_prior: np.ndarray) -> float:
    """The discount with the highest leave-one-annotation-out log-likelihood on the annotations ``rows``.

    Annotation r of item i by annotator j with label l is predicted from everything else about the item:
    P(l) = sum_k P_{-r}(k) CM[j, k, l], with log P_{-r}(k) = log prior[i, k] + d (E[i, k] - log CM[j, k, l]) + c.
    Items with a single annotation are skipped (there is nothing else in their evidence to discount).
    """
    if rows.size == 0:
        return SINGLE_LABEL_DISCOUNT
    item, cell = t.item[rows], t.cell[rows]
    own = np.stack([log_cm[:, k, :].ravel()[cell] for k in range(t.k)])      # (K, r): log CM[j, k, l]
    rest = evidence[:, item] - own                                            # the other annotations
    prior = log_prior[:, item] if log_prior.shape[1] > 1 else log_prior
    best, best_value = 1.0, -np.inf
    for d in DISCOUNTS:
        z = prior + d * rest
        value = float((_logsumexp_columns(z + own) - _logsumexp_columns(z)).sum())
        if value > best_value:
            best, best_value = float(d), value
    return best


class _HeldOut:
    """The held-out annotation likelihood of the module docstring (annotations only), on a seeded sample of at
    most DISCOUNT_FIT_ANNOTATIONS annotations (whole items, so each sampled item keeps all its evidence)."""

    def __init__(self, t: _Long, seed: int):
        self.t = t
        rows = np.arange(t.item.size)
        if rows.size > DISCOUNT_FIT_ANNOTATIONS:
            share = DISCOUNT_FIT_ANNOTATIONS / rows.size
            keep = np.random.default_rng(seed).random(t.n_items) < share
            rows = np.flatnonzero(keep[t.item])
        self.item, self.cell = t.item[rows], t.cell[rows]

    def _own(self, post, counts, pooled, strength, k, item, cell):
        """log CM_{-i}[j, k, l] of annotations (item, cell): the annotator's row k without the item's share."""
        t = self.t
        share = post[k][item].astype(np.float64)
        num = counts[:, k, :].ravel()[cell] + CONFUSION_SMOOTHING + strength * pooled[k, cell % t.k] - share
        den = counts[:, k, :].sum(axis=1)[cell // t.k] + t.k * CONFUSION_SMOOTHING + strength - share
        # num - share >= smoothing > 0 exactly; the floor only guards float32 rounding of the posterior.
        return np.log(np.maximum(num, CONFUSION_SMOOTHING * 1e-3)) - np.log(np.maximum(den, CONFUSION_SMOOTHING))

    def log_likelihood(self, post, counts, pooled, strength, class_prior, d=1.0) -> float:
        own = np.stack([self._own(post, counts, pooled, strength, k, self.item, self.cell)
                        for k in range(self.t.k)])                                   # (K, sample)
        evidence = np.stack([np.bincount(self.item, weights=own[k], minlength=self.t.n_items)
                             for k in range(self.t.k)])
        z = np.log(class_prior)[:, None] + d * (evidence[:, self.item] - own)      # the other annotations
        return float((_logsumexp_columns(z + own) - _logsumexp_columns(z)).sum())

    def state(self, em: FittedEM):
        """(class-major posterior, expected confusion counts, pooled rows, pooling strength) of a finished EM."""
        post = np.ascontiguousarray(em.posterior.T)
        counts = _confusion_counts(self.t, post)
        pooled = counts.sum(axis=0) + CONFUSION_SMOOTHING
        pooled /= pooled.sum(axis=1, keepdims=True)
        return post, counts, pooled, em.pool_strength

    def fit_calibration(self, post, counts, pooled, strength, prior_of, with_model, temperature0: float,
                        discount0: float) -> tuple[float, float]:
        """(T, d) maximising the held-out likelihood of the sampled annotations, d <= 1. Without a model T is
        unused (1.0). Without items of two or more labels d is not identifiable and stays ``discount0`` (the
        EM's)."""
        from scipy.optimize import minimize, minimize_scalar

        t = self.t
        own = np.stack([self._own(post, counts, pooled, strength, k, self.item, self.cell) for k in range(t.k)])
        rest = np.stack([np.bincount(self.item, weights=own[k], minlength=t.n_items)
                         for k in range(t.k)])[:, self.item] - own                  # the item's other annotations
        multi = bool((np.bincount(self.item, minlength=t.n_items) >= 2).any())

        prior = prior_of(1.0, self.item).astype(np.float64)                        # K x sample (or K x 1)

        def negative(log_t: float, log_d: float) -> float:
            z = (prior / np.exp(log_t) if with_model else prior) + np.exp(log_d) * rest
            return -float((_logsumexp_columns(z + own) - _logsumexp_columns(z)).sum())

        if not with_model:
            if not multi:
                return 1.0, 1.0
            fit = minimize_scalar(lambda x: negative(0.0, x), bounds=QUALITY_DISCOUNT_BOUNDS, method="bounded",
                                  options={"xatol": CALIBRATION_XTOL})
            # The bounded search never evaluates the end point itself: d = 1 (no discount) competes explicitly.
            return 1.0, (1.0 if negative(0.0, 0.0) <= fit.fun else float(np.exp(fit.x)))
        t_bounds = (float(np.log(TEMPERATURES[0])), float(np.log(TEMPERATURES[-1])))
        if not multi:
            fit = minimize_scalar(lambda x: negative(x, np.log(discount0)), bounds=t_bounds, method="bounded",
                                  options={"xatol": CALIBRATION_XTOL})
            return float(np.exp(fit.x)), float(discount0)
        fit = minimize(lambda x: negative(x[0], x[1]), x0=np.clip(np.log([temperature0, discount0]),
                                                                   *np.transpose([t_bounds, QUALITY_DISCOUNT_BOUNDS])),
                       method="L-BFGS-B", bounds=[t_bounds, QUALITY_DISCOUNT_BOUNDS])
        return float(np.exp(fit.x[0])), float(np.exp(fit.x[1]))

    def evidence(self, post, counts, pooled, strength, dtype) -> np.ndarray:
        """Class-major leave-item-out evidence of every item (all annotations, not only the sample), one class
        at a time into a ``dtype`` array (no annotations x K array)."""
        t = self.t
        out = np.empty((t.k, t.n_items), dtype=dtype)
        for k in range(t.k):
            out[k] = np.bincount(t.item, weights=self._own(post, counts, pooled, strength, k, t.item, t.cell),
                                 minlength=t.n_items)
        return out
