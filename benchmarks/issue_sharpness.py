"""Why relabel's model can flag worse with confident learning while ranking better: sharpness against issue F1.

    python benchmarks/issue_sharpness.py --data-dir ../shared/data/label_errors --classes 20 --size 1000

The same cells as ``text_pipeline.py --rounds`` (benchmarks/model_rounds.py: a seeded sample with 15% of the
labels flipped). For each seed, the plain pipeline's features (TF-IDF word 1-2-grams) with LogisticRegression at
C = 1, 3 and 10, 5-fold out-of-fold, each read as it comes (``raw``) and after relabel's cross-fitted temperature
(``calibrated``, what relabel's model phase returns), and relabel's own model phase (``fit_predict_probs``).
Printed per row, as means over the seeds: out-of-fold log-loss on the given labels; flagged / truly wrong;
issue F1 of ``find_label_issues`` (cleanlab's default ``prune_by_noise_rate``); and the F1 of the same number of
items taken lowest probability of the given label first (how relabel's review queue orders them: the AUROC of
that ranking is printed too). The first F1 depends on how sharp the probabilities are, the second on their order.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from model_rounds import flag_scores, load  # noqa: E402
from relabel.models.estimators import stratified_folds  # noqa: E402
from relabel.models.fit import ModelSettings, cross_val_pred_probs, fit_predict_probs  # noqa: E402
from relabel.models.model_cache import ModelCache  # noqa: E402
from relabel.scoring.calibration import cross_fitted_temperature, log_loss  # noqa: E402
from relabel.scoring.confident import find_label_issues  # noqa: E402


def f1(flagged: np.ndarray, wrong: np.ndarray) -> float:
    return flag_scores(flagged, wrong)[2]


def measures(probs: np.ndarray, given: np.ndarray, truth: np.ndarray) -> tuple[float, ...]:
    from sklearn.metrics import roc_auc_score
    wrong = given != truth
    flagged = find_label_issues(given, probs)
    own = probs[np.arange(given.size), given]
    ranked = np.zeros_like(flagged)
    ranked[np.argsort(own, kind="stable")[:int(flagged.sum())]] = True
    return (log_loss(probs, given), flagged.sum() / wrong.sum(), f1(flagged, wrong), f1(ranked, wrong),
            roc_auc_score(wrong, -own))


def run(texts_dir: Path, classes: int, size: int, seeds: list[int]) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    rows: dict[str, list[tuple]] = {}
    for seed in seeds:
        data = load(texts_dir, classes, size, seed)
        given, truth, k = data["given"], data["truth"], data["k"]
        X = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2).fit_transform(data["texts"])
        folds = stratified_folds(given, 5, seed)
        for C in (1, 3, 10):
            raw = cross_val_pred_probs(X, given, n_folds=5, seed=seed, n_classes=k,
                                       classifier=LogisticRegression(C=C, max_iter=1000))
            rows.setdefault(f"word, C={C}, raw" + (" (the plain pipeline)" if C == 1 else ""), []).append(
                measures(raw, given, truth))
            rows.setdefault(f"word, C={C}, calibrated", []).append(
                measures(cross_fitted_temperature(raw, given, folds), given, truth))
        settings = ModelSettings(featurizer="tfidf", n_folds=5, seed=seed, selection_seconds=600.0)
        with tempfile.TemporaryDirectory() as tmp:
            ids = [str(i) for i in range(given.size)]
            result = fit_predict_probs(ids, data["texts"], given, k, settings, reuse=ModelCache(Path(tmp) / "c"))
        rows.setdefault("relabel's model phase", []).append(measures(result.probs, given, truth))
        print(f"seed {seed}: relabel chose {result.report.pipeline}", flush=True)
    print(f"\n{data['what']}, {k} classes, means over seeds {', '.join(map(str, seeds))}\n")
    print("| probabilities | OOF log-loss | flagged / wrong | issue F1 (find_label_issues) | "
          "F1 of as many, lowest p(given) first | AUROC of p(given) |\n|---|---|---|---|---|---|")
    for name, values in rows.items():
        m = np.mean(np.array(values, dtype=float), axis=0)
        print(f"| {name} | {m[0]:.3f} | {m[1]:.2f} | {m[2]:.3f} | {m[3]:.3f} | {m[4]:.3f} |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the label_errors folder of the shared data")
    parser.add_argument("--classes", type=int, default=20, help="2 (IMDB) or 20 (20 Newsgroups)")
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    args = parser.parse_args(argv)
    run(args.data_dir / "texts", args.classes, args.size, [int(s) for s in args.seeds.split(",")])


if __name__ == "__main__":
    main()
