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

from relabel.confident import find_label_issues, get_label_quality_scores  # noqa: E402  (repo root on the path)
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
    # A review queue has a budget: of the len(checked) lowest-quality items (as many as the paper flagged),
    # how many are validated errors? This compares featurizers at equal reviewer effort.
    quality = get_label_quality_scores(labels, pred_probs)
    budget = set(np.argsort(quality, kind="stable")[:len(checked)].tolist())
    return {
        "budget_hits": len(budget & validated),
        "pred_probs": name,
        "accuracy": float(np.mean(pred_probs.argmax(axis=1) == labels)),
        "featurize_s": featurize_s, "cv_s": cv_s,
        "flagged": len(flagged), "hits": hits,
        "precision": hits / len(flagged) if flagged else float("nan"),
        "checked_precision": hits / flagged_checked if flagged_checked else float("nan"),
        "recall": hits / len(validated),
    }


def parse_spec(spec: str) -> tuple[str, dict]:
    """'tfidf' or 'tfidf@C=10': a featurizer name and logistic-regression options (values parsed as JSON)."""
    name, _, rest = spec.partition("@")
    options = {}
    for pair in filter(None, rest.split("+")):
        key, _, value = pair.partition("=")
        options[key] = json.loads(value)
    return name, options


def run_featurizer(spec, texts, labels, args) -> tuple[np.ndarray, float, float]:
    name, options = parse_spec(spec)
    settings = ModelSettings(featurizer=name, n_folds=args.n_folds, seed=args.seed, threads=args.threads,
                             batch_size=args.batch_size, classifier_options=options)
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
    parser.add_argument("--featurizers", default="tfidf@C=1,tfidf,sentence-transformers@C=1,sentence-transformers",
                        help="comma-separated featurizers, each optionally with logistic-regression options "
                             "after '@' joined by '+', e.g. tfidf@C=10+class_weight=\"balanced\"")
    parser.add_argument("--n-folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads for embedding")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cache", type=Path, default=None,
                        help="a SQLite store file to cache embeddings in (a re-run then skips embedding; the "
                             "printed embed time is then the cached time)")
    parser.add_argument("--save-pred-probs", type=Path, default=None,
                        help="folder to save each featurizer's out-of-fold pred_probs (.npy) for later analysis")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or default_data_dir()
    texts, labels, paper, checked, validated = load(data_dir)
    print(f"20 Newsgroups test set: {len(texts)} posts, {labels.max() + 1} classes, {len(checked)} items checked by "
          f"people, {len(validated)} validated label errors; {args.n_folds}-fold CV, seed {args.seed}.", flush=True)

    rows = [score("paper (published pred_probs)", labels, paper, checked, validated)]
    for spec in [f.strip() for f in args.featurizers.split(",") if f.strip()]:
        probs, featurize_s, cv_s = run_featurizer(spec, texts, labels, args)
        if args.save_pred_probs:
            args.save_pred_probs.mkdir(parents=True, exist_ok=True)
            np.save(args.save_pred_probs / f"20news_{spec.replace('@', '_')}_oof.npy", probs)
        name, options = parse_spec(spec)
        described = ", ".join(f"{k}={v}" for k, v in options.items()) or "defaults: C=10"
        rows.append(score(f"relabel {name} + logistic regression ({described})", labels, probs, checked, validated,
                          featurize_s, cv_s))
        print(f"  {spec}: accuracy {rows[-1]['accuracy']:.4f}, featurize {featurize_s:.1f} s, CV {cv_s:.1f} s",
              flush=True)

    print()
    print(f"| pred_probs | out-of-fold accuracy | featurize / embed (s) | CV (s) | flagged | validated errors found "
          f"(of {len(validated)}) | precision | checked precision | recall | validated in lowest-quality "
          f"{len(checked)} |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['pred_probs']} | {r['accuracy']:.4f} | {fmt(r['featurize_s'], '.1f')} | {fmt(r['cv_s'], '.1f')} "
              f"| {r['flagged']} | {r['hits']} | {r['precision']:.3f} | {r['checked_precision']:.3f} "
              f"| {r['recall']:.3f} | {r['budget_hits']} |")
    ours = rows[1:]
    if ours:
        # F1 of find_label_issues weighs flags a reviewer must look at against errors found.
        for r in ours:
            r["f1"] = 2 * r["precision"] * r["recall"] / (r["precision"] + r["recall"]) if r["hits"] else 0.0
        best = max(ours, key=lambda r: (r["f1"], r["budget_hits"]))
        print(f"\nBest F1 of flagged vs validated errors: {best['pred_probs']} (F1 {best['f1']:.3f}, "
              f"{best['hits']} of {len(validated)} found with {best['flagged']} flags).")


if __name__ == "__main__":
    main()
