"""Multi-label consensus: several tags per item from several annotators, optionally with a model (issue 24).

Each item i and class k has a latent truth z[i, k] in {0, 1}; the classes are modelled one at a time (binary
relevance). Annotator j, tagging item i, includes class k with probability se[j, k] when z = 1 (sensitivity) and
leaves it out with probability sp[j, k] when z = 0 (specificity). An empty set is an answer: every class "no".
The E-step is, per (item, class), on the log-odds scale

    logit P(z = 1) = prior[i, k] + sum over the item's annotations r of
                     v_rk * log(se / (1 - sp)) + (1 - v_rk) * log((1 - se) / sp)       (annotator j_r, class k)

and the M-step re-estimates from the posterior T, everything fitted on the data of the run:

* **sensitivity and specificity, pooled where data are thin**: se[j, k] has a Beta(s * m_j, s * (1 - m_j))
  prior, m_j = annotator j's sensitivity over all classes (Laplace-smoothed); the posterior mean
  (a + s m_j) / (n + s) keeps an annotator's per-class rate near their overall rate until the class has
  evidence. The strength s is the empirical-Bayes value maximising the beta-binomial marginal likelihood of the
  expected counts (one bounded 1-D search; as fitted_em fits its pooling strength). Specificity alike.
* **prior** without a model: the class prevalence, Beta(1, 1)-smoothed mean posterior (a logit per class).
* **prior** with a model: the model's per-class probability recalibrated per class, a_k * logit(p) + b_k (Platt
  scaling). (a, b) are fitted to the *annotators-only* posterior (prevalence plus annotator evidence, without
  the model): fitting them to the full posterior would let the model confirm itself, sharpening it each step.

Reviewers' sets (``gold``) clamp their items' posterior, so they teach the annotators' rates and the calibration.

Results: the consensus set (P >= 0.5 per class), the per-class probabilities, per (item, class) the probability
that the consensus is right there, per item the probability the whole set is right (their product: the classes
are independent given the evidence, so an item with three 0.9 classes is as doubtful as one 0.73 class), and
the annotators' per-class rates. Memory: the annotation x class vote matrix (uint8) and a few items x classes
float arrays; every step is a sparse product over the long table, no loop over items or annotators.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import minimize_scalar
from scipy.special import expit, gammaln, logit

from relabel.errors import AnnotationError, PredProbsError, preview

# Bounds of the empirical-Bayes search for the pooling strength: from "each (annotator, class) alone" to
# "every class of an annotator alike". They bound the fitted value, they do not choose it.
POOL_STRENGTH_BOUNDS = (float(np.log(0.1)), float(np.log(1e5)))
POOL_SEARCH_XTOL = 0.05
# Beta(1, 1) smoothing of rates and prevalences: keeps every logit finite.
RATE_PSEUDOCOUNT = 1.0
# Probabilities are clipped to [PROB_FLOOR, 1 - PROB_FLOOR] before a logit: a model's exact 0 or 1 must not veto.
PROB_FLOOR = 1e-6
# EM stops when no posterior moves more than this (or after MAX_ITER steps).
TOLERANCE = 1e-4
MAX_ITER = 100
# Newton steps of the per-class Platt fit each M-step (warm-started, so a few suffice), and its ridge: keeps the
# 2 x 2 Hessian invertible for a class whose model column is constant.
PLATT_STEPS = 5
PLATT_RIDGE = 1e-6


@dataclass(frozen=True)
class MultilabelConsensus:
    """Per item: ``labels`` (N x K 0/1 consensus set), ``probabilities`` (N x K, P(class applies)),
    ``class_quality`` (N x K, P(the consensus is right for that class)), ``quality`` (N, P(the whole set is
    right); low = likely wrong), ``agreement`` (N, share of the item's annotators whose set equals the consensus;
    NaN without annotations), ``n_annotations``. Per annotator (``annotator_ids`` order): ``sensitivity`` and
    ``specificity`` (annotators x K), ``n_annotations_per_annotator``. ``model_probabilities`` is the
    recalibrated model (N x K, None without pred_probs); ``pool_strength`` the fitted (sensitivity, specificity)
    pooling strengths."""

    labels: np.ndarray
    probabilities: np.ndarray
    class_quality: np.ndarray
    quality: np.ndarray
    agreement: np.ndarray
    n_annotations: np.ndarray
    annotator_ids: np.ndarray
    sensitivity: np.ndarray
    specificity: np.ndarray
    n_annotations_per_annotator: np.ndarray
    model_probabilities: np.ndarray | None
    pool_strength: tuple[float, float]
    n_iter: int
    converged: bool
    tagged: np.ndarray                       # N x K: how many of the item's annotators tagged each class

    def annotator_stats(self) -> pd.DataFrame:
        """One row per annotator: annotations, mean sensitivity and specificity over classes, worst class."""
        return pd.DataFrame({
            "annotator": self.annotator_ids,
            "n_annotations": self.n_annotations_per_annotator,
            "sensitivity": self.sensitivity.mean(axis=1),
            "specificity": self.specificity.mean(axis=1),
            "most_missed_class": self.sensitivity.argmin(axis=1),
        })

    def class_issues(self, max_per_item: int | None = None) -> pd.DataFrame:
        """(item, class) pairs where the consensus disagrees with the annotators' majority or is unsure,
        least likely right first: ``kind`` is "missing" (the consensus has the class, most annotators left it
        out), "extra" (most annotators tagged it, the consensus drops it) or "uncertain"."""
        n_ann = self.n_annotations[:, None]
        majority = self.tagged * 2 > n_ann
        disagree = (self.labels.astype(bool) != majority) & (n_ann > 0)
        unsure = self.class_quality < 0.9
        item, cls = np.nonzero(disagree | unsure)
        consensus = self.labels[item, cls].astype(bool)
        kind = np.where(~disagree[item, cls], "uncertain", np.where(consensus, "missing", "extra"))
        frame = pd.DataFrame({
            "item": item, "class": cls, "kind": kind, "consensus": consensus.astype(np.int8),
            "probability": self.probabilities[item, cls], "class_quality": self.class_quality[item, cls],
            "tagged": self.tagged[item, cls], "annotators": self.n_annotations[item],
            "model": (self.model_probabilities[item, cls] if self.model_probabilities is not None
                      else np.full(item.size, np.nan)),
        }).sort_values(["class_quality", "item", "class"], kind="stable").reset_index(drop=True)
        if max_per_item is not None:
            frame = frame.groupby("item", sort=False).head(max_per_item).reset_index(drop=True)
        return frame


# ---- the long table ----------------------------------------------------------------------------------------
class _Table:
    """Annotations as sparse incidence matrices and an annotation x class 0/1 vote matrix."""

    def __init__(self, annotations: pd.DataFrame, n_classes: int, n_items: int | None):
        missing = {"item", "annotator", "labels"} - set(annotations.columns)
        if missing:
            raise AnnotationError(f"annotations needs columns item, annotator, labels; missing {sorted(missing)}.")
        item = annotations["item"].to_numpy()
        if item.size and (not np.issubdtype(item.dtype, np.integer) or item.min() < 0):
            raise AnnotationError("annotations.item must be integer item numbers 0..N-1; got "
                                  f"{preview(pd.unique(item)[:5])}. Number the items first.")
        self.item = item.astype(np.intp)
        self.n_items = int(n_items if n_items is not None else (self.item.max() + 1 if item.size else 0))
        codes, self.annotator_ids = pd.factorize(annotations["annotator"], sort=True)
        self.annotator = codes.astype(np.intp)
        self.n_annotators = len(self.annotator_ids)
        self.k = int(n_classes)
        if self.k < 1:
            raise AnnotationError(f"n_classes must be at least 1; got {n_classes}.")
        self.votes = self._votes(annotations["labels"].to_numpy())
        r = self.item.size
        ones = np.ones(r, dtype=np.float64)
        self.by_item = sparse.csr_matrix((ones, (self.item, np.arange(r))), shape=(self.n_items, r))
        self.by_annotator = sparse.csr_matrix((ones, (self.annotator, np.arange(r))), shape=(self.n_annotators, r))
        self.n_annotations = np.bincount(self.item, minlength=self.n_items)

    def _votes(self, labels: np.ndarray) -> np.ndarray:
        lengths = np.empty(labels.size, dtype=np.intp)
        parts = []
        for r, row in enumerate(labels):     # one pass to flatten the lists; everything after is vectorised
            if row is None or (isinstance(row, float) and np.isnan(row)):
                raise AnnotationError(f"Annotation row {r} (item {self.item[r]}) has no labels; use [] for "
                                      "'none apply' and drop skipped tasks.")
            arr = np.asarray(row).ravel()
            lengths[r] = arr.size
            parts.append(arr)
        flat = np.concatenate(parts) if parts else np.zeros(0)
        if flat.size and (not np.issubdtype(flat.dtype, np.number) or np.any(flat != np.round(flat))
                          or flat.min() < 0 or flat.max() >= self.k):
            row = np.repeat(np.arange(labels.size), lengths)[np.flatnonzero(
                ~np.isin(flat, np.arange(self.k)))[0]] if np.issubdtype(flat.dtype, np.number) else 0
            raise AnnotationError(f"Annotation row {row} (item {self.item[row]}) has labels {preview(labels[row])}; "
                                  f"labels must be class indices 0..{self.k - 1}.")
        votes = np.zeros((labels.size, self.k), dtype=np.uint8)
        votes[np.repeat(np.arange(labels.size), lengths), flat.astype(np.intp)] = 1
        return votes


# ---- fitting -----------------------------------------------------------------------------------------------
def _pooled_rates(successes: np.ndarray, trials: np.ndarray) -> tuple[np.ndarray, float]:
    """Per (annotator, class) rates shrunk towards the annotator's overall rate, strength fitted by EB."""
    overall = (successes.sum(axis=1, keepdims=True) + RATE_PSEUDOCOUNT) / (trials.sum(axis=1, keepdims=True)
                                                                          + 2 * RATE_PSEUDOCOUNT)
    overall = np.clip(overall, PROB_FLOOR, 1 - PROB_FLOOR)
    failures = trials - successes

    def neg_marginal(log_s: float) -> float:
        s = np.exp(log_s)
        alpha, beta = s * overall, s * (1 - overall)
        ll = (gammaln(successes + alpha) + gammaln(failures + beta) - gammaln(trials + s)
              - gammaln(alpha) - gammaln(beta) + gammaln(s))
        return -float(ll.sum())

    s = float(np.exp(minimize_scalar(neg_marginal, bounds=POOL_STRENGTH_BOUNDS, method="bounded",
                                     options={"xatol": POOL_SEARCH_XTOL}).x))
    rates = (successes + s * overall) / (trials + s)
    return np.clip(rates, PROB_FLOOR, 1 - PROB_FLOOR), s


def _platt(x: np.ndarray, target: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Per class (columns), Newton steps of logistic regression of soft ``target`` on ``x``; ab is 2 x K."""
    a, b = ab[0].copy(), ab[1].copy()
    for _ in range(PLATT_STEPS):
        q = expit(a * x + b)
        r = target - q
        w = q * (1 - q)
        g_a, g_b = (r * x).sum(axis=0) - PLATT_RIDGE * a, r.sum(axis=0)
        h_aa = (w * x * x).sum(axis=0) + PLATT_RIDGE
        h_ab = (w * x).sum(axis=0)
        h_bb = w.sum(axis=0) + PLATT_RIDGE
        det = h_aa * h_bb - h_ab * h_ab
        a = a + (h_bb * g_a - h_ab * g_b) / det
        b = b + (h_aa * g_b - h_ab * g_a) / det
    return np.stack([a, b])


def _check_pred_probs(pred_probs, n_items: int, k: int) -> np.ndarray:
    p = np.asarray(pred_probs, dtype=np.float64)
    if p.shape != (n_items, k):
        raise PredProbsError(f"pred_probs must be items x classes = ({n_items}, {k}), one probability per class; "
                             f"got shape {p.shape}.")
    bad = ~np.isfinite(p).all(axis=1) | (p < 0).any(axis=1) | (p > 1).any(axis=1)
    if bad.any():
        raise PredProbsError(f"pred_probs rows {preview(np.flatnonzero(bad))} are not probabilities in [0, 1]; "
                             "pass one sigmoid probability per class (rows need not sum to 1).")
    return p


def fit_multilabel_consensus(annotations: pd.DataFrame, n_classes: int, *, pred_probs=None, n_items=None,
                             gold_items=None, gold_labels=None) -> MultilabelConsensus:
    """:func:`multilabel_consensus` with the loop's extras: ``n_items`` (items beyond the last annotated one),
    ``gold_items`` / ``gold_labels`` (reviewed items and their N_gold x K 0/1 sets: clamped)."""
    t = _Table(annotations, n_classes, n_items)
    n, k = t.n_items, t.k
    model_logit = None
    if pred_probs is not None:
        model_logit = logit(np.clip(_check_pred_probs(pred_probs, n, k), PROB_FLOOR, 1 - PROB_FLOOR))
    gold_items = np.asarray([] if gold_items is None else gold_items, dtype=np.intp)
    gold = np.asarray(gold_labels, dtype=np.float64).reshape(gold_items.size, k) if gold_items.size else None

    votes = t.votes.astype(np.float64)
    tagged = (t.by_item @ votes)
    # Start from the per-class vote share (majority vote, soft), the model's average with it when there is one.
    share = np.divide(tagged, t.n_annotations[:, None], out=np.full((n, k), 0.5), where=t.n_annotations[:, None] > 0)
    post = share if model_logit is None else 0.5 * (share + expit(model_logit))
    if gold is not None:
        post[gold_items] = gold
    ab = np.stack([np.ones(k), np.zeros(k)])
    pool = (np.nan, np.nan)
    converged, it = False, 0
    for it in range(1, MAX_ITER + 1):
        # M-step: expected counts per (annotator, class) through the long table.
        post_r = post[t.item]
        sens, s_se = _pooled_rates(t.by_annotator @ (post_r * votes), t.by_annotator @ post_r)
        spec, s_sp = _pooled_rates(t.by_annotator @ ((1 - post_r) * (1 - votes)), t.by_annotator @ (1 - post_r))
        pool = (s_se, s_sp)
        w1 = np.log(sens) - np.log1p(-spec)          # a tag: log se / (1 - sp)
        w0 = np.log1p(-sens) - np.log(spec)          # no tag: log (1 - se) / sp
        evidence = t.by_item @ (w0[t.annotator] + votes * (w1 - w0)[t.annotator])
        prevalence = (post.sum(axis=0) + RATE_PSEUDOCOUNT) / (n + 2 * RATE_PSEUDOCOUNT)
        prior = np.broadcast_to(logit(prevalence), (n, k))
        if model_logit is not None:
            annotators_only = expit(prior + evidence)
            if gold is not None:
                annotators_only[gold_items] = gold
            ab = _platt(model_logit, annotators_only, ab)
            prior = ab[0] * model_logit + ab[1]
        # E-step
        new = expit(prior + evidence)
        if gold is not None:
            new[gold_items] = gold
        delta = float(np.abs(new - post).max()) if n else 0.0
        post = new
        if delta < TOLERANCE:
            converged = True
            break

    labels = (post >= 0.5).astype(np.uint8)
    class_quality = np.where(labels == 1, post, 1 - post)
    quality = np.exp(np.log(np.maximum(class_quality, PROB_FLOOR)).sum(axis=1))
    same = (t.votes == labels[t.item]).all(axis=1).astype(np.float64)
    agreement = np.divide(np.bincount(t.item, weights=same, minlength=n), t.n_annotations,
                          out=np.full(n, np.nan), where=t.n_annotations > 0)
    return MultilabelConsensus(
        labels=labels, probabilities=post, class_quality=class_quality, quality=quality, agreement=agreement,
        n_annotations=t.n_annotations, annotator_ids=np.asarray(t.annotator_ids), sensitivity=sens,
        specificity=spec, n_annotations_per_annotator=np.bincount(t.annotator, minlength=t.n_annotators),
        model_probabilities=None if model_logit is None else expit(ab[0] * model_logit + ab[1]),
        pool_strength=pool, n_iter=it, converged=converged, tagged=tagged.astype(np.int64))


def multilabel_consensus(annotations: pd.DataFrame, n_classes: int, *, pred_probs=None) -> MultilabelConsensus:
    """Consensus tag sets from several annotators' sets (and a model's per-class probabilities).

    ``annotations``: a DataFrame with columns item (0..N-1), annotator (any id) and labels (a list of class
    indices; ``[]`` = "none apply"); ``pred_probs``: N x K per-class probabilities or None. Returns a
    :class:`MultilabelConsensus`: ``.labels`` (N x K 0/1), ``.probabilities``, ``.quality`` (per item, low =
    likely wrong), per-annotator ``.sensitivity`` / ``.specificity`` (and ``annotator_stats()``), per
    (item, class) ``.class_quality`` and ``class_issues()`` (the classes most likely missing or extra).
    """
    n_items = None if pred_probs is None else np.shape(pred_probs)[0]
    return fit_multilabel_consensus(annotations, n_classes, pred_probs=pred_probs, n_items=n_items)


# ---- what reviewers and the report see ----------------------------------------------------------------------
def review_reason(result: MultilabelConsensus, item: int, class_names, max_classes: int = 2) -> str:
    """Why an item is worth a look, naming its least certain classes: "2 of 3 annotators tagged sports, the model
    says 0.04" (the model part only with a model), most doubtful class first."""
    order = np.argsort(result.class_quality[item], kind="stable")[:max_classes]
    n = int(result.n_annotations[item])
    parts = []
    for k in order:
        tagged = int(result.tagged[item, k])
        text = f"{tagged} of {n} annotator{'s' if n != 1 else ''} tagged {class_names[k]}"
        if result.model_probabilities is not None:
            text += f", the model says {result.model_probabilities[item, k]:.2f}"
        parts.append(text)
    return "; ".join(parts)


def per_class_kappa(annotations: pd.DataFrame, n_classes: int) -> np.ndarray:
    """Fleiss' kappa of each class's yes/no tags over the items with at least two annotations (NaN for a class
    whose tags never vary: agreement beyond chance is undefined there)."""
    t = _Table(annotations, n_classes, None)
    n_ann = t.n_annotations.astype(np.float64)
    keep = n_ann >= 2
    yes = np.asarray(t.by_item @ t.votes.astype(np.float64))[keep]
    m = n_ann[keep][:, None]
    no = m - yes
    observed = ((yes * (yes - 1) + no * (no - 1)) / (m * (m - 1))).mean(axis=0)
    p_yes = yes.sum(axis=0) / m.sum()
    expected = p_yes ** 2 + (1 - p_yes) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(expected < 1, (observed - expected) / (1 - expected), np.nan)


def class_summary(annotations: pd.DataFrame, result: MultilabelConsensus, class_names=None) -> pd.DataFrame:
    """Per class: consensus prevalence, Fleiss' kappa, and how often annotators miss it (share of the expected
    true tags left out) or add it wrongly (share of expected absent ones tagged), most often missed first."""
    t = _Table(annotations, result.labels.shape[1], result.labels.shape[0])
    post_r = result.probabilities[t.item]
    votes = t.votes.astype(np.float64)
    positives = post_r.sum(axis=0)
    negatives = (1 - post_r).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        missed = (post_r * (1 - votes)).sum(axis=0) / positives
        extra = ((1 - post_r) * votes).sum(axis=0) / negatives
    k = result.labels.shape[1]
    names = list(class_names) if class_names is not None else list(range(k))
    return pd.DataFrame({"class": names, "prevalence": result.labels.mean(axis=0),
                         "kappa": per_class_kappa(annotations, k), "missed": missed, "extra": extra}
                        ).sort_values("missed", ascending=False, kind="stable").reset_index(drop=True)
