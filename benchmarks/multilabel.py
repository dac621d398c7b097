"""Multi-label consensus on a simulated tagging project over real texts (issue 24).

    PYTHONPATH=. python benchmarks/multilabel.py [--seeds 0 1 2] [--skip-scale]

Items: the 7,532 posts of the 20 newsgroups test set (../shared/data/label_errors/texts). Tags: eleven overlapping
topic groups derived from the newsgroup names (rec.sport.hockey -> rec + sports, comp.sys.mac.hardware -> comp +
hardware, talk.politics.guns -> talk + politics, ...), so the true set of every post is known. Annotators (12,
three per post) each have their own rates: they miss tags (sensitivity 0.6-0.97, varying by tag), add wrong ones
(0.5-5% of absent tags) and confuse four tag pairs (sports/vehicles, hardware/software, politics/religion,
sci/comp: tag the partner instead, 0-25%); two careless annotators are worse. 20% of posts are hard: every
annotator's sensitivity there is 0.25 lower, so their mistakes are correlated (as real annotators' are).

Compared (exact-set accuracy, per-class accuracy, mean per-class F1 against the true sets):
* per-class majority vote;
* binary-relevance Dawid-Skene (crowd-kit's BinaryRelevance(DawidSkene), one class at a time, no model);
* relabel.multilabel_consensus without a model;
* relabel.multilabel_consensus with a model: one-vs-rest logistic regression on TF-IDF of the text, trained on
  the per-class majority votes, out-of-fold (5 folds); relabel recalibrates it per class.
Item quality: AUROC of relabel's quality (with the model) for finding posts whose consensus set is wrong, against
the share of the post's annotators whose set equals the consensus set.

Scale: 100,000 items x 20 classes x 3 annotators (of 50; synthetic sets) scored without a model in a child
process: wall time and peak RSS (VmHWM), with per-class majority vote timed in the same child as the baseline.
"""
from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))   # run as `python benchmarks/<name>.py` from anywhere
from benchmarks.shared_data import label_errors_dir, proc_status_mb
from relabel import multilabel_consensus

TAGS = ("comp", "hardware", "software", "rec", "sports", "vehicles", "sci", "talk", "politics", "religion", "sale")
CONFUSED_PAIRS = (("sports", "vehicles"), ("hardware", "software"), ("politics", "religion"), ("sci", "comp"))
N_ANNOTATORS, PER_ITEM, HARD_SHARE, HARD_PENALTY = 12, 3, 0.2, 0.25


def tags_of(newsgroup: str) -> set[str]:
    parts = newsgroup.split(".")
    tags = set()
    if parts[0] == "comp":
        tags |= {"comp", "hardware" if parts[1] == "sys" else "software"}
    if newsgroup == "sci.electronics":
        tags.add("hardware")
    if parts[0] in ("rec", "sci", "talk"):
        tags.add(parts[0])
    if newsgroup.startswith("rec.sport"):
        tags.add("sports")
    if newsgroup in ("rec.autos", "rec.motorcycles"):
        tags.add("vehicles")
    if newsgroup.startswith("talk.politics"):
        tags.add("politics")
    if newsgroup in ("alt.atheism", "soc.religion.christian", "talk.religion.misc"):
        tags.add("religion")
    if newsgroup == "misc.forsale":
        tags.add("sale")
    return tags


def load_posts():
    with gzip.open(label_errors_dir() / "texts" / "20news_test_texts.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f]
    texts = [r["text"] for r in rows]
    truth = np.array([[t in tags_of(r["label_name"]) for t in TAGS] for r in rows], dtype=bool)
    return texts, truth


def simulate_annotators(truth: np.ndarray, seed: int, n_annotators=N_ANNOTATORS, per_item=PER_ITEM,
                        confusions=True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n, k = truth.shape
    sens = np.clip(rng.uniform(0.7, 0.97, (n_annotators, 1)) + rng.normal(0, 0.08, (n_annotators, k)), 0.35, 0.99)
    false_tag = rng.uniform(0.005, 0.05, (n_annotators, 1)) * rng.uniform(0.5, 1.5, (n_annotators, k))
    sens[:2] -= 0.2                                     # two careless annotators
    false_tag[:2] *= 2
    confuse = rng.uniform(0, 0.25, (n_annotators, len(CONFUSED_PAIRS))) if confusions else np.zeros((n_annotators, 1))
    hard = rng.random(n) < HARD_SHARE
    items = np.repeat(np.arange(n), per_item)
    ann = np.concatenate([rng.choice(n_annotators, per_item, replace=False) for _ in range(n)])
    true_r = truth[items]
    s = np.clip(sens[ann] - HARD_PENALTY * hard[items, None], 0.05, 1)
    tags = np.where(true_r, rng.random(true_r.shape) < s, rng.random(true_r.shape) < false_tag[ann])
    if confusions:
        index = {t: i for i, t in enumerate(TAGS)}
        for p, (a, b) in enumerate(CONFUSED_PAIRS):
            for x, y in ((index[a], index[b]), (index[b], index[a])):
                swap = true_r[:, x] & ~true_r[:, y] & (rng.random(items.size) < confuse[ann, p])
                tags[swap, x], tags[swap, y] = False, True
    return pd.DataFrame({"item": items, "annotator": ann, "labels": [list(np.flatnonzero(r)) for r in tags]})


def majority_vote(frame: pd.DataFrame, n: int, k: int) -> np.ndarray:
    votes = np.zeros((n, k))
    lengths = frame["labels"].map(len).to_numpy()
    flat = np.concatenate([np.asarray(x, dtype=int) for x in frame["labels"]]) if lengths.sum() else np.zeros(0, int)
    np.add.at(votes, (np.repeat(frame["item"].to_numpy(), lengths), flat), 1)
    counts = np.bincount(frame["item"], minlength=n)[:, None]
    return votes * 2 > counts


def br_dawid_skene(frame: pd.DataFrame, n: int, k: int) -> np.ndarray:
    from crowdkit.aggregation import BinaryRelevance, DawidSkene
    df = pd.DataFrame({"task": frame["item"], "worker": frame["annotator"],
                       "label": [[TAGS[c] for c in x] for x in frame["labels"]]})
    out = BinaryRelevance(DawidSkene(n_iter=100)).fit_predict(df)
    result = np.zeros((n, k), dtype=bool)
    index = {t: i for i, t in enumerate(TAGS)}
    for task, tags in out.items():
        for t in tags:
            result[task, index[t]] = True
    return result


def model_probs(texts, train_sets: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold
    x = TfidfVectorizer(sublinear_tf=True, min_df=2, max_features=30_000).fit_transform(texts)
    out = np.zeros(train_sets.shape)
    for train, test in KFold(5, shuffle=True, random_state=seed).split(x):
        for c in range(train_sets.shape[1]):
            y = train_sets[train, c]
            if y.min() == y.max():
                out[test, c] = y[0]
                continue
            out[test, c] = LogisticRegression(C=4.0, solver="liblinear").fit(x[train], y).predict_proba(x[test])[:, 1]
    return out


def scores(pred: np.ndarray, truth: np.ndarray) -> dict:
    tp = (pred & truth).sum(axis=0)
    fp = (pred & ~truth).sum(axis=0)
    fn = (~pred & truth).sum(axis=0)
    f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 1.0)
    return {"exact-set acc": (pred == truth).all(axis=1).mean(), "per-class acc": (pred == truth).mean(),
            "mean per-class F1": f1.mean()}


def log(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_quality(seed: int, texts, truth) -> tuple[pd.DataFrame, dict]:
    from sklearn.metrics import roc_auc_score
    n, k = truth.shape
    frame = simulate_annotators(truth, seed)
    mv = majority_vote(frame, n, k)
    rows = {"per-class majority vote": scores(mv, truth)}
    log("majority vote done; BR-DS")
    t0 = time.perf_counter()
    rows["binary-relevance Dawid-Skene (crowd-kit)"] = scores(br_dawid_skene(frame, n, k), truth)
    t_ds = time.perf_counter() - t0
    t0 = time.perf_counter()
    alone = multilabel_consensus(frame, k)
    t_alone = time.perf_counter() - t0
    rows["relabel, annotations only"] = scores(alone.labels.astype(bool), truth)
    log(f"BR-DS {t_ds:.0f} s, relabel {t_alone:.1f} s; model")
    t0 = time.perf_counter()
    probs = model_probs(texts, mv, seed)
    log(f"model {time.perf_counter() - t0:.0f} s")
    rows["model alone (p >= 0.5)"] = scores(probs >= 0.5, truth)
    with_model = multilabel_consensus(frame, k, pred_probs=probs)
    rows["relabel with model"] = scores(with_model.labels.astype(bool), truth)
    wrong = ~(with_model.labels.astype(bool) == truth).all(axis=1)
    auc = {"wrong sets (relabel with model)": int(wrong.sum()),
           "AUROC relabel quality": roc_auc_score(wrong, -with_model.quality),
           "AUROC agreement share": roc_auc_score(wrong, -with_model.agreement),
           "seconds BR-DS": t_ds, "seconds relabel (annotations only)": t_alone}
    return pd.DataFrame(rows).T, auc


def scale_child(n: int, k: int) -> None:
    rng = np.random.default_rng(0)
    truth = rng.random((n, k)) < rng.uniform(0.03, 0.3, k)
    sens, fal = rng.uniform(0.6, 0.97, (50, k)), rng.uniform(0.005, 0.05, (50, k))
    items = np.repeat(np.arange(n), 3)
    ann = np.concatenate([rng.choice(50, 3, replace=False) for _ in range(n)])
    tags = np.where(truth[items], rng.random((items.size, k)) < sens[ann], rng.random((items.size, k)) < fal[ann])
    frame = pd.DataFrame({"item": items, "annotator": ann, "labels": [list(np.flatnonzero(r)) for r in tags]})
    del tags
    base_mb = proc_status_mb("VmRSS")
    t0 = time.perf_counter()
    mv = majority_vote(frame, n, k)
    t_mv = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    result = multilabel_consensus(frame, k)
    t_rl, cpu_rl = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"seconds": t_rl, "cpu_seconds": cpu_rl, "seconds_mv": t_mv, "peak_mb": proc_status_mb("VmHWM"), "input_mb": base_mb,
                      "iterations": result.n_iter, "exact_relabel": float((result.labels == truth).all(1).mean()),
                      "exact_mv": float((mv == truth).all(1).mean())}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--scale-child", nargs=2, type=int, metavar=("ITEMS", "CLASSES"))
    parser.add_argument("--scale-items", type=int, default=100_000)
    args = parser.parse_args()
    if args.scale_child:
        scale_child(*args.scale_child)
        return
    texts, truth = load_posts()
    print(f"20 newsgroups test posts: {truth.shape[0]} items, {truth.shape[1]} tags {TAGS}; "
          f"{truth.sum(1).mean():.2f} tags per post; {N_ANNOTATORS} annotators, {PER_ITEM} per post")
    pd.set_option("display.width", 160)
    for seed in args.seeds:
        table, auc = run_quality(seed, texts, truth)
        print(f"\nseed {seed}\n{table.round(4).to_string()}")
        print("  " + "; ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in auc.items()))
    if not args.skip_scale:
        out = subprocess.run([sys.executable, __file__, "--scale-child", str(args.scale_items), "20"],
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"\nscale: {args.scale_items:,} items x 20 classes x 3 annotators (of 50), annotations only: "
              f"{r['seconds']:.1f} s wall, {r['cpu_seconds']:.1f} s CPU ({r['iterations']} EM iterations; per-class majority vote {r['seconds_mv']:.1f} s, "
              f"ratio {r['seconds'] / r['seconds_mv']:.1f}x), peak RSS {r['peak_mb']:.0f} MiB (input table "
              f"{r['input_mb']:.0f} MiB); exact-set accuracy relabel {r['exact_relabel']:.4f}, "
              f"majority vote {r['exact_mv']:.4f}")


if __name__ == "__main__":
    main()
