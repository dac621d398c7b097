"""Dawid-Skene: consensus from annotations alone, by EM on one confusion matrix per annotator.

Dawid & Skene (1979). Each annotator j has a confusion matrix CM[j, true, given]; items have a latent true
class with prior pi. EM alternates:
  E-step  T[i, k] ∝ pi_k · Π_{annotations r of item i} CM[annotator_r, k, label_r]     (in log space)
  M-step  pi_k = mean_i T[i, k];  CM[j, k, l] ∝ smoothing + Σ_{r: annotator j, label l} T[item_r, k]
Both steps are single bincounts over the long table (n annotations x K), so the cost is O(n·K) per iteration
and memory O(M·K²) for the confusion matrices, never items x annotators.

This is relabel's annotation-only consensus (no model, no features) and a baseline in the benchmarks.

With ``pred_probs`` it becomes relabel's default consensus, :func:`model_dawid_skene`: the model's
temperature-calibrated probabilities take the place of the class prior, every annotator keeps a full confusion
matrix (so "confuses tech with business" is learned, not averaged into one weight), and three things make it
beat CROWDLAB on real annotators (benchmarks/quality.py, CIFAR-10N):
  * the temperature is re-fitted in every M-step against the current posterior (the EM update of that parameter);
  * an annotator's confusion matrix is shrunk towards the pooled matrix of everyone with a strength of
    ``pool_strength`` pseudo-labels, so an annotator with three labels is "average", not "perfect";
  * the annotators' log-likelihoods are discounted by ``annotator_discount`` (< 1): real annotators' mistakes are
    correlated (hard items fool several people the same way), which plain Dawid-Skene, assuming independence,
    turns into overconfident agreement. Items a reviewer decided are clamped to the reviewer's label.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .annotations import Annotations
from .errors import AnnotationError, ConfigError, preview

# Pseudo-count added to every confusion cell: keeps log CM finite for annotators who never used a class, and
# pulls annotators with few labels towards uniform rather than letting one label make them "perfect".
CONFUSION_SMOOTHING = 0.01
# Floor for the class prior so a class no item seems to have keeps a finite log prior.
PRIOR_FLOOR = 1e-12


@dataclass(frozen=True)
class DawidSkeneResult:
    """Posterior over true classes per item, the class prior, and each annotator's confusion matrix."""

    posterior: np.ndarray      # (n_items, K), rows sum to 1
    prior: np.ndarray          # (K,)
    confusion: np.ndarray      # (n_annotators, K true, K given), rows sum to 1
    n_iter: int
    converged: bool
    temperature: float = 1.0   # the model's fitted temperature (model_dawid_skene only)

    @property
    def consensus_label(self) -> np.ndarray:
        return self.posterior.argmax(axis=1)


def dawid_skene(annotations: Annotations, *, max_iter: int = 100, tol: float = 1e-6,
                smoothing: float = CONFUSION_SMOOTHING, init_posterior: np.ndarray | None = None,
                seed: int = 0, known_labels: np.ndarray | None = None) -> DawidSkeneResult:
    """Run EM from vote fractions (or ``init_posterior``) until the posterior moves less than ``tol``.

    ``seed`` only breaks exact ties in the initial vote fractions, so the result is reproducible.
    ``known_labels`` (one class index per item, -1 = unknown) clamps items a reviewer decided.
    """
    if not isinstance(annotations, Annotations):
        raise AnnotationError("dawid_skene takes an Annotations table; build one with Annotations.from_records "
                              "or Annotations.from_dense.")
    if max_iter < 1:
        raise ConfigError(f"The 'max_iter' setting must be a positive integer. Got {max_iter}.")
    if not tol > 0:
        raise ConfigError(f"The 'tol' setting must be a positive number. Got {tol}.")
    counts = annotations.num_annotations()
    if (counts == 0).any():
        raise AnnotationError(f"Items {preview(annotations.item_ids[counts == 0].tolist())} have no label; "
                              "drop them before computing consensus.")
    if init_posterior is None:
        votes = annotations.vote_counts().astype(float)
        # A vanishing seeded jitter decides exact ties reproducibly instead of always towards class 0.
        jitter = np.random.default_rng(seed).uniform(0, 1e-9, size=votes.shape)
        posterior = (votes + jitter) / (votes + jitter).sum(axis=1, keepdims=True)
    else:
        posterior = np.array(init_posterior, dtype=float)  # a copy: reviewed rows are clamped in place
    clamp = _clamp_known(posterior, known_labels)
    return _compute_dawid_skene(annotations, posterior, max_iter, tol, smoothing, clamp)


def _clamp_known(posterior: np.ndarray, known_labels) -> np.ndarray | None:
    """Set reviewed items' rows to their one-hot label (in place); return their indices, or None."""
    if known_labels is None:
        return None
    known = np.asarray(known_labels, dtype=np.intp)
    if known.shape != (posterior.shape[0],) or known.max(initial=-1) >= posterior.shape[1]:
        raise ConfigError("known_labels must hold one class index (or -1) per item of the annotations.")
    clamp = np.flatnonzero(known >= 0)
    posterior[clamp] = np.eye(posterior.shape[1])[known[clamp]]
    return clamp if clamp.size else None


def _compute_dawid_skene(a: Annotations, posterior: np.ndarray, max_iter: int, tol: float,
                         smoothing: float, clamp: np.ndarray | None = None) -> DawidSkeneResult:
    confusion_index, item_index = _flat_indices(a)
    converged = False
    for n_iter in range(1, max_iter + 1):
        # M-step
        prior = np.maximum(posterior.mean(axis=0), PRIOR_FLOOR)
        confusion = _confusion_counts(a, posterior, confusion_index) + smoothing
        confusion /= confusion.sum(axis=2, keepdims=True)
        # E-step: log T[i,k] = log pi_k + sum over the item's annotations of log CM[j, k, label]
        posterior, change = _posterior_step(_log_likelihood(a, confusion, item_index) + np.log(prior),
                                            posterior, clamp)
        if change < tol:
            converged = True
            break
    return DawidSkeneResult(posterior, prior / prior.sum(), confusion, n_iter, converged)


# Defaults of the model-aware EM, chosen on CIFAR-10N (benchmarks/quality.py prints the comparison).
ANNOTATOR_DISCOUNT = 0.7
POOL_STRENGTH_PER_CLASS = 1.0      # pseudo-labels per confusion row = K: one per cell on average
TEMPERATURES = tuple(np.exp(np.linspace(np.log(0.2), np.log(5.0), 25)))
# Floor for probabilities before the log, so a model that gives exactly 0 to a class does not veto it forever.
PROB_FLOOR = 1e-30


def model_dawid_skene(annotations: Annotations, pred_probs: np.ndarray, *, max_iter: int = 50, tol: float = 1e-5,
                      annotator_discount: float = ANNOTATOR_DISCOUNT, pool_strength: float | None = None,
                      known_labels: np.ndarray | None = None) -> DawidSkeneResult:
    """Dawid-Skene with the model as the per-item prior (see the module docstring).

    ``pred_probs`` must be out-of-sample, one row per item of ``annotations``. ``known_labels`` (n_items, int,
    -1 = unknown) clamps items whose true label a reviewer has decided; they also teach the annotators'
    confusion matrices and the temperature like gold labels. Returns the posterior, the fitted temperature as
    ``temperature`` and each annotator's confusion matrix; ``prior`` is the mean posterior.
    """
    if not 0 < annotator_discount <= 1:
        raise ConfigError(f"The 'annotator_discount' setting must be in (0, 1]. Got {annotator_discount}.")
    if max_iter < 1:
        raise ConfigError(f"The 'max_iter' setting must be a positive integer. Got {max_iter}.")
    k = annotations.n_classes
    strength = POOL_STRENGTH_PER_CLASS * k if pool_strength is None else float(pool_strength)
    if strength < 0:
        raise ConfigError(f"The 'pool_strength' setting must be >= 0. Got {pool_strength}.")
    return _compute_model_dawid_skene(annotations, np.asarray(pred_probs, dtype=float), max_iter, tol,
                                      annotator_discount, strength, known_labels)


def _log_temperature_scale(log_p: np.ndarray, temperature: float) -> np.ndarray:
    """log softmax(log p / T), row-normalised in log space."""
    z = log_p / temperature
    z -= z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _compute_model_dawid_skene(a: Annotations, p: np.ndarray, max_iter: int, tol: float, discount: float,
                               strength: float, known_labels) -> DawidSkeneResult:
    k = a.n_classes
    confusion_index, item_index = _flat_indices(a)
    log_p = np.log(np.maximum(p, PROB_FLOOR))
    scaled = {t: _log_temperature_scale(log_p, t) for t in TEMPERATURES}
    votes = a.vote_counts().astype(float)
    n_votes = votes.sum(axis=1, keepdims=True)
    # Start halfway between the vote fractions and the model: neither source alone decides the first M-step.
    posterior = 0.5 * (np.divide(votes, n_votes, out=np.full_like(votes, 1.0 / k), where=n_votes > 0) + p)
    clamp = _clamp_known(posterior, known_labels)
    converged, temperature = False, 1.0
    for n_iter in range(1, max_iter + 1):
        # M-step: confusion counts, shrunk towards the pooled confusion of all annotators.
        counts = _confusion_counts(a, posterior, confusion_index)
        pooled = counts.sum(axis=0) + CONFUSION_SMOOTHING
        pooled /= pooled.sum(axis=1, keepdims=True)
        counts += CONFUSION_SMOOTHING                      # keeps log() finite even with pool_strength=0
        confusion = (counts + strength * pooled) / (counts.sum(axis=2, keepdims=True) + strength)
        # ... and the temperature maximising the expected log-likelihood of the posterior under the model.
        temperature = max(TEMPERATURES, key=lambda t: float(np.einsum("ik,ik->", posterior, scaled[t])))
        # E-step, in log space.
        posterior, change = _posterior_step(discount * _log_likelihood(a, confusion, item_index)
                                            + scaled[temperature], posterior, clamp)
        if change < tol:
            converged = True
            break
    return DawidSkeneResult(posterior, posterior.mean(axis=0), confusion, n_iter, converged, temperature)


def _flat_indices(a: Annotations) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices reused every iteration: cell (annotator, true k, given label) and cell (item, k), n x K each."""
    k = a.n_classes
    classes = np.arange(k)
    confusion_index = ((a.annotator[:, None] * k + classes[None, :]) * k + a.label[:, None]).ravel()
    item_index = (a.item[:, None] * k + classes[None, :]).ravel()
    return confusion_index, item_index


def _confusion_counts(a: Annotations, posterior: np.ndarray, confusion_index: np.ndarray) -> np.ndarray:
    """Expected (annotator, true, given) counts under the posterior: one bincount over the long table."""
    k = a.n_classes
    return np.bincount(confusion_index, weights=posterior[a.item].ravel(),
                       minlength=a.n_annotators * k * k).reshape(a.n_annotators, k, k)


def _log_likelihood(a: Annotations, confusion: np.ndarray, item_index: np.ndarray) -> np.ndarray:
    """Per item and true class, the sum over its annotations of log CM[annotator, class, label] (items x K)."""
    per_annotation = np.log(confusion)[a.annotator, :, a.label]                    # (n, K)
    return np.bincount(item_index, weights=per_annotation.ravel(),
                       minlength=a.n_items * a.n_classes).reshape(a.n_items, a.n_classes)


def _posterior_step(log_t: np.ndarray, previous: np.ndarray, clamp) -> tuple[np.ndarray, float]:
    """Normalise log scores into a posterior (reviewed rows stay clamped); return it and how far it moved."""
    log_t -= log_t.max(axis=1, keepdims=True)
    new = np.exp(log_t)
    new /= new.sum(axis=1, keepdims=True)
    if clamp is not None:
        new[clamp] = previous[clamp]
    return new, float(np.abs(new - previous).max())
