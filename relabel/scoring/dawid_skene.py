"""Dawid-Skene: consensus from annotations alone, by EM on one confusion matrix per annotator.

Dawid & Skene (1979). Each annotator j has a confusion matrix CM[j, true, given]; items have a latent true
class with prior pi. EM alternates:
  E-step  T[i, k] ∝ pi_k · Π_{annotations r of item i} CM[annotator_r, k, label_r]     (in log space)
  M-step  pi_k = mean_i T[i, k];  CM[j, k, l] ∝ smoothing + Σ_{r: annotator j, label l} T[item_r, k]
Both steps are single bincounts over the long table (n annotations x K), so the cost is O(n·K) per iteration
and memory O(M·K²) for the confusion matrices, never items x annotators.

This is relabel's annotation-only consensus (no model, no features) and a baseline in the benchmarks.

relabel's default consensus is the same model with every setting fitted on the data: :mod:`relabel.scoring.fitted_em`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from relabel.scoring.annotations import Annotations
from relabel.errors import AnnotationError, ConfigError, preview

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
