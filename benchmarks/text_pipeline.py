"""The full text pipeline on real data: 20 Newsgroups test posts -> features -> cross-validated pred_probs ->
relabel.confident.find_label_issues, scored against the label errors people confirmed in "Pervasive Label Errors
in Test Sets" (Northcutt, Athalye, Mueller, NeurIPS 2021), beside the same figures from the paper's own pred_probs.

    python benchmarks/text_pipeline.py --data-dir ../shared/data/label_errors
    python benchmarks/text_pipeline.py --featurizers tfidf --n-folds 5          # quicker: no torch

For each featurizer it prints the out-of-fold accuracy against the given labels, the time to featurize (embed)
and to cross-validate, how many of the 82 validated errors (Mechanical Turk: fewer than 3 of 5 workers chose the
given label) are among the items find_label_issues flags, and precision / recall. People only checked the items the
paper flagged, so "precision" (validated flags / all flags) is a lower bound: an unchecked flag may be an error too;
"checked precision" is the share of validated errors among the flags that people did check.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from relabel.confident import find_label_issues  # noqa: E402  (the repo root is put on the path above)
from relabel.model import ModelSettings, cross_val_pred_probs, make_classifier  # noqa: E402

# Mechanical Turk: 5 workers per item; fewer than this many choosing the given label = validated error.
VALIDATED_BELOW = 3


def default_data_dir() -> Path:
    """RELABEL_SHARED_DATA/label_errors, else ../shared/data/label_errors beside the repository (read at call time)."""
    shared = os.environ.get("RELABEL_SHARED_DATA")
    return (Path(shared) if shared else REPO.parent / "shared" / "data") / "label_errors"


def load(data_dir: Path):
    """Texts, given labels, the paper's pred_probs, the ids people checked and the ids they confirmed as errors."""
    with gzip.open(data_dir / "texts" / "20news_test_texts.jsonl.gz", "rt", encoding="utf-8") as handle:
        posts = [json.loads(line) for line in handle]
    labels = np.load(data_dir / "labels" / "20news_test_set_original_labels.npy").astype(np.intp)
    if [p["idx"] for p in posts] != list(range(len(posts))) or not np.array_equal([p["label"] for p in posts], labels):
        raise SystemExit("texts/20news_test_texts.jsonl.gz is not in the row order of the labels file")
    paper = np.load(data_dir / "pred_probs" / "20news_test_set_pyx.npy")
    mturk = json.loads((data_dir / "mturk" / "20news_mturk.json").read_text())
    checked = {int(e["id"]) for e in mturk}
    validated = {int(e["id"]) for e in mturk if e["mturk"]["given"] < VALIDATED_BELOW}
    return [p["text"] for p in posts], labels, paper, checked, validated


def score(name, labels, pred_probs, checked, validated, featurize_s=None, cv_s=None) -> dict:
    flagged = set(np.flatnonzero(find_label_issues(labels, pred_probs)).tolist())
    hits = len(flagged & validated)
    flagged_checked = len(flagged & checked)
    return {
        "pred_probs": name,
        "accuracy": float(np.mean(pred_probs.argmax(axis=1) == labels)),
        "featurize_s": featurize_s, "cv_s": cv_s,
        "flagged": len(flagged), "hits": hits,
        "precision": hits / len(flagged) if flagged else float("nan"),
        "checked_precision": hits / flagged_checked if flagged_checked else float("nan"),
        "recall": hits / len(validated),
    }


def run_featurizer(name, texts, labels, args) -> tuple[np.ndarray, float, float]:
    settings = ModelSettings(featurizer=name, n_folds=args.n_folds, seed=args.seed, threads=args.threads,
                             batch_size=args.batch_size, classifier_options=dict(args.classifier_option))
    cache = None
    if args.cache is not None and name == "sentence-transformers":
        from relabel.store import Store
        cache = Store(args.cache)
    features = settings.make_featurizer(cache=cache, progress=True)
    start = time.perf_counter()
    X = features.fit_transform(texts, [str(i) for i in range(len(texts))])  # once, not per fold
    featurize_s = time.perf_counter() - start
    estimator = make_classifier(settings.classifier, settings.classifier_options, seed=settings.seed)
    start = time.perf_counter()
    probs = cross_val_pred_probs(X, labels, n_folds=settings.n_folds, classifier=estimator, seed=settings.seed,
                                 n_classes=int(labels.max()) + 1)
    return probs, featurize_s, time.perf_counter() - start


def fmt(value, spec):
    return "-" if value is None else format(value, spec)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None, help="the label_errors folder of the shared data")
    parser.add_argument("--featurizers", default="tfidf,sentence-transformers")
    parser.add_argument("--n-folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads for embedding")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--classifier-option", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                        type=str, help="e.g. --classifier-option C 10 (values parsed as JSON)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="a SQLite store file to cache embeddings in (a re-run then skips embedding; the "
                             "printed embed time is then the cached time)")
    parser.add_argument("--save-pred-probs", type=Path, default=None,
                        help="folder to save each featurizer's out-of-fold pred_probs (.npy) for later analysis")
    args = parser.parse_args(argv)
    args.classifier_option = [(k, json.loads(v)) for k, v in args.classifier_option]
    data_dir = args.data_dir or default_data_dir()
    texts, labels, paper, checked, validated = load(data_dir)
    print(f"20 Newsgroups test set: {len(texts)} posts, {labels.max() + 1} classes, {len(checked)} items checked by "
          f"people, {len(validated)} validated label errors; {args.n_folds}-fold CV, seed {args.seed}.", flush=True)

    rows = [score("paper (published pred_probs)", labels, paper, checked, validated)]
    for name in [f.strip() for f in args.featurizers.split(",") if f.strip()]:
        probs, featurize_s, cv_s = run_featurizer(name, texts, labels, args)
        if args.save_pred_probs:
            args.save_pred_probs.mkdir(parents=True, exist_ok=True)
            np.save(args.save_pred_probs / f"20news_{name}_oof.npy", probs)
        rows.append(score(f"relabel {name} + logistic regression", labels, probs, checked, validated,
                          featurize_s, cv_s))
        print(f"  {name}: accuracy {rows[-1]['accuracy']:.4f}, featurize {featurize_s:.1f} s, CV {cv_s:.1f} s",
              flush=True)

    print()
    print(f"| pred_probs | out-of-fold accuracy | featurize / embed (s) | CV (s) | flagged | validated errors found "
          f"(of {len(validated)}) | precision | checked precision | recall |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['pred_probs']} | {r['accuracy']:.4f} | {fmt(r['featurize_s'], '.1f')} | {fmt(r['cv_s'], '.1f')} "
              f"| {r['flagged']} | {r['hits']} | {r['precision']:.3f} | {r['checked_precision']:.3f} "
              f"| {r['recall']:.3f} |")
    ours = rows[1:]
    if ours:
        best = max(ours, key=lambda r: (r["hits"], r["accuracy"]))
        print(f"\nMost validated errors found: {best['pred_probs']} ({best['hits']} of {len(validated)}).")


if __name__ == "__main__":
    main()
