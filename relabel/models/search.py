"""Choosing each project's pipeline by cross-validation on its own labels, then calibrated out-of-fold probabilities.

The criterion is the out-of-fold log-loss, after temperature scaling, on the labels the model is trained on (the
consensus or majority vote, with reviewers' decisions as gold). Log-loss rather than accuracy because confident
learning and the consensus read the probabilities themselves, not only the top class.

The search is a coordinate descent over a small grid, cheapest first, budgeted by what it can still gain:

1. each feature family of the grid at C = ``DEFAULT_C`` (no class weights). The first (``word``) is always
   scored; its CPU time (block and cross-validation) is the yardstick. Each further family's cost is projected
   before it is built (its blocks counted on ``PROBE_TEXTS`` texts, whose counts are kept, and the fits scaled by
   non-zeros) and the family is tried only if the round stays within ``COST_MULTIPLE`` yardsticks;
2. the best family's C, walked along ``C_GRID`` from ``DEFAULT_C`` in the direction that improves, one step at a
   time, stopping at the first step that gains less than the noise (two standard errors of the mean per-item
   log-loss difference between the two, on the same rows): candidates within noise of each other are not told
   apart by more of them;
3. the best (family, C) with class_weight = "balanced", only when it would reweigh some class by more than
   ``BALANCE_MATTERS`` (on balanced classes it is the same fit).

Every candidate after the first is scored on ``EARLY_FOLDS`` folds first: one worse than the best so far by more
than the noise on those rows is dropped there (the report lists it as dropped), so a loser costs part of a
cross-validation; the others are finished on every fold.

Up to ``SEARCH_ROWS`` labelled items every candidate is scored on the round's own ``n_folds`` folds, so the
winner's out-of-fold rows are the round's rows (nothing is refitted). On a bigger project the candidates are
scored 3-fold on a stratified sample of ``SEARCH_ROWS`` items, with features built for the sample only, and the
``FINALISTS`` best of them are scored again on every item with the round's folds (the runner-up only when its
projected cost fits in the time and CPU budgets): the best there wins, so the sample only has to rank the
candidates roughly. The time budget (``[model] selection_seconds``) never cuts stage 1; once it is spent, the later
stages stop, the best candidate so far wins and the report says how many were tried (and which the CPU budget
left out). A pinned pipeline (``[model] pipeline``, ``C``, ``class_weight``) skips the search. The winner's
log-loss is selected over a handful of candidates, so it is slightly optimistic.

**Reuse across rounds.** With a relabel.models.model_cache.ModelCache, the winner is kept with the labels it was
chosen on and a tolerance (``reuse_tolerance``): the share of labels that could change before another candidate
could beat it by more than the noise. While the labels and texts changed since that search on no more than that
share, a round refits the winner and does not search: with the same number of fold assignments, as far as
``REFIT_MULTIPLE`` of the search's yardstick pays for them at the cost the search measured for one
(``refit_repeats``: decided from the stored choice, so an unchanged project refits to the same rows on a busy
machine as on an idle one; the report says how many were averaged).

**Repeated cross-validation.** Up to ``REPEAT_ROWS`` labelled items, the winner's out-of-fold probabilities are
the mean over up to ``OOF_REPEATS`` stratified fold assignments (seeds ``seed``, ``seed + 1``, ...): one more is
added only while the last one changed which items confident learning flags by more than that count's own noise
(the square root of the number flagged), and the CPU budget allows. Each
item's row stays out-of-sample (every model averaged for it was fitted without it), while the luck of which
items shared its fold averages out; that luck is what put clean items a model happened to get wrong among the
flagged ones. Measured with relabel.scoring.confident.find_label_issues on 2,500 IMDB reviews (word TF-IDF, C = 1),
one assignment against four: 15% flips: precision 0.570 -> 0.591, recall 0.786 -> 0.793, log-loss 0.5720 ->
0.5676; 30% flips: 0.649 -> 0.656, 0.737 -> 0.747, 0.6699 -> 0.6680 (benchmarks/text_pipeline.py prints every
set). Above REPEAT_ROWS (where the classifier becomes SGD) repeats are not made: each costs a full
cross-validation of the winner, minutes for 20 Newsgroups' 7,532 posts on a busy 2-core machine, on every round,
and the folds then hold so many items that the luck of one assignment weighs less. Whether they would still help
there was not measured.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from relabel import progress as progress_bars
from relabel.scoring.calibration import (LOG_FLOOR, accuracy, apply_temperature, cross_fitted_temperature,
                                         expected_calibration_error, fit_temperature, log_loss)
from relabel.models.estimators import DEFAULT_C, fit_predict, stratified_folds
from relabel.models.pipelines import (HASHING_ABOVE, SGD_ABOVE, FeatureBlocks, PipelineSpec, available_cores, fit_predict_folds,
                                      make_estimator)

# Inverse regularisation strengths searched. Rows of TF-IDF and of normalised embeddings have unit length, so
# sklearn's C = 1 underfits them (20 Newsgroups: accuracy 0.899 at C = 1, 0.914 at C = 10); the grid spans both
# sides of 10 so that the project's own labels decide.
C_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)
# Above this many labelled items the candidates are scored 3-fold on a stratified sample of this size (the
# features built for the sample only), and the FINALISTS best of them again on every item. 3,000 items in 3 folds
# leave 2,000 training rows, where one candidate costs seconds even for character n-grams, so the whole grid
# fits in the default budget on a 2-core machine (benchmarks/bench_model_scale.py --sizes 10000 times it).
SEARCH_ROWS = 3_000
SAMPLE_FOLDS = 3
FINALISTS = 2
# The winner's out-of-fold rows are averaged over this many fold assignments up to REPEAT_ROWS labelled items (see
# the module docstring for the measurement).
OOF_REPEATS = 4
REPEAT_ROWS = SGD_ABOVE
# A round that searches spends at most this many times the CPU of its first candidate (the word pipeline, about
# a plain TF-IDF + logistic regression cross-validation): a candidate whose projected cost does not fit is not
# tried (the report names it), and fold assignments stop being added. The search can gain a few hundredths of
# log-loss over that reference (benchmarks/text_pipeline.py --rounds); three references buy the families worth
# trying, the C steps that gain more than their noise and the repeats that still move the flags.
COST_MULTIPLE = 3.0
# A candidate after the first is scored on this many folds first and dropped there when it is worse than the
# best so far by more than the noise on those rows; only the others are scored on every fold.
EARLY_FOLDS = 2
# A round that reuses the last search's pipeline spends at most this many of that search's yardsticks: one
# cross-validation of the winner always, more fold assignments only as far as they fit at the cost the search
# measured for one (refit_repeats). A refit is meant to cost about what the plain pipeline costs, not a search.
REFIT_MULTIPLE = 1.5
# class_weight = "balanced" is tried only when it would reweigh some class by more than this factor: on balanced
# classes it is the unweighted fit again.
BALANCE_MATTERS = 1.25
# Feature families searched for each [model] featurizer.
FAMILIES = {
    "tfidf": ("word", "char", "word+char"),
    "sentence-transformers": ("minilm", "word+minilm"),
    "auto": ("word", "char", "word+char", "minilm", "word+minilm"),
    "precomputed": ("precomputed",),
}


@dataclass
class Candidate:
    pipeline: str
    log_loss: float
    accuracy: float
    seconds: float


@dataclass
class ModelReport:
    """What the model phase chose and how well it did, stored with the round and shown in the report."""

    pipeline: str
    classifier: str
    cv_log_loss: float
    cv_accuracy: float
    ece: float
    ece_uncalibrated: float
    temperature: float
    labelled: int
    folds: int
    seconds: float
    searched: str                      # "pinned", "full grid", "budget: 4 of 8 candidates"
    candidates: list[Candidate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """One line for `round` and `score`."""
        return (f"model: {self.pipeline} ({self.classifier}); out-of-fold log-loss {self.cv_log_loss:.3f}, "
                f"accuracy {self.cv_accuracy:.3f}, ECE {self.ece:.3f} (before calibration {self.ece_uncalibrated:.3f})"
                f" on {self.labelled} labelled items; {self.searched}")


def _stratified_sample(y: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted indices of about ``size`` rows with each class in proportion (every class keeps at least 1 row)."""
    rng = np.random.default_rng(seed + 1)
    keep = []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        take = max(1, int(round(size * rows.size / y.size)))
        keep.append(rng.choice(rows, size=min(take, rows.size), replace=False))
    return np.sort(np.concatenate(keep))


def pinned_spec(settings) -> PipelineSpec | None:
    """The pipeline the [model] table pins, or None when it leaves the choice to the search."""
    if settings.pipeline == "auto":
        return None
    return PipelineSpec(settings.pipeline, settings.C if settings.C is not None else DEFAULT_C,
                        None if settings.class_weight == "auto" else settings.class_weight)


def grid_families(settings, n_items: int) -> tuple[str, ...]:
    families = FAMILIES[settings.featurizer]
    if n_items > HASHING_ABOVE:  # char n-grams have ~10x the non-zeros of words: not offered on big projects
        families = tuple(f for f in families if "char" not in f) or families
    return families


def settings_key(settings, n_classes: int) -> str:
    """The settings that define a search: a change in any of them means the last choice no longer applies."""
    volatile = {"selection_seconds", "n_jobs", "workers", "dask_scheduler", "batch_size", "device", "threads"}
    chosen = {k: v for k, v in asdict(settings).items() if k not in volatile}
    return json.dumps({"n_classes": int(n_classes), **chosen}, sort_keys=True, default=str)


def select_and_predict(blocks: FeatureBlocks, y: np.ndarray, labelled: np.ndarray, n_classes: int, settings,
                       sample_weight: np.ndarray | None = None, reuse=None):
    """Calibrated probabilities for every item (out-of-fold for labelled rows) and the ModelReport.

    ``reuse`` (a relabel.models.model_cache.ModelCache) holds the last search's choice: while the labels changed
    since it by less than its tolerance, the winner is refitted without a search; a new choice is saved to it.
    """
    from relabel.models.model_cache import Choice, text_digests
    start = time.perf_counter()
    cost = _Cost()
    n_jobs = settings.n_jobs or available_cores()
    lab = np.flatnonzero(labelled)
    y_lab = y[lab]
    w_lab = None if sample_weight is None else sample_weight[lab]
    n_folds = min(settings.n_folds, lab.size)
    folds = stratified_folds(y_lab, n_folds, settings.seed)
    pinned = pinned_spec(settings)
    notes: list[str] = []
    candidates: list[Candidate] = []
    cache: dict[PipelineSpec, np.ndarray] = {}
    key = settings_key(settings, n_classes)
    previous = reuse.choice() if reuse is not None and pinned is None else None
    digests = None
    if reuse is not None and pinned is None:
        digests = text_digests(blocks.texts if blocks.texts is not None else [""] * len(blocks.item_ids))
    reused, repeats, tolerance = None, None, None
    if previous is not None and previous.settings_key == key:
        share = previous.changed_share(blocks.item_ids, y, digests)
        if share <= previous.tolerance:
            reused = previous
        else:
            notes.append(f"labels or texts changed on {share:.1%} of the items since the last search, more than "
                         f"its tolerance of {previous.tolerance:.1%}: searched again")
    if pinned is not None:
        chosen, searched = pinned, "pinned in [model]"
    elif reused is not None:
        chosen = PipelineSpec(reused.features, reused.C, reused.class_weight)
        repeats = refit_repeats(reused)
        searched = (f"reused the pipeline of the search {reused.rounds_reused + 1} round(s) ago: labels and texts "
                    f"changed on {share:.1%} of the items, within its tolerance of {reused.tolerance:.1%} "
                    f"({reused.why})")
    else:
        chosen, searched, tolerance = _search(blocks, lab, y_lab, folds, n_classes, settings, n_jobs, w_lab,
                                              candidates, cache, cost)
    raw, repeats, assignment = _repeated_oof(blocks, chosen, lab, y_lab, folds, n_classes, settings, n_jobs, w_lab,
                                             cache.get(chosen), repeats, cost)
    if repeats > 1:
        notes.append(f"out-of-fold rows averaged over {repeats} fold assignments")
    calibrated = cross_fitted_temperature(raw, y_lab, folds, w_lab)
    temperature = fit_temperature(raw, y_lab, w_lab)
    probs = np.empty((y.size, n_classes), dtype=np.float64)
    probs[lab] = calibrated
    unl = np.flatnonzero(~labelled)
    if unl.size:
        X = blocks.matrix(chosen.features)
        estimator = make_estimator(chosen, lab.size, settings, n_jobs=n_jobs)
        probs[unl] = apply_temperature(fit_predict(estimator, X[lab], y_lab, X[unl], n_classes, sample_weight=w_lab),
                                       temperature)
    if reuse is not None and reused is not None:     # (a pinned pipeline leaves nothing to keep)
        reused.rounds_reused += 1
        reuse.save_choice(reused)
    elif reuse is not None and tolerance is not None:
        reuse.save_choice(Choice(chosen.features, float(chosen.C), chosen.class_weight, tolerance[0], key,
                                 int(repeats), tolerance[1], np.asarray([str(i) for i in blocks.item_ids]),
                                 np.asarray(y, dtype=np.intp).copy(), digests, reference=cost.reference or 0.0,
                                 assignment=assignment))
    classifier = settings.classifier or ("SGDClassifier(log_loss)" if lab.size - lab.size // n_folds > SGD_ABOVE
                                         else "LogisticRegression(lbfgs)")
    report = ModelReport(pipeline=chosen.describe(), classifier=classifier,
                         cv_log_loss=log_loss(calibrated, y_lab), cv_accuracy=accuracy(calibrated, y_lab),
                         ece=expected_calibration_error(calibrated, y_lab),
                         ece_uncalibrated=expected_calibration_error(raw, y_lab), temperature=temperature,
                         labelled=int(lab.size), folds=int(n_folds), seconds=time.perf_counter() - start,
                         searched=searched, candidates=candidates, notes=notes)
    return probs, report


class _Cost:
    """CPU seconds of this process (every thread) since the model phase began, and the reference they are
    budgeted against: the first candidate, the word pipeline, which costs about what a plain TF-IDF + logistic
    regression cross-validation costs."""

    def __init__(self, multiple: float | None = None):
        self.started = time.process_time()
        self.reference: float | None = None
        self.multiple = COST_MULTIPLE if multiple is None else multiple

    @property
    def spent(self) -> float:
        return time.process_time() - self.started

    def allows(self, projected: float) -> bool:
        """Whether ``projected`` more CPU seconds keep the phase within COST_MULTIPLE references."""
        return self.reference is None or self.spent + projected <= self.multiple * self.reference


def refit_repeats(choice) -> int:
    """Fold assignments a round that reuses ``choice`` averages: the search's count, as far as REFIT_MULTIPLE of
    its yardstick pays for them at the search's own measured cost of one assignment.

    Decided from the stored choice alone, never from this round's clock: an unchanged project refits to exactly
    the same rows however busy the machine is (a budget checked while refitting made round 2 of the same inputs
    average a different number of assignments than round 1 when the machine was loaded).
    """
    if choice.repeats <= 1 or choice.assignment <= 0 or choice.reference <= 0:
        return 1        # one assignment, or a choice saved before its cost was recorded: the cheapest refit
    affordable = int(REFIT_MULTIPLE * choice.reference // choice.assignment)
    return max(1, min(int(choice.repeats), affordable))


def _repeated_oof(blocks, spec, lab, y_lab, folds, n_classes, settings, n_jobs, w_lab, first=None,
                  repeats: int | None = None, cost: _Cost | None = None):
    """The winner's out-of-fold rows averaged over fold assignments, how many were averaged, and the CPU seconds
    one assignment took (0.0 when none was run here).

    ``repeats`` given (a reused choice): exactly that many. Otherwise (up to REPEAT_ROWS labelled items) one more
    assignment at a time while the last one changed which items confident learning flags by more than the
    count's own noise (sqrt of the flagged count) and the cost budget allows, up to OOF_REPEATS.
    """
    from relabel.scoring.confident import find_label_issues
    limit = repeats if repeats is not None else (OOF_REPEATS if lab.size <= REPEAT_ROWS else 1)
    total = first.copy() if first is not None else None
    done = 0 if first is None else 1
    flagged = _flags(find_label_issues, y_lab, total) if total is not None and repeats is None else None
    timed: list[float] = []
    with progress_bars.bar(f"Cross-validating {spec.describe()}", total=limit - done) as bar:
        while done < limit:
            fold_r = folds if done == 0 else stratified_folds(y_lab, folds.max() + 1, settings.seed + done)
            t0 = time.process_time()
            part = _oof(blocks, spec, lab, y_lab, fold_r, n_classes, settings, n_jobs, w_lab)
            one = time.process_time() - t0
            timed.append(one)
            total = part if total is None else total + part
            done += 1
            bar.update()
            if done >= limit or repeats is not None:     # a reused choice: exactly its count
                continue
            mean = total / done
            now = _flags(find_label_issues, y_lab, mean)
            if flagged is not None:
                changed = int((now != flagged).sum())
                if changed <= np.sqrt(max(int(now.sum()), 1)):
                    break       # the last assignment moved the flags by less than their noise
            flagged = now
            if cost is not None and not cost.allows(one if one > 0 else 0.0):
                break
    return total / done, done, (float(np.median(timed)) if timed else 0.0)


def _flags(find_label_issues, y, probs) -> np.ndarray:
    try:
        return np.asarray(find_label_issues(y, probs), dtype=bool)
    except Exception:  # confident learning refuses some tiny projects: then repeats cannot be judged by it
        return np.zeros(y.size, dtype=bool)


def _oof(blocks, spec, rows, y, folds, n_classes, settings, n_jobs, weight, only=None) -> np.ndarray:
    X = blocks.matrix(spec.features)
    if rows.size != X.shape[0]:  # unlabelled items present; with every item labelled, no copy
        X = X[rows]
    per_fold_jobs = max(1, n_jobs // max(1, np.unique(folds).size if only is None else len(only)))
    return fit_predict_folds(X, y, folds, n_classes,
                             lambda n_train: make_estimator(spec, n_train, settings, n_jobs=per_fold_jobs),
                             n_jobs=n_jobs, sample_weight=weight, only=only)


def _item_losses(calibrated: np.ndarray, y: np.ndarray) -> np.ndarray:
    return -np.log(np.clip(calibrated[np.arange(y.size), y], LOG_FLOOR, None))


def paired_noise(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean per-item log-loss difference b - a and its noise: two standard errors of that mean."""
    d = b - a
    return float(d.mean()), float(2.0 * d.std(ddof=1) / np.sqrt(max(d.size, 2))) if d.size > 1 else float("inf")


def reuse_tolerance(winner: np.ndarray, runner_up: np.ndarray | None, doubted: np.ndarray) -> tuple[float, str]:
    """The share of labels that may change before the winner's choice could be overturned, and how it was found.

    A changed label moves its item's log-loss difference between two pipelines by about what that difference is
    on the items a model doubts (those are the items reviewers see and change): ``swing``, the mean absolute
    difference over them. The winner leads the runner-up by ``margin`` with ``noise`` (two standard errors). A
    new search could only find a measurably better pipeline if the changed items moved the mean difference by
    more than margin + noise, i.e. if the changed share exceeded (margin + noise) / swing.
    """
    if runner_up is None:   # nothing to compare with (e.g. the time budget stopped after one): search again
        return 0.0, "a single candidate was scored"
    margin, noise = paired_noise(winner, runner_up)
    d = np.abs(runner_up - winner)
    swing = float(d[doubted].mean()) if doubted.any() else float(d.mean())
    tolerance = 1.0 if swing <= 0 else float(min(1.0, (max(margin, 0.0) + noise) / swing))
    return tolerance, (f"lead over the runner-up {margin:+.4f} log-loss, noise {noise:.4f}, per-item swing "
                       f"{swing:.4f} on the doubted items")


def _search(blocks, lab, y_lab, folds, n_classes, settings, n_jobs, w_lab, candidates, cache, cost=None):
    """Coordinate search over (family, C, class_weight), budgeted by cost and stopped by noise (see the module
    docstring); returns the winner, the report's line and its reuse tolerance."""
    cost = cost or _Cost()
    budget = settings.selection_seconds
    started = time.perf_counter()
    families = grid_families(settings, len(blocks.item_ids))
    sampled = lab.size > SEARCH_ROWS
    if sampled:
        # The sample gets its own (unsupervised) features: only the finalists' families are built on every item.
        pick = _stratified_sample(y_lab, SEARCH_ROWS, settings.seed)
        rows_all = lab[pick]
        texts = None if blocks.texts is None else [blocks.texts[i] for i in rows_all]
        search_blocks = FeatureBlocks(texts, [blocks.item_ids[i] for i in rows_all], settings,
                                      cache=blocks.cache, progress=blocks.progress, reuse=blocks.reuse, whole=False)
        rows, y_s = np.arange(rows_all.size), y_lab[pick]
        folds_s = stratified_folds(y_s, SAMPLE_FOLDS, settings.seed)
        w_s = None if w_lab is None else w_lab[pick]
    else:
        search_blocks, rows, y_s, folds_s, w_s = blocks, lab, y_lab, folds, w_lab
    fixed_c = settings.C
    fixed_weight = None if settings.class_weight == "auto" else settings.class_weight
    try_balanced = settings.class_weight == "auto" and _weights_matter(y_s, n_classes)
    plan_total = len(families) + (0 if fixed_c is not None else len(C_GRID) - 1) + int(try_balanced)
    scored: dict[PipelineSpec, float] = {}
    losses: dict[PipelineSpec, np.ndarray] = {}
    seconds: dict[PipelineSpec, float] = {}
    fit_cpu: dict[str, float] = {}      # CPU of one cross-validation, by feature family (fits only)
    skipped: list[str] = []
    calibrated_of: dict[PipelineSpec, np.ndarray] = {}
    # A sampled search's costs times this are the same candidate's on every item (training rows: see _full_cost).
    n_full_folds = np.unique(folds).size
    scale = 1.0 if not sampled else ((n_full_folds - 1) * lab.size) / ((SAMPLE_FOLDS - 1) * rows.size)

    def projected(spec: PipelineSpec) -> float:
        """CPU to score ``spec``: its blocks not built yet (from their probe) and one cross-validation, scaled
        from what was measured by the non-zeros of its matrix."""
        build = sum(search_blocks.projected_build(b) for b in spec.blocks)
        if spec.features in fit_cpu:
            return build + fit_cpu[spec.features]
        ref = fit_cpu.get(families[0])
        if ref is None:
            return 0.0
        return build + ref * search_blocks.projected_nnz(spec.features) / max(search_blocks.nnz(families[0]), 1)

    dropped: set[PipelineSpec] = set()

    def evaluate(spec: PipelineSpec, always: bool = False) -> bool:
        if spec in scored or spec in dropped:
            return True
        if not always and time.perf_counter() - started > budget:
            return False
        if scored and not cost.allows(projected(spec) * scale):
            skipped.append(spec.describe())
            return False
        t0, c0 = time.perf_counter(), time.process_time()
        search_blocks.matrix(spec.features)
        c1 = time.process_time()
        fold_ids = np.unique(folds_s)
        if scored and fold_ids.size > EARLY_FOLDS:
            # Cheaper folds for losers: EARLY_FOLDS folds first; a candidate worse than the best on those rows
            # by more than the noise is dropped there, the rest are finished.
            early = fold_ids[:EARLY_FOLDS]
            raw = _oof(search_blocks, spec, rows, y_s, folds_s, n_classes, settings, n_jobs, w_s, only=early)
            part = np.isin(folds_s, early)
            w_part = None if w_s is None else w_s[part]
            part_losses = _item_losses(cross_fitted_temperature(raw[part], y_s[part], folds_s[part], w_part),
                                       y_s[part])
            leader = best_spec()
            worse, noise = paired_noise(losses[leader][part], part_losses)
            if worse > noise:
                candidates.append(Candidate(f"{spec.describe()} (dropped after {EARLY_FOLDS} of {fold_ids.size} "
                                            f"folds: {worse:+.4f} log-loss against {leader.describe()})",
                                            float(part_losses.mean()), float("nan"), time.perf_counter() - t0))
                dropped.add(spec)
                bar.update()
                return True
            raw[~part] = _oof(search_blocks, spec, rows, y_s, folds_s, n_classes, settings, n_jobs, w_s,
                              only=fold_ids[EARLY_FOLDS:])[~part]
        else:
            raw = _oof(search_blocks, spec, rows, y_s, folds_s, n_classes, settings, n_jobs, w_s)
        fit_cpu.setdefault(spec.features, time.process_time() - c1)
        calibrated = cross_fitted_temperature(raw, y_s, folds_s, w_s)
        scored[spec] = log_loss(calibrated, y_s, w_s)
        losses[spec] = _item_losses(calibrated, y_s)
        calibrated_of[spec] = calibrated
        seconds[spec] = time.perf_counter() - t0
        if cost.reference is None:      # the first candidate (word) is the yardstick of the budget
            cost.reference = (time.process_time() - c0) * scale
        candidates.append(Candidate(spec.describe(), scored[spec], accuracy(calibrated, y_s), seconds[spec]))
        if not sampled:
            cache[spec] = raw
        bar.update()
        return True

    def best_spec() -> PipelineSpec:
        return min(scored, key=scored.get)

    def beats(new: PipelineSpec, old: PipelineSpec) -> bool:
        """``new`` has the lower log-loss by more than the paired noise."""
        if new not in losses:       # dropped early
            return False
        gain, noise = paired_noise(losses[new], losses[old])
        return -gain > noise

    c0 = fixed_c if fixed_c is not None else DEFAULT_C
    complete = True
    with progress_bars.bar("Choosing the model (candidates)", total=plan_total) as bar:
        evaluate(PipelineSpec(families[0], c0, fixed_weight), always=True)
        for family in families[1:]:
            search_blocks.probe(PipelineSpec(family).blocks)
            evaluate(PipelineSpec(family, c0, fixed_weight), always=True)   # the clock never cuts this stage
        best = best_spec()
        if fixed_c is None:
            # Walk C from c0 in the better direction; stop when a step gains less than the noise.
            at = C_GRID.index(c0) if c0 in C_GRID else None
            if at is not None:
                for direction in (+1, -1):
                    here, i = best, at + direction
                    while 0 <= i < len(C_GRID):
                        nxt = PipelineSpec(best.features, C_GRID[i], fixed_weight)
                        if not evaluate(nxt):
                            complete = False
                            break
                        if not beats(nxt, here):
                            break
                        here, i = nxt, i + direction
                    if here != best:
                        break   # this direction gained: the other side of the optimum is not searched
            else:
                for c in C_GRID:
                    complete &= evaluate(PipelineSpec(best.features, c, fixed_weight))
            best = best_spec()
        if try_balanced:
            complete &= evaluate(PipelineSpec(best.features, best.C, "balanced"))
            best = best_spec()
    where = ""
    if sampled:
        runner_up = sorted(scored, key=scored.get)[1:2]
        affordable = bool(runner_up) and time.perf_counter() - started <= budget and \
            _full_cost(seconds[runner_up[0]], lab.size, rows.size, np.unique(folds).size) <= budget and \
            cost.allows(projected(runner_up[0]) * scale)
        best = _finalists(blocks, lab, y_lab, folds, n_classes, settings, n_jobs, w_lab, scored, cache,
                          finalists=FINALISTS if affordable else 1)
        where = f" on a stratified sample of {rows.size} items ({SAMPLE_FOLDS}-fold), the best on every item"
    ranked = sorted(scored, key=scored.get)
    doubted = calibrated_of[ranked[0]].argmax(axis=1) != y_s
    tolerance = reuse_tolerance(losses[ranked[0]], losses[ranked[1]] if len(ranked) > 1 else None, doubted)
    tried = f"{len(scored) + len(dropped)} candidates" + (f", {len(dropped)} dropped after {EARLY_FOLDS} folds"
                                                         if dropped else "")
    if skipped:
        tried += f" ({', '.join(dict.fromkeys(skipped))} not tried: projected CPU beyond {COST_MULTIPLE:g}x the word pipeline's)"
    searched = (f"chose among {tried}{where}" if complete or skipped and time.perf_counter() - started <= budget
                else f"time budget of {budget:g} s reached after {len(scored) + len(dropped)} of {plan_total} "
                     f"candidates{where}")
    return best, searched, tolerance


def _weights_matter(y: np.ndarray, n_classes: int) -> bool:
    """Whether class_weight = "balanced" would change the fit: some present class weighs outside
    [1 / BALANCE_MATTERS, BALANCE_MATTERS] of an unweighted row."""
    counts = np.bincount(y, minlength=n_classes)
    present = counts[counts > 0]
    weights = y.size / (present.size * present)
    return bool((weights > BALANCE_MATTERS).any() or (weights < 1 / BALANCE_MATTERS).any())


def _full_cost(sample_seconds: float, n_rows: int, sample_rows: int, n_folds: int) -> float:
    """Projected seconds to score a candidate on every item with the round's folds, from its cost on the sample.

    Training rows are what a fit costs: ``n_folds`` fits on (n_folds - 1) / n_folds of the rows against
    SAMPLE_FOLDS fits on (SAMPLE_FOLDS - 1) / SAMPLE_FOLDS of the sample. A second finalist is only scored when
    this fits in the search's whole time budget: on a million-item project one more full cross-validation costs
    minutes of CPU (benchmarks/bench_scale.py), more than the sample's ranking of the runner-up is worth.
    """
    return sample_seconds * ((n_folds - 1) * n_rows) / ((SAMPLE_FOLDS - 1) * sample_rows)


def _finalists(blocks, lab, y_lab, folds, n_classes, settings, n_jobs, w_lab, scored, cache, finalists):
    """The best of the sample's top candidates, scored again on every labelled item with the round's folds."""
    top = sorted(scored, key=scored.get)[:finalists]
    if len(top) == 1:
        return top[0]
    full: dict[PipelineSpec, float] = {}
    with progress_bars.bar("Scoring the finalists on every item", total=len(top)) as bar:
        for spec in top:
            cache[spec] = _oof(blocks, spec, lab, y_lab, folds, n_classes, settings, n_jobs, w_lab)
            full[spec] = log_loss(cross_fitted_temperature(cache[spec], y_lab, folds, w_lab), y_lab, w_lab)
            bar.update()
    return min(full, key=full.get)
