"""Choosing each project's pipeline by cross-validation on its own labels, then calibrated out-of-fold probabilities.

The criterion is the out-of-fold log-loss, after temperature scaling, on the labels the model is trained on (the
consensus or majority vote, with reviewers' decisions as gold). Log-loss rather than accuracy because confident
learning and the consensus read the probabilities themselves, not only the top class.

The search is a coordinate descent over a small grid, cheapest first:

1. each feature family of the grid at C = ``DEFAULT_C`` (no class weights);
2. the best family at each other C of ``C_GRID``;
3. the best (family, C) with class_weight = "balanced".

Up to ``SEARCH_ROWS`` labelled items every candidate is scored on the round's own ``n_folds`` folds, so the
winner's out-of-fold rows are the round's rows (nothing is refitted). On a bigger project the candidates are
scored 3-fold on a stratified sample of ``SEARCH_ROWS`` items, with features built for the sample only, and the
``FINALISTS`` best of them are scored again on every item with the round's folds (the runner-up only when its
projected cost fits in the time budget): the best there wins, so the sample only has to rank the candidates
roughly. The time budget (``[model] selection_seconds``) never cuts stage 1
(every family is always compared); once it is spent, the later stages stop, the best candidate so far wins and
the report says how many were tried. A pinned pipeline (``[model] pipeline``, ``C``, ``class_weight``) skips
the search. The winner's log-loss is selected over a handful of candidates, so it is slightly optimistic.

**Repeated cross-validation.** Up to ``REPEAT_ROWS`` labelled items, the winner's out-of-fold probabilities are
the mean over ``OOF_REPEATS`` different stratified fold assignments (seeds ``seed``, ``seed + 1``, ...). Each
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

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from relabel import progress as progress_bars
from relabel.scoring.calibration import (accuracy, apply_temperature, cross_fitted_temperature, expected_calibration_error,
                                         fit_temperature, log_loss)
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


def select_and_predict(blocks: FeatureBlocks, y: np.ndarray, labelled: np.ndarray, n_classes: int, settings,
                       sample_weight: np.ndarray | None = None):
    """Calibrated probabilities for every item (out-of-fold for labelled rows) and the ModelReport."""
    start = time.perf_counter()
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
    if pinned is not None:
        chosen, searched = pinned, "pinned in [model]"
    else:
        chosen, searched = _search(blocks, lab, y_lab, folds, n_classes, settings, n_jobs, w_lab, candidates,
                                   cache)
    raw = _repeated_oof(blocks, chosen, lab, y_lab, folds, n_classes, settings, n_jobs, w_lab, cache.get(chosen))
    repeats = OOF_REPEATS if lab.size <= REPEAT_ROWS else 1
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
    classifier = settings.classifier or ("SGDClassifier(log_loss)" if lab.size - lab.size // n_folds > SGD_ABOVE
                                         else "LogisticRegression(lbfgs)")
    report = ModelReport(pipeline=chosen.describe(), classifier=classifier,
                         cv_log_loss=log_loss(calibrated, y_lab), cv_accuracy=accuracy(calibrated, y_lab),
                         ece=expected_calibration_error(calibrated, y_lab),
                         ece_uncalibrated=expected_calibration_error(raw, y_lab), temperature=temperature,
                         labelled=int(lab.size), folds=int(n_folds), seconds=time.perf_counter() - start,
                         searched=searched, candidates=candidates, notes=notes)
    return probs, report


def _repeated_oof(blocks, spec, lab, y_lab, folds, n_classes, settings, n_jobs, w_lab, first=None) -> np.ndarray:
    """The winner's out-of-fold rows: the mean over OOF_REPEATS fold assignments (one above REPEAT_ROWS)."""
    repeats = OOF_REPEATS if lab.size <= REPEAT_ROWS else 1
    todo = repeats - (first is not None)
    if todo == 0:
        return first
    total = first.copy() if first is not None else np.zeros((lab.size, n_classes))
    with progress_bars.bar(f"Cross-validating {spec.describe()}", total=todo) as bar:
        for r in range(repeats - todo, repeats):
            fold_r = folds if r == 0 else stratified_folds(y_lab, folds.max() + 1, settings.seed + r)
            total += _oof(blocks, spec, lab, y_lab, fold_r, n_classes, settings, n_jobs, w_lab)
            bar.update()
    return total / repeats


def _oof(blocks, spec, rows, y, folds, n_classes, settings, n_jobs, weight) -> np.ndarray:
    X = blocks.matrix(spec.features)
    if rows.size != X.shape[0]:  # unlabelled items present; with every item labelled, no copy
        X = X[rows]
    per_fold_jobs = max(1, n_jobs // max(1, np.unique(folds).size))
    return fit_predict_folds(X, y, folds, n_classes,
                             lambda n_train: make_estimator(spec, n_train, settings, n_jobs=per_fold_jobs),
                             n_jobs=n_jobs, sample_weight=weight)


def _search(blocks, lab, y_lab, folds, n_classes, settings, n_jobs, w_lab, candidates, cache):
    """Coordinate search over (family, C, class_weight); see the module docstring for the sample and the budget."""
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
                                      cache=blocks.cache, progress=blocks.progress)
        rows, y_s = np.arange(rows_all.size), y_lab[pick]
        folds_s = stratified_folds(y_s, SAMPLE_FOLDS, settings.seed)
        w_s = None if w_lab is None else w_lab[pick]
    else:
        search_blocks, rows, y_s, folds_s, w_s = blocks, lab, y_lab, folds, w_lab
    fixed_c = settings.C
    fixed_weight = None if settings.class_weight == "auto" else settings.class_weight
    plan_total = len(families) + (0 if fixed_c is not None else len(C_GRID) - 1) + \
        (0 if settings.class_weight != "auto" else 1)
    scored: dict[PipelineSpec, float] = {}
    seconds: dict[PipelineSpec, float] = {}

    def evaluate(spec: PipelineSpec, always: bool = False) -> bool:
        if spec in scored:
            return True
        if not always and time.perf_counter() - started > budget:
            return False
        t0 = time.perf_counter()
        raw = _oof(search_blocks, spec, rows, y_s, folds_s, n_classes, settings, n_jobs, w_s)
        calibrated = cross_fitted_temperature(raw, y_s, folds_s, w_s)
        scored[spec] = log_loss(calibrated, y_s, w_s)
        seconds[spec] = time.perf_counter() - t0
        candidates.append(Candidate(spec.describe(), scored[spec], accuracy(calibrated, y_s), seconds[spec]))
        if not sampled:
            cache[spec] = raw
        bar.update()
        return True

    c0 = fixed_c if fixed_c is not None else DEFAULT_C
    with progress_bars.bar("Choosing the model (candidates)", total=plan_total) as bar:
        for family in families:  # stage 1 always runs whole: every family is compared
            evaluate(PipelineSpec(family, c0, fixed_weight), always=True)
        best = min(scored, key=scored.get)
        complete = True
        if fixed_c is None:
            complete = all([evaluate(PipelineSpec(best.features, c, fixed_weight)) for c in C_GRID])
            best = min(scored, key=scored.get)
        if complete and settings.class_weight == "auto":
            complete = evaluate(PipelineSpec(best.features, best.C, "balanced"))
            best = min(scored, key=scored.get)
    where = ""
    if sampled:
        runner_up = sorted(scored, key=scored.get)[1:2]
        affordable = bool(runner_up) and time.perf_counter() - started <= budget and \
            _full_cost(seconds[runner_up[0]], lab.size, rows.size, np.unique(folds).size) <= budget
        best = _finalists(blocks, lab, y_lab, folds, n_classes, settings, n_jobs, w_lab, scored, cache,
                          finalists=FINALISTS if affordable else 1)
        where = f" on a stratified sample of {rows.size} items ({SAMPLE_FOLDS}-fold), the best on every item"
    searched = (f"chose among {len(scored)} candidates{where}" if complete else
                f"time budget of {budget:g} s reached after {len(scored)} of {plan_total} candidates{where}")
    return best, searched


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
